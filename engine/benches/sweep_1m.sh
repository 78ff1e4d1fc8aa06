#!/usr/bin/env bash
# Whole-process sweep benchmark: sma_cross over 1,000,000 synthetic bars with 45 parameter sets
# (windows 5, 30, ..., 230, every pair fast < slow) on all cores, loading included.
# Prints wall time and peak memory (needs GNU time: apt-get install time).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strata/target}"
cargo build --release --quiet --bin strata
cargo build --release --quiet -p engine --example synthetic_bars
data="$(mktemp -d)/bars.parquet"
"$CARGO_TARGET_DIR/release/examples/synthetic_bars" 1000000 42 "$data"
for run in 1 2 3; do
  /usr/bin/time -f "run $run: %e s wall, %M KB peak RSS" \
    "$CARGO_TARGET_DIR/release/strata" sweep --data "$data" --strategy sma_cross \
    --grid fast=5:230:25 --grid slow=5:230:25 --constraint "fast < slow" --fees 0.001 \
    --format json > /dev/null
done
rm -f "$data"
