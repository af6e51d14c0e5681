#!/usr/bin/env bash
# Instructions per echo round trip in the server's user space, counted by
# callgrind: exact, so a change to the hot path can be judged on this noisy
# VM without medians (BENCHMARKS.md, "Instructions per round trip").
#
#   bash Benchmarks/callgrind-echo.sh                        # .build/release/echo, epoll and uring
#   ECHO=/other/build/release/echo BACKENDS="epoll poll libev uring" bash Benchmarks/callgrind-echo.sh
#
# The echo binary (release; its debug information stripped, since valgrind
# 3.19 rejects the DWARF) runs under callgrind; echo_rounds (Benchmarks/c-reference)
# connects CONNS (1000) connections, makes one round trip on each, and
# then exactly ROUNDS (20) more per connection of SIZE (64) bytes between a
# `callgrind_control --zero` and a `--dump`: the window holds those round
# trips and nothing else. One line per backend: instructions ÷ round trips.
# The kernel's work is not counted.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ECHO="${ECHO:-$root/.build/release/echo}" BACKENDS="${BACKENDS:-epoll uring}"
CONNS="${CONNS:-1000}" ROUNDS="${ROUNDS:-20}" SIZE="${SIZE:-64}"
[[ -x "$ECHO" ]] || { echo "callgrind-echo: no executable at $ECHO (swift build -c release --product echo)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "callgrind-echo: valgrind is not installed" >&2; exit 1; }
bash "$root/Benchmarks/build.sh" >/dev/null
work="$(mktemp -d)"
server=""
trap '[[ -n "$server" ]] && kill -KILL "$server" 2>/dev/null; rm -rf "$work"' EXIT
strip --strip-debug -o "$work/echo" "$ECHO"

for backend in $BACKENDS; do
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.$backend" \
        "$work/echo" --backend "$backend" --port 0 >"$work/out" 2>"$work/err" &
    server=$!
    port=""
    for _ in $(seq 600); do
        port="$(sed -n 's/.*listening on [0-9.]*:\([0-9]*\).*/\1/p' "$work/out" | head -1)"
        [[ -n "$port" ]] && break
        kill -0 "$server" 2>/dev/null || { echo "callgrind-echo: echo --backend $backend exited: $(tail -3 "$work/err")" >&2; exit 1; }
        sleep 0.1
    done
    [[ -n "$port" ]] || { echo "callgrind-echo: echo --backend $backend did not listen within 60 s" >&2; exit 1; }
    coproc CLIENT { "$root/Benchmarks/.build-c/echo_rounds" --port "$port" --connections "$CONNS" --rounds "$ROUNDS" --size "$SIZE"; }
    read -r ready <&"${CLIENT[0]}"
    [[ "$ready" == ready ]] || { echo "callgrind-echo: the client did not start" >&2; exit 1; }
    callgrind_control --zero "$server" >/dev/null 2>&1
    echo go >&"${CLIENT[1]}"
    read -r _ total <&"${CLIENT[0]}"
    callgrind_control --dump=window "$server" >/dev/null 2>&1
    echo bye >&"${CLIENT[1]}"
    wait "$CLIENT_PID" || true
    kill -KILL "$server"; wait "$server" 2>/dev/null || true  # its counts are dumped; a graceful stop under valgrind is slow
    server=""
    dump="$(grep -l '^desc: Trigger: .*window' "$work"/cg."$backend"* | head -1)"
    instructions="$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$dump")"
    echo "$backend: $instructions instructions / $total round trips = $((instructions / total)) per round trip"
done
