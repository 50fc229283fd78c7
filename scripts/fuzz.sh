#!/usr/bin/env bash
# Run every fuzz target of tests/fuzz.rs for a time budget, in an optimized
# build, one target after the other, and report the cases each one ran.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
#   SECONDS_PER_TARGET  default 60
#   TARGET              test names (fuzz_payload_json, ...) or substrings of
#                       them; default all (`cargo test --test fuzz -- --list`)
#
# Environment: HEADCOUNT_FUZZ_SEED replays a run (every report and failure
# prints its seed). CARGO_TARGET_DIR defaults to target/fuzz: the build is
# release-optimized *with* debug assertions and overflow checks (an overflow
# is a finding, as under cargo-fuzz), which must not replace the ordinary
# release binaries in target/release.
#
# Exit status 1 if any target failed; its shrunk input and seed are in the
# output (and in $CARGO_TARGET_DIR/fuzz-logs/TARGET.log).
set -euo pipefail

cd "$(dirname "$0")/.."

secs=${1:-60}
[[ $secs =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2; }
shift $(($# > 0 ? 1 : 0))

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/fuzz}
export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true
# Fuzzing speed does not need LTO; builds do need to be quick.
export CARGO_PROFILE_RELEASE_LTO=false
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

say() { echo "fuzz.sh: $*" >&2; }

say "building tests/fuzz.rs (release + debug assertions, $CARGO_TARGET_DIR)"
# The test binary: the artifact of the `test` target named `fuzz`.
bin=$(cargo test --release --test fuzz --no-run --message-format=json 2>/dev/null |
    grep '"kind":\["test"\],[^}]*"name":"fuzz"' |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
if [[ -z $bin || ! -x $bin ]]; then
    cargo test --release --test fuzz --no-run # show the error
    say "no test binary"
    exit 1
fi

mapfile -t all < <("$bin" --list --format terse | sed -n 's/: test$//p')
targets=()
if (($# == 0)); then
    targets=("${all[@]}")
else
    for want in "$@"; do
        for t in "${all[@]}"; do
            [[ $t == *"$want"* ]] && targets+=("$t")
        done
    done
fi
((${#targets[@]})) || { say "no target matches: $* (have: ${all[*]})"; exit 2; }

logs=$CARGO_TARGET_DIR/fuzz-logs
mkdir -p "$logs"
say "${#targets[@]} targets x ${secs} s; load average $(cut -d' ' -f1-3 /proc/loadavg)"

failed=()
rows=()
for t in "${targets[@]}"; do
    log=$logs/$t.log
    say "$t: ${secs} s"
    status=ok
    HEADCOUNT_FUZZ_SECONDS=$secs "$bin" --exact "$t" --nocapture --test-threads=1 >"$log" 2>&1 || status=FAILED
    # (--nocapture: a report may follow "test NAME ... " on its line)
    report=$(grep -o "fuzz-report .*cases=.*" "$log" | tail -n 1 || true)
    field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$report"; }
    cases=$(field cases)
    seconds=$(field seconds)
    rate=-
    [[ -n $cases && -n $seconds ]] && rate=$(awk -v c="$cases" -v s="$seconds" 'BEGIN { printf "%.0f", (s > 0 ? c / s : 0) }')
    extra=$(grep -o "fuzz-report .*" "$log" | grep -v " cases=" | sed 's/^fuzz-report target=[^ ]* //' | tr '\n' ' ' || true)
    rows+=("$(printf '%-34s %-7s %10s %8s %9s  %12s %6s  %s' "$t" "$status" "${cases:--}" "${seconds:--}" "$rate" \
        "$(field peak_heap_max)" "$(field peak_of_bound_max)" "$extra")")
    if [[ $status != ok ]]; then
        failed+=("$t")
        grep -A 40 -m 1 "panicked" "$log" | head -n 60 >&2 || tail -n 40 "$log" >&2
    fi
done

echo
printf '%-34s %-7s %10s %8s %9s  %12s %6s  %s\n' target result cases seconds cases/s "peak heap B" "/bound" notes
printf '%s\n' "${rows[@]}"
echo "(seed and details: $logs/<target>.log; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
if ((${#failed[@]})); then
    say "FAILED: ${failed[*]}"
    exit 1
fi
