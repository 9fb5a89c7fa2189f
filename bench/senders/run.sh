#!/bin/sh
# Sender benchmark: logferry's Devo sender vs devo-sdk (same events, same local sink), and Splunk HEC with acks.
# Usage: bench/senders/run.sh   (env EVENTS, SDK_EVENTS, HEC_EVENTS to change the sizes)
set -e
cd "$(dirname "$0")/../.."
exec cargo run --release -q -p logferry-output --example devo_bench
