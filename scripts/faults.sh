#!/usr/bin/env bash
# Runs the suites that must stay whole under injected faults, on every
# backend, with REACTOR_FAULTS set (debug build: release builds compile the
# injection out). Every runtime in the test process, and in the kv and http
# binaries the service tests start, fails calls the ways kernels do.
#
#   bash scripts/faults.sh                      # seed 1, 5% of eligible calls, transparent kinds
#   bash scripts/faults.sh 42:0.1               # another seed and rate
#   bash scripts/faults.sh 42:0.1:eintr,short   # only some kinds (names in README, "Fault injection")
#   bash scripts/faults.sh 7:0.05 'ConformanceTests'   # a filter (a regex over test names)
#
# The default filter: the conformance suite, the 1,000 × 1 MiB echo and
# proxy integrity tests, TLS integrity, and the kv and http service tests.
# SKIP_BUILD=1 reuses the last `swift build --build-tests`. Each process
# prints at exit what it injected ("REACTOR_FAULTS: pid N injected ...").
set -euo pipefail
cd "$(dirname "$0")/.."
spec="${1:-1:0.05}"
filter="${2:-ConformanceTests\.|NetworkTests\.StreamIntegrityTests|NetworkTests\.ProxyTests|ServiceTests\.(KV|HTTP)}"
case "$spec" in
  *:*) ;;
  *) echo "faults.sh: '$spec' is not seed:rate[:kinds] (e.g. 1:0.05)" >&2; exit 2 ;;
esac
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  swift build --build-tests
fi
echo "faults.sh: REACTOR_FAULTS=$spec, filter: $filter" >&2
# The kv and http binaries under test inherit the variable; so does every
# runtime of the test process (each reports its own parse error, if any).
REACTOR_FAULTS="$spec" swift test --skip-build --disable-xctest --filter "$filter"
