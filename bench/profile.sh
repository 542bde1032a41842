#!/usr/bin/env bash
# Where promwasm's CPU time goes per request, under the load of bench/run.sh:
#
#   bash bench/profile.sh            # after `cargo build --release --bins --examples`
#
# starts target/release/promwasm on one core, drives it with wrk (-t1 -c32,
# GET /square?num=20, `user: john`) from the other, samples the server with
# `perf record` (cpu-clock, DWARF call graphs) and prints the share of samples
# per phase of a request (bench/classify.py) and the hottest functions.
# Needs perf (Debian: apt-get install linux-perf) and python3.
# Settings: SECONDS_PROFILED (8), CONNS (32), BINARY (target/release/promwasm),
# KEEP=DIR to keep perf.data and the perf script output there.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${SECONDS_PROFILED:-8}
CONNS=${CONNS:-32}
BINARY=${BINARY:-$ROOT/target/release/promwasm}
for tool in perf wrk taskset python3; do
    command -v "$tool" >/dev/null || { echo "bench/profile.sh: $tool is missing" >&2; exit 1; }
done

WORK=${KEEP:-$(mktemp -d /tmp/promwasm-profile.XXXXXX)}
mkdir -p "$WORK"
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

taskset -c 0 "$BINARY" "$@" --listen 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER=$!
PIDS+=("$SERVER")
url=""
for _ in $(seq 1 300); do
    url=$(sed -n 's/^listening on \(http:[^ ]*\)$/\1/p' "$WORK/server.out")
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { cat "$WORK/server.err" >&2; exit 1; }

# Unprofiled first: its req/s turns sample shares into µs per request.
taskset -c 1 wrk -t1 -c"$CONNS" -d5s --latency -H 'user: john' "$url/square?num=20" >"$WORK/wrk0.txt"
RPS=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk0.txt")
taskset -c 1 wrk -t1 -c"$CONNS" -d"$((SECS + 5))s" --latency -H 'user: john' "$url/square?num=20" >"$WORK/wrk.txt" &
PIDS+=("$!")
sleep 2
perf record -q -e cpu-clock -F 997 --call-graph dwarf,16384 -p "$SERVER" -o "$WORK/perf.data" -- sleep "$SECS" 2>"$WORK/perf.err"
wait "${PIDS[1]}"
echo "$(basename "$BINARY") $*: $RPS req/s unprofiled, $(awk '/^Requests\/sec:/ {print $2}' "$WORK/wrk.txt") req/s under perf (wrk -t1 -c$CONNS)"
echo "µs/req = share x 1e6 / unprofiled req/s (the server saturates its core)"
perf script -i "$WORK/perf.data" -F comm,tid,ip,sym,dso 2>/dev/null >"$WORK/perf.script"
RPS=$RPS python3 "$ROOT/bench/classify.py" "$WORK/perf.script"
echo
echo "hottest functions (self time):"
perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
    | grep -E '^ +[0-9.]+%' | sed -E 's/ +$//; s/ +- +- *$//' | cut -c1-150 | head -30
