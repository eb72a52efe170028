"""One command that checks the GPU path, in a few minutes, where CUDA is present (without CUDA it says so, exits 0).

    python benchmarks/gpu_check.py [--size 64] [--steps 6]

1. The CUDA forward equals the CPU forward (max abs difference <= 1e-4, TF32 off) for the paper preset's SNN and
   its ANN twin.
2. A few mixed-precision training steps of the paper preset (AdamW 1e-3 and the 1 - SSIM loss of the training
   recipe, autocast bf16 or fp16 with a GradScaler, as ``snn-energy train`` uses them) lower the loss on one
   fixed batch of random 64x64 crops.
3. Profiling on CUDA passes ``torch.cuda.set_sync_debug_mode("error")``: no host synchronisation during a
   profiled forward; the rows, read afterwards, match those of the CPU (MACs identical; spikes and synaptic
   operations within 1e-3 of their totals, since a potential within rounding of the threshold may fire on one
   device only).
4. Prints forward, training and profiling throughput.
Exits 1 if a check fails.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time

import torch

import esdnet
from esdnet.metrics import ssim_loss
from snn_energy import Profiler


def _seconds(run, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


@contextlib.contextmanager
def exact_float32():
    """Within the block, TF32 is off in cuDNN convolutions and matrix products (on by default for convolutions, it
    would make the CUDA forward differ from the CPU's by about 1e-3); the previous settings are restored after."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def check_forward(size: int) -> bool:
    ok = True
    torch.manual_seed(0)
    x = torch.rand(2, 3, size, size)
    for arch in ("snn", "ann"):
        model = esdnet.build_model("paper", arch=arch).eval()
        with torch.no_grad(), exact_float32():
            expected = model(x)
            got = model.cuda()(x.cuda()).cpu()
        difference = (got - expected).abs().max().item()
        passed = difference <= 1e-4
        ok &= passed
        print(f"[{'ok' if passed else 'FAIL'}] CUDA forward = CPU forward (TF32 off), {arch}: "
              f"max |difference| {difference:.2e}")
    return ok


def check_training(steps: int) -> bool:
    torch.manual_seed(0)
    model = esdnet.build_model("paper").cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    clean = torch.rand(4, 3, 64, 64, device="cuda")
    rainy = (clean + 0.3 * (torch.rand_like(clean) > 0.97)).clamp(0, 1)
    losses = []

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype):
            derained = model(rainy)
        loss = ssim_loss(derained.float(), clean)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.item())

    seconds = _seconds(lambda: [step() for _ in range(steps)], repeats=1)
    passed = losses[-1] < losses[0]
    print(f"[{'ok' if passed else 'FAIL'}] {steps} mixed-precision ({dtype}) training steps lower the loss: "
          f"{losses[0]:.4f} -> {losses[-1]:.4f}; {4 * steps / seconds:.1f} crops/s (64x64, batch 4)")
    return passed


def check_profiling(size: int) -> bool:
    torch.manual_seed(0)
    model = esdnet.build_model("paper").eval()
    x = torch.rand(1, 3, size, size)
    with Profiler(model) as reference, torch.no_grad():
        model(x)
    model.cuda()
    x_cuda = x.cuda()
    with torch.no_grad(), exact_float32():
        forward = _seconds(lambda: model(x_cuda))
        with Profiler(model) as profiler:
            model(x_cuda)  # fills the shape caches
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                model(x_cuda)
                passed = True
            except RuntimeError as err:
                passed = False
                print(f"  a profiled forward synchronised: {err}")
            finally:
                torch.cuda.set_sync_debug_mode("default")

        def profiled():
            with Profiler(model) as p:
                model(x_cuda)
            p.records()
        profiling = _seconds(profiled)
    rows = profiler.records()
    first = rows[rows["image"] == 0].reset_index(drop=True)
    expected = reference.records().reset_index(drop=True)
    same_macs = first["macs"].equals(expected["macs"])
    # a membrane potential within rounding of the threshold may fire on one device and not the other
    spikes = (first["spikes"] - expected["spikes"]).abs().sum() / max(expected["spikes"].sum(), 1)
    sops = (first["sops"] - expected["sops"]).abs().sum() / max(expected["sops"].sum(), 1)
    close = same_macs and spikes <= 1e-3 and sops <= 1e-3
    print(f"[{'ok' if passed else 'FAIL'}] profiled forward under sync-debug mode 'error' (no host sync)")
    print(f"[{'ok' if close else 'FAIL'}] CUDA rows = CPU rows: MACs {'identical' if same_macs else 'DIFFER'}; "
          f"spikes differ by {spikes:.1e} and synaptic operations by {sops:.1e} of their totals (at most 1e-3)")
    print(f"forward {size}x{size}: {forward * 1e3:.1f} ms ({1 / forward:.1f} img/s); profiled forward with its rows "
          f"{profiling * 1e3:.1f} ms ({profiling / forward:.2f}x)")
    return passed and close


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image size of the forward and profiling checks")
    parser.add_argument("--steps", type=int, default=6, help="training steps (default: 6)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check (the GPU checks run where torch.cuda.is_available())")
        return 0
    print(f"CUDA device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    results = [check_forward(args.size), check_training(args.steps), check_profiling(args.size)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
