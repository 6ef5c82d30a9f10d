#!/usr/bin/env python3
"""Fixtures for the browser test (tools/web-test.sh), with Python's standard library only.

The browser must compute what the native build computes to 1e-5 relative L2 in every tensor.
Two f32 implementations that round differently (another `exp`, fused multiply-adds or not)
agree only as far as each tensor is well conditioned: a gradient that is a sum cancelling
almost to zero moves by far more than 1e-5 under any rounding change. So a fixture is first
checked to be well posed: natively, with every weight moved one ulp, no tensor may move by more
than the tolerance it is held to in the browser. A tensor that does is no test of the browser,
and the script says which one it is instead of passing it on a looser bound.

  web-fixtures.py batch --seed S --shape N,C,H,W --classes K OUT
      a seeded batch: `input` (N,C,H,W f32, standard normal) and `labels` (N, int64)
  web-fixtures.py nudge WEIGHTS OUT
      WEIGHTS with every f32 moved one ulp away from zero (zeros stay zero)
  web-fixtures.py well-posed BASE NUDGED --tolerance PREFIX=TOL ...
      exits 1, naming each tensor, when one of NUDGED differs from BASE by more than the
      tolerance of the longest PREFIX its name starts with (relative L2)
"""

import argparse
import json
import math
import random
import struct
import sys

FORMATS = {"F32": ("f", 4), "I64": ("q", 8)}


def read(path):
    """{name: (dtype, shape, values)} of a safetensors file (F32 and I64 tensors)."""
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in FORMATS:
            sys.exit(f"{path}: {name} is {info['dtype']}, expected F32 or I64")
        code, size = FORMATS[info["dtype"]]
        start, end = info["data_offsets"]
        raw = data[8 + header_len + start : 8 + header_len + end]
        tensors[name] = (info["dtype"], info["shape"], list(struct.unpack(f"<{len(raw) // size}{code}", raw)))
    return tensors


def write(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, values) in tensors.items():
        code, size = FORMATS[dtype]
        blob = struct.pack(f"<{len(values)}{code}", *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def next_ulp(x):
    """The f32 one ulp further from zero than x (x itself when 0, inf or NaN)."""
    if x == 0 or not math.isfinite(x):
        return x
    (bits,) = struct.unpack("<I", struct.pack("<f", x))
    return struct.unpack("<f", struct.pack("<I", bits + 1))[0]


def rel_l2(got, want):
    diff = math.sqrt(sum((g - w) ** 2 for g, w in zip(got, want)))
    norm = math.sqrt(sum(w * w for w in want))
    return diff / norm if norm > 0 else diff


def batch(args):
    rng = random.Random(args.seed)
    n, c, h, w = (int(d) for d in args.shape.split(","))
    write(
        args.out,
        {
            "input": ("F32", [n, c, h, w], [rng.gauss(0.0, 1.0) for _ in range(n * c * h * w)]),
            "labels": ("I64", [n], [rng.randrange(args.classes) for _ in range(n)]),
        },
    )


def nudge(args):
    tensors = read(args.weights)
    write(args.out, {k: (d, s, [next_ulp(v) for v in vs] if d == "F32" else vs) for k, (d, s, vs) in tensors.items()})


def well_posed(args):
    tolerances = sorted((t.split("=", 1) for t in args.tolerance), key=lambda t: -len(t[0]))
    base, nudged = read(args.base), read(args.nudged)
    worst, failures = (0.0, ""), []
    for name, (_, _, want) in base.items():
        tolerance = next((float(tol) for prefix, tol in tolerances if name.startswith(prefix)), None)
        if tolerance is None:
            sys.exit(f"{args.base}: no --tolerance prefix matches {name}")
        err = rel_l2(nudged[name][2], want)
        worst = max(worst, (err, name))
        if err > tolerance:
            failures.append(f"{name} moves by {err:.2e} > {tolerance:.0e}")
    print(f"{len(base)} tensors, worst {worst[0]:.2e} ({worst[1]}) with every weight one ulp off")
    if failures:
        print(f"{args.base}: ill-conditioned fixture, a browser check of it could not tell rounding from an error:")
        for f in failures:
            print(f"  {f}")
        sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("batch")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--shape", required=True, help="N,C,H,W")
    p.add_argument("--classes", type=int, required=True)
    p.add_argument("out")
    p.set_defaults(run=batch)
    p = commands.add_parser("nudge")
    p.add_argument("weights")
    p.add_argument("out")
    p.set_defaults(run=nudge)
    p = commands.add_parser("well-posed")
    p.add_argument("base")
    p.add_argument("nudged")
    p.add_argument("--tolerance", action="append", required=True, metavar="PREFIX=TOL")
    p.set_defaults(run=well_posed)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
