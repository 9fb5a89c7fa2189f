#!/bin/bash
# S3+SQS pull path benchmark (not a test): moto_server (S3 + SQS) and redis-server on free loopback ports; for each
# shape, N gzip objects of ~GZ_MB MB are uploaded to a bucket and announced on an SQS queue with S3 event
# notifications in AWS's format (the queue holds N messages: shallow); the puller (release build) drains them into Redis while a separate consumer
# process drains Redis (read + ack with the output's consumer group). Prints one table row per shape, measured on
# the puller process only, plus the CPU of moto, Redis and the consumer over the same pull.
# Usage: bench/aws/run.sh [objects per shape, default 8] [gzip MB per object, default 25] [workers, default 2]
#                         [rounds, default 1]
# With several rounds the shapes alternate (JSON lines first in odd rounds, CloudTrail first in even ones; later
# rounds announce the same objects again) and a last table gives each shape's median.
# REDIS_MODE=embedded: run Redis as the supervisor's embedded one (unix socket, append-only file fsynced every
# second) instead of TCP without persistence; its CPU then includes the AOF rewrites (children).
# PERF_DIR=<dir>: also record a CPU profile of each pull (perf record -g) into <dir>/<shape>.perf.data
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-8}
GZ_MB=${2:-25}
WORKERS=${3:-2}
ROUNDS=${4:-1}
cargo build --release -q -p logferry-input-aws --example aws_bench
BIN=target/release/examples/aws_bench

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# CPU user+sys of a process and of its children it waited for (Redis's AOF rewrites).
cpu_of() { awk '{sub(/.*\) /, ""); split($0, f, " "); printf "%.2f", (f[12]+f[13]+f[14]+f[15])/100}' "/proc/$1/stat"; }
PIDS=()
TMP=$(mktemp -d)
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

MOTO_PORT=$(free_port)
moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$TMP/moto.log" 2>&1 &
MOTO_PID=$!
PIDS+=("$MOTO_PID")
if [ "${REDIS_MODE:-tcp}" = embedded ]; then
    # As the supervisor's embedded Redis: unix socket, append-only file fsynced every second.
    REDIS_SOCKET=$TMP/redis.sock
    redis-server --port 0 --unixsocket "$REDIS_SOCKET" --unixsocketperm 700 --appendonly yes \
        --appendfsync everysec --save '' --auto-aof-rewrite-min-size 256mb --rdbcompression no --dir "$TMP" \
        >"$TMP/redis.log" 2>&1 &
    REDIS=unix://$REDIS_SOCKET
    REDIS_CLI=(redis-cli -s "$REDIS_SOCKET")
else
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
    REDIS=redis://127.0.0.1:$REDIS_PORT/
    REDIS_CLI=(redis-cli -p "$REDIS_PORT")
fi
REDIS_PID=$!
PIDS+=("$REDIS_PID")
MOTO=http://127.0.0.1:$MOTO_PORT
for _ in $(seq 100); do
    curl -sf "$MOTO/moto-api/" >/dev/null 2>&1 && "${REDIS_CLI[@]}" ping >/dev/null 2>&1 && break
    sleep 0.2
done

echo "objects per shape: $N x ~$GZ_MB MB gzip, workers: $WORKERS, rounds: $ROUNDS, Redis: ${REDIS_MODE:-tcp} ($REDIS), $(nproc) cores"
HEADER="| shape | objects | MiB uncompressed | events | seconds | MiB/s | events/s | CPU s (user+sys) | MiB per CPU s | µs CPU/event | peak RSS MiB | moto CPU s | redis CPU s | consumer CPU s |"
echo "$HEADER"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
declare -A SETUP
for SHAPE in jsonl cloudtrail; do
    SETUP[$SHAPE]=$("$BIN" setup "$MOTO" "$SHAPE" "$N" "$GZ_MB" "bench-$SHAPE")
done
for ROUND in $(seq "$ROUNDS"); do
    ORDER="jsonl cloudtrail"
    [ $((ROUND % 2)) = 0 ] && ORDER="cloudtrail jsonl"
    for SHAPE in $ORDER; do
        read -r EVENTS BYTES GZ URL <<<"${SETUP[$SHAPE]}"
        ID="bench-$SHAPE-$ROUND"
        [ "$ROUND" -gt 1 ] && URL=$("$BIN" reannounce "$MOTO" "bench-$SHAPE" "$ID")
        "$BIN" consume "$REDIS" "$ID" &
        CONSUMER=$!
        PIDS+=("$CONSUMER")
        M0=$(cpu_of "$MOTO_PID")
        R0=$(cpu_of "$REDIS_PID")
        PERF=()
        [ -n "${PERF_DIR:-}" ] && PERF=(perf record -q -g -o "$PERF_DIR/$SHAPE.perf.data" --)
        ROW=$("${PERF[@]}" "$BIN" pull "$MOTO" "$REDIS" "$SHAPE" "$URL" "$ID" "$EVENTS" "$BYTES" "$N" "$WORKERS")
        M1=$(cpu_of "$MOTO_PID")
        R1=$(cpu_of "$REDIS_PID")
        C=$(cpu_of "$CONSUMER")
        kill "$CONSUMER"; wait "$CONSUMER" 2>/dev/null || true
        echo "$ROW $(awk -v a="$M0" -v b="$M1" 'BEGIN{printf "%.2f", b-a}') | $(awk -v a="$R0" -v b="$R1" 'BEGIN{printf "%.2f", b-a}') | $C |" | tee -a "$TMP/rows"
    done
done
[ "$ROUNDS" -gt 1 ] || exit 0
median() { sort -n | awk '{v[NR]=$1} END{printf "%.2f", NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
column_of() { awk -F'|' -v s="$1" -v c="$2" '{gsub(/ /,"",$2)} $2==s {gsub(/ /,"",$c); print $c}' "$TMP/rows"; }
echo
echo "| shape | rounds | median MiB/s | median MiB per CPU s | median µs CPU/event | median redis + consumer CPU s |"
echo "| --- | --- | --- | --- | --- | --- |"
for SHAPE in jsonl cloudtrail; do
    SIDE=$(awk -F'|' -v s="$SHAPE" '{gsub(/ /,"",$2)} $2==s {print $14+$15}' "$TMP/rows" | median)
    echo "| $SHAPE | $ROUNDS | $(column_of "$SHAPE" 7 | median) | $(column_of "$SHAPE" 10 | median) | $(column_of "$SHAPE" 11 | median) | $SIDE |"
done
