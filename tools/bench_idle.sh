#!/usr/bin/env bash
# One hygienic benchmark run on this machine (lavapipe on a CPU): nothing else may run meanwhile,
# no build, no test, no other benchmark. In order:
#   1. the yardstick (../shared/yardstick), whose line also gives the CPU share other processes took;
#   2. `nfnet bench` once to fill the tuning cache (no time bound; its figures are not the run's);
#   3. `nfnet bench` again, autotuned with that warm cache: the run's figures;
#   4. PyTorch on the same CPU for the same rows (tools/torch_cpu_f0.py), where $PYTHON has torch
#      and timm;
#   5. the yardstick again. A run whose two matmul readings differ by more than 10% is void, and
#      the script says so and fails.
#   tools/bench_idle.sh [OUT]   (default bench-idle/)
# Environment: NFNET (the binary, default target/release/nfnet, built beforehand), PYTHON (default
# python3), FILTER (kernel rows, default grouped_conv), MODELS (default f0@128x8). The tuning
# cache lives in OUT/cache, so the run neither reads nor changes the user's.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bench-idle}"
nfnet="${NFNET:-target/release/nfnet}"
python="${PYTHON:-python3}"
mkdir -p "$out"
export NFNET_CACHE_DIR="$out/cache"
yardstick() {
    CARGO_TARGET_DIR=target/yardstick cargo run --release --quiet --manifest-path ../shared/yardstick/Cargo.toml 2>&1 |
        grep -v XDG_RUNTIME_DIR
}
bench() {
    # shellcheck disable=SC2086
    "$nfnet" bench --filter ${FILTER:-grouped_conv} --models "${MODELS:-f0@128x8}" "$@" 2>&1 | grep -v XDG_RUNTIME_DIR
}
# The yardstick is built before the first reading, so that its build is not in the reading.
CARGO_TARGET_DIR=target/yardstick cargo build --release --quiet --manifest-path ../shared/yardstick/Cargo.toml
{
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (with uncommitted changes)'), $(date -u)"
    "$nfnet" devices 2>&1 | grep -v XDG_RUNTIME_DIR | head -n 3
} | tee "$out/run.txt"
before=$(yardstick)
echo "yardstick before: $before" | tee -a "$out/run.txt"
line=$(echo "$before" | grep -o 'matmul_gflops=[^ ]* copy_gbs=[^ ]*' | tail -n 1)
NFNET_TUNE_BUDGET=none bench --json "$out/warmup.json" > "$out/warmup.txt"
bench --yardstick "$line" --json "$out/nfnet-bench.json" | tee -a "$out/run.txt"
if "$python" -c 'import torch, timm' 2>/dev/null; then
    "$python" tools/torch_cpu_f0.py "$out/nfnet-bench.json" --json "$out/torch.json" | tee -a "$out/run.txt"
else
    echo "no PyTorch with timm for $python: no PyTorch rows" | tee -a "$out/run.txt"
fi
after=$(yardstick)
echo "yardstick after: $after" | tee -a "$out/run.txt"
matmul() { echo "$1" | grep -o 'matmul_gflops=[0-9.]*' | tail -n 1 | cut -d= -f2; }
python3 - "$(matmul "$before")" "$(matmul "$after")" <<'EOF' | tee -a "$out/run.txt"
import sys
a, b = map(float, sys.argv[1:])
spread = abs(a - b) / min(a, b)
print(f"yardstick matmul {a} before, {b} after: {spread:.1%} apart" + ("" if spread <= 0.10 else ": VOID (over 10%)"))
sys.exit(spread > 0.10)
EOF
