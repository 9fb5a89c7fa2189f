#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need, checks formatting and lints, builds once,
# runs every test (unit, real-peer integration, end-to-end through the binary).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --test-threads 4
else
  cargo test --workspace --no-fail-fast
fi
