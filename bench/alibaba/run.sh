#!/bin/sh
# Log Service pull path benchmark (decode + flatten + enqueue), one thread, release build. Prints a table.
# Usage: bench/alibaba/run.sh [rounds]   (default 2000 rounds over the SDK-generated fixtures)
set -e
cd "$(dirname "$0")/../.."
exec cargo run --release -q -p logferry-input-alibaba --example sls_pull_bench -- "${1:-2000}"
