#!/usr/bin/env bash
# Load tests of a release Headcount against its baselines, all on this
# machine, each with numbers measured in the same run (see BENCHMARKS.md).
#
#   benches/run-baselines.sh [throughput] [ROUNDS]
#       wrk -t2 -c128 -d10s against, in turn:
#         Headcount GET /p.gif                       (port 45080)
#         Headcount POST /api/event (benches/wrk/event.lua)
#         nginx empty_gif, access_log on, 2 workers  (port 45081, benches/nginx/empty_gif.conf)
#         bare hyper 1.x answering 204, 2 workers    (port 45082, examples/bare_hyper.rs)
#         Headcount GET /healthz, and GET /p.gif for a site it does not
#         count (parsed and answered, nothing recorded): the steps between
#         bare HTTP and a recorded pageview
#       ROUNDS times (default 3), the order rotating every round so drift
#       hits every target alike; prints each round, the medians and the
#       median of the per-round ratios; finally checks that ClickHouse holds
#       exactly the events Headcount accepted.
#
#   benches/run-baselines.sh load [headcount-load ARGS...]
#       Headcount alone under `headcount-load` (e.g. `--rate 40000 --duration 5m
#       --endpoint mix`), its VmRSS sampled every 10 s, rows verified in ClickHouse.
#
# Headcount runs with a `make run`-like configuration written to a temp dir
# (hc_config in benches/lib.sh):
# its own ClickHouse (scripts/clickhouse.sh, /tmp/ch-load, HTTP 45123, TCP
# 45900, database headcount_bench, dropped first), the geo databases from
# var/geo when installed (scripts/install-geo.sh), trusted_proxies =
# ["127.0.0.1/32"] so headcount-load's X-Forwarded-For is believed, and
# sites example.com, example.org, example.net.
#
# Environment: DURATION (10s), CONNECTIONS (128), THREADS (2) for wrk;
# NO_BUILD=1 to use the binaries in target/release as they are;
# HEADCOUNT_BIN, BARE_HYPER_BIN, LOAD_BIN to use other binaries.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD

mode=throughput
if [[ ${1:-} == throughput || ${1:-} == load ]]; then
    mode=$1
    shift
fi

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-128}
THREADS=${THREADS:-2}
HC_PORT=45080
NGINX_PORT=45081
HYPER_PORT=45082
CH_DIR=/tmp/ch-load
CH_HTTP=45123
CH_TCP=45900
DB=headcount_bench
UA='Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36'
PIXEL_PATH='/p.gif?d=example.com&u=https%3A%2F%2Fexample.com%2Fhc-wrk%2Fblog%2Fsome-post&r=https%3A%2F%2Fwww.google.com%2F&w=1440'

HEADCOUNT_BIN=${HEADCOUNT_BIN:-$repo/target/release/headcount}
BARE_HYPER_BIN=${BARE_HYPER_BIN:-$repo/target/release/examples/bare_hyper}
LOAD_BIN=${LOAD_BIN:-$repo/target/release/headcount-load}

say() { echo "run-baselines: $*" >&2; }
source benches/lib.sh

for tool in wrk nginx curl; do
    command -v "$tool" >/dev/null || { say "$tool not found (apt-get install wrk nginx-light curl)"; exit 1; }
done

if [[ ${NO_BUILD:-0} != 1 ]]; then
    say "building release binaries"
    cargo build --release --bin headcount --bin headcount-load --example bare_hyper
fi

tmp=$(mktemp -d /tmp/headcount-baselines.XXXXXX)
pids=()
ch_started=0
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if ((ch_started)); then
        scripts/clickhouse.sh stop "$CH_DIR" "$CH_HTTP" "$CH_TCP" || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ch() { curl -sf "http://127.0.0.1:$CH_HTTP/" --data-binary "$1"; }

# --- ClickHouse (left running afterwards if it already was) ----------------
if ! scripts/clickhouse.sh status "$CH_DIR" "$CH_HTTP" "$CH_TCP" >/dev/null 2>&1; then
    ch_started=1
fi
scripts/clickhouse.sh start "$CH_DIR" "$CH_HTTP" "$CH_TCP"
ch "DROP DATABASE IF EXISTS $DB" >/dev/null

# --- Headcount --------------------------------------------------------------
hc_config "$tmp/headcount.toml" "$HC_PORT" "$CH_HTTP" "$DB"
"$HEADCOUNT_BIN" --config "$tmp/headcount.toml" serve 2>"$tmp/headcount.log" &
hc_pid=$!
pids+=("$hc_pid")
hc_wait_ready "$hc_pid" "$HC_PORT" "$tmp/headcount.log"
say "headcount ready on :$HC_PORT (pid $hc_pid, config $tmp/headcount.toml)"

metric() {
    curl -sf "http://127.0.0.1:$HC_PORT/metrics" | awk -v m="$1" '$1 == m { printf "%d\n", $2 }'
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# Wait for the writer to drain, then compare ClickHouse with the accepted count.
check_rows() {
    local accepted written rows
    for _ in $(seq 60); do
        accepted=$(metric headcount_events_accepted_total)
        written=$(metric headcount_rows_written_total)
        [[ $accepted == "$written" ]] && break
        sleep 1
    done
    rows=$(ch "SELECT count() FROM $DB.events")
    say "rows check: accepted $accepted, written $written, rows in ClickHouse $rows," \
        "queue depth now $(metric headcount_queue_depth), dropped queue_full" \
        "$(curl -sf "http://127.0.0.1:$HC_PORT/metrics" | awk '/reason="queue_full"/ { print $2 }')"
    if [[ $accepted == "$rows" ]]; then
        echo "rows = accepted: OK ($rows)"
    else
        echo "rows = accepted: MISMATCH (rows $rows, accepted $accepted)"
        return 1
    fi
}

if [[ $mode == load ]]; then
    rss_log="$tmp/rss.log"
    (
        while kill -0 "$hc_pid" 2>/dev/null; do
            echo "$(date +%s) $(rss_kb "$hc_pid")" >>"$rss_log"
            sleep 10
        done
    ) &
    sampler=$!
    pids+=("$sampler")
    say "load: $LOAD_BIN --url http://127.0.0.1:$HC_PORT --sites example.com,example.org,example.net $*"
    status=0
    "$LOAD_BIN" --url "http://127.0.0.1:$HC_PORT" --sites example.com,example.org,example.net \
        --verify-clickhouse "http://127.0.0.1:$CH_HTTP" --database "$DB" "$@" || status=$?
    echo "$(date +%s) $(rss_kb "$hc_pid")" >>"$rss_log"
    kill "$sampler" 2>/dev/null || true
    awk 'NR == 1 { first = $2; min = $2; max = $2 }
         { if ($2 < min) min = $2; if ($2 > max) max = $2; last = $2; n++ }
         END { printf "VmRSS (%d samples, 10 s apart): first %.1f MB  min %.1f MB  max %.1f MB  last %.1f MB\n",
               n, first / 1024, min / 1024, max / 1024, last / 1024 }' "$rss_log"
    echo "VmRSS series (MB): $(awk '{ printf "%.0f ", $2 / 1024 }' "$rss_log")"
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    exit "$status"
fi

# --- Baselines --------------------------------------------------------------
mkdir -p "$tmp/nginx/logs" "$tmp/nginx/tmp"
nginx -p "$tmp/nginx/" -c "$repo/benches/nginx/empty_gif.conf" -e logs/error.log -g 'daemon off;' &
nginx_pid=$!
pids+=("$nginx_pid")
"$BARE_HYPER_BIN" "127.0.0.1:$HYPER_PORT" 2>/dev/null &
hyper_pid=$!
pids+=("$hyper_pid")
ch_pid=$(cat "$CH_DIR/clickhouse.pid" 2>/dev/null || echo 0)
for port in $NGINX_PORT $HYPER_PORT; do
    for _ in $(seq 50); do
        curl -s -o /dev/null "http://127.0.0.1:$port/p.gif" && break
        sleep 0.1
    done
done

declare -A url script
url[headcount]="http://127.0.0.1:$HC_PORT$PIXEL_PATH"
url[event]="http://127.0.0.1:$HC_PORT/api/event"
url[nginx]="http://127.0.0.1:$NGINX_PORT$PIXEL_PATH"
url[hyper]="http://127.0.0.1:$HYPER_PORT$PIXEL_PATH"
url[healthz]="http://127.0.0.1:$HC_PORT/healthz"
url[unknown]="http://127.0.0.1:$HC_PORT${PIXEL_PATH//example.com/not-counted.example}"
script[event]="$repo/benches/wrk/event.lua"
targets=(headcount nginx hyper event healthz unknown)

declare -A server
server[headcount]=$hc_pid
server[event]=$hc_pid
server[nginx]=$nginx_pid
server[hyper]=$hyper_pid
server[healthz]=$hc_pid
server[unknown]=$hc_pid

# CPU time (utime + stime, clock ticks) of processes and their children
# (nginx's workers). The command name in /proc/PID/stat may hold spaces
# ("nginx: worker process"), so fields are counted after its ")".
ticks() {
    local total=0 p
    for p in "$@" $(for q in "$@"; do pgrep -P "$q" || true; done); do
        [[ $p != 0 && -r /proc/$p/stat ]] || continue
        total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')))
    done
    echo "$total"
}
# Busy clock ticks of the whole machine (user, nice, system, irq, softirq).
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }

# One wrk run: "req/s server-µs ClickHouse-µs machine-µs", the last three
# CPU time per request (the server under test, ClickHouse, every process
# on the machine — wrk included).
bench() {
    local name=$1 d=$2
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$d" -H "User-Agent: $UA")
    [[ -n ${script[$name]:-} ]] && args+=(-s "${script[$name]}")
    local s0 c0 b0
    s0=$(ticks "${server[$name]}") c0=$(ticks "$ch_pid") b0=$(busy)
    wrk "${args[@]}" "${url[$name]}" >"$tmp/wrk.$name.out" 2>&1 || true
    local s1 c1 b1
    s1=$(ticks "${server[$name]}") c1=$(ticks "$ch_pid") b1=$(busy)
    if grep -q 'Non-2xx' "$tmp/wrk.$name.out"; then
        say "$name: $(grep 'Non-2xx' "$tmp/wrk.$name.out")"
    fi
    awk -v s="$((s1 - s0))" -v c="$((c1 - c0))" -v b="$((b1 - b0))" -v hz="$(getconf CLK_TCK)" '
        / requests in / { n = $1 }
        /^Requests\/sec:/ { rps = $2 }
        END { us = n > 0 ? 1e6 / hz / n : 0; printf "%.0f %.2f %.2f %.2f\n", rps, s * us, c * us, b * us }' \
        "$tmp/wrk.$name.out"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

rounds=${1:-3}
say "warm-up: 2 s per target"
for t in "${targets[@]}"; do bench "$t" 2s >/dev/null; done

say "$rounds rounds of wrk -t$THREADS -c$CONNECTIONS -d$DURATION; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A res cpu
printf '%-6s %12s %12s %12s %12s %9s %9s %9s  %s\n' round headcount nginx hyper event hc/nginx hc/hyper ev/pixel load >&2
for ((r = 1; r <= rounds; r++)); do
    order=()
    for ((i = 0; i < ${#targets[@]}; i++)); do
        order+=("${targets[$(((i + r - 1) % ${#targets[@]}))]}")
    done
    for t in "${order[@]}"; do
        read -r res[$t,$r] cpu[$t,server,$r] cpu[$t,ch,$r] cpu[$t,all,$r] < <(bench "$t" "$DURATION")
    done
    res[r_nginx,$r]=$(awk -v a="${res[headcount,$r]}" -v b="${res[nginx,$r]}" 'BEGIN { printf "%.3f", a / b }')
    res[r_hyper,$r]=$(awk -v a="${res[headcount,$r]}" -v b="${res[hyper,$r]}" 'BEGIN { printf "%.3f", a / b }')
    res[r_event,$r]=$(awk -v a="${res[event,$r]}" -v b="${res[headcount,$r]}" 'BEGIN { printf "%.3f", a / b }')
    printf '%-6s %12s %12s %12s %12s %9s %9s %9s  %s\n' "$r" "${res[headcount,$r]}" "${res[nginx,$r]}" \
        "${res[hyper,$r]}" "${res[event,$r]}" "${res[r_nginx,$r]}" "${res[r_hyper,$r]}" "${res[r_event,$r]}" \
        "$(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
col() { for ((r = 1; r <= rounds; r++)); do echo "${res[$1,$r]}"; done | median; }
printf '%-6s %12s %12s %12s %12s %9s %9s %9s\n' median "$(col headcount)" "$(col nginx)" "$(col hyper)" \
    "$(col event)" "$(col r_nginx)" "$(col r_hyper)" "$(col r_event)"
echo "(req/s; ratios are medians of the per-round ratios; hc = Headcount /p.gif, ev = Headcount /api/event)"
echo
echo "CPU per request, µs (medians over the rounds; clock ticks of /proc/PID/stat and /proc/stat around each run):"
printf '%-10s %10s %11s %14s\n' target server ClickHouse "whole machine"
cpucol() { for ((r = 1; r <= rounds; r++)); do echo "${cpu[$1,$2,$r]}"; done | median; }
for t in headcount event nginx hyper healthz unknown; do
    printf '%-10s %10s %11s %14s\n' "$t" "$(cpucol "$t" server)" "$(cpucol "$t" ch)" "$(cpucol "$t" all)"
done
echo "(whole machine includes wrk and anything else running; ClickHouse inserts Headcount's events in batches,"
echo " so its CPU lands partly in the runs after the one that caused it)"
echo
echo "From bare HTTP to a recorded pageview (req/s, medians; ratio to nginx empty_gif, median of the per-round ratios):"
for t in hyper healthz unknown headcount; do
    for ((r = 1; r <= rounds; r++)); do
        res[x_$t,$r]=$(awk -v a="${res[$t,$r]}" -v b="${res[nginx,$r]}" 'BEGIN { printf "%.3f", a / b }')
    done
    printf '%-10s %10s %8s  %s\n' "$t" "$(col "$t")" "$(col "x_$t")" "$(case $t in
        hyper) echo "bare hyper, 204" ;; healthz) echo "Headcount's router, no work" ;;
        unknown) echo "/p.gif parsed and answered, site not counted: nothing recorded" ;;
        headcount) echo "/p.gif recorded: depersonalized, spooled, stored in ClickHouse" ;; esac)"
done

check_rows
