#!/usr/bin/env python3
# PyTorch on the same CPU as lavapipe, for the rows of one `nfnet bench` run: every grouped_conv
# kernel row of its JSON report (the same shape and pass, the same FLOP count) and its model rows
# (timm's dm_nfnet_f0: a training step with AGC and SGD + Nesterov, and an inference pass), in
# float32 on all the CPU's threads. Prints one table beside nfnet's figures, with both as ratios
# to the yardstick when the report carries one. tools/bench_idle.sh runs it between the two
# yardstick readings.
#   python3 tools/torch_cpu_f0.py NFNET_BENCH_JSON [--json OUT]
import argparse
import json
import statistics
import time

import timm
import torch
import torch.nn.functional as F


def timed(fn, min_runs=3, min_seconds=1.0, warmup=2):
    """Median seconds of fn() over at least min_runs runs and min_seconds, after warm-ups."""
    for _ in range(warmup):
        fn()
    runs = []
    while len(runs) < min_runs or sum(runs) < min_seconds:
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def parse_shape(s):
    """`n8_c768_g6_12x12_k3_s2_o768` -> (N, C, G, H, W, R, stride, K), as nfnet bench names rows."""
    n, c, g, hw, k, st, o = s.split('_')
    h, w = hw.split('x')
    return int(n[1:]), int(c[1:]), int(g[1:]), int(h), int(w), int(k[1:]), int(st[1:]), int(o[1:])


def same_pad(size, r, stride):
    """TensorFlow's SAME padding (timm's pad_same): (before, after) for one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + r - size, 0)
    return total // 2, total - total // 2


def conv_row(shape, pass_):
    """Seconds and FLOPs of one conv pass at nfnet's shape (SAME padding, applied beforehand)."""
    n, c, g, h, w, r, stride, k = parse_shape(shape)
    (top, bottom), (left, right) = same_pad(h, r, stride), same_pad(w, r, stride)
    x = F.pad(torch.randn(n, c, h, w), (left, right, top, bottom))
    wt = torch.randn(k, c // g, r, r)
    y = F.conv2d(x, wt, stride=stride, groups=g)
    dy = torch.randn_like(y)
    flops = 2 * n * y.shape[2] * y.shape[3] * k * (c // g) * r * r
    run = {
        'forward': lambda: F.conv2d(x, wt, stride=stride, groups=g),
        'backward_input': lambda: torch.nn.grad.conv2d_input(x.shape, wt, dy, stride=stride, groups=g),
        'backward_weight': lambda: torch.nn.grad.conv2d_weight(x, wt.shape, dy, stride=stride, groups=g),
    }[pass_]
    with torch.no_grad():
        return timed(run), flops


def model_rows(res, batch):
    """Seconds of a dm_nfnet_f0 training step and of an inference pass at res x res, batch."""
    torch.manual_seed(0)
    model = timm.create_model('dm_nfnet_f0', num_classes=1000)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=2e-5)
    x = torch.randn(batch, 3, res, res)
    y = torch.randint(0, 1000, (batch,))

    def train_step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        timm.utils.adaptive_clip_grad(model.parameters(), clip_factor=0.01)
        opt.step()

    model.train()
    train = timed(train_step, min_runs=3, min_seconds=3.0, warmup=1)
    model.eval()
    with torch.no_grad():
        infer = timed(lambda: model(x), min_runs=3, min_seconds=3.0, warmup=1)
    return train, infer


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('report', help="nfnet bench's JSON report (its rows are timed again here)")
    ap.add_argument('--json', help='where to write the PyTorch rows')
    args = ap.parse_args()
    report = json.load(open(args.report))
    ys = report.get('yardstick') or {}
    matmul = ys.get('matmul_gflops') if isinstance(ys, dict) else None
    x_ys = (lambda rate: f"{rate / matmul:.2f}x") if matmul else (lambda rate: '')
    print(f"PyTorch {torch.__version__}, timm {timm.__version__}, {torch.get_num_threads()} threads; "
          f"nfnet on {report['adapter']}, yardstick matmul {matmul} GFLOP/s")
    out = {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'kernels': [], 'models': []}

    print('\n| conv row | pass | nfnet GFLOP/s | x yardstick | PyTorch GFLOP/s | x yardstick | nfnet / PyTorch |')
    print('|---|---|---:|---:|---:|---:|---:|')
    totals = {}  # pass -> [flops, nfnet s, torch s]
    for row in (r for r in report['kernels'] if r['op'] == 'grouped_conv'):
        secs, flops = conv_row(row['shape'], row['pass'])
        nf_secs = row['ms'] / 1e3
        nf_rate, pt_rate = flops / nf_secs / 1e9, flops / secs / 1e9
        for key in (row['pass'], 'all'):
            t = totals.setdefault(key, [0.0, 0.0, 0.0])
            t[0] += flops
            t[1] += nf_secs
            t[2] += secs
        out['kernels'].append({'shape': row['shape'], 'pass': row['pass'], 'ms': secs * 1e3, 'rate': pt_rate})
        print(f"| {row['shape']} | {row['pass']} | {nf_rate:.2f} | {x_ys(nf_rate)} | {pt_rate:.2f} | {x_ys(pt_rate)} "
              f"| {nf_rate / pt_rate:.3f} |", flush=True)
    for key in [p for p in ('forward', 'backward_input', 'backward_weight', 'all') if p in totals]:
        flops, nf_secs, pt_secs = totals[key]
        nf_rate, pt_rate = flops / nf_secs / 1e9, flops / pt_secs / 1e9
        print(f"| **FLOP-weighted** | {key} | {nf_rate:.2f} | {x_ys(nf_rate)} | {pt_rate:.2f} | {x_ys(pt_rate)} "
              f"| {nf_rate / pt_rate:.3f} |")

    print('\n| model row | nfnet ms | GFLOP/s | x yardstick | PyTorch ms | GFLOP/s | x yardstick | nfnet / PyTorch |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|')
    done = {}
    for row in (r for r in report['models'] if r['model'] == 'f0'):
        key = (row['resolution'], row['batch'])
        if key not in done:
            done[key] = model_rows(*key)
        secs = done[key][0 if row['mode'] == 'train' else 1]
        # The same work on both sides: nfnet's effective rate scaled by the times.
        nf_rate = row['effective_gflops']
        pt_rate = nf_rate * row['ms'] / (secs * 1e3)
        out['models'].append({'model': 'dm_nfnet_f0', 'resolution': key[0], 'batch': key[1], 'mode': row['mode'],
                              'ms': secs * 1e3, 'effective_gflops': pt_rate})
        print(f"| dm_nfnet_f0 {key[0]}x{key[0]} batch {key[1]} {row['mode']} | {row['ms']:.0f} | {nf_rate:.2f} "
              f"| {x_ys(nf_rate)} | {secs * 1e3:.0f} | {pt_rate:.2f} | {x_ys(pt_rate)} | {nf_rate / pt_rate:.3f} |",
              flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1)


if __name__ == '__main__':
    main()
