#!/usr/bin/env bash
# Benchmark of the CloudWatch Metrics puller (custom service, `types: [metrics]`) against moto's server: [metrics]
# metrics (one dimension `Host`) with a data point every period (5 s) for [periods] periods, read as they come due
# (a retrieval delay puts the fresh puller just before the data, as in tests/metrics.rs) into the embedded Redis and
# the console output. The pace is the period (one period of every metric per cycle): the figure of interest is the
# InputProcess's CPU per metric-period (one event, five statistics) against moto's CPU in the same run.
# Usage: bench/metrics/run.sh [metrics, default 300] [periods, default 4]
# BIN=<binary> measures another build instead of the release build made here; LIST_REFRESH=<s> sets
# `metrics_list_refresh_in_seconds` (default 3600; 0 = ListMetrics every cycle, as before the list was kept). moto's PutMetricData takes ~17 ms a
# data point, so filling it takes metrics x periods x 17 ms before the measure starts.
set -euo pipefail
METRICS=${1:-300}
PERIODS=${2:-4}
PERIOD=5
LIST_REFRESH=${LIST_REFRESH:-3600}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/bench/aws_api/lib.sh"
logferry_bin
PORT=$(free_port)
python3 -m moto.server -p "$PORT" > "$WORK/moto.log" 2>&1 &
PIDS+=($!)
MOTO=$!
wait_port "$PORT"
DATA_START=$(python3 - "$PORT" "$METRICS" "$PERIODS" "$PERIOD" <<'PY'
import boto3, datetime, sys, time
port, metrics, periods, period = (int(x) for x in sys.argv[1:])
cw = boto3.client("cloudwatch", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
start = (int(time.time()) - periods * period) // period * period
at = lambda s: datetime.datetime.fromtimestamp(s, datetime.timezone.utc)
data = [{"MetricName": "Requests", "Dimensions": [{"Name": "Host", "Value": f"h{h}"}],
         "Timestamp": at(start + p * period), "Value": float(p), "StorageResolution": 1}
        for h in range(metrics) for p in range(periods)]
for i in range(0, len(data), 20):  # larger batches: moto 5.2 answers 500 to boto3's CBOR
    cw.put_metric_data(Namespace="Bench/Ferry", MetricData=data[i:i + 20])
print(start)
PY
)
# The fresh puller reads the period before DATA_START first, then one period a cycle.
DELAY=$(( $(date +%s) - DATA_START + PERIOD ))
write_config metbench "http://127.0.0.1:$PORT" testing testing "      app_metrics:
        types: [metrics]
        metric_namespaces: [\"Bench/Ferry\"]
        request_period_in_seconds: $PERIOD
        requests_per_second: 25
        retrieval_delay_in_seconds: $DELAY
        metrics_list_refresh_in_seconds: $LIST_REFRESH"
MOTO_CPU0=$(cpu_seconds "$MOTO")
T0=$(date +%s.%N)
start_logferry
WANT=$((METRICS * PERIODS))
until [ "$(grep -c "cloud.aws.cloudwatch.metrics." "$WORK/run.log")" -ge "$WANT" ]; do sleep 0.2; done
T1=$(date +%s.%N)
CPU=$(cpu_seconds "$INPUT")
TREE=$(tree_cpu_seconds "$LOGFERRY")
MOTO_CPU=$(echo "$(cpu_seconds "$MOTO") - $MOTO_CPU0" | bc)
python3 - "$WANT" "$T0" "$T1" "$CPU" "$TREE" "$MOTO_CPU" "$(cat /proc/loadavg)" "$WORK/run.log" <<'PY'
import sys
want, t0, t1, cpu, tree, moto = int(sys.argv[1]), *map(float, sys.argv[2:7])
load, log = sys.argv[7], open(sys.argv[8]).read()
lines = [l for l in log.splitlines() if "Time range:" in l]
lists = sum(1 for l in log.splitlines() if "ListMetrics of " in l)
wall = t1 - t0
print("| metric-periods | cycles | metric listings | wall s (start to last) | metric-periods/s | InputProcess CPU s | µs CPU per "
      "metric-period | logferry tree CPU s | moto CPU s | load average |")
print(f"| {want} | {len(lines)} | {lists} | {wall:.1f} | {want / wall:.0f} | {cpu:.2f} | {cpu * 1e6 / want:.0f} | {tree:.2f} "
      f"| {moto:.2f} | {load} |")
PY
