#!/usr/bin/env bash
# The main job: build the release echo service and run it (flags pass through,
# e.g. --backend poll --port 7000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
swift build -c release --product echo
exec .build/release/echo "$@"
