#!/usr/bin/env bash
# Benchmark of the GuardDuty puller (`aws-guardduty`) against the local GuardDuty server
# (input/aws/tests/servers/guardduty_server.py: REST-JSON, SigV4 checked on every request, pages of 50): one detector
# holding [findings] findings, read from the start (ListFindings sorted on updatedAt, GetFindings by 50) into the
# embedded Redis and the console output. Prints findings/s (first to last GetFindings) and the CPU of the
# InputProcess per finding (its start and setup included), the server's CPU (the peer) and the whole logferry tree's.
# Usage: bench/guardduty/run.sh [findings, default 20000] [requests/s of the puller, default 50 (its maximum)]
# BIN=<binary> measures another build (e.g. a copy of an earlier one) instead of the release build made here.
set -euo pipefail
FINDINGS=${1:-20000}
RATE=${2:-50}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/bench/aws_api/lib.sh"
logferry_bin
PORT=$(free_port)
python3 - "$WORK" "$FINDINGS" <<'PY'
import json, sys, time
work, n = sys.argv[1], int(sys.argv[2])
start = int(time.time() * 1000) - 3600 * 1000
with open(f"{work}/findings.jsonl", "w") as f:
    for i in range(n):
        f.write(json.dumps({"detector": "d1", "id": f"f{i:032x}", "seq": i, "updated": start + i * 100}) + "\n")
PY
python3 "$ROOT/input/aws/tests/servers/guardduty_server.py" --port "$PORT" --findings "$WORK/findings.jsonl" \
    --detectors d1 --rate 1000 2>/dev/null &
PIDS+=($!)
SERVER=$!
wait_port "$PORT"
write_config gdbench "http://127.0.0.1:$PORT" AKIDLOGFERRY logferry-secret "      aws-guardduty:
        requests_per_second: $RATE"
SERVER_CPU0=$(cpu_seconds "$SERVER")
start_logferry
read_findings() {
    python3 - "$PORT" <<'PY'
import json, sys, urllib.request
seen = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/_requests"))
print(sum(r.get("findings", 0) for r in seen if r["target"] == "GetFindings" and r["outcome"] == "ok"))
PY
}
until [ "$(read_findings)" -ge "$FINDINGS" ]; do sleep 0.5; done
# The last batch is in Redis once its state is committed: wait for the cycle's line.
until grep -q "Total event received: [0-9]*, and sent: [0-9]*" "$WORK/run.log" && \
      [ "$(grep -o "and sent: [0-9]*" "$WORK/run.log" | awk '{s += $3} END {print s}')" -ge "$FINDINGS" ]; do
    sleep 0.5
done
CPU=$(cpu_seconds "$INPUT")
TREE=$(tree_cpu_seconds "$LOGFERRY")
SERVER_CPU=$(echo "$(cpu_seconds "$SERVER") - $SERVER_CPU0" | bc)
python3 - "$PORT" "$CPU" "$TREE" "$SERVER_CPU" "$(cat /proc/loadavg)" <<'PY'
import json, sys, urllib.request
port, cpu, tree, server, load = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
seen = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/_requests"))
gets = [r for r in seen if r["target"] == "GetFindings" and r["outcome"] == "ok"]
lists = [r for r in seen if r["target"] == "ListFindings"]
throttled = sum(1 for r in seen if r["outcome"] == "TooManyRequestsException")
got = sum(r["findings"] for r in gets)
wall = gets[-1]["at"] - lists[0]["at"]
print("| findings | ListFindings / GetFindings / throttled | wall s | findings/s | InputProcess CPU s | µs CPU per finding "
      "| logferry tree CPU s | server CPU s | load average |")
print(f"| {got} | {len(lists)} / {len(gets)} / {throttled} | {wall:.1f} | {got / wall:.0f} | {cpu:.2f} "
      f"| {cpu * 1e6 / got:.0f} | {tree:.2f} | {server:.2f} | {load} |")
PY
