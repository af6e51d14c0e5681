#!/usr/bin/env bash
# Builds everything and runs every test; Swift Testing prints its own summary
# ("Test run with N tests ... passed"), and the last line is the whole suite's.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
swift build --build-tests
bash Benchmarks/build.sh   # the C reference the reactor-bench test compares with
# The release echo must run a specialised loop on every backend (a refactor
# once lost it silently: ~6% more instructions per round trip).
bash scripts/check-specialization.sh
# Every fuzz target for 20 s under libFuzzer and AddressSanitizer (its own
# debug build, in .build-fuzz): a crash, failed check, leak or timeout fails the run.
FUZZ_CONFIGURATION=debug bash scripts/fuzz.sh all 20
# AddressSanitizer (with LeakSanitizer) over the conformance and network
# suites on epoll and io_uring: the slice of scripts/sanitize.sh that CI can
# afford (the whole suite on every backend, and the thread and undefined
# sanitizers, take far longer; run them with scripts/sanitize.sh). Without the
# 1,000 × 1 MiB integrity runs: under ASan on two cores they outlast their
# deadlines (TLS handshakes time out), which says nothing about memory; the
# full run below has them.
bash scripts/sanitize.sh address 'ConformanceTests|NetworkTests' epoll,uring 'StreamIntegrityTests|TLSIntegrityTests'
# The conformance suite once more, on every backend, with faults injected
# into every runtime: EINTR, EAGAIN, 1-byte transfers, ENOBUFS, and on
# io_uring -ENOBUFS, short sends, multishot receives ended early and requests
# cancelled unasked (README, "Fault injection"; about a minute).
SKIP_BUILD=1 bash scripts/faults.sh 1:0.05 'ConformanceTests\.'
# Last, so that this script ends with the whole suite's summary.
swift test --skip-build --disable-xctest
