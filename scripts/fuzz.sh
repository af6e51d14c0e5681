#!/usr/bin/env bash
# Fuzzes the parsers the network feeds with libFuzzer (which ships with the
# Swift toolchain), under AddressSanitizer and LeakSanitizer.
#
#   bash scripts/fuzz.sh                  every target, 20 seconds each
#   bash scripts/fuzz.sh resp-reply 600   one target, ten minutes
#   bash scripts/fuzz.sh list             the targets
#   FUZZ_CONFIGURATION=debug, FUZZ_NICE=10  a debug build; a lower priority
#   FUZZ_RUNS=10000000 bash scripts/fuzz.sh all 1800
#                                         each target until 10 million inputs or 30 minutes
#
# Builds `reactor-fuzz` in .build-fuzz (its own scratch path: every module is
# instrumented there), then runs each target from its committed seeds
# (Fuzz/Corpus/TARGET) plus what earlier runs found (.build-fuzz/corpus/TARGET),
# and prints per target: executions, coverage (cov: edges, ft: features),
# corpus size and the result. Exits non-zero on any crash, failed check, leak,
# timeout or out-of-memory; the input that caused it is saved under
# .build-fuzz/artifacts, and the line printed says how to replay it.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:-all}
seconds=${2:-20}
# release runs about 3.5 times more inputs a second; debug builds in about
# half the time and keeps debug-only checks (what CI runs, for 20 s a target).
configuration=${FUZZ_CONFIGURATION:-release}
scratch=.build-fuzz
artifacts=$scratch/artifacts

build() {
    echo "fuzz: building reactor-fuzz ($configuration) with -sanitize=fuzzer,address in $scratch" >&2
    # The linker warns about each ASan check symbol it cannot export; they are harmless.
    swift build --scratch-path "$scratch" -c "$configuration" --product reactor-fuzz \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING 2>&1 \
        | grep -v "Cannot export local symbol '__asan_" >&2 || true
    binary=$(swift build --scratch-path "$scratch" -c "$configuration" --show-bin-path)/reactor-fuzz
    [ -x "$binary" ] || { echo "fuzz: the build failed (see above)" >&2; exit 1; }
}

targets() { { "$binary" 2>&1 || true; } | sed -n 's/^  \([a-z0-9-]*\): .*/\1/p'; }  # its usage lists them

run() {
    local name=$1 log=$scratch/logs/$1.$configuration.log
    mkdir -p "$scratch/corpus/$name" "$artifacts" "$scratch/logs"
    local status=0
    # The Swift runtime's backtracer would race libFuzzer's own crash report.
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 nice -n "${FUZZ_NICE:-0}" \
        "$binary" "$name" "$scratch/corpus/$name" "Fuzz/Corpus/$name" \
        -max_total_time="$seconds" ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts/$name-" -print_final_stats=1 >"$log" 2>&1 || status=$?
    local runs cov ft corpus speed result
    # A run that failed on a seed prints no statistics: each may be missing.
    runs=$(grep -a '^stat::number_of_executed_units:' "$log" | tail -1 | tr -dc 0-9 || true)
    speed=$(grep -a '^stat::average_exec_per_sec:' "$log" | tail -1 | tr -dc 0-9 || true)
    cov=$(grep -ao 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    ft=$(grep -ao 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    corpus=$(grep -ao 'corp: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    if [ "$status" -eq 0 ]; then
        result=ok
    else
        result="FAILED ($(grep -a -m1 -o 'ERROR: [A-Za-z]*: [a-z -]*\|check failed' "$log" || echo "exit $status"))"
        failed+=("$name")
    fi
    printf '%-16s %12s executions %8s/s   cov %5s   ft %6s   corpus %5s   %s\n' \
        "$name" "${runs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corpus:-?}" "$result"
    if [ "$status" -ne 0 ]; then
        grep -a -m3 'check failed\|ERROR:\|SUMMARY' "$log" | sed 's/^/    /' | cut -c1-300 || true
        grep -ao "Test unit written to .*" "$log" | sed "s|Test unit written to |    replay: $binary $name |" || true
        echo "    log: $log"
    fi
}

build
names=$(targets)
if [ "$target" = list ]; then echo "$names"; exit 0; fi
failed=()
if [ "$target" = all ]; then
    for name in $names; do run "$name"; done
else
    case " $(echo $names) " in
        *" $target "*) run "$target" ;;
        *) echo "fuzz: no target '$target'; there are: $(echo $names)" >&2; exit 2 ;;
    esac
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: every target ran ${FUZZ_RUNS:+up to $FUZZ_RUNS inputs or }${seconds} s without a crash, failed check, leak or timeout"
