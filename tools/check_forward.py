#!/usr/bin/env python3
"""Runs `nfnet forward` on a fixture written by tools/make_reference.py and compares every
output tensor with timm's (relative L2 error; tolerances: logits and loss 1e-4, gradients 1e-3,
parameters after two steps 1e-4). Needs numpy and safetensors (no PyTorch).

  tools/check_forward.py --fixture tests/data/dm_mini [--nfnet target/release/nfnet]

Exit status 0 when every tensor is within tolerance.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixture", required=True, help="path stem: <stem>.json, <stem>.weights.safetensors, ...")
    ap.add_argument("--nfnet", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "nfnet"))
    args = ap.parse_args()
    stem = args.fixture
    expected = load_file(stem + ".expected.safetensors")
    steps = sorted({k.split(".")[0] for k in expected if k.startswith("step")})
    train_steps = int(steps[0][len("step"):]) if steps else 0
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.safetensors")
        cmd = [args.nfnet, "forward", "--model", stem + ".json", "--weights", stem + ".weights.safetensors",
               "--input", stem + ".input.safetensors", "--output", out, "--grads", "--train-steps", str(train_steps)]
        subprocess.run(cmd, check=True)
        got = load_file(out)
    failures, worst = 0, (0.0, "")
    for key, want in sorted(expected.items()):
        tol = 1e-3 if key.startswith("grad.") else 1e-4
        if key not in got:
            print(f"MISSING {key}")
            failures += 1
            continue
        g, w = got[key].astype(np.float64), want.astype(np.float64)
        err = np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-30) if g.shape == w.shape else float("inf")
        worst = max(worst, (err, key))
        if not err <= tol:
            print(f"FAIL {key}: rel L2 {err:.3e} (tolerance {tol:.0e}), shape {g.shape} vs {w.shape}")
            failures += 1
    print(f"{len(expected) - failures} of {len(expected)} tensors within tolerance; worst rel L2 {worst[0]:.2e} ({worst[1]})")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
