#!/usr/bin/env python3
# Run by hand (PyTorch + timm), not in CI:  python3 tools/pytorch_memory_bound.py
# A lower bound on PyTorch's peak memory for one dm_nfnet_f0 training step (batch 32, 192x192,
# f32): at the end of the forward, the parameters, the SGD momentum, the input and every unique
# storage autograd saved for the backward are all alive (gradients too, unless zero_grad set
# them to None: the bound leaves them out). PyTorch's real peak is at least this; compare with
# the training step `nfnet info --model f0 --resolution 192 --batch 32` plans.
import torch, timm
torch.manual_seed(0)
m = timm.create_model('dm_nfnet_f0', num_classes=1000).train()
params = sum(p.numel() * 4 for p in m.parameters())
seen = {}
def pack(t):
    s = t.untyped_storage()
    seen[s.data_ptr()] = s.nbytes()
    return t
x = torch.randn(32, 3, 192, 192)
y = torch.randint(0, 1000, (32,))
with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
    loss = torch.nn.functional.cross_entropy(m(x), y)
saved = sum(seen.values())
mib = lambda b: b / 2**20
print(f"params {mib(params):.1f} MiB, grads {mib(params):.1f}, momentum {mib(params):.1f}, saved for backward {mib(saved):.1f}, input {mib(x.numel()*4):.1f}")
print(f"lower bound on PyTorch peak (params + momentum + saved + input): {mib(2*params + saved + x.numel()*4):.1f} MiB")
