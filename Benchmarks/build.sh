#!/usr/bin/env bash
# Builds the C benchmark helpers into Benchmarks/.build-c/ (git-ignored):
#   epoll_echo      the C reference echo server (epoll)
#   uring_echo      the C reference echo server (io_uring, liburing)
#   echo_load       the ping-pong load generator
#   echo_rounds     an exact number of round trips (callgrind-echo.sh's client)
#   malloc_count.so the LD_PRELOAD allocation counter
# -Werror: these are small enough that any warning is worth a look.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/.build-c"
mkdir -p "$out"
CC="${CC:-gcc}"
CFLAGS=(-O2 -Wall -Wextra -Werror)

"$CC" "${CFLAGS[@]}" -o "$out/epoll_echo" "$here/c-reference/epoll_echo.c"
# The io_uring peer needs liburing (Debian liburing-dev, which scripts/deps.sh
# installs); without it the rest still builds and reactor-bench skips c-uring.
if echo '#include <liburing.h>' | "$CC" -E -x c - >/dev/null 2>&1; then
  "$CC" "${CFLAGS[@]}" -o "$out/uring_echo" "$here/c-reference/uring_echo.c" -luring
else
  rm -f "$out/uring_echo"
  echo "build.sh: no liburing.h (apt-get install liburing-dev): uring_echo not built" >&2
fi
"$CC" "${CFLAGS[@]}" -o "$out/echo_load" "$here/c-reference/echo_load.c" -lm
"$CC" "${CFLAGS[@]}" -o "$out/echo_rounds" "$here/c-reference/echo_rounds.c"
# -fPIC -shared for LD_PRELOAD; -ldl for dlsym on glibc older than 2.34.
"$CC" "${CFLAGS[@]}" -fPIC -shared -o "$out/malloc_count.so" "$here/malloc-count/malloc_count.c" -ldl
echo "built in $out: $(cd "$out" && echo *)"
