#!/usr/bin/env bash
# Builds the package with a sanitizer and runs the test suite under it, on
# every backend the tests are parameterised over:
#
#   bash scripts/sanitize.sh address|thread|undefined [FILTER] [BACKENDS] [SKIP]
#
#   bash scripts/sanitize.sh address                          # the whole suite, every backend
#   bash scripts/sanitize.sh thread 'ConformanceTests|NetworkTests'
#   bash scripts/sanitize.sh address 'ConformanceTests' epoll,uring
#
# FILTER and SKIP are swift test's --filter and --skip (regular expressions
# over suite and test names; '' for none); BACKENDS sets REACTOR_TEST_BACKENDS
# (comma-separated; the variable itself works too). Each sanitizer builds in its own scratch directory
# (.build-asan, .build-tsan, .build-ubsan), so the usual .build stays as it is.
#
# Every process of the run (the test runner, and the example executables the
# tests start, which are built with the same sanitizer) writes its reports to
# .build-SAN/reports/. The run fails if any report is there, even when every
# test passed: a child's report would otherwise go unseen. The last line is
# Swift Testing's summary.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: bash scripts/sanitize.sh address|thread|undefined [FILTER] [BACKENDS] [SKIP]" >&2; exit 64; }
[ $# -ge 1 ] && [ $# -le 4 ] || usage
kind=$1
filter=${2:-}
[ -n "${3:-}" ] && export REACTOR_TEST_BACKENDS=$3
skip=${4:-}

case $kind in
address)
    scratch=.build-asan
    # -Xcc: the C functions Swift imports from headers (liburing's and
    # libev's inline helpers, our shims) are compiled by the importer, and
    # are instrumented only if it is told too.
    flags=(--sanitize address -Xcc -fsanitize=address)
    options_variable=ASAN_OPTIONS
    # detect_leaks: LeakSanitizer at every process's exit (the runner's and
    # each example's). abort_on_error=0: exit with a status, not SIGABRT, so
    # the runner's parent sees a failed run rather than a crash dump.
    options="detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1:strict_string_checks=1"
    ;;
thread)
    scratch=.build-tsan
    # REACTOR_TSAN: ReactorMutex becomes a pthread mutex, which TSan sees
    # (Synchronization.Mutex waits on a futex inside the uninstrumented
    # standard library, so TSan would report every withLock as a race).
    flags=(--sanitize thread -Xcc -fsanitize=thread -Xswiftc -DREACTOR_TSAN)
    options_variable=TSAN_OPTIONS
    # halt_on_error=0: report every race of the run, not only the first.
    # second_deadlock_stack: both stacks of a lock-order inversion.
    options="halt_on_error=0:second_deadlock_stack=1:history_size=4:suppressions=$PWD/scripts/tsan.supp"
    ;;
undefined)
    scratch=.build-ubsan
    # swiftc has no -sanitize=undefined on Linux: Swift's own code traps on
    # overflow, out-of-bounds and exclusivity violations in every debug
    # build already. What UBSan adds is the C that runs inside our binaries:
    # the inline functions the importer compiles from liburing's, libev's,
    # OpenSSL's and our own headers (-Xcc), and the UBSan runtime to link.
    flags=(-Xcc -fsanitize=undefined -Xswiftc -Xclang-linker -Xswiftc -fsanitize=undefined)
    options_variable=UBSAN_OPTIONS
    options="print_stacktrace=1:halt_on_error=1"
    ;;
*) usage ;;
esac

reports=$PWD/$scratch/reports
rm -rf "$reports"
mkdir -p "$reports"
# log_path: one file per process (log_exe_name: named after its executable and pid), for the check below.
export "$options_variable=$options:log_path=$reports/$kind:log_exe_name=1"

echo "sanitize.sh: building with the $kind sanitizer in $scratch" >&2
swift build --build-tests --scratch-path "$scratch" "${flags[@]}"

echo "sanitize.sh: running the suite under the $kind sanitizer (backends: ${REACTOR_TEST_BACKENDS:-every one built})" >&2
log=$scratch/test.log
set +e
swift test --skip-build --disable-xctest --scratch-path "$scratch" "${flags[@]}" ${filter:+--filter "$filter"} ${skip:+--skip "$skip"} 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

summary=$(grep -E '^. Test run with' "$log" | tail -1 || true)
found=$(find "$reports" -type f | sort)
if [ -n "$found" ]; then
    echo
    echo "sanitize.sh: $kind sanitizer reports ($(echo "$found" | wc -l) processes):"
    for file in $found; do
        echo "=== $file"
        cat "$file"
    done
    [ "$status" -eq 0 ] && status=1
fi
echo "sanitize.sh: $kind: $(echo -n "$found" | grep -c . || true) processes with reports; swift test exited $status"
[ -n "$summary" ] && echo "$summary"
exit "$status"
