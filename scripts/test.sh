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
# sanitizers, take far longer; run them with scripts/sanitize.sh). Without the
# 1,000 × 1 MiB integrity runs: under ASan on two cores they outlast their
# deadlines (TLS handshakes time out), which says nothing about memory. Before
# the full run, so that this script still ends with the whole suite's summary.
bash scripts/sanitize.sh address 'ConformanceTests|NetworkTests' epoll,uring 'StreamIntegrityTests|TLSIntegrityTests'
swift test --skip-build --disable-xctest
