"""Cost of profiling: ESDNet's paper preset (dim 48, T=4) at 256x256 on the CPU, profiled against a plain forward.

Usage: .venv/bin/python benchmarks/profile_paper_256.py [--images 2] [--threads N] [--repeats 1]

Times, on the same bundled sample images (256x256, one image per batch, no gradients):
  1. a plain forward of the SNN;
  2. ``snn_energy.profile`` of the SNN alone (its records, tables and the derived ANN references);
  3. ``snn_energy.profile`` of the SNN with its single-pass ANN twin counted on the same images, against a plain
     forward of the SNN plus one of the twin (and against the SNN's forward alone);
  4. everything ``snn-energy profile`` computes before writing its report: (3) with the spike maps of the first
     image kept;
and prints the ratios; the target is below 3x a plain forward for (2). Random weights (there is no bundled
paper-preset checkpoint): the time to count hardly depends on the firing rates.
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

import esdnet
import snn_energy
from snn_energy.cli.esdnet_profile import profile_esdnet
from snn_energy.cli.esdnet_stages import DEFAULT_SPIKE_LAYERS
from snn_energy.cli.image_inputs import load_image_set


def _seconds(action, repeats: int) -> float:
    """Return the median wall time of ``repeats`` calls of ``action`` (seconds)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def _forward(model: torch.nn.Module, images: list[torch.Tensor]) -> None:
    for image in images:
        model(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2, help="sample images to run (1-4, default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=1, help="timed repeats of each measurement (median)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    snn = esdnet.build_model("paper").eval()
    ann = esdnet.ESDNet(snn.config, arch="ann", single_pass=True).eval()
    samples = load_image_set(None, None, None)  # the bundled 256x256 sample images
    count = args.images
    image_set = replace(samples, paths=samples.paths[:count], images=samples.images[:count], targets=None,
                        rain_density=samples.rain_density[:count])
    images = [image[None] for image in image_set.images]
    _forward(snn, [torch.rand(1, 3, 32, 32)])  # warm-up: lazy initialisation outside the timings
    snn_energy.profile(snn, torch.rand(1, 3, 32, 32))

    plain_snn = _seconds(lambda: _forward(snn, images), args.repeats)
    plain_ann = _seconds(lambda: _forward(ann, images), args.repeats)
    profile_snn = _seconds(lambda: snn_energy.profile(snn, images), args.repeats)
    profile_both = _seconds(lambda: snn_energy.profile(snn, images, single_pass_ann=ann), args.repeats)
    command = _seconds(lambda: profile_esdnet(snn, ann, image_set, spike_layers=DEFAULT_SPIKE_LAYERS), args.repeats)

    print(f"ESDNet paper preset {snn.config}, {len(images)} image(s) of 256x256, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    print(f"plain forward, SNN:                         {plain_snn:8.2f} s")
    print(f"plain forward, single-pass ANN twin:        {plain_ann:8.2f} s")
    print(f"profile, SNN only:                          {profile_snn:8.2f} s  = {profile_snn / plain_snn:.2f}x "
          f"the SNN's plain forward (target < 3x)")
    print(f"profile, SNN + twin counted:                {profile_both:8.2f} s  = "
          f"{profile_both / (plain_snn + plain_ann):.2f}x the plain forwards of both, "
          f"{profile_both / plain_snn:.2f}x the SNN's alone")
    print(f"snn-energy profile's computations:          {command:8.2f} s  = {command / plain_snn:.2f}x the SNN's plain "
          f"forward (SNN + twin, spike maps of the first image)")


if __name__ == "__main__":
    main()
