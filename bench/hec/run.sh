#!/bin/sh
# Splunk HEC with indexer acknowledgements into Vector 0.58's splunk_hec source (acknowledgements enabled), the
# logferry binary at default settings: events/s, events lost and repeated, CPU of logferry and of Vector, per round.
# Usage: bench/hec/run.sh   Env: EVENTS (200000), ROUNDS (3), HEC_EXTRA / GLOBALS_EXTRA (settings to compare),
# LOGFERRY_VECTOR_XZ (default: shared/tools/vector-0.58.xz beside the checkout or a parent folder).
set -e
cd "$(dirname "$0")/../.."
cargo build --release -q -p logferry-supervisor
exec cargo run --release -q -p logferry-output --example hec_bench
