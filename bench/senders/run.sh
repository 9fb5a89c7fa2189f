#!/bin/sh
# Sender benchmarks (not tests), release builds:
#   bench/senders/run.sh        logferry's Devo sender vs devo-sdk (same events, same local sink, mutual TLS and
#                               plain TCP) and Splunk HEC with acks. Env: EVENTS, SDK_EVENTS, HEC_EVENTS.
#   bench/senders/run.sh e2e    the logferry binary end to end: demo input -> Redis -> Devo sender -> TLS sink.
#                               Env: EVENTS, CONNECTIONS.
set -e
cd "$(dirname "$0")/../.."
if [ "$1" = "e2e" ]; then
    cargo build --release -q -p logferry-supervisor
    exec cargo run --release -q -p logferry-output --example e2e_bench
fi
exec cargo run --release -q -p logferry-output --example devo_bench
