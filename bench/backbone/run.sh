#!/bin/sh
# Backbone benchmark (not a test): demo input -> embedded Redis -> syslog TCP output -> counting sink.
# Env: EVENTS (default 3000000), CONNECTIONS (1), WRAP (500), IDLE_SECS (15).
set -e
cd "$(dirname "$0")/../.."
scripts/install-deps.sh --demo-only
cargo build --release -q -p logferry-supervisor --bin logferry --example pipeline_bench
exec target/release/examples/pipeline_bench
