#!/usr/bin/env bash
# The main job: the backend comparison. Installs what is missing (Debian
# packages, as root), builds the release binaries, the C reference and the
# SwiftNIO peers, then runs reactor-bench. Flags pass through:
#
#   bash scripts/run.sh                 # --quick (about a minute of measuring)
#   bash scripts/run.sh --runs 3        # the full comparison (about 15 minutes)
#   bash scripts/run.sh --quick --backends epoll,uring --scenarios echo,http
#
# Results: a table on stdout; JSON, CSV and an SVG chart in .build-bench/results
# (--output DIR). Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
echo "run.sh: building the release binaries" >&2
swift build -c release >&2
echo "run.sh: building the C reference and the allocation counter" >&2
bash Benchmarks/build.sh >&2
echo "run.sh: building the SwiftNIO peers (Benchmarks/Peers, release)" >&2
swift build -c release --package-path Benchmarks/Peers >&2
args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--quick)
exec .build/release/reactor-bench --root . "${args[@]}"
