#!/usr/bin/env bash
# cmd/turn against coturn, side by side on loopback (docs/BENCHMARKS.md,
# "TURN relay against coturn"):
#
#   deploy/bench/turn-vs-coturn.sh [RUNS]
#
# Each run starts a fresh server (coturn's turnserver, then cmd/turn, the
# order swapped every other run), both with the same REST secret and
# realm, and has turnutils_uclient relay through it to turnutils_peer, an
# echo peer: CLIENTS clients (-m), one UDP allocation and one channel each
# (-c: no RTCP allocation), LENGTH-byte messages every INTERVAL ms, MESSAGES
# per client. The server's CPU is utime+stime of its process
# (/proc/PID/stat) from just before the clients start to just after they
# end. Relayed packets = 2 x messages received back (each went through the
# relay to the peer and back); lost = sent - received, as uclient counts
# them. Prints one Markdown row per run.
#
# "rcvbuf drops" is the rise of the kernel's UDP RcvbufErrors (all sockets
# on the machine: the servers', the peer's and the clients') over the run.
#
# Environment: CLIENTS (100), LENGTH (200), INTERVAL (5), MESSAGES (2000),
# SERVERS ("coturn cmd/turn"), GOGC and GOMAXPROCS for cmd/turn (unset: Go's
# defaults), TURN_FLAGS (more cmd/turn flags),
# BENCH_OUT (default /tmp/sotto-turn-bench: the servers' and clients' logs).
# Needs coturn (apt-get install -y coturn) and Go. To profile cmd/turn
# under this load, build it with -tags pprof (cmd/turn/pprof.go).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

runs=${1:-3}
clients=${CLIENTS:-100}
length=${LENGTH:-200}
interval=${INTERVAL:-5}
messages=${MESSAGES:-2000}
out=${BENCH_OUT:-${TMPDIR:-/tmp}/sotto-turn-bench}
secret=$(openssl rand -hex 32)
realm=sotto
port=${BENCH_PORT:-3578}
peer_port=$((port + 2))
mkdir -p "$out"

for p in turnserver turnutils_uclient turnutils_peer; do
	command -v $p >/dev/null || { echo "turn-vs-coturn.sh: $p missing (apt-get install -y coturn)" >&2; exit 2; }
done

bin=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$bin"
}
trap cleanup EXIT
go build -o "$bin/turn" ./cmd/turn

turnutils_peer -L 127.0.0.1 -p "$peer_port" >"$out/peer.log" 2>&1 &
pids+=($!)

ticks=$(getconf CLK_TCK)
rcvbuf() { awk '/^Udp:/ { if (h) print $6; h = 1 }' /proc/net/snmp; }
cpu() { awk -v t="$ticks" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"; }

start_server() { # name -> pid in $server_pid
	case $1 in
	coturn)
		turnserver -n --listening-ip 127.0.0.1 --listening-port "$port" --relay-ip 127.0.0.1 \
			--min-port 50000 --max-port 59999 --use-auth-secret --static-auth-secret "$secret" \
			--realm "$realm" --allow-loopback-peers --no-tls --no-dtls --no-cli --no-tcp-relay \
			--log-file "$out/coturn.log" --simple-log >/dev/null 2>&1 &
		;;
	cmd/turn)
		# shellcheck disable=SC2086
		"$bin/turn" --listen "udp://127.0.0.1:$port" --relay-ip 127.0.0.1 --realm "$realm" \
			--auth-secret "$secret" --allow-peer 127.0.0.0/8 --max-allocations-per-user 0 \
			--metrics off --log-level warn ${TURN_FLAGS:-} >"$out/turn.out" 2>"$out/turn.log" &
		;;
	esac
	server_pid=$!
	pids+=("$server_pid")
	for _ in $(seq 50); do
		if ss -lun | grep -q "127.0.0.1:$port "; then return; fi
		sleep 0.1
	done
	echo "turn-vs-coturn.sh: $1 did not start" >&2
	exit 1
}

echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); commit $(git rev-parse --short HEAD)$(git diff --quiet -- relay cmd/turn || echo '+changes')"
echo "# $clients clients x $length B every $interval ms, $messages messages each; cmd/turn with GOGC=${GOGC:-default} GOMAXPROCS=${GOMAXPROCS:-default} ${TURN_FLAGS:-}"
echo "| run | server | load before | server CPU-s | sent | received | lost | rcvbuf drops | relayed packets | relayed per CPU-s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for run in $(seq "$runs"); do
	read -r -a order <<<"${SERVERS:-coturn cmd/turn}"
	if ((run % 2 == 0)); then
		rev=()
		for ((i = ${#order[@]} - 1; i >= 0; i--)); do rev+=("${order[i]}"); done
		order=("${rev[@]}")
	fi
	for server in "${order[@]}"; do
		start_server "$server"
		sleep 1
		load=$(cut -d' ' -f1 /proc/loadavg)
		before=$(cpu "$server_pid")
		drops=$(rcvbuf)
		log="$out/uclient-$run-${server//\//-}.log"
		turnutils_uclient -m "$clients" -l "$length" -n "$messages" -z "$interval" -c \
			-W "$secret" -u bench -e 127.0.0.1 -r "$peer_port" -p "$port" 127.0.0.1 >"$log" 2>&1 || true
		after=$(cpu "$server_pid")
		drops=$(($(rcvbuf) - drops))
		kill "$server_pid"
		wait "$server_pid" 2>/dev/null || true
		read -r sent recv < <(sed -n 's/.*tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\).*/\1 \2/p' "$log" | tail -1)
		awk -v r="$run" -v s="$server" -v l="$load" -v b="$before" -v a="$after" -v snt="${sent:-0}" -v rcv="${recv:-0}" -v d="$drops" 'BEGIN {
			c = a - b; rel = 2 * rcv; lost = snt - rcv
			eff = (c > 0) ? sprintf("%.0f", rel / c) : "-"
			pct = snt ? 100 * lost / snt : 0
			printf("| %d | %s | %s | %.2f | %d | %d | %d (%.3f %%) | %d | %d | %s |\n", r, s, l, c, snt, rcv, lost, pct, d, rel, eff)
		}'
	done
done
