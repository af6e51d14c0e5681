#!/usr/bin/env bash
# Builds everything and runs every test; Swift Testing prints its own summary
# ("Test run with N tests ... passed").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
swift build --build-tests
bash Benchmarks/build.sh   # the C reference the reactor-bench test compares with
# The release echo must run a specialised loop on every backend (a refactor
# once lost it silently: ~6% more instructions per round trip).
bash scripts/check-specialization.sh
# AddressSanitizer (with LeakSanitizer) over the conformance and network
# suites on epoll and io_uring: the slice of scripts/sanitize.sh that CI can
# afford (the whole suite on every backend, and the thread and undefined
# sanitizers, take far longer; run them with scripts/sanitize.sh). Before the
# full run, so that this script still ends with the whole suite's summary.
bash scripts/sanitize.sh address 'ConformanceTests|NetworkTests' epoll,uring
swift test --skip-build --disable-xctest
