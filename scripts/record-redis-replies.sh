#!/usr/bin/env bash
# Records what a real redis-server replies, for the differential test of the
# RESP reply parser (Tests/FuzzTests/RedisReplyCorpusTests.swift): for each
# case, the raw reply bytes (NAME.resp) and what redis-cli prints for the
# same commands (NAME.cli). Re-run it to re-record against another version.
#
# The commands go to the server as inline commands over a plain TCP
# connection (bash's /dev/tcp), then QUIT, whose +OK is cut off; redis-cli
# reads the very same lines on standard input. Both parse a line the same
# way (sdssplitargs), and every command here reads, or writes what the setup
# already wrote, so both see the same state.
set -euo pipefail
cd "$(dirname "$0")/.."
out=Fuzz/RedisReplies
port=${PORT:-16390}
mkdir -p "$out"

redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
cli() { redis-cli -p "$port" "$@" >/dev/null; }

# The state every case reads.
cli FLUSHALL
cli SET greeting hello
printf 'NUL\0 CRLF\r\n quote" backslash\\ high\xff\xfe utf-8 \xc3\xa9\xe2\x82\xac' | cli -x SET binary
cli RPUSH list a "" "b c" 1
cli HSET hash field value f2 v2
cli ZADD zset 1 a 2.5 b -3 c
cli XADD stream 1-1 f v g w
cli SET counter 41
cli SET large "$(head -c 3000 /dev/zero | tr '\0' 'x')"

record() {
    local name=$1
    shift
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    for line in "$@"; do printf '%s\r\n' "$line" >&3; done
    printf 'QUIT\r\n' >&3
    cat <&3 >"$out/$name.resp.tmp"
    exec 3<&-
    head -c -5 "$out/$name.resp.tmp" >"$out/$name.resp"  # without QUIT's +OK\r\n
    rm "$out/$name.resp.tmp"
    printf '%s\n' "$@" | redis-cli -p "$port" --no-raw >"$out/$name.cli"
}

record ping 'PING' 'PING "with text"'
record strings 'GET greeting' 'GET counter' 'GET no-such-key' 'GET large'
record binary 'GET binary' 'ECHO "tab\there \"quoted\" back\\slash \x00\x7f\x80"' 'ECHO ""'
record integers 'STRLEN greeting' 'EXISTS greeting no-such-key list' 'TTL no-such-key' 'EVAL "return -9007199254740991" 0' 'DEL no-such-key'
record arrays 'LRANGE list 0 -1' 'LRANGE no-such-key 0 -1' 'HGETALL hash' 'MGET greeting no-such-key list counter'
record nested 'ZRANGE zset 0 -1 WITHSCORES' 'XRANGE stream - +' 'SCAN 0 MATCH list COUNT 1000' 'CONFIG GET maxmemory-policy'
record eval-values 'EVAL "return {1, '"'"'two'"'"', {3, {'"'"'four'"'"', {}}}, {}, redis.status_reply('"'"'FINE'"'"'), redis.error_reply('"'"'MY error'"'"')}" 0' \
    'EVAL "return redis.status_reply('"'"'STATUS'"'"')" 0' 'EVAL "return {false, true}" 0'
record nulls 'BLPOP no-such-key 0.01' 'LPOP no-such-key' 'HGET hash no-such-field' 'ZSCORE zset no-such-member'
record errors 'GET list' 'NO-SUCH-COMMAND arg' 'SET only-key' 'EXEC' 'INCR greeting' 'EVAL "return redis.error_reply('"'"'-CODE with dash'"'"')" 0'
record transaction 'MULTI' 'SET tx 1' 'GET tx' 'LRANGE list 0 1' 'INCR greeting' 'EXEC'
record command-info 'COMMAND INFO get set'
ls -l "$out"
