#!/usr/bin/env bash
# The echo benchmark: CONNS connections x SIZE-byte ping-pong, the server
# pinned to CPU 0 and the load to CPU 1, every Swift backend measured beside
# the C epoll reference *in the same run* and reported as a ratio to it.
# Ratios travel between machines; absolute requests per second do not.
#
#   bash Benchmarks/echo-bench.sh                       # 3 interleaved runs of 5 s
#   DURATION=2 RUNS=1 bash Benchmarks/echo-bench.sh     # quick look
#   ALLOCS=1 bash Benchmarks/echo-bench.sh              # plus allocations per round trip
#
# Environment: CONNS (100) SIZE (64) DURATION (5) WARMUP (1) RUNS (3)
#   BACKENDS ("epoll poll libev uring") ALLOCS (0) ALLOC_DURATION (5)
#   SWIFT_SCRATCH (Benchmarks/.build-swift; ".build" for the shared build)
# The table (markdown) goes to stdout, progress and per-run numbers to stderr.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
CONNS="${CONNS:-100}" SIZE="${SIZE:-64}" DURATION="${DURATION:-5}" WARMUP="${WARMUP:-1}" RUNS="${RUNS:-3}"
BACKENDS="${BACKENDS:-epoll poll libev uring}" ALLOCS="${ALLOCS:-0}" ALLOC_DURATION="${ALLOC_DURATION:-5}"
cbin="$root/Benchmarks/.build-c"
work="$(mktemp -d)"
tck="$(getconf CLK_TCK)"

log() { echo "echo-bench: $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# One server runs at a time; PID names it until it is stopped, so any exit
# (error, ^C) kills it, and never a recycled pid of someone else's process.
PID=""
cleanup() {
    [[ -n "$PID" ]] && kill -KILL "$PID" 2>/dev/null
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- Build ------------------------------------------------------------------
log "building C helpers"
bash Benchmarks/build.sh >&2 || die "Benchmarks/build.sh"
# A private build directory by default: the shared .build is rebuilt by
# others while they edit, and an incremental build caught mid-edit once left
# an echo binary linked against a stale class layout (it printed
# "listening on 0.0.0.0:0"). It also avoids waiting on their SwiftPM lock.
# SWIFT_SCRATCH=.build uses the shared one (.build/release/echo).
scratch="${SWIFT_SCRATCH:-Benchmarks/.build-swift}"
log "building the Swift echo example (release, in $scratch)"
swift build -c release --product echo --scratch-path "$scratch" >&2 ||
    die "swift build -c release --product echo --scratch-path $scratch"
echo_bin="$(swift build -c release --scratch-path "$scratch" --show-bin-path)/echo"
[[ -x "$echo_bin" ]] || die "no executable at $echo_bin"
taskset -c 0,1 true 2>/dev/null || die "taskset cannot use CPUs 0 and 1 (this benchmark needs two)"

# ---- Servers ----------------------------------------------------------------
# start_server LABEL CMD...: runs CMD in the background and waits for its
# "listening on HOST:PORT" line. Sets PID, PORT and ERR (its stderr file).
# CMD must exec the server (taskset and env do), so PID is the server's own
# pid and /proc/PID/stat is its CPU time, threads included.
start_server() {
    local label="$1" i line
    shift
    local out="$work/$label.out"
    ERR="$work/$label.err"
    # Emptied here, not by the redirection below: that runs in the forked
    # child, and a poll that beat it read the previous run's line (its dead
    # port: "connection refused", or an empty backend line a moment later).
    : >"$out"
    : >"$ERR"
    "$@" >"$out" 2>"$ERR" &
    PID=$!
    for ((i = 0; i < 100; i++)); do
        # Both "listening on 127.0.0.1:P" (C) and
        # "echo listening on 127.0.0.1:P (backend B)" (Examples/Echo/main.swift).
        line="$(grep -m1 'listening on ' "$out" || true)"
        if [[ -n "$line" ]]; then
            PORT="$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' <<<"$line")"
            [[ -n "$PORT" ]] || die "$label: cannot parse a port from: $line"
            # Port 0 here has meant a mis-linked binary (an incremental build
            # that kept objects compiled against an older class layout): its
            # numbers would mean nothing, so stop.
            [[ "$PORT" != 0 ]] || die "$label printed '$line' although the kernel gave it a port: the build looks stale; rebuild from clean (rm -rf $scratch)"
            return 0
        fi
        kill -0 "$PID" 2>/dev/null || die "$label exited before listening: $(cat "$ERR")"
        sleep 0.1
    done
    die "$label printed no listening line within 10 s; stderr: $(cat "$ERR")"
}

# Swift servers are started with --strict-backend: a backend that cannot run
# here must fail the benchmark, not quietly measure the fallback under its name.
start_named() {  # start_named SERVER [env VAR=...]: c-reference or a backend name
    local name="$1"
    shift
    if [[ "$name" == c-reference ]]; then
        start_server "$name" "$@" taskset -c 0 "$cbin/epoll_echo" --port 0
    else
        start_server "$name" "$@" taskset -c 0 "$echo_bin" --backend "$name" --port 0 --strict-backend
        grep -q "(backend $name)" "$work/$name.out" ||
            die "asked for backend $name but the server says: $(cat "$work/$name.out")"
    fi
}

cpu_ticks() {  # utime+stime; the comm field may hold spaces, so cut after ")"
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

stop_server() {  # SIGTERM, then SIGKILL if it lingers
    local i
    kill -TERM "$PID" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
}

# run_load LABEL DURATION WARMUP: sets JSON (the load generator's line).
run_load() {
    local label="$1"
    if ! taskset -c 1 "$cbin/echo_load" --host 127.0.0.1 --port "$PORT" --connections "$CONNS" --size "$SIZE" \
        --duration "$2" --warmup "$3" >"$work/load.json" 2>"$work/load.err"; then
        die "load against $label: $(cat "$work/load.err"); server stderr (tail): $(tail -5 "$ERR")"
    fi
    JSON="$(cat "$work/load.json")"
}

field() { sed -n "s/.*\"$1\":\([0-9.eE+-]*\).*/\1/p" <<<"$JSON"; }

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---- Runs, interleaved: every server once per run ------------------------------
# Interleaving spreads slow drifts (thermal, a noisy neighbour) over all
# servers instead of charging them to whichever ran last.
log "$(uname -sr); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
log "$CONNS connections x $SIZE bytes, ${DURATION}s (+${WARMUP}s warmup), $RUNS run(s); server CPU 0, load CPU 1"
servers_order="c-reference $BACKENDS"
results="$work/results.tsv"  # run server rps p99 rps_per_cpu_s
for ((run = 1; run <= RUNS; run++)); do
    for s in $servers_order; do
        start_named "$s"
        # CPU is sampled around the load only: start-up is not echo work.
        t0="$(cpu_ticks "$PID")"
        run_load "$s" "$DURATION" "$WARMUP"
        t1="$(cpu_ticks "$PID")"
        stop_server
        cpu_s="$(awk -v a="$t0" -v b="$t1" -v h="$tck" 'BEGIN { printf "%.2f", (b - a) / h }')"
        # rps per CPU-second divides all round trips served (warmup included)
        # by the CPU spent over that same span.
        per_cpu="$(awk -v n="$(field all_round_trips)" -v c="$cpu_s" 'BEGIN { printf "%.0f", (c > 0 ? n / c : 0) }')"
        printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$s" "$(field rps)" "$(field p99_us)" "$per_cpu" >>"$results"
        log "run $run $s: rps $(field rps), p50 $(field p50_us) us, p99 $(field p99_us) us, server CPU ${cpu_s}s over $(awk -v d="$DURATION" -v w="$WARMUP" 'BEGIN{print d+w}')s, $per_cpu round trips per CPU-s"
    done
done

# Ratios are taken per run against that run's C reference, then the median:
# each Swift number is judged against the reference measured minutes apart,
# not against an average over the whole session.
col() { awk -F'\t' -v s="$1" -v c="$2" '$2 == s { print $c }' "$results" | median; }
ratios() {
    awk -F'\t' -v s="$1" -v c="$2" '$2 == "c-reference" { ref[$1] = $c } $2 == s { v[$1] = $c }
        END { for (r in v) if (ref[r] > 0) printf "%.3f\n", v[r] / ref[r] }' "$results" | median
}
echo
echo "Echo: $CONNS connections x $SIZE B ping-pong, ${DURATION}s per point, median of $RUNS run(s); server on CPU 0, load on CPU 1."
echo
echo "| server | rps | p99 µs | rps per server CPU-second | ratio to C reference (rps) | ratio (per CPU-s) |"
echo "|---|---:|---:|---:|---:|---:|"
for s in $servers_order; do
    printf '| %s | %.0f | %.1f | %.0f | %.2f | %.2f |\n' "$s" "$(col "$s" 3)" "$(col "$s" 4)" "$(col "$s" 5)" \
        "$(ratios "$s" 3)" "$(ratios "$s" 5)"
done

# ---- Allocations per round trip -------------------------------------------------
# allocs_now: asks the preloaded counter for a line on the server's stderr and
# prints its allocations= figure.
allocs_now() {
    local before i
    before="$(grep -c '^malloc_count ' "$ERR" || true)"
    kill -USR2 "$PID"
    for ((i = 0; i < 50; i++)); do
        if (($(grep -c '^malloc_count ' "$ERR" || true) > before)); then
            grep '^malloc_count ' "$ERR" | tail -1 | sed -n 's/.*allocations=\([0-9]*\).*/\1/p'
            return 0
        fi
        sleep 0.1
    done
    die "no malloc_count line from the server after SIGUSR2 (is $cbin/malloc_count.so preloaded?)"
}

if [[ "$ALLOCS" == 1 ]]; then
    echo
    echo "Allocations per round trip ($CONNS connections x $SIZE B, ${ALLOC_DURATION}s measured after a 2 s warmup load)."
    echo "The count includes accepting and closing the $CONNS connections of the measured load, amortised."
    echo
    echo "| server | allocations per round trip | allocations | round trips |"
    echo "|---|---:|---:|---:|"
    for s in $servers_order; do
        start_named "$s" env LD_PRELOAD="$cbin/malloc_count.so"
        run_load "$s" 2 0
        sleep 0.3  # let the server finish closing the warmup connections
        a="$(allocs_now)"
        # The load has exited (run_load waits for it) before B is read, so
        # every round trip counted in R happened between A and B.
        run_load "$s" "$ALLOC_DURATION" 0
        sleep 0.3
        b="$(allocs_now)"
        stop_server
        r="$(field all_round_trips)"
        ((r > 0)) || die "$s: no round trips in the allocation run"
        printf '| %s | %.4f | %d | %d |\n' "$s" "$(awk -v a="$a" -v b="$b" -v r="$r" 'BEGIN { print (b - a) / r }')" "$((b - a))" "$r"
    done
fi
