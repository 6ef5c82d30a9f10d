#!/usr/bin/env python3
# PyTorch's side of tools/bench_gpu.sh: timm's dm_nfnet_f0 training step (forward, loss,
# backward, AGC on every parameter, SGD with Nesterov momentum and weight decay) and an
# inference pass, on CUDA in float32 with TF32 off, at the shapes `nfnet bench` times, and the
# peak CUDA memory of a batch-32 192x192 step. Prints images/s per row.
import time
import torch
import timm

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.backends.cudnn.benchmark = True
dev = torch.device('cuda')
print(torch.__version__, timm.__version__, torch.cuda.get_device_name(0))


def timed(fn, steps=10, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


for res, batch in [(128, 8), (192, 8), (192, 32)]:
    torch.manual_seed(0)
    model = timm.create_model('dm_nfnet_f0', num_classes=1000).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=2e-5)
    x = torch.randn(batch, 3, res, res, device=dev)
    y = torch.randint(0, 1000, (batch,), device=dev)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        timm.utils.adaptive_clip_grad(model.parameters(), clip_factor=0.01)
        opt.step()

    model.train()
    t = timed(train_step)
    print(f"dm_nfnet_f0 {res}x{res} batch {batch} train: {batch / t:.1f} img/s ({t * 1e3:.2f} ms/step)")
    model.eval()
    with torch.no_grad():
        t = timed(lambda: model(x))
    print(f"dm_nfnet_f0 {res}x{res} batch {batch} inference: {batch / t:.1f} img/s ({t * 1e3:.2f} ms)")
    torch.cuda.reset_peak_memory_stats()
    if batch == 32:
        model.train()
        train_step()
        torch.cuda.synchronize()
        print(f"  peak CUDA memory of a training step: {torch.cuda.max_memory_allocated() / 2**20:.1f} MiB")
