#!/bin/bash
# End-to-end S3+SQS benchmark (not a test): logferry and Vector side by side in the same run. moto_server holds the
# objects and queues; each collector pulls N gzip objects of ~GZ_MB MB announced on a fresh SQS queue and sends
# every event to a TCP sink that counts lines. logferry runs as an operator runs it: the release binary with its
# default settings and its embedded Redis (append-only file, rewrites). Every figure counts the collector's whole
# process tree: CPU of the supervisor, InputProcess, OutputProcess, redis-server and its rewrite children (user +
# sys, /proc), and the largest total memory (sum of the processes' PSS, sampled every 100 ms). moto and the sink
# are peers: not counted.
# Usage: bench/aws/e2e.sh [objects per shape, default 20] [gzip MB per object, default 25] [rounds, default 3]
#                         [shapes, default "jsonl cloudtrail"]
# The collectors alternate within each round (logferry first in odd rounds, Vector first in even ones); the last
# table gives each shape's and collector's median. VECTOR_BIN (default /tmp/vector; unpacked from
# ../shared/tools/vector-0.58.xz when VECTOR_BIN is not set): without it, logferry alone is measured. LOGFERRY_BASE=<binary>:
# also measure another logferry build (e.g. the one before a change) in the same rounds, labelled logferry-base.
# LOGFERRY_GLOBALS / LOGFERRY_BASE_GLOBALS="key: value;key: value": extra `globals` lines for logferry /
# logferry-base (e.g. LOGFERRY_BASE=target/release/logferry LOGFERRY_BASE_GLOBALS="queue_compression: none": two
# settings of one build in the same rounds).
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-20}
GZ_MB=${2:-25}
ROUNDS=${3:-3}
SHAPES=${4:-jsonl cloudtrail}
cargo build --release -q -p logferry-supervisor --bin logferry
cargo build --release -q -p logferry-input-aws --example aws_bench
BIN=target/release/examples/aws_bench
LOGFERRY=$PWD/target/release/logferry
VECTOR=${VECTOR_BIN:-/tmp/vector}
VECTOR_XZ=../shared/tools/vector-0.58.xz
if [ -z "${VECTOR_BIN:-}" ] && [ ! -x "$VECTOR" ] && [ -f "$VECTOR_XZ" ]; then
    xz -dc "$VECTOR_XZ" >"$VECTOR" && chmod +x "$VECTOR"
fi
COLLECTORS=(logferry)
[ -n "${LOGFERRY_BASE:-}" ] && COLLECTORS+=(logferry-base)
if [ -x "$VECTOR" ]; then
    COLLECTORS+=(vector)
else
    echo "Vector not found ($VECTOR): measuring logferry alone"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
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
PIDS+=("$!")
MOTO=http://127.0.0.1:$MOTO_PORT
for _ in $(seq 100); do
    curl -sf "$MOTO/moto-api/" >/dev/null 2>&1 && break
    sleep 0.2
done

echo "objects per shape: $N x ~$GZ_MB MB gzip, rounds: $ROUNDS, collectors: ${COLLECTORS[*]}, $(nproc) cores"
echo "| shape | collector | MiB uncompressed | events | lines received | seconds | MiB/s | CPU s (all processes) | MiB per CPU s | µs CPU/event | peak memory MiB (all processes) | per process: CPU s, peak RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
declare -A SETUP
for SHAPE in $SHAPES; do
    SETUP[$SHAPE]=$("$BIN" setup "$MOTO" "$SHAPE" "$N" "$GZ_MB" "e2e-$SHAPE")
done
RUN=0
for ROUND in $(seq "$ROUNDS"); do
    ORDER=("${COLLECTORS[@]}")
    [ $((ROUND % 2)) = 0 ] && ORDER=($(printf '%s\n' "${COLLECTORS[@]}" | tac))
    for SHAPE in $SHAPES; do
        read -r EVENTS BYTES _ URL <<<"${SETUP[$SHAPE]}"
        for COLLECTOR in "${ORDER[@]}"; do
            RUN=$((RUN + 1))
            # Each run has its own queue: every object announced again.
            [ "$RUN" -gt 1 ] && URL=$("$BIN" reannounce "$MOTO" "e2e-$SHAPE" "e2e-$SHAPE-$RUN")
            COLLECTOR_BIN=$LOGFERRY
            [ "$COLLECTOR" = vector ] && COLLECTOR_BIN=$VECTOR
            [ "$COLLECTOR" = logferry-base ] && COLLECTOR_BIN=$LOGFERRY_BASE
            "$BIN" e2e "$MOTO" "$SHAPE" "$URL" "$EVENTS" "$BYTES" "$COLLECTOR" "$COLLECTOR_BIN" | tee -a "$TMP/rows"
        done
    done
done
[ "$ROUNDS" -gt 1 ] || exit 0
median() { sort -n | awk '{v[NR]=$1} END{printf "%.1f", NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
column_of() {
    awk -F'|' -v s="$1" -v c="$2" -v k="$3" '{gsub(/ /,"",$2); gsub(/ /,"",$3)} $2==s && $3==c {gsub(/ /,"",$k); print $k}' "$TMP/rows"
}
echo
echo "| shape | collector | rounds | median MiB/s | median CPU s | median MiB per CPU s | median peak memory MiB |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for SHAPE in $SHAPES; do
    for COLLECTOR in "${COLLECTORS[@]}"; do
        echo "| $SHAPE | $COLLECTOR | $ROUNDS | $(column_of "$SHAPE" "$COLLECTOR" 8 | median) | $(column_of "$SHAPE" "$COLLECTOR" 9 | median) | $(column_of "$SHAPE" "$COLLECTOR" 10 | median) | $(column_of "$SHAPE" "$COLLECTOR" 12 | median) |"
    done
done
