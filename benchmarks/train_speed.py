"""Training and inference speed of ESDNet (SNN) and its ANN twin, small and paper presets, CPU (and CUDA).

Training: images per second of full optimiser steps (forward, 1 - SSIM loss, backward, AdamW) on random
batches of 12 crops of 64x64, the authors' recipe (mixed precision on CUDA as ``snn-energy train`` does).
Inference: megapixels per second of the authors' tiled inference (80 px tiles, 8 px overlap) on 256x256
images, in eval mode without gradients. One warm-up step or image precedes the timed ones.

    .venv/bin/python benchmarks/train_speed.py                   # about 4 minutes on 2 CPU cores
    .venv/bin/python benchmarks/train_speed.py --steps 5 --images 4 --threads 2
    .venv/bin/python benchmarks/train_speed.py --devices cuda      # the GPU rows alone
"""
from __future__ import annotations

import argparse
import time

import torch

import esdnet
from esdnet.inference import derain_tensor
from esdnet.metrics import ssim_loss

BATCH, CROP, IMAGE_SIDE = 12, 64, 256


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_images_per_second(model: esdnet.ESDNet, device: torch.device, steps: int) -> float:
    """Return training throughput in images (64x64 crops) per second over ``steps`` timed steps of batch 12."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    amp = device.type == "cuda"
    dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and dtype == torch.float16)
    rainy = torch.rand(BATCH, 3, CROP, CROP, device=device)
    clean = (rainy * 0.9).clamp(0, 1)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            derained = model(rainy)
        loss = ssim_loss(derained.float(), clean)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    step()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * BATCH / (time.perf_counter() - started)


def inference_megapixels_per_second(model: esdnet.ESDNet, device: torch.device, images: int) -> float:
    """Return tiled-inference throughput in megapixels per second over ``images`` timed 256x256 images."""
    model.eval()
    image = torch.rand(3, IMAGE_SIDE, IMAGE_SIDE, device=device)
    derain_tensor(model, image)
    _sync(device)
    started = time.perf_counter()
    for _ in range(images):
        derain_tensor(model, image)
    _sync(device)
    return images * IMAGE_SIDE * IMAGE_SIDE / 1e6 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per model on the small preset")
    parser.add_argument("--images", type=int, default=2, help="timed 256x256 images per model on the small preset")
    parser.add_argument("--paper-steps", type=int, default=1, help="timed training steps for the paper preset on a CPU")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads (default: torch's)")
    parser.add_argument("--presets", nargs="+", default=["small", "paper"], choices=sorted(esdnet.PRESETS))
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"], choices=("cpu", "cuda"),
                        help="where to measure (default: cpu, then cuda when present)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = [torch.device(name) for name in args.devices if name == "cpu" or torch.cuda.is_available()]
    print(f"torch {torch.__version__}; CPU threads {args.threads}; CUDA "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'not available'}")
    print(f"{'device':<6} {'preset':<6} {'arch':<4} {'train img/s (12x64x64)':>22} {'infer MP/s (tiled 256x256)':>27}")
    for device in devices:
        for preset in args.presets:
            slow = device.type == "cpu" and preset == "paper"
            steps = args.paper_steps if slow else args.steps * (10 if device.type == "cuda" else 1)
            images = 1 if slow else args.images * (10 if device.type == "cuda" else 1)
            for arch in ("snn", "ann"):
                torch.manual_seed(0)
                model = esdnet.build_model(preset, arch=arch).to(device)
                train_speed = training_images_per_second(model, device, steps)
                infer_speed = inference_megapixels_per_second(model, device, images)
                print(f"{device.type:<6} {preset:<6} {arch:<4} {train_speed:>22.2f} {infer_speed:>27.4f}", flush=True)


if __name__ == "__main__":
    main()
