#!/usr/bin/env bash
# The benchmark of the performance issue, in one command:
#
#   bash bench/run.sh
#
# builds the release binaries, then measures on 127.0.0.1
#   (a) promwasm (defaults), (b) the native baseline (host/examples/native_baseline.rs),
#   (c) promwasm --no-default-metrics
# with wrk on GET /square?num=20 (header `user: john`): req/s and p50/p99 latency at
# 32 and 128 connections, medians of short repeated runs; then /metrics with 10 000
# series, cold start to the first answered request, and resident memory idle and under
# load. Per server and run it also takes the server's own CPU time per answered
# request (utime + stime from /proc/PID/stat over the run, divided by the responses),
# which steal time and wrk's share of the machine do not move; the ratios and the
# targets are judged on the medians of both. It prints one table at the end. Every
# process it starts is stopped on exit.
#
# Then the example in Rust, Python and JavaScript (examples/, built here with the
# tools of scripts/test-deps.sh), fresh and reused instances, wrk -t1 -c8, with
# the server's CPU per request (LANGS=0 leaves it out).
# Needs: cargo, wrk, curl, taskset (util-linux), awk. About 7 minutes after the build.
# EXTRA_ARGS="--instance-reuse 100" adds (d) promwasm with those flags to the wrk runs.
# When wasmtime-cli 48.0.8 is at $WASMTIME (default target/wasmtime-cli/bin/wasmtime;
# `cargo install wasmtime-cli --version 48.0.8 --locked --root target/wasmtime-cli`,
# long on 2 cores), the same wasi:http component (the test fixture, GET /hello) runs
# under (e) promwasm and (f) `wasmtime serve`, both with a fresh instance per request.
# Runs disturbed by other processes (> DISTURBED=10 % of the server's core) are
# repeated within a time budget for the wrk phase (BUDGET=420 s).
# Settings (environment): DURATION (s per wrk run, 5), REPS (5), CONNS ("32 128"),
# WARMUP (s, 2), SERIES (10000), SCRAPES (15), STARTS (7), SKIP_BUILD=1 to reuse the
# binaries in target/release.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-5}
REPS=${REPS:-5}
CONNS=${CONNS:-"32 128"}
WARMUP=${WARMUP:-2}
SERIES=${SERIES:-10000}
SCRAPES=${SCRAPES:-15}
STARTS=${STARTS:-7}
PROMWASM=$ROOT/target/release/promwasm
NATIVE=$ROOT/target/release/examples/native_baseline
ROUTE='/square?num=20'
WASMTIME=${WASMTIME:-$ROOT/target/wasmtime-cli/bin/wasmtime}
HELLO=$ROOT/target/guest/wasm32-wasip2/release/promwasm_fixture_http.wasm
# The wasi:http servers answer another path.
ROUTE_e=/hello
ROUTE_f=/hello

for tool in wrk curl taskset awk; do
    command -v "$tool" >/dev/null || { echo "bench/run.sh: $tool is missing (apt-get install -y wrk curl util-linux gawk)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/promwasm-bench.XXXXXX)
# Every promwasm started here keeps its compiled cache in $WORK, not in the
# user's cache directory; the cold start without the cache passes --no-cache.
export PROMWASM_CACHE_DIR=$WORK/cache
PIDS=()
stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
cleanup() {
    stop_all
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%6.1fs] %s\n' "$(awk -v s="$START_TIME" -v n="$EPOCHREALTIME" 'BEGIN{print n-s}')" "$*" >&2; }
START_TIME=$EPOCHREALTIME

# Servers on one core, wrk on another, when there are two.
NPROC=$(nproc)
if [ "$NPROC" -ge 2 ]; then
    SERVER_CPU=0
    WRK_CPU=1
    PIN_SERVER=(taskset -c "$SERVER_CPU")
    PIN_WRK=(taskset -c "$WRK_CPU")
    PINNING="servers on cpu $SERVER_CPU, wrk on cpu $WRK_CPU"
else
    PIN_SERVER=()
    PIN_WRK=()
    PINNING="not pinned (1 cpu)"
fi

busy() { pgrep -f '(^|/)(cargo|rustc) ' >/dev/null && echo yes || echo no; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building: cargo build --release --bins --examples"
    (cd "$ROOT" && cargo build --release --bins --examples)
fi
[ -x "$PROMWASM" ] && [ -x "$NATIVE" ] || { echo "bench/run.sh: build $PROMWASM and $NATIVE first" >&2; exit 1; }

# Other builds on the machine skew the figures: wait (up to WAIT_IDLE seconds,
# default 120) until no cargo or rustc runs, then measure anyway.
waited=0
while [ "$(busy)" = yes ] && [ "$waited" -lt "${WAIT_IDLE:-120}" ]; do
    [ "$waited" = 0 ] && log "waiting for cargo/rustc of other builds to finish (WAIT_IDLE=${WAIT_IDLE:-120}s)"
    sleep 5
    waited=$((waited + 5))
done
BUSY_START=$(busy)
BUSY_RUNS=0
TOTAL_RUNS=0
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# start NAME CMD... : starts a server on 127.0.0.1:0, waits for its
# `listening on http://IP:PORT` line; sets URL_<NAME> and PID_<NAME>.
start() {
    local name=$1
    shift
    "${PIN_SERVER[@]}" "$@" --listen 127.0.0.1:0 >"$WORK/$name.out" 2>"$WORK/$name.err" &
    await_url "$name" $! "$WORK/$name.out" 's/^listening on \(http:[^ ]*\)$/\1/p'
}

# start_wasmtime NAME : `wasmtime serve` of the wasi:http component on
# 127.0.0.1:0 (with -Scli, which Rust std guests import); sets URL_<NAME>
# and PID_<NAME> from its `Serving HTTP on http://IP:PORT/` line.
start_wasmtime() {
    local name=$1
    "${PIN_SERVER[@]}" "$WASMTIME" serve -Scli --addr 127.0.0.1:0 "$HELLO" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    await_url "$name" $! "$WORK/$name.err" 's|^Serving HTTP on \(http://[^/]*\)/$|\1|p'
}

# await_url NAME PID FILE SED-SCRIPT : waits (up to 60 s) until SED-SCRIPT
# prints the server's base URL from FILE; sets URL_<NAME> and PID_<NAME>.
await_url() {
    local name=$1 pid=$2 file=$3 script=$4 url="" i
    PIDS+=("$pid")
    for i in $(seq 1 600); do
        url=$(sed -n "$script" "$file")
        [ -n "$url" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$WORK/$name.err" >&2; echo "bench/run.sh: $name exited" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$url" ] || { echo "bench/run.sh: $name printed no line with its URL" >&2; exit 1; }
    printf -v "URL_$name" '%s' "$url"
    printf -v "PID_$name" '%s' "$pid"
}

# cpu_ticks CPU : busy and steal ticks of one cpu from /proc/stat ("cpu" for all).
cpu_ticks() { awk -v c="$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9, $9}' /proc/stat; }
# proc_ticks PID : user + system ticks of a process.
proc_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
SERVER_CPU_NAME=cpu${SERVER_CPU:-}
[ -n "${SERVER_CPU:-}" ] || SERVER_CPU_NAME=cpu

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# to_ms VALUE-WITH-UNIT: wrk's latency figures in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# run_wrk NAME CONNS SECONDS [RECORD] : one wrk run; sets LAST_LINE to
# "rps p50_ms p99_ms server% others% steal% cpu_us_per_request" (shares of the
# server's core; the server's utime + stime over the responses) and
# LAST_OTHERS, and keeps the highest VmRSS sampled during the run.
run_wrk() {
    local name=$1 conns=$2 secs=$3 record=${4:-1}
    local url_var="URL_$name" pid_var="PID_$name" route_var="ROUTE_$name"
    local out="$WORK/wrk.$name.$conns.txt"
    "${PIN_WRK[@]}" wrk -t1 -c"$conns" -d"${secs}s" --timeout 5s --latency -H 'user: john' "${!url_var}${!route_var:-$ROUTE}" >"$out" 2>&1 &
    local wrk_pid=$!
    PIDS+=("$wrk_pid")
    local peak=0 rss busy_run t0 c0 p0
    busy_run=$(busy)
    t0=${EPOCHREALTIME/./}
    c0=$(cpu_ticks "$SERVER_CPU_NAME")
    p0=$(proc_ticks "${!pid_var}")
    while kill -0 "$wrk_pid" 2>/dev/null; do
        rss=$(rss_kib "${!pid_var}")
        [ "$rss" -gt "$peak" ] && peak=$rss
        sleep 0.5
    done
    wait "$wrk_pid" || { cat "$out" >&2; echo "bench/run.sh: wrk failed" >&2; exit 1; }
    [ "$record" = 1 ] || return 0
    # Share of the server's core the server used, and what other processes
    # (and the hypervisor: steal) took of it during the run.
    local t1 c1 p1 server_pct others_pct steal_pct
    t1=${EPOCHREALTIME/./}
    c1=$(cpu_ticks "$SERVER_CPU_NAME")
    p1=$(proc_ticks "${!pid_var}")
    read -r server_pct others_pct steal_pct < <(awk -v us="$((t1 - t0))" -v hz="$HZ" \
        -v b0="${c0% *}" -v s0="${c0#* }" -v b1="${c1% *}" -v s1="${c1#* }" -v p0="$p0" -v p1="$p1" 'BEGIN {
            avail = us / 1e6 * hz; server = p1 - p0; others = (b1 - b0) - server - (s1 - s0)
            if (others < 0) others = 0
            printf "%.0f %.0f %.0f\n", 100 * server / avail, 100 * others / avail, 100 * (s1 - s0) / avail }')
    [ "$(busy)" = yes ] && busy_run=yes
    TOTAL_RUNS=$((TOTAL_RUNS + 1))
    if [ "$busy_run" = yes ]; then
        BUSY_RUNS=$((BUSY_RUNS + 1))
        busy_run=" (cargo/rustc running)"
    else
        busy_run=""
    fi
    local rps p50 p99
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    if grep -qE 'Non-2xx|Socket errors' "$out"; then
        echo "bench/run.sh: $name at $conns connections: $(grep -E 'Non-2xx|Socket errors' "$out" | tr -s ' ')" >&2
        echo "$name $conns: $(grep -E 'Non-2xx|Socket errors' "$out" | tr -s ' ')" >>"$WORK/errors"
    fi
    # The server's CPU time over the run, per response wrk counted.
    local answered cpu_req
    answered=$(awk '/ requests in / {print $1}' "$out")
    cpu_req=$(awk -v t="$((p1 - p0))" -v hz="$HZ" -v n="$answered" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    LAST_LINE="$rps $p50 $p99 $server_pct $others_pct $steal_pct $cpu_req"
    LAST_OTHERS=$others_pct
    local prev
    prev=$(cat "$WORK/$name.loadrss" 2>/dev/null || echo 0)
    [ "$peak" -gt "$prev" ] && echo "$peak" >"$WORK/$name.loadrss"
    log "$name c=$conns: $rps req/s, p50 $p50 ms, p99 $p99 ms; server core: ${server_pct}% server, ${others_pct}% others, ${steal_pct}% steal$busy_run"
}

# --- throughput and latency ----------------------------------------------------------
log "starting (a) promwasm, (b) native baseline, (c) promwasm --no-default-metrics; $PINNING"
start a "$PROMWASM"
start b "$NATIVE"
start c "$PROMWASM" --no-default-metrics
SERVERS="a b c"
if [ -n "${EXTRA_ARGS:-}" ]; then
    # shellcheck disable=SC2086 # EXTRA_ARGS is a list of flags
    start d "$PROMWASM" $EXTRA_ARGS
    SERVERS="$SERVERS d"
fi
WASI_HTTP=no
if [ -x "$WASMTIME" ] && [ -f "$HELLO" ]; then
    WASI_HTTP=yes
    log "starting (e) promwasm and (f) wasmtime serve ($("$WASMTIME" --version)) on $HELLO"
    start e "$PROMWASM" --component "$HELLO"
    start_wasmtime f
    SERVERS="$SERVERS e f"
else
    log "no $WASMTIME: the wasi:http rows (e, f) are left out"
fi
for s in $SERVERS; do
    url_var="URL_$s" route_var="ROUTE_$s"
    curl -fsS -H 'user: john' "${!url_var}${!route_var:-$ROUTE}" >/dev/null
done
sleep 1
for s in $SERVERS; do
    pid_var="PID_$s"
    rss_kib "${!pid_var}" >"$WORK/$s.idlerss"
done
for s in $SERVERS; do
    run_wrk "$s" 32 "$WARMUP" 0
done
# A run during which other processes took more than DISTURBED % of the
# server's core is repeated (after waiting for cargo/rustc to finish), as long
# as the time budget of the wrk phase (BUDGET seconds) lasts; then it is kept
# and counted as disturbed in the table.
DISTURBED=${DISTURBED:-10}
BUDGET=${BUDGET:-420}
DEADLINE=$((${EPOCHREALTIME/./} + BUDGET * 1000000))
KEPT_DISTURBED=0
REPEATED=0
for rep in $(seq 1 "$REPS"); do
    for conns in $CONNS; do
        for s in $SERVERS; do
            while :; do
                run_wrk "$s" "$conns" "$DURATION"
                [ "$LAST_OTHERS" -gt "$DISTURBED" ] || break
                if ((${EPOCHREALTIME/./} + (DURATION + 15) * 1000000 > DEADLINE)); then
                    KEPT_DISTURBED=$((KEPT_DISTURBED + 1))
                    break
                fi
                REPEATED=$((REPEATED + 1))
                log "  disturbed (others took ${LAST_OTHERS}% of the server's core): repeating"
                while [ "$(busy)" = yes ] && ((${EPOCHREALTIME/./} + (DURATION + 15) * 1000000 < DEADLINE)); do
                    sleep 2
                done
            done
            echo "$LAST_LINE" >>"$WORK/$s.$conns"
        done
    done
done
for s in $SERVERS; do
    pid_var="PID_$s"
    hwm_kib "${!pid_var}" >"$WORK/$s.hwm"
done
stop_all

# --- the example in three languages ---------------------------------------------------
# The same app (guest/, examples/python, examples/js) with a fresh instance per
# request and with --instance-reuse 1000, wrk -t1 -c8; built here with the tools
# of scripts/test-deps.sh (LANGS=0 leaves this phase out).
LANG_SERVERS=""
LANG_CONNS=8
if [ "${LANGS:-1}" = 1 ]; then
    PY_TOOL=$ROOT/.venv/bin/componentize-py
    JS_TOOL=$ROOT/node_modules/.bin/componentize-js
    if [ -x "$PY_TOOL" ] && [ -x "$JS_TOOL" ]; then
        log "languages: building examples/python and examples/js"
        (cd "$ROOT" && "$PY_TOOL" -d wit -w route-handler componentize -p sdk/python -p examples/python app -o "$WORK/example-python.wasm" >/dev/null)
        (cd "$ROOT" && "$JS_TOOL" --wit wit --world-name route-handler -d http fetch-event -o "$WORK/example-js.wasm" examples/js/app.js >/dev/null)
        start lr "$PROMWASM" --cache-dir "$WORK/cache"
        start lp "$PROMWASM" --cache-dir "$WORK/cache" --component "$WORK/example-python.wasm"
        start lj "$PROMWASM" --cache-dir "$WORK/cache" --component "$WORK/example-js.wasm"
        start lR "$PROMWASM" --cache-dir "$WORK/cache" --instance-reuse 1000
        start lP "$PROMWASM" --cache-dir "$WORK/cache" --component "$WORK/example-python.wasm" --instance-reuse 1000
        start lJ "$PROMWASM" --cache-dir "$WORK/cache" --component "$WORK/example-js.wasm" --instance-reuse 1000
        LANG_SERVERS="lr lp lj lR lP lJ"
        for s in $LANG_SERVERS; do
            url_var="URL_$s"
            curl -fsS -H 'user: john' "${!url_var}$ROUTE" >/dev/null
            run_wrk "$s" "$LANG_CONNS" "$WARMUP" 0
        done
        for rep in $(seq 1 "$REPS"); do
            for s in $LANG_SERVERS; do
                run_wrk "$s" "$LANG_CONNS" "$DURATION"
                echo "$LAST_LINE" >>"$WORK/$s.$LANG_CONNS"
            done
        done
        stop_all
    else
        log "languages: $PY_TOOL or $JS_TOOL is missing (bash scripts/test-deps.sh installs them): the language rows are left out"
    fi
fi

# --- /metrics with many series -------------------------------------------------------
log "/metrics: creating $SERIES series of flask_app_total_auths (promwasm --series-cap $((SERIES * 2)))"
start m "$PROMWASM" --series-cap "$((SERIES * 2))"
cat >"$WORK/users.lua" <<EOF
local i = 0
request = function()
    i = i % $SERIES + 1
    return wrk.format("GET", "$ROUTE", { ["user"] = string.format("user%05d", i) })
end
EOF
series=0
for attempt in 1 2 3 4 5; do
    "${PIN_WRK[@]}" wrk -t1 -c1 -d3s -s "$WORK/users.lua" "$URL_m" >/dev/null
    series=$(curl -fsS "$URL_m/metrics" | grep -c '^flask_app_total_auths_total{' || true)
    [ "$series" -ge "$SERIES" ] && break
done
metrics_body=$(curl -fsS "$URL_m/metrics" | wc -c)
samples=$(curl -fsS "$URL_m/metrics" | grep -vc '^#' || true)
scrape() { # scrape ACCEPT-HEADER [ACCEPT-ENCODING-HEADER] -> median ms over SCRAPES
    local times=() i
    for i in $(seq 1 "$SCRAPES"); do
        times+=("$(curl -fsS -o /dev/null -H "$1" -H "${2:-Accept-Encoding: identity}" -w '%{time_total}' "$URL_m/metrics" | awk '{printf "%.3f", $1 * 1000}')")
    done
    median "${times[@]}"
}
SCRAPE_TEXT=$(scrape 'Accept: text/plain')
SCRAPE_OM=$(scrape 'Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5')
# As Prometheus scrapes: gzip accepted (the time includes the compression).
SCRAPE_GZIP=$(scrape 'Accept: text/plain' 'Accept-Encoding: gzip')
GZIP_BYTES=$(curl -fsS -o /dev/null -H 'Accept-Encoding: gzip' -w '%{size_download}' "$URL_m/metrics")
RSS_SERIES=$(rss_kib "$PID_m")
log "/metrics: $series auth series, $samples samples, $metrics_body bytes; scrape $SCRAPE_TEXT ms (text), $SCRAPE_OM ms (OpenMetrics)"
stop_all

# --- cold start ----------------------------------------------------------------------
# From spawn to the first answered `GET /`: component compile, pool set-up, bind, serve.
cold_start() { # cold_start NAME CMD... -> ms
    local name=$1
    shift
    : >"$WORK/$name.out"
    local t0=${EPOCHREALTIME/./}
    local deadline=$((t0 + 30000000))
    "${PIN_SERVER[@]}" "$@" --listen 127.0.0.1:0 >"$WORK/$name.out" 2>/dev/null &
    local pid=$!
    PIDS+=("$pid")
    local line="" port status=""
    while [ -z "$line" ]; do
        read -r line <"$WORK/$name.out" || true
        [ -n "$line" ] && break
        ((${EPOCHREALTIME/./} < deadline)) || { echo "bench/run.sh: $name printed no listening line" >&2; exit 1; }
        sleep 0.001
    done
    port=${line##*:}
    while :; do
        if exec 3<>"/dev/tcp/127.0.0.1/$port"; then
            printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
            read -r status <&3 || true
            exec 3<&- 3>&-
            [[ $status == "HTTP/1.1 200"* ]] && break
        fi 2>/dev/null
        ((${EPOCHREALTIME/./} < deadline)) || { echo "bench/run.sh: $name never answered GET /" >&2; exit 1; }
        sleep 0.001
    done
    local t1=${EPOCHREALTIME/./}
    stop_all
    awk -v us="$((t1 - t0))" 'BEGIN {printf "%.1f", us / 1000}'
}
log "cold start: $STARTS starts each"
cold_a=() cold_b=() cold_cached=()
# promwasm --cache-dir (when this build has it): the first start compiles and
# fills the cache, the measured ones load the compiled component from it.
HAS_CACHE=no
if "$PROMWASM" --help | grep -q -- '--cache-dir'; then
    HAS_CACHE=yes
    cold_start cc "$PROMWASM" --cache-dir "$WORK/cache" >/dev/null
fi
for i in $(seq 1 "$STARTS"); do
    cold_a+=("$(cold_start ca "$PROMWASM" --no-cache)")
    cold_b+=("$(cold_start cb "$NATIVE")")
    [ "$HAS_CACHE" = no ] || cold_cached+=("$(cold_start cc "$PROMWASM" --cache-dir "$WORK/cache")")
done
COLD_A=$(median "${cold_a[@]}")
COLD_B=$(median "${cold_b[@]}")
COLD_CACHED=n/a
[ "$HAS_CACHE" = no ] || COLD_CACHED=$(median "${cold_cached[@]}")
log "cold start: promwasm ${cold_a[*]} ms; promwasm --cache-dir (warm) ${cold_cached[*]:-n/a} ms; native ${cold_b[*]} ms"

BUSY_END=$(busy)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the table ------------------------------------------------------------------------
col() { awk -v c="$1" '{print $c}' "$2"; }
med() { median $(col "$1" "$2"); }
range() { col "$1" "$2" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.0f-%.0f", lo, hi}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
# cpu_us NAME CONNS : median server CPU per request, in µs (its utime + stime
# over the responses, run by run).
cpu_us() { awk '{print $7}' "$WORK/$1.$2" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo
echo "promwasm benchmark — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(cd "$ROOT" && git rev-parse --short HEAD)$(cd "$ROOT" && git diff --quiet HEAD -- host/src guest wit || echo ' + uncommitted host/guest changes')"
echo "machine: $NPROC cpus, $CPU, Linux $(uname -r); $PINNING"
echo "load: cargo/rustc running at start: $BUSY_START, at end: $BUSY_END, during $BUSY_RUNS of $TOTAL_RUNS wrk runs; loadavg $LOAD_START -> $LOAD_END"
echo "disturbed runs (others > ${DISTURBED}% of the server's core): $REPEATED repeated, $KEPT_DISTURBED kept for lack of time"
echo "wrk -t1 -cN -d${DURATION}s --latency -H 'user: john' GET $ROUTE; median of $REPS runs (after a ${WARMUP}s warm-up)"
echo
printf '%-44s %6s %12s %15s %10s %10s %10s   %s\n' "server" "conns" "req/s" "(min-max)" "p50 ms" "p99 ms" "CPU/req µs" "server core: server/others/steal %"
for conns in $CONNS; do
    for s in $SERVERS; do
        case $s in
            a) label="(a) promwasm" ;;
            b) label="(b) native baseline" ;;
            c) label="(c) promwasm --no-default-metrics" ;;
            d) label="(d) promwasm $EXTRA_ARGS" ;;
            e) label="(e) promwasm, wasi:http GET /hello" ;;
            f) label="(f) wasmtime serve, wasi:http GET /hello" ;;
        esac
        printf '%-44s %6s %12.0f %15s %10.3f %10.3f %10s   %s/%s/%s\n' "$label" "$conns" \
            "$(med 1 "$WORK/$s.$conns")" "($(range 1 "$WORK/$s.$conns"))" "$(med 2 "$WORK/$s.$conns")" "$(med 3 "$WORK/$s.$conns")" \
            "$(cpu_us "$s" "$conns")" "$(med 4 "$WORK/$s.$conns")" "$(med 5 "$WORK/$s.$conns")" "$(med 6 "$WORK/$s.$conns")"
    done
done
echo
# ratio_row LABEL X Y CONNS : X against Y: req/s X/Y, CPU per request Y/X
# (both above 1 when X is the faster), p50 and p99 X/Y.
ratio_row() {
    printf '%-44s %6s %12s %12s %10s %10s\n' "$1" "$4" \
        "$(ratio "$(med 1 "$WORK/$2.$4")" "$(med 1 "$WORK/$3.$4")")" \
        "$(ratio "$(cpu_us "$3" "$4")" "$(cpu_us "$2" "$4")")" \
        "$(ratio "$(med 2 "$WORK/$2.$4")" "$(med 2 "$WORK/$3.$4")")" \
        "$(ratio "$(med 3 "$WORK/$2.$4")" "$(med 3 "$WORK/$3.$4")")"
}
printf '%-44s %6s %12s %12s %10s %10s\n' "ratio" "conns" "req/s" "CPU/req" "p50" "p99"
for conns in $CONNS; do
    ratio_row "a/b (promwasm / native)" a b "$conns"
    ratio_row "a/c (default metrics on / off)" a c "$conns"
    [ -z "${EXTRA_ARGS:-}" ] || ratio_row "d/b (promwasm $EXTRA_ARGS / native)" d b "$conns"
    [ "$WASI_HTTP" = no ] || ratio_row "e/f (promwasm / wasmtime serve)" e f "$conns"
done
if [ "$WASI_HTTP" = yes ]; then
    echo
    printf '%-44s %6s %12s %12s %10s\n' "server CPU per request (µs)" "conns" "(e) promwasm" "(f) wasmtime" "f/e"
    for conns in $CONNS; do
        printf '%-44s %6s %12s %12s %10s\n' "wasi:http GET /hello" "$conns" "$(cpu_us e "$conns")" "$(cpu_us f "$conns")" \
            "$(ratio "$(cpu_us f "$conns")" "$(cpu_us e "$conns")")"
    done
fi
if [ -n "$LANG_SERVERS" ]; then
    echo
    echo "the example in each language, wrk -t1 -c$LANG_CONNS, median of $REPS runs"
    printf '%-44s %12s %15s %10s %16s %12s\n' "server" "req/s" "(min-max)" "p99 ms" "CPU/request µs" "vs Rust"
    for s in $LANG_SERVERS; do
        case $s in
            lr) label="Rust (guest/), fresh instance" base=lr ;;
            lp) label="Python (examples/python), fresh instance" base=lr ;;
            lj) label="JavaScript (examples/js), fresh instance" base=lr ;;
            lR) label="Rust, --instance-reuse 1000" base=lR ;;
            lP) label="Python, --instance-reuse 1000" base=lR ;;
            lJ) label="JavaScript, --instance-reuse 1000" base=lR ;;
        esac
        printf '%-44s %12.0f %15s %10.3f %16s %12s\n' "$label" "$(med 1 "$WORK/$s.$LANG_CONNS")" "($(range 1 "$WORK/$s.$LANG_CONNS"))" \
            "$(med 3 "$WORK/$s.$LANG_CONNS")" "$(cpu_us "$s" "$LANG_CONNS")" \
            "$(ratio "$(med 1 "$WORK/$s.$LANG_CONNS")" "$(med 1 "$WORK/$base.$LANG_CONNS")")"
    done
fi
echo
printf '%-50s %s\n' "measure" "value"
printf '%-50s %s ms text 0.0.4, %s ms OpenMetrics (%s auth series, %s samples, %s KiB)\n' "/metrics scrape with curl, median of $SCRAPES" \
    "$SCRAPE_TEXT" "$SCRAPE_OM" "$series" "$samples" "$((metrics_body / 1024))"
printf '%-50s %s ms, %s KiB\n' "/metrics scrape with gzip (text), median of $SCRAPES" "$SCRAPE_GZIP" "$((GZIP_BYTES / 1024))"
printf '%-50s %s ms promwasm --no-cache, %s ms promwasm --cache-dir (warm cache), %s ms native\n' "cold start to first answered GET /, median of $STARTS" "$COLD_A" "$COLD_CACHED" "$COLD_B"
printf '%-50s %s MiB (a), %s MiB (b), %s MiB (c)\n' "resident memory idle (VmRSS after 1 request)" \
    "$(mib "$(cat "$WORK/a.idlerss")")" "$(mib "$(cat "$WORK/b.idlerss")")" "$(mib "$(cat "$WORK/c.idlerss")")"
printf '%-50s %s MiB (a), %s MiB (b), %s MiB (c)\n' "resident memory under load (max VmRSS sampled)" \
    "$(mib "$(cat "$WORK/a.loadrss")")" "$(mib "$(cat "$WORK/b.loadrss")")" "$(mib "$(cat "$WORK/c.loadrss")")"
printf '%-50s %s MiB (a), %s MiB (b), %s MiB (c)\n' "resident memory peak (VmHWM after all runs)" \
    "$(mib "$(cat "$WORK/a.hwm")")" "$(mib "$(cat "$WORK/b.hwm")")" "$(mib "$(cat "$WORK/c.hwm")")"
[ -z "${EXTRA_ARGS:-}" ] || printf '%-50s %s MiB idle, %s MiB under load\n' "resident memory of (d)" \
    "$(mib "$(cat "$WORK/d.idlerss")")" "$(mib "$(cat "$WORK/d.loadrss")")"
printf '%-50s %s MiB\n' "resident memory of promwasm with $series series" "$(mib "$RSS_SERIES")"
if [ -s "$WORK/errors" ]; then
    echo
    echo "wrk reported errors:"
    cat "$WORK/errors"
fi

# --- the issue's targets --------------------------------------------------------------
echo
first=${CONNS%% *}
tp=$(ratio "$(med 1 "$WORK/a.$first")" "$(med 1 "$WORK/b.$first")")
p99=$(ratio "$(med 3 "$WORK/a.$first")" "$(med 3 "$WORK/b.$first")")
cost=$(awk -v a="$(med 1 "$WORK/a.$first")" -v c="$(med 1 "$WORK/c.$first")" 'BEGIN {printf "%.1f", (1 - a / c) * 100}')
idle=$(mib "$(cat "$WORK/a.idlerss")")
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {ok = (op == ">=") ? v >= t : v <= t; print ok ? "met" : "MISSED"}'; }
printf '%-58s %-12s %s\n' "target (issue)" "measured" "verdict"
cpu_ab=$(ratio "$(cpu_us b "$first")" "$(cpu_us a "$first")")
printf '%-58s %-12s %s\n' "throughput a/b at $first connections >= 0.50" "$tp" "$(verdict "$tp" '>=' 0.50)"
printf '%-58s %-12s %s\n' "CPU per request b/a at $first connections >= 0.50" "$cpu_ab" "$(verdict "$cpu_ab" '>=' 0.50)"
printf '%-58s %-12s %s\n' "p99 a/b at $first connections <= 2.0" "$p99" "$(verdict "$p99" '<=' 2.0)"
printf '%-58s %-12s %s\n' "default metrics cost 1 - a/c at $first connections <= 5%" "$cost%" "$(verdict "$cost" '<=' 5)"
if [[ ${EXTRA_ARGS:-} == *--instance-reuse* ]]; then
    db=$(ratio "$(med 1 "$WORK/d.$first")" "$(med 1 "$WORK/b.$first")")
    cpu_bd=$(ratio "$(cpu_us b "$first")" "$(cpu_us d "$first")")
    printf '%-58s %-12s %s\n' "reuse: throughput d/b at $first connections >= 0.80" "$db" "$(verdict "$db" '>=' 0.80)"
    printf '%-58s %-12s %s\n' "reuse: CPU per request b/d at $first connections >= 0.80" "$cpu_bd" "$(verdict "$cpu_bd" '>=' 0.80)"
fi
printf '%-58s %-12s %s\n' "/metrics with $series series <= 10 ms (text)" "$SCRAPE_TEXT ms" "$(verdict "$SCRAPE_TEXT" '<=' 10)"
printf '%-58s %-12s %s\n' "resident memory idle <= 40 MB (a)" "$idle MiB" "$(verdict "$(awk -v m="$idle" 'BEGIN {print m * 1.048576}')" '<=' 40)"
if [ "$WASI_HTTP" = yes ]; then
    ef=$(ratio "$(med 1 "$WORK/e.$first")" "$(med 1 "$WORK/f.$first")")
    fe_cpu=$(ratio "$(cpu_us f "$first")" "$(cpu_us e "$first")")
    printf '%-58s %-12s %s\n' "wasi:http req/s e/f at $first connections >= 3" "$ef" "$(verdict "$ef" '>=' 3)"
    printf '%-58s %-12s %s\n' "wasi:http server CPU/request f/e at $first conns >= 3" "$fe_cpu" "$(verdict "$fe_cpu" '>=' 3)"
fi
if [ -n "$LANG_SERVERS" ]; then
    py=$(ratio "$(med 1 "$WORK/lp.$LANG_CONNS")" "$(med 1 "$WORK/lr.$LANG_CONNS")")
    printf '%-58s %-12s %s\n' "Python fresh-instance req/s / Rust's at $LANG_CONNS conns >= 0.06" "$py" "$(verdict "$py" '>=' 0.06)"
fi
echo "(micro-benchmark: fresh instance + call <= 8 µs, cargo bench --bench boundary)"
