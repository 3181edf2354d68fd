#!/usr/bin/env python3
"""PyTorch smoke test for scripts/gpu-check.sh.

Runs natively and under `gpufabric run`, and prints its figures as
"torch_smoke: name=value" lines so the check can line the two runs up:

  - torch.cuda.is_available() and the device PyTorch sees;
  - a float32 matmul on the GPU against the same product on the CPU;
  - host<->device copy bandwidth of a 64 MiB tensor;
  - a few training steps of a small MLP: the loss must fall, and the mean
    step time is the headline figure.

Exit status: 0 pass, 1 fail, 77 skipped (torch is not installed).
"""

import argparse
import sys
import time


def log(msg):
    print(f"torch_smoke: {msg}", flush=True)


def figure(name, value):
    log(f"{name}={value:.6g}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50, help="timed training steps")
    args = ap.parse_args()

    try:
        import torch
        from torch import nn
    except ImportError as e:
        log(f"SKIP: torch is not installed ({e})")
        return 77

    t0 = time.perf_counter()
    if not torch.cuda.is_available():
        log("FAIL: torch.cuda.is_available() is False")
        return 1
    dev = torch.device("cuda", 0)
    log(f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"{torch.cuda.device_count()} device(s), device 0: {torch.cuda.get_device_name(0)}")
    torch.zeros(1, device=dev)  # context creation, counted in init_s
    torch.cuda.synchronize()
    figure("init_s", time.perf_counter() - t0)

    # The same product on both sides, in full float32: TF32 would differ
    # from the CPU by design, not by fault.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    want = a @ b
    got = (a.to(dev) @ b.to(dev)).cpu()
    err = ((got - want).abs().max() / want.abs().max()).item()
    figure("matmul_max_rel_err", err)
    if not err < 1e-4:
        log(f"FAIL: GPU matmul differs from the CPU's (max relative error {err:.3g})")
        return 1

    # Copy bandwidth, pageable host memory as most applications use it.
    host = torch.ones(16 << 20)  # 64 MiB of float32
    nbytes = host.numel() * host.element_size()
    host.to(dev)
    torch.cuda.synchronize()
    t = time.perf_counter()
    on_dev = host.to(dev)
    torch.cuda.synchronize()
    figure("h2d_gbps", nbytes / (time.perf_counter() - t) / 1e9)
    t = time.perf_counter()
    back = on_dev.cpu()
    figure("d2h_gbps", nbytes / (time.perf_counter() - t) / 1e9)
    if not torch.equal(back, host):
        log("FAIL: 64 MiB came back different")
        return 1

    # A small MLP on a fixed batch: a few warm-up steps (kernel loading,
    # cuBLAS handles), then timed steps.
    model = nn.Sequential(
        nn.Linear(256, 1024), nn.ReLU(),
        nn.Linear(1024, 1024), nn.ReLU(),
        nn.Linear(1024, 10),
    ).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(512, 256, device=dev)
    y = torch.randint(0, 10, (512,), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    first = step().item()
    for _ in range(4):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - t
    last = loss.item()
    figure("step_ms", elapsed / args.steps * 1e3)
    figure("loss_first", first)
    figure("loss_last", last)
    if not last < first:
        log(f"FAIL: the loss did not fall ({first:.4f} -> {last:.4f})")
        return 1
    figure("total_s", time.perf_counter() - t0)
    log("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
