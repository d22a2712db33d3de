#!/usr/bin/env bash
# A call through real kernel NAT: two Sotto SDK callers, each in its own
# network namespace behind a router that masquerades them (iptables
# MASQUERADE --random-fully, so a new port for every destination: a
# symmetric NAT) and lets out nothing but signaling and TURN, call each
# other through an SFU and cmd/turn on a "public" segment. The call can
# only connect through the relay; the script shows that it does, and that
# the relay counted the media.
#
#   sudo deploy/netns/nat-call.sh      (from the repository; needs root,
#                                       ip, iptables, curl and go)
#
#   callers     NAT routers            "internet"        server
#   s-a 10.1.0.2 ── s-nat-a 198.18.2.2 ┐
#                                       ├─ s-inet ── s-srv 198.18.1.2 sfu
#   s-b 10.2.0.2 ── s-nat-b 198.18.3.2 ┘             198.18.1.3 turn
#
# Only the namespaces' own addresses (10.1/16, 10.2/16 and the benchmark
# range 198.18.0.0/15, RFC 2544) and loopback are used; nothing touches the
# host's network. Exit status 0 when both callers received each other's
# audio through the relay.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [ "$(id -u)" -ne 0 ]; then
  echo "nat-call: needs root (network namespaces, iptables)" >&2
  exit 2
fi

id=$(printf '%04x' $((RANDOM)))
ns() { echo "s${id}-$1"; }
A=$(ns a) B=$(ns b) NA=$(ns nata) NB=$(ns natb) INET=$(ns inet) SRV=$(ns srv)
work=$(mktemp -d)
pids=()

cleanup() {
  local status=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for n in "$A" "$B" "$NA" "$NB" "$INET" "$SRV"; do ip netns del "$n" 2>/dev/null || true; done
  if [ "$status" -ne 0 ]; then
    for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 40 "$f"; }; done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

echo "== build"
go build -o "$work/sfu" ./cmd/sfu
go build -o "$work/turn" ./cmd/turn
go test -c -tags natcall -o "$work/natclient.test" ./cmd/turn

echo "== namespaces $A $B $NA $NB $INET $SRV"
for n in "$A" "$B" "$NA" "$NB" "$INET" "$SRV"; do
  ip netns add "$n"
  ip -n "$n" link set lo up
done
# link NS1 IF1 ADDR1 NS2 IF2 ADDR2: a veth pair between two namespaces.
link() {
  ip link add "v${id}$2" netns "$1" type veth peer name "v${id}$5" netns "$4"
  ip -n "$1" addr add "$3" dev "v${id}$2"
  ip -n "$4" addr add "$6" dev "v${id}$5"
  ip -n "$1" link set "v${id}$2" up
  ip -n "$4" link set "v${id}$5" up
}
link "$SRV" s0 198.18.1.2/24 "$INET" i0 198.18.1.1/24
ip -n "$SRV" addr add 198.18.1.3/24 dev "v${id}s0"
link "$NA" w0 198.18.2.2/24 "$INET" i1 198.18.2.1/24
link "$NB" w0 198.18.3.2/24 "$INET" i2 198.18.3.1/24
link "$A" e0 10.1.0.2/24 "$NA" l0 10.1.0.1/24
link "$B" e0 10.2.0.2/24 "$NB" l0 10.2.0.1/24
ip -n "$SRV" route add default via 198.18.1.1
ip -n "$NA" route add default via 198.18.2.1
ip -n "$NB" route add default via 198.18.3.1
ip -n "$A" route add default via 10.1.0.1
ip -n "$B" route add default via 10.2.0.1
for n in "$INET" "$NA" "$NB"; do ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=1; done

# Each NAT router masquerades its caller with a random port per mapping
# (symmetric NAT) and forwards only signaling (TCP 7780 to the SFU) and
# TURN (UDP and TCP 3478 to the relay): no direct media path exists.
for pair in "$NA:v${id}w0:v${id}l0" "$NB:v${id}w0:v${id}l0"; do
  IFS=: read -r n wan lan <<<"$pair"
  ip netns exec "$n" iptables -t nat -A POSTROUTING -o "$wan" -j MASQUERADE --random-fully
  ip netns exec "$n" iptables -P FORWARD DROP
  ip netns exec "$n" iptables -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
  ip netns exec "$n" iptables -A FORWARD -i "$lan" -d 198.18.1.2 -p tcp --dport 7780 -j ACCEPT
  ip netns exec "$n" iptables -A FORWARD -i "$lan" -d 198.18.1.3 -p udp --dport 3478 -j ACCEPT
  ip netns exec "$n" iptables -A FORWARD -i "$lan" -d 198.18.1.3 -p tcp --dport 3478 -j ACCEPT
done

secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
api_secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

echo "== relay and gateway in $SRV"
# The SFU is on a public address (not in the relay's deny list), so the
# relay needs no --allow-peer here.
ip netns exec "$SRV" env SOTTO_TURN_SECRET="$secret" "$work/turn" \
  --listen 198.18.1.3:3478 --relay-ip 198.18.1.3 --min-port 49152 --max-port 49999 \
  --metrics 198.18.1.3:9641 >"$work/turn.out" 2>"$work/turn.log" &
pids+=($!)
ip netns exec "$SRV" env SOTTO_API_KEY=nat SOTTO_API_SECRET="$api_secret" SOTTO_TURN_SECRET="$secret" "$work/sfu" \
  --http 198.18.1.2:7780 --media-ip 198.18.1.2 --media-port 7781 --drain-grace 0 \
  --turn-url 'turn:198.18.1.3:3478?transport=udp' >"$work/sfu.out" 2>"$work/sfu.log" &
pids+=($!)

# Wait (bounded) until both serve: the relay prints "ready", the gateway
# answers /readyz.
for _ in $(seq 100); do
  if grep -q '^ready$' "$work/turn.out" && ip netns exec "$SRV" curl -fsS -o /dev/null http://198.18.1.2:7780/readyz; then
    break
  fi
  sleep 0.1
done
grep -q '^ready$' "$work/turn.out" || { echo "nat-call: relay did not start" >&2; exit 1; }
ip netns exec "$SRV" curl -fsS -o /dev/null http://198.18.1.2:7780/readyz || { echo "nat-call: gateway did not start" >&2; exit 1; }

token() { SOTTO_API_KEY=nat SOTTO_API_SECRET="$api_secret" "$work/sfu" token --room nat --identity "$1" --ttl 10m; }

echo "== call: alice in $A, bob in $B"
ip netns exec "$A" env SOTTO_NAT_URL=http://198.18.1.2:7780 SOTTO_NAT_TOKEN="$(token alice)" SOTTO_NAT_PEER=bob \
  "$work/natclient.test" -test.run '^TestNATClient$' -test.v >"$work/alice.log" 2>&1 &
alice=$!
ip netns exec "$B" env SOTTO_NAT_URL=http://198.18.1.2:7780 SOTTO_NAT_TOKEN="$(token bob)" SOTTO_NAT_PEER=alice \
  "$work/natclient.test" -test.run '^TestNATClient$' -test.v >"$work/bob.log" 2>&1 &
bob=$!
status=0
wait "$alice" || status=1
wait "$bob" || status=1
grep -h 'received' "$work/alice.log" "$work/bob.log" || true
if [ "$status" -ne 0 ]; then
  echo "nat-call: FAIL: the callers did not hear each other" >&2
  exit 1
fi

relayed=$(ip netns exec "$SRV" curl -fsS http://198.18.1.3:9641/metrics |
  awk '$1 == "sotto_turn_relayed_packets_total{direction=\"from_peer\"}" { print $2 }')
echo "relay: ${relayed:-0} packets relayed from the SFU to the callers"
if ! awk -v n="${relayed:-0}" 'BEGIN { exit !(n >= 50) }'; then
  echo "nat-call: FAIL: the call did not go through the relay" >&2
  exit 1
fi
echo "nat-call: OK: both callers behind symmetric NAT heard each other through the relay"
