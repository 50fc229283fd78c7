#!/usr/bin/env bash
# Soak test: steady load for minutes; the server's memory and backlog over
# time. Flat is the goal: RSS and queue depth that stop growing once warm.
#
#   benches/soak.sh [--rate N] [--duration SECONDS] [--every SECONDS]
#                   [--endpoint pixel|event|mix] [--connections N] [-- LOAD ARGS...]
#
#   --rate         requests per second, open loop (default 5000)
#   --duration     measured seconds after a 2 s warm-up (default 300)
#   --every        sampling interval in seconds (default 10)
#   --endpoint     headcount-load --endpoint (default mix)
#   --connections  headcount-load --connections (default 64)
#   -- ARGS        passed on to headcount-load (e.g. --visitors 2000)
#
# What it starts, all on 127.0.0.1 and all stopped on exit (also on Ctrl-C):
#   * its own ClickHouse (scripts/clickhouse.sh, HTTP 46123, TCP 46900, data
#     in a temp dir, so the row count is this run's);
#   * target/release/headcount serve on 46080 with the config of
#     benches/lib.sh (sites example.com/.org/.net, trusted_proxies
#     ["127.0.0.1/32"] since headcount-load sends each visitor's address in
#     X-Forwarded-For, the geo databases of var/geo when installed, the rate
#     limiter exempting 127.0.0.1);
#   * target/release/headcount-load at the fixed rate.
#
# Every --every seconds it samples the server's VmRSS (/proc/PID/status) and
# from /metrics headcount_queue_depth, headcount_events_accepted_total,
# headcount_rows_written_total, the dropped events, and every metric whose
# name starts with headcount_spool_ (whatever this build has: gauges and
# counters as they are, histograms as _count and _sum). It prints a table
# over time, writes it as CSV to var/soak/soak-<time>.csv, and ends with
# min/median/max RSS, the RSS slope (MB per minute, least squares over the
# second half of the run), and whether ClickHouse holds exactly the events
# accepted. Exit status 1 if the rows differ or the load generator failed.
#
# Environment: NO_BUILD=1 uses the binaries in target/release as they are;
# HEADCOUNT_BIN, LOAD_BIN other binaries; KEEP=1 keeps the temp dir (config,
# logs, ClickHouse data); SOAK_HC_PORT, SOAK_CH_HTTP, SOAK_CH_TCP other ports.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD

rate=5000
duration=300
every=10
endpoint=mix
connections=64
load_args=()
while (($#)); do
    case $1 in
        --rate) rate=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --every) every=$2; shift 2 ;;
        --endpoint) endpoint=$2; shift 2 ;;
        --connections) connections=$2; shift 2 ;;
        --) shift; load_args=("$@"); break ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "soak.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
    esac
done
for v in rate duration every connections; do
    [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || { echo "soak.sh: --$v must be a positive whole number" >&2; exit 2; }
done

HC_PORT=${SOAK_HC_PORT:-46080}
CH_HTTP=${SOAK_CH_HTTP:-46123}
CH_TCP=${SOAK_CH_TCP:-46900}
DB=headcount_soak
HEADCOUNT_BIN=${HEADCOUNT_BIN:-$repo/target/release/headcount}
LOAD_BIN=${LOAD_BIN:-$repo/target/release/headcount-load}

say() { echo "soak: $*" >&2; }
source benches/lib.sh
command -v curl >/dev/null || { say "curl not found (apt-get install curl)"; exit 1; }

if [[ ${NO_BUILD:-0} != 1 ]]; then
    say "building release binaries"
    cargo build --release --bin headcount --bin headcount-load
fi

tmp=$(mktemp -d /tmp/headcount-soak.XXXXXX)
ch_dir=$tmp/clickhouse
hc_pid=
load_pid=
ch_started=0
cleanup() {
    local status=$?
    set +e
    if [[ -n $load_pid ]] && kill -0 "$load_pid" 2>/dev/null; then
        kill -TERM "$load_pid"
        wait "$load_pid" 2>/dev/null
    fi
    if [[ -n $hc_pid ]] && kill -0 "$hc_pid" 2>/dev/null; then
        kill -TERM "$hc_pid"
        for _ in $(seq 150); do
            kill -0 "$hc_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$hc_pid" 2>/dev/null && { say "headcount did not stop in 15 s; killing it"; kill -KILL "$hc_pid"; }
        wait "$hc_pid" 2>/dev/null
    fi
    ((ch_started)) && scripts/clickhouse.sh stop "$ch_dir" "$CH_HTTP" "$CH_TCP" >/dev/null 2>&1
    if [[ ${KEEP:-0} == 1 ]]; then
        say "kept $tmp"
    else
        rm -rf "$tmp"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- ClickHouse -------------------------------------------------------------
if curl -sf --max-time 2 "http://127.0.0.1:$CH_HTTP/ping" >/dev/null 2>&1; then
    say "something already answers on 127.0.0.1:$CH_HTTP (a soak left over?); set SOAK_CH_HTTP"
    exit 1
fi
ch_started=1
scripts/clickhouse.sh start "$ch_dir" "$CH_HTTP" "$CH_TCP"
ch() { curl -sf "http://127.0.0.1:$CH_HTTP/" --data-binary "$1"; }

# --- Headcount ----------------------------------------------------------------
hc_config "$tmp/headcount.toml" "$HC_PORT" "$CH_HTTP" "$DB"
"$HEADCOUNT_BIN" --config "$tmp/headcount.toml" serve 2>"$tmp/headcount.log" &
hc_pid=$!
hc_wait_ready "$hc_pid" "$HC_PORT" "$tmp/headcount.log"
say "headcount ready on :$HC_PORT (pid $hc_pid; config $tmp/headcount.toml)"

# --- Sampling -----------------------------------------------------------------
# One long-format line per value: seconds name value. Pivoted at the end, so
# metrics that appear only later (a labelled drop reason) still get a column.
samples=$tmp/samples.txt
: >"$samples"
t0=$(date +%s.%N)
sample() {
    local t rss metrics
    t=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$hc_pid/status" 2>/dev/null) || return 0
    metrics=$(curl -sf --max-time 5 "http://127.0.0.1:$HC_PORT/metrics") || metrics=""
    {
        echo "$t rss_mb $(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }')"
        awk -v t="$t" '
            /^#/ { next }
            {
                name = $1; sub(/\{.*/, "", name)
                if (name ~ /_bucket$/) next
                keep = name == "headcount_queue_depth" || name == "headcount_events_accepted_total" ||
                       name == "headcount_rows_written_total" || name == "headcount_events_dropped_total" ||
                       name ~ /^headcount_spool_/
                if (!keep) next
                # Labelled series are summed per name (drops: all reasons).
                sum[name] += $NF; seen[name] = 1
            }
            END { for (n in seen) printf "%s %s %.6g\n", t, n, sum[n] }' <<<"$metrics"
    } >>"$samples"
}

metric() {
    curl -sf --max-time 5 "http://127.0.0.1:$HC_PORT/metrics" | awk -v m="$1" '$1 == m { printf "%d\n", $2 }'
}

# --- Load ---------------------------------------------------------------------
load_cmd=("$LOAD_BIN" --url "http://127.0.0.1:$HC_PORT" --sites example.com,example.org,example.net
    --rate "$rate" --duration "${duration}s" --endpoint "$endpoint" --connections "$connections"
    --report-every 0 --verify-clickhouse "http://127.0.0.1:$CH_HTTP" --database "$DB" "${load_args[@]}")
say "load: ${load_cmd[*]}"
say "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
sample
"${load_cmd[@]}" >"$tmp/load.out" 2>"$tmp/load.err" &
load_pid=$!
next=$(awk -v a="$(date +%s.%N)" -v e="$every" 'BEGIN { printf "%.3f", a + e }')
printf '%8s %9s %9s %12s %12s %9s\n' t_s rss_MB queue accepted rows_written dropped >&2
while kill -0 "$load_pid" 2>/dev/null; do
    now=$(date +%s.%N)
    if awk -v a="$now" -v b="$next" 'BEGIN { exit !(a >= b) }'; then
        sample
        next=$(awk -v a="$next" -v e="$every" 'BEGIN { printf "%.3f", a + e }')
        awk -v t="$(tail -n 1 "$samples" | cut -d' ' -f1)" '
            $1 == t { v[$2] = $3 }
            END { printf "%8s %9s %9s %12s %12s %9s\n", t, v["rss_mb"], v["headcount_queue_depth"],
                  v["headcount_events_accepted_total"], v["headcount_rows_written_total"],
                  v["headcount_events_dropped_total"] }' "$samples" >&2
    fi
    sleep 0.2
done
load_status=0
wait "$load_pid" || load_status=$?
load_pid=
sample
load_avg=$(cut -d' ' -f1-3 /proc/loadavg)

# Written = accepted once the writer has drained (headcount-load's own check
# waited for its rows already); then count the rows of this database.
for _ in $(seq 60); do
    accepted=$(metric headcount_events_accepted_total)
    written=$(metric headcount_rows_written_total)
    [[ -n $accepted && $accepted == "$written" ]] && break
    sleep 1
done
sample
rows=$(ch "SELECT count() FROM $DB.events" || echo "?")

# --- Report -------------------------------------------------------------------
mkdir -p var/soak
csv=var/soak/soak-$(date +%Y%m%d-%H%M%S).csv
# Pivot: one row per sample time, one column per metric: the fixed ones
# first, then the others (spool metrics) in order of appearance.
awk '
    BEGIN { split("rss_mb headcount_queue_depth headcount_events_accepted_total headcount_rows_written_total headcount_events_dropped_total", fixed, " ")
            for (i = 1; i <= 5; i++) { cols[++nc] = fixed[i]; col[fixed[i]] = 1 } }
    { if (!($1 in row)) { times[++nt] = $1; row[$1] = 1 }
      if (!($2 in col)) { cols[++nc] = $2; col[$2] = 1 }
      v[$1, $2] = $3 }
    END {
        printf "t_s"; for (c = 1; c <= nc; c++) printf ",%s", cols[c]; printf "\n"
        for (r = 1; r <= nt; r++) {
            printf "%s", times[r]
            for (c = 1; c <= nc; c++) printf ",%s", ((times[r], cols[c]) in v) ? v[times[r], cols[c]] : ""
            printf "\n"
        }
    }' "$samples" >"$csv"

echo
echo "== soak: ${rate} req/s for ${duration} s, endpoint $endpoint, $connections connections, samples every ${every} s =="
echo "command: benches/soak.sh --rate $rate --duration $duration --every $every --endpoint $endpoint --connections $connections${load_args[*]:+ -- ${load_args[*]}}"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); load average at the end $load_avg"
echo
# The table: shorter column names (headcount_ prefix and _total suffix dropped).
awk -F, '{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (NR == 1) { sub(/^headcount_/, "", c[NR, i]); sub(/_total$/, "", c[NR, i]) }
                                          if (length(c[NR, i]) > w[i]) w[i] = length(c[NR, i]) } }
         NF > nf { nf = NF }
         END { for (r = 1; r <= NR; r++) { line = ""; for (i = 1; i <= nf; i++) line = line sprintf("%*s ", w[i], c[r, i]); print line } }' "$csv"
echo
echo "CSV: $csv"
echo
grep -E '^(requests|throughput|status|events|latency|send lag|queue depth|verify|error)' "$tmp/load.out" || true
[[ -s $tmp/load.err ]] && grep -iE 'error|warn' "$tmp/load.err" | head -n 5 || true
echo
# RSS statistics over the load (the first sample is the idle server).
rss_loaded=$(awk '$2 == "rss_mb" && n++ > 0 { print $3 }' "$samples" | sort -g)
median=$(awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }' <<<"$rss_loaded")
awk -v med="$median" '$2 == "rss_mb" { n++; t[n] = $1; r[n] = $3 }
     END {
        if (n < 2) { print "RSS: too few samples"; exit }
        min = max = r[2]; for (i = 2; i <= n; i++) { if (r[i] < min) min = r[i]; if (r[i] > max) max = r[i] }
        printf "RSS (MB): idle %.1f; under load min %.1f  median %.1f  max %.1f  last %.1f\n", r[1], min, med, max, r[n]
        # Least squares over the second half of the run (time in minutes).
        half = t[n] / 2; k = 0; sx = sy = sxx = sxy = 0
        for (i = 1; i <= n; i++) if (t[i] >= half) { x = t[i] / 60; k++; sx += x; sy += r[i]; sxx += x * x; sxy += x * r[i] }
        if (k >= 2 && k * sxx - sx * sx > 0)
            printf "RSS slope over the second half (%d samples): %+.2f MB/min\n", k, (k * sxy - sx * sy) / (k * sxx - sx * sx)
        else
            print "RSS slope: too few samples in the second half"
     }' "$samples"
awk '$2 == "headcount_queue_depth" { if (n++ == 0 || $3 > max) max = $3; last = $3 }
     END { if (n) printf "queue depth: max %d, last %d (%d samples)\n", max, last, n }' "$samples"
dropped=$(curl -sf --max-time 5 "http://127.0.0.1:$HC_PORT/metrics" |
    awk '/^headcount_events_dropped_total\{/ && $2 > 0 { r = $1; sub(/.*reason="/, "", r); sub(/".*/, "", r); printf "%s=%d ", r, $2 }')
echo "dropped: ${dropped:-none}"
status=0
if [[ $rows == "$accepted" ]]; then
    echo "rows in ClickHouse = accepted events: OK ($rows)"
else
    echo "rows in ClickHouse = accepted events: MISMATCH (rows $rows, accepted $accepted, written $written)"
    status=1
fi
if ((load_status)); then
    echo "headcount-load exited with $load_status:"
    tail -n 5 "$tmp/load.err"
    status=1
fi
exit "$status"
