#!/usr/bin/env bash
# System calls per echo round trip, for every server: each Swift backend (the
# echo example) and both C references (epoll_echo, uring_echo).
#
#   bash Benchmarks/syscalls.sh                          # 100 connections × 64 B, 3 s per server
#   bash Benchmarks/syscalls.sh --connections 100,1000 --seconds 5
#   bash Benchmarks/syscalls.sh --backends epoll,uring --no-build
#
# How: each server runs pinned to CPU 0 (--server-cpu), echo_load to CPU 1
# (--load-cpu). `perf stat` counts the server's system calls through the
# kernel's syscall tracepoints (all its threads) from before echo_load
# connects until after it has disconnected; each count is divided by every
# round trip echo_load completed (its all_round_trips, warm-up included).
# Connection setup and teardown (accept, setsockopt, close: a few per
# connection) are in the counts too, which at 100 connections and ~10^5
# round trips is under 0.01 per round trip.
#
# Tracepoints rather than `strace -c`: strace stops the server at every
# system call (ptrace), which slows it several times over, and a slower
# server finds more work per wake-up, so it would report fewer calls per
# round trip than the server makes at full speed.
#
# Needs perf (Debian linux-perf, in scripts/deps.sh) and root, or
# kernel.perf_event_paranoid <= -1, for the tracepoints.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

backends="" connections="100" size=64 seconds=3 build=1 server_cpu=0 load_cpu=1
usage() {
    echo "usage: bash Benchmarks/syscalls.sh [--backends epoll,poll,...] [--connections 100[,1000]] [--size 64]" \
         "[--seconds 3] [--server-cpu 0] [--load-cpu 1] [--no-build]" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case "$1" in
        --backends) backends="${2:?}"; shift 2 ;;
        --connections) connections="${2:?}"; shift 2 ;;
        --size) size="${2:?}"; shift 2 ;;
        --seconds) seconds="${2:?}"; shift 2 ;;
        --server-cpu) server_cpu="${2:?}"; shift 2 ;;
        --load-cpu) load_cpu="${2:?}"; shift 2 ;;
        --no-build) build=0; shift ;;
        *) usage ;;
    esac
done

die() { echo "syscalls.sh: $*" >&2; exit 1; }
command -v perf >/dev/null || bash scripts/deps.sh >&2 || die "no perf: apt-get install -y linux-perf (or bash scripts/deps.sh as root)"
command -v perf >/dev/null || die "no perf after scripts/deps.sh: apt-get install -y linux-perf"
if [ "$build" = 1 ]; then
    echo "syscalls.sh: building the echo example (release) and the C programs" >&2
    swift build -c release --product echo >&2
    bash Benchmarks/build.sh >&2
fi
echo_bin=.build/release/echo
cbin=Benchmarks/.build-c
[ -x "$echo_bin" ] || die "no $echo_bin (swift build -c release --product echo)"
[ -x "$cbin/echo_load" ] || die "no $cbin/echo_load (bash Benchmarks/build.sh)"
# Every backend the echo example names in its error for an unknown one, unless given.
if [ -z "$backends" ]; then
    backends=$("$echo_bin" --backend '?' --port 0 2>&1 </dev/null | sed -n 's/.*valid names: \([a-z, _-]*\).*/\1/p' | head -1 | tr -d ' ' || true)
    [ -n "$backends" ] || backends="epoll,poll,libev,uring,uring-poll"
fi

# The system calls in the table's columns; whatever else the server makes is
# in "other" (the total is every sys_enter).
declare -A column=(
    [io_uring_enter]=io_uring_enter
    [epoll_wait]=epoll_wait [epoll_pwait]=epoll_wait [epoll_pwait2]=epoll_wait
    [poll]=poll [ppoll]=poll
    [read]=read/recv [readv]=read/recv [recvfrom]=read/recv [recvmsg]=read/recv [recvmmsg]=read/recv
    [write]=write/send [writev]=write/send [sendto]=write/send [sendmsg]=write/send [sendmmsg]=write/send
    [epoll_ctl]=epoll_ctl
)
events="raw_syscalls:sys_enter"
for call in "${!column[@]}"; do
    perf list "syscalls:sys_enter_$call" 2>/dev/null | grep -q "sys_enter_$call " && events+=",syscalls:sys_enter_$call"
done

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "syscalls.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

results="$work/results"
: > "$results"
notes=()

# measure NAME CONNECTIONS COMMAND...: one server under one load; appends a line to $results.
measure() {
    local name=$1 conns=$2; shift 2
    # Emptied here, not by the redirection: that runs in the background job,
    # and the loop below could read the previous server's port first.
    : > "$work/out"; : > "$work/err"
    taskset -c "$server_cpu" "$@" >> "$work/out" 2>> "$work/err" &
    server_pid=$!
    local port="" i status
    for i in $(seq 100); do
        port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$work/out" | head -1)
        [ -n "$port" ] && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        notes+=("$name: did not start: $(head -c 300 "$work/err" | tr '\n' ' ')")
        kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=""
        return
    fi
    perf stat -x, -e "$events" -p "$server_pid" -o "$work/perf" &
    local perf_pid=$!
    sleep 0.3  # attached before the first connect
    local load
    if ! load=$(taskset -c "$load_cpu" "$cbin/echo_load" --port "$port" --connections "$conns" --size "$size" \
                --duration "$seconds" --warmup 0.5 2> "$work/load-err"); then
        notes+=("$name: echo_load failed: $(tr '\n' ' ' < "$work/load-err")")
    fi
    sleep 0.3  # the disconnects are counted too
    kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" || true
    if ! kill "$server_pid" 2>/dev/null; then
        wait "$server_pid" 2>/dev/null && status=0 || status=$?
        notes+=("$name ($conns): exited by itself during the run (status $status)")
    fi
    wait "$server_pid" 2>/dev/null || true; server_pid=""
    # The echo example's "backend X (requested)" line is expected; anything else is worth a look.
    local errors
    errors=$(grep -v 'backend .* (requested)' "$work/err" | tr '\n' ' ' | head -c 300 || true)
    [ -n "$errors" ] && notes+=("$name ($conns): stderr: $errors")
    local trips rps
    trips=$(sed -n 's/.*"all_round_trips":\([0-9]*\).*/\1/p' <<< "$load")
    rps=$(sed -n 's/.*"rps":\([0-9]*\).*/\1/p' <<< "$load")
    [ -n "$trips" ] && [ "$trips" -gt 0 ] || return 0  # echo_load failed: said in the notes
    # perf -x, lines: count,unit,event,...
    local -A sums=()
    local total=0 count unit event
    while IFS=, read -r count unit event _; do
        [[ "$count" =~ ^[0-9]+$ ]] || continue
        if [ "$event" = raw_syscalls:sys_enter ]; then total=$count; continue; fi
        local col=${column[${event#syscalls:sys_enter_}]}
        sums[$col]=$(( ${sums[$col]:-0} + count ))
    done < "$work/perf"
    local listed=0 c
    for c in "${sums[@]}"; do listed=$((listed + c)); done
    echo "$name $conns $trips $rps ${sums[io_uring_enter]:-0} ${sums[epoll_wait]:-0} ${sums[poll]:-0} ${sums[read/recv]:-0} ${sums[write/send]:-0} ${sums[epoll_ctl]:-0} $((total - listed)) $total" >> "$results"
}

for conns in ${connections//,/ }; do
    echo "syscalls.sh: $conns connections × $size B, $seconds s per server" >&2
    [ -x "$cbin/epoll_echo" ] && measure c-epoll "$conns" "$cbin/epoll_echo" --port 0
    [ -x "$cbin/uring_echo" ] && measure c-uring "$conns" "$cbin/uring_echo" --port 0
    for backend in ${backends//,/ }; do
        measure "$backend" "$conns" "$echo_bin" --backend "$backend" --strict-backend --port 0
    done
done

echo
echo "System calls per round trip (echo_load ping-pong, $size B; server on CPU $server_cpu, load on CPU $load_cpu; $(uptime | sed 's/.*load average/load average/')):"
echo
awk '
BEGIN {
    print "| server | connections | round trips | rt/s | io_uring_enter | epoll_wait | poll | read/recv | write/send | epoll_ctl | other | total |"
    print "|--------|------------:|------------:|-----:|---------------:|-----------:|-----:|----------:|-----------:|----------:|------:|------:|"
}
{
    printf "| %s | %d | %d | %d |", $1, $2, $3, $4
    for (i = 5; i <= 12; i++) printf " %.3f |", $i / $3
    printf "\n"
}' "$results"
for note in "${notes[@]+"${notes[@]}"}"; do echo "note: $note"; done
