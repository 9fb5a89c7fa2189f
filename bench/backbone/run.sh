#!/bin/sh
# Backbone benchmark (not a test): demo input -> embedded Redis -> syslog TCP output -> counting sink.
# Env: EVENTS (default 3000000), CONNECTIONS (1), WRAP (500), IDLE_SECS (15), METRICS (0; 1 = globals.metrics on and
# /metrics scraped every SCRAPE_MS, default 1000), DEFAULTS (0; 1 = the queue settings at their defaults: issue 18 goal 2).
# `run.sh --metrics-cost` runs ROUNDS (default 3) pairs, without and with globals.metrics (alternating), and prints
# per run events/s, the CPU seconds of the collector's processes and of the sink, and the load average before it;
# then the cost of collecting and serving the figures (target: under 1 %).
set -e
cd "$(dirname "$0")/../.."
scripts/install-deps.sh --demo-only
cargo build --release -q -p logferry-supervisor --bin logferry --example pipeline_bench
if [ "${1:-}" != "--metrics-cost" ]; then
  exec target/release/examples/pipeline_bench
fi
results=$(mktemp)
i=0
while [ "$i" -lt "${ROUNDS:-3}" ]; do
  for m in 0 1; do
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    IDLE_SECS=0 METRICS=$m target/release/examples/pipeline_bench | grep '^RESULT' | sed "s|\$| load=$load|" >>"$results"
  done
  i=$((i + 1))
done
awk '
  { split($2, m, "="); split($3, e, "="); split($4, c, "="); split($5, cs, "="); split($6, ss, "=");
    split($8, ld, "=");
    n[m[2]]++; eps[m[2]] += e[2]; cpu[m[2]] += c[2];
    printf "| %d | %s | %.0f | %.2f | %.2f | %.4f | %s %s %s |\n", NR, (m[2] == 1 ? "on" : "off"), e[2], cs[2], ss[2],
      c[2], ld[2], $9, $10 }
  BEGIN {
    print "| run | globals.metrics | events/s | collector CPU s (all its processes) | sink CPU s | collector CPU us/event | load average before |";
    print "| ---: | --- | ---: | ---: | ---: | ---: | --- |" }
  END {
    off_e = eps[0] / n[0]; on_e = eps[1] / n[1]; off_c = cpu[0] / n[0]; on_c = cpu[1] / n[1];
    print "";
    print "| mean | events/s | collector CPU us/event |";
    print "| --- | ---: | ---: |";
    printf "| metrics off | %.0f | %.4f |\n", off_e, off_c;
    printf "| metrics on (scraped every second) | %.0f | %.4f |\n", on_e, on_c;
    printf "| cost | %+.2f %% throughput | %+.2f %% CPU per event |\n", (off_e - on_e) / off_e * 100, (on_c - off_c) / off_c * 100;
  }' "$results"
rm -f "$results"
