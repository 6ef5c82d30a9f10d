#!/usr/bin/env bash
# Runs the fixed yardstick (a reference matmul and copy) and then the kernel benchmarks on the
# same adapter, so every benchmark row carries its ratio to the yardstick of the same run.
#   tools/bench_vs_yardstick.sh [FILTER...]
# YARDSTICK_DIR defaults to ../shared/yardstick (beside the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${YARDSTICK_DIR:-../shared/yardstick}"
ys=$(CARGO_TARGET_DIR="${YARDSTICK_TARGET:-/tmp/yardstick}" cargo run --release --quiet --manifest-path "$dir/Cargo.toml" 2>/dev/null | tail -n 1)
echo "$ys"
NFNET_YARDSTICK="$ys" cargo bench --quiet --bench ops -- "$@"
