#!/usr/bin/env python3
"""Writes timm reference fixtures for nfnet's parity tests (run by hand, not in CI).

Needs PyTorch, timm and safetensors (`pip install torch timm safetensors`). For one model it
writes four files into --out (default tests/data):

  <name>.json                 the model in nfnet's config format (`nfnet forward --model <name>.json`)
  <name>.weights.safetensors  timm's state dict, with every gain, bias and skip gain randomised
                              (skip gains non-zero) so that every residual branch counts
  <name>.input.safetensors    `input` (N,3,H,W) f32 and `labels` (N,) i64
  <name>.expected.safetensors `logits`, `loss` (mean cross-entropy), `grad.<name>` for every
                              parameter (of those weights, in train mode, before any step), and
                              `step2.<name>`: every parameter after two steps of AGC (lambda 0.01,
                              eps 1e-3, every parameter but the head) then SGD (lr 0.1, momentum 0.9,
                              Nesterov, weight decay 2e-5 on the *.weight tensors), same batch

Models:
  dm_mini     timm's dm_nfnet_f0 structure (deep_quad stem, TF 'SAME' padding, gamma inside GELU,
              skipinit gains, SE, the extra 3x3 conv) at narrow widths; --depths, --channels,
              --group-size, --stem-chs change it
  test_nfnet  timm's test_nfnet as it is (timm's own flavour: gamma folded into the convs,
              symmetric padding, SiLU, no skip gains)

Examples:
  tools/make_reference.py --model dm_mini --size 36 --batch 3 --seed 0
  tools/make_reference.py --model test_nfnet --size 36 44 --batch 2 --seed 1
  tools/make_reference.py --model dm_mini --depths 1,1,3,1 --channels 24,48,72,96 --size 50 --seed 7 --out /tmp/ref
Then compare nfnet with it: tools/check_forward.py --fixture /tmp/ref/dm_mini
"""
import argparse
import json
import os
from dataclasses import replace

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import timm
from timm.models import nfnet as timm_nfnet
from timm.utils.agc import adaptive_clip_grad


def dm_mini(args):
    depths = tuple(int(d) for d in args.depths.split(","))
    channels = tuple(int(c) for c in args.channels.split(","))
    cfg = timm_nfnet._dm_nfnet_cfg(depths=depths, channels=channels)
    cfg = replace(cfg, group_size=args.group_size, stem_chs=args.stem_chs, num_features=2 * channels[-1])
    model = timm_nfnet.NormFreeNet(cfg, num_classes=args.classes)
    stem = [args.stem_chs // 8, args.stem_chs // 4, args.stem_chs // 2, args.stem_chs]
    ours = {
        "name": args.name,
        "flavour": "deepmind",
        "depths": list(depths),
        "widths": list(channels),
        "stem": stem,
        "group_width": args.group_size,
        "bottleneck": 0.5,
        "se_ratio": 0.5,
        "activation": "gelu",
        "final_conv": 2 * channels[-1],
        "ws": "timm",
        "ws_eps": 1e-5,
        "num_classes": args.classes,
    }
    return model, ours


def test_nfnet(args):
    model = timm.create_model("test_nfnet", num_classes=args.classes)
    ours = {
        "name": args.name,
        "flavour": "timm",
        "depths": [1, 1, 1, 1],
        "widths": [32, 64, 96, 128],
        "stem": [16, 32, 64, 128],
        "group_width": 8,
        "bottleneck": 0.25,
        "se_ratio": 0.25,
        "activation": "silu",
        "final_conv": 192,
        "ws": "timm",
        "ws_eps": 1e-5,
        "num_classes": args.classes,
    }
    return model, ours


def randomise(model, gen):
    """Gains, biases and skip gains away from their init, so every term of the network counts."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("skipinit_gain"):
                p.copy_(0.5 + 0.5 * torch.rand(p.shape, generator=gen))
            elif name.endswith(".gain"):
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif name == "head.fc.weight":
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["dm_mini", "test_nfnet"], default="dm_mini")
    ap.add_argument("--name", help="file name stem (default: the model)")
    ap.add_argument("--size", type=int, nargs="+", default=[36], help="H [W] of the input")
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--depths", default="1,2,2,1")
    ap.add_argument("--channels", default="32,48,64,96")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--stem-chs", type=int, default=32)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data"))
    args = ap.parse_args()
    args.name = args.name or args.model
    h, w = (args.size[0], args.size[-1])

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model, ours = {"dm_mini": dm_mini, "test_nfnet": test_nfnet}[args.model](args)
    randomise(model, gen)
    model = model.float().train()  # drop rates are 0: train and eval differ in nothing else

    x = torch.randn(args.batch, 3, h, w, generator=gen)
    y = torch.randint(0, args.classes, (args.batch,), generator=gen)
    weights = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}

    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, args.name)
    with open(stem + ".json", "w") as f:
        json.dump(ours, f, indent=2)
    save_file(weights, stem + ".weights.safetensors")
    save_file({"input": x.contiguous(), "labels": y.to(torch.int64)}, stem + ".input.safetensors")

    # Logits, loss and gradients of the given weights.
    expected = {}
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    expected["logits"] = logits.detach().clone()
    expected["loss"] = loss.detach().reshape(1).clone()
    for n, p in model.named_parameters():
        expected["grad." + n] = p.grad.detach().clone()

    # Two steps: AGC on the raw gradients (head exempt), then SGD with decay on *.weight only.
    params = dict(model.named_parameters())
    decay = [p for n, p in params.items() if n.endswith(".weight")]
    no_decay = [p for n, p in params.items() if not n.endswith(".weight")]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": 2e-5}, {"params": no_decay, "weight_decay": 0.0}],
        lr=0.1, momentum=0.9, nesterov=True)
    clipped = [p for n, p in params.items() if not n.startswith("head.fc")]
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        adaptive_clip_grad(clipped, clip_factor=0.01, eps=1e-3)
        opt.step()
    for n, p in params.items():
        expected["step2." + n] = p.detach().clone()
    save_file({k: v.contiguous() for k, v in expected.items()}, stem + ".expected.safetensors")
    total = sum(p.numel() for p in params.values())
    print(f"{stem}: {len(params)} tensors, {total} parameters, input {tuple(x.shape)}, loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
