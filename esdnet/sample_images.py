"""The bundled sample rainy images (``esdnet/samples/``): where they are, what they hold, how they are made.

Four 256x256 rainy/clean pairs of synthetic rain (``esdnet.synth``, light and heavy presets) on random crops
of scikit-image's ``astronaut`` photograph, the photograph that ``snn-energy data synth``'s default seed holds
out for testing, so the bundled demo models never saw it in training. Layout::

    esdnet/samples/input/rain-N.png      rainy inputs
    esdnet/samples/target/norain-N.png   clean targets
    esdnet/samples/samples.json          per image: preset, seed, measured and estimated rain density

Regenerate (same seed, same bytes): ``python -m esdnet.sample_images --regenerate``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from esdnet.imageio import atomic_write_bytes, list_images, read_image, write_image
from esdnet.rain_density import DEFAULT_THRESHOLD, estimated_rain_density, measured_rain_density
from esdnet.synth import PHOTOGRAPHS, PRESETS, _random_view, add_rain

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
RECORD_NAME = "samples.json"
SEED = 2024
SIZE = 256
PHOTOGRAPH = "astronaut"
RAIN_PRESETS = ("light", "heavy", "light", "heavy")  # one per sample image, in order
SAMPLES_STREAM = 3  # numpy seed stream of the samples; synth uses 1 (train) and 2 (test)


def sample_images_dir() -> Path:
    """Return the folder of the bundled rainy sample images."""
    return SAMPLES_DIR / "input"


def sample_targets_dir() -> Path:
    """Return the folder of the clean targets of the bundled sample images."""
    return SAMPLES_DIR / "target"


def sample_paths() -> list[Path]:
    """Return the paths of the bundled rainy sample images, in natural order."""
    return list_images(sample_images_dir())


def sample_records() -> list[dict]:
    """Return one dict per bundled sample (file names, rain preset, measured/estimated rain density as fractions)."""
    return json.loads((SAMPLES_DIR / RECORD_NAME).read_text())["images"]


def _tensor(pixels: np.ndarray) -> torch.Tensor:
    """``[H, W, 3]`` array -> ``[3, H, W]`` tensor."""
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())


def write_samples(out: Path, seed: int = SEED, size: int = SIZE) -> Path:
    """Write the sample pairs and their record to ``out`` (replaced whole, via a staging folder); returns ``out``."""
    photo = PHOTOGRAPHS[PHOTOGRAPH]().astype(np.float64) / 255.0
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        (staging / "input").mkdir()
        (staging / "target").mkdir()
        images = []
        for index, preset in enumerate(RAIN_PRESETS, start=1):
            rng = np.random.default_rng([seed, SAMPLES_STREAM, index])
            clean = _random_view(photo, size, rng)
            rainy = add_rain(clean, PRESETS[preset], rng)
            rain_path = write_image(staging / "input" / f"rain-{index}.png", _tensor(rainy))
            clean_path = write_image(staging / "target" / f"norain-{index}.png", _tensor(clean))
            rainy_8bit, clean_8bit = read_image(rain_path), read_image(clean_path)  # densities of the files as shipped
            images.append({
                "input": f"input/{rain_path.name}", "target": f"target/{clean_path.name}", "preset": preset,
                "measured_rain_density": round(measured_rain_density(rainy_8bit, clean_8bit), 6),
                "estimated_rain_density": round(estimated_rain_density(rainy_8bit), 6),
            })
        record = {"photograph": f"skimage.data.{PHOTOGRAPH}", "seed": seed, "size": size,
                  "density_threshold": DEFAULT_THRESHOLD,
                  "regenerate": "python -m esdnet.sample_images --regenerate", "images": images}
        atomic_write_bytes(staging / RECORD_NAME, (json.dumps(record, indent=2) + "\n").encode())
        staging.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        staging.replace(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m esdnet.sample_images --regenerate [--out DIR]``: rewrite the bundled samples; returns 0."""
    parser = argparse.ArgumentParser(prog="python -m esdnet.sample_images", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--regenerate", action="store_true", help="write the sample images (required, to be explicit)")
    parser.add_argument("--out", type=Path, default=SAMPLES_DIR, help="folder to write (default: the bundled one)")
    args = parser.parse_args(argv)
    if not args.regenerate:
        parser.error("nothing to do: pass --regenerate to rewrite the sample images")
    print(f"wrote {len(RAIN_PRESETS)} sample pairs to {write_samples(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
