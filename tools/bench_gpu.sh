#!/usr/bin/env bash
# The benchmark run prepared for a GPU lent for a few minutes (an NVIDIA H100 or H200 through
# Vulkan): one command, the binaries built beforehand (the machine may have no toolchain and no
# network), everything it prints also written under $OUT (default ./bench-out).
#
# Here, once per run (x86-64 Linux):
#   cargo build --release
#   CARGO_TARGET_DIR=/tmp/yardstick cargo build --release --manifest-path ../shared/yardstick/Cargo.toml
#   mkdir -p .bench && cp target/release/nfnet /tmp/yardstick/release/yardstick .bench/
# and, when the machine has no Vulkan loader, the loader packages in .gl/ (the device tool's
# README says how). There: tools/bench_gpu.sh, with .bench (and .gl) carried along.
#
# Order: the yardstick, the nfnet kernel table and model rows (autotuned unless
# NFNET_AUTOTUNE=0), the yardstick again, then PyTorch's dm_nfnet_f0 training step on CUDA
# (float32, TF32 off) when python3 has torch and timm: tools/torch_f0_step.py.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench-out}"
mkdir -p "$out"
for f in .gl/*.deb; do [ -e "$f" ] && dpkg -x "$f" /; done
ldconfig 2>/dev/null || true
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -e "$icd" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then export VK_DRIVER_FILES="$icd"; fi
bin="${BENCH_BIN:-.bench}"
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv 2>/dev/null
    "$bin/nfnet" devices
} 2>&1 | tee "$out/devices.txt"
ys=$("$bin/yardstick" | tail -n 1)
echo "before: $ys" | tee "$out/yardstick.txt"
"$bin/nfnet" bench --yardstick "$ys" --models "${MODELS:-nano@32x32,f0@128x8,f0@192x8}" --json "$out/nfnet-bench.json" 2>&1 | tee "$out/nfnet-bench.txt"
echo "after: $("$bin/yardstick" | tail -n 1)" | tee -a "$out/yardstick.txt"
if python3 -c 'import torch, timm; assert torch.cuda.is_available()' 2>/dev/null; then
    python3 tools/torch_f0_step.py 2>&1 | tee "$out/torch.txt"
else
    echo "PyTorch with CUDA and timm not found: no PyTorch row" | tee "$out/torch.txt"
fi
