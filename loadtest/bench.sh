#!/usr/bin/env bash
# One command per row of docs/BENCHMARKS.md:
#
#   loadtest/bench.sh ROW [more cmd/loadtest flags]
#
# ROW is udp (the loopback UDP reference), meeting, audio-heavy or fan-out
# (the full rows), or meeting-small, audio-small, fan-out-small (short
# runs for a busy machine). For a load row it builds cmd/sfu and
# cmd/loadtest, starts a fresh SFU on loopback with a key made for this
# run and the bench limits below, runs the row against it, and stops it.
# It writes $BENCH_OUT/ROW.json (the report), $BENCH_OUT/ROW.txt (machine,
# load averages, the table) and prints a Markdown row for the document.
#
# Environment: BENCH_OUT (default /tmp/sotto-bench), BENCH_PORT (default 17790),
# SFU_FLAGS (more cmd/sfu flags, e.g. "--messages-per-second 500").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

row=${1:?usage: loadtest/bench.sh ROW [cmd/loadtest flags] (ROW: udp meeting audio-heavy fan-out meeting-small audio-small fan-out-small)}
shift
out=${BENCH_OUT:-${TMPDIR:-/tmp}/sotto-bench}
port=${BENCH_PORT:-17790}
mkdir -p "$out"

case $row in
udp) args=(--udp-reference --udp-duration 5s) ;;
meeting) args=(--rooms 1 --publishers 10 --subscribers 10 --video-bitrate 500k --duration 60s --ramp 10) ;;
audio-heavy) args=(--rooms 1 --publishers 5 --subscribers 100 --audio-only --duration 60s --ramp 10) ;;
fan-out) args=(--rooms 1 --publishers 1 --subscribers 200 --video-bitrate 500k --duration 60s --ramp 10) ;;
meeting-small) args=(--rooms 1 --publishers 4 --subscribers 4 --video-bitrate 500k --duration 15s --ramp 10) ;;
audio-small) args=(--rooms 1 --publishers 5 --subscribers 15 --audio-only --duration 15s --ramp 10) ;;
fan-out-small) args=(--rooms 1 --publishers 1 --subscribers 20 --video-bitrate 500k --duration 15s --ramp 10) ;;
*)
	echo "bench.sh: unknown row $row" >&2
	exit 2
	;;
esac

bin=$(mktemp -d)
sfu_pid=
cleanup() {
	if [ -n "$sfu_pid" ] && kill -0 "$sfu_pid" 2>/dev/null; then
		kill -TERM "$sfu_pid"
		wait "$sfu_pid" || true
	fi
	rm -rf "$bin"
}
trap cleanup EXIT
go build -o "$bin/sfu" ./cmd/sfu
go build -o "$bin/loadtest" ./cmd/loadtest

machine() {
	echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "cpu:     $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs"
	echo "memory:  $(free -g 2>/dev/null | awk '/^Mem:/{print $2 " GiB"}')"
	echo "kernel:  $(uname -sr)"
	echo "go:      $(go version)"
	echo "commit:  $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime; }

txt="$out/$row.txt"
json="$out/$row.json"
{
	machine
	echo "row:     $row: ${args[*]} $*"
	echo "load average before: $(loadavg)"
} >"$txt"

status=0
if [ "$row" = udp ]; then
	"$bin/loadtest" "${args[@]}" --json "$json" "$@" | tee -a "$txt" || status=$?
else
	key="bench$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')"
	secret=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
	# Bench limits: every participant comes from 127.0.0.1, so the join
	# limit per address is lifted, and a room may hold the largest row.
	: >"$out/$row.sfu.log"
	# shellcheck disable=SC2086 # SFU_FLAGS is a list of flags
	SOTTO_API_KEY=$key SOTTO_API_SECRET=$secret "$bin/sfu" \
		--http "127.0.0.1:$port" --media-ip 127.0.0.1 --media-port 0 --drain-grace 0 \
		--participants-per-room 1000 --joins-per-second-per-ip 100 --join-burst 100 --unjoined-per-address 1000 \
		--log-level warn ${SFU_FLAGS:-} >"$out/$row.sfu.log" 2>&1 &
	sfu_pid=$!
	for _ in $(seq 1 100); do
		grep -q "Sotto listening" "$out/$row.sfu.log" && break
		kill -0 "$sfu_pid" 2>/dev/null || { cat "$out/$row.sfu.log" >&2; exit 1; }
		sleep 0.1
	done
	echo "sfu:     --participants-per-room 1000 --joins-per-second-per-ip 100 --join-burst 100 --unjoined-per-address 1000 ${SFU_FLAGS:-}" >>"$txt"
	SOTTO_API_KEY=$key SOTTO_API_SECRET=$secret "$bin/loadtest" --url "http://127.0.0.1:$port" \
		"${args[@]}" --json "$json" "$@" | tee -a "$txt" || status=$?
fi
echo "load average after:  $(loadavg)" | tee -a "$txt"
echo "loadtest exit status: $status" | tee -a "$txt"

# A Markdown row for docs/BENCHMARKS.md (needs python3; the JSON is the
# record either way).
if command -v python3 >/dev/null && [ -s "$json" ]; then
	python3 - "$json" "$row" "$(loadavg)" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
row, load = sys.argv[2], sys.argv[3]
if "results" in r:
    cells = " | ".join("{}: {:,.0f} pkt/s, {:,.0f} per CPU-s".format(x["method"], x["packets_per_second"], x["packets_per_cpu_second"]) for x in r["results"])
    print("| {} | {} B | {} | {} |".format(row, r["size_bytes"], cells, load))
    sys.exit()
s, c = r["sfu"], r["config"]
win = max(s["window_seconds"], 1e-9)
print("| {} | {}x{}x{} {} | {}/{} | {:.2f} | {:,.0f} | {:,.0f} | {:.1f} MiB | {:.0f} / {:.0f} ms | {:.3f} % | {:.0f} / {:.0f} ms | {:.1f} % | {} |".format(
    row, c["rooms"], c["publishers"], c["subscribers"], c["media"],
    r["participants_connected"], r["participants_expected"],
    s["cpu_seconds"] / win, s["forwarded_packets"] / win, s["forwarded_packets_per_cpu_second"],
    s["rss_bytes_per_participant"] / 2**20,
    r["join_ms"]["p50"], r["join_ms"]["p95"], 100 * r["packet_loss"],
    r["e2e_latency_ms"]["p50"], r["e2e_latency_ms"]["p95"],
    100 * r["frames_skipped"] / max(r["frames_sent"] + r["frames_skipped"], 1), load))
EOF
fi
exit "$status"
