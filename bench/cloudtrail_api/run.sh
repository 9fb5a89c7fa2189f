#!/usr/bin/env bash
# Backfill benchmark of the CloudTrail API puller (audit-events-all, types: [audit_apis]) against the local
# LookupEvents server (input/aws/tests/servers/cloudtrail_server.py): AWS's page size (50 events) and its budget of
# 2 requests/s. The budget must be the limit (100 events/s), not logferry: the InputProcess's CPU per event is
# reported. Usage: bench/cloudtrail_api/run.sh [events, default 12000] [hours of history, default 24]
# Release build of the binary (built here; BIN=<binary> measures another). Prints events/s over the backfill and CPU
# per event of the InputProcess.
set -euo pipefail
EVENTS=${1:-12000}
HOURS=${2:-24}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/bench/aws_api/lib.sh"
logferry_bin
PORT=$(free_port)
python3 - "$WORK" "$EVENTS" "$HOURS" <<'PY'
import json, sys, time, datetime
work, n, hours = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
now = int(time.time()); start = now - now % 3600 - hours * 3600
with open(f"{work}/events.jsonl", "w") as f:
    for i in range(n):
        f.write(json.dumps({"id": f"ev-{i}", "seq": i, "time": start + i * hours * 3600 // n,
                            "source": "s3.amazonaws.com", "name": "GetObject", "region": "us-east-1",
                            "account": "123456789012"}) + "\n")
st = datetime.datetime.fromtimestamp(start, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000000+00:00")
open(f"{work}/start", "w").write(st)
PY
python3 "$ROOT/input/aws/tests/servers/cloudtrail_server.py" --port "$PORT" --events "$WORK/events.jsonl" --rate 2 2>/dev/null &
PIDS+=($!)
wait_port "$PORT"
write_config ctbench "http://127.0.0.1:$PORT" AKIDLOGFERRY logferry-secret "      audit-events-all:
        types: [audit_apis]
        start_time: \"$(cat "$WORK/start")\"
        gap_until_now_in_minutes: 0
        time_slot_in_hours: 1"
start_logferry
until grep -q "Number of processed time slots so far: \([0-9]*\) of \1 (100.0%)" "$WORK/run.log"; do sleep 0.5; done
TICKS=$(awk '{print $14 + $15}' "/proc/$INPUT/stat")
HZ=$(getconf CLK_TCK)
python3 - "$PORT" "$EVENTS" "$TICKS" "$HZ" <<'PY'
import json, sys, urllib.request
port, events, ticks, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
seen = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/_requests"))
lookups = [r for r in seen if r["target"] == "LookupEvents"]
ok = [r for r in lookups if r["outcome"] == "ok"]
got = sum(r.get("events", 0) for r in ok)
wall = lookups[-1]["at"] - lookups[0]["at"]
cpu = ticks / hz
print(f"| events read | LookupEvents (ok / throttled) | wall s (first to last call) | events/s | requests/s | InputProcess CPU s | µs CPU per event | % of a core |")
print(f"| {got} | {len(ok)} / {len(lookups) - len(ok)} | {wall:.1f} | {got / wall:.1f} | {len(lookups) / wall:.2f} | {cpu:.2f} | {cpu * 1e6 / got:.0f} | {cpu * 100 / wall:.2f} |")
PY
