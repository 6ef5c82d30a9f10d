#!/usr/bin/env bash
# Trains the README's model for a number of steps and samples the process's resident memory every
# few seconds beside the step counter, to show that a training step allocates nothing once the
# plan is built. On a software device (lavapipe) GPU memory is host memory, so it is in the RSS.
#   tools/memory_over_steps.sh [STEPS] [BATCH]     (defaults: 1000 steps of 32 images)
# Prints "seconds rss_kib step/STEPS" lines. Needs `script` (util-linux) so that the progress bar,
# which carries the step counter, is drawn as on a terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-1000}"
batch="${2:-32}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo build --release --quiet
bin="$PWD/target/release/nfnet"
# One epoch of exactly `steps` steps; validation kept small.
script -qfec "'$bin' train --data synthetic:$((steps * batch)):320 --batch-size $batch --epochs 1 --out '$out/run'" \
    "$out/tty.log" >/dev/null 2>&1 &
sleep 1
pid=$(pgrep -f "^$bin train" | head -n 1)
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    step=$(tail -c 400 "$out/tty.log" | tr '\r' '\n' | grep -o " [0-9]*/$steps" | tail -n 1 || true)
    echo "$(($(date +%s) - start)) ${rss:-exited}$step"
    sleep 5
done
wait
tail -n 1 "$out/run/metrics.csv"
