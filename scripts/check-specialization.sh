#!/usr/bin/env bash
# Checks that the run-time backend choice still runs a specialised loop: in
# the release echo binary, each backend's `Serve.visit<P>` must call a
# specialisation of Runtime.run() (possibly one the optimiser merged across
# backends, with the poller's functions passed in), never the unspecialised
# generic `Runtime.run()`, which would pay witness-table calls per event.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product echo >/dev/null
objdump -d --no-show-raw-insn .build/release/echo | swift demangle > /tmp/echo-release.dis
status=0
awk '
  /^[0-9a-f]+ <generic specialization <[A-Za-z.]+> of Echo.Serve.visit/ {
    match($0, /specialization <[A-Za-z.]+>/); fn = substr($0, RSTART + 16, RLENGTH - 17); next }
  /^[0-9a-f]+ </ { fn = "" }
  fn != "" && /call.*Runtime.run\(\)/ {
    kind = ($0 ~ /specialization/) ? "specialised" : "UNSPECIALISED"
    print fn ": calls " kind " Runtime.run()"
  }' /tmp/echo-release.dis | sort -u | tee /tmp/specialisation.txt
grep -q "UNSPECIALISED" /tmp/specialisation.txt && status=1
[ "$(wc -l < /tmp/specialisation.txt)" -ge 2 ] || { echo "no Serve.visit specialisations found"; status=1; }
exit $status
