"""Seeded synthetic rain: rainy/clean pairs in the authors' layout ``OUT/{train,test}/{input,target}/``.

Clean pictures are scikit-image's bundled colour photographs (no download) or the images of a user's folder.
The photographs, not the crops, are split between train and test, so no test picture was seen in training.
Each pair is a random square crop of a photograph (side between ``size`` and the photograph's shorter side),
resized to ``size`` x ``size`` and randomly mirrored, with rain added:

- a rain layer is sparse random drops (density = fraction of pixels) of random brightness, smeared by a
  line kernel of a given length and angle (motion blur), softened by a small Gaussian (streak width) and
  scaled by an intensity;
- the ``heavy`` preset (like Rain200H) stacks three denser, longer and brighter layers at angles spread
  around the picture's rain direction; ``light`` (like Rain200L) has one sparse, short, dim layer;
- layers and picture are combined by screen blending, ``1 - (1 - a)(1 - b)``, which brightens without clipping.

Every random choice comes from numpy generators seeded by ``(seed, split, index)``: the same seed writes
byte-identical files. Files are named ``rain-NNNN.png`` / ``norain-NNNN.png`` (Rain100L style) and a
``synth.json`` records the settings and which photographs went to each split.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import skimage.data
import torch
from scipy import ndimage, signal
from skimage.draw import line_aa
from skimage.transform import resize

from esdnet.imageio import list_images, read_image, write_image


@dataclass(frozen=True)
class RainPreset:
    """Rain streak settings; lengths and widths in pixels, angles in degrees from vertical."""

    layers: int
    density: float  # fraction of pixels that start a streak, per layer
    length: tuple[int, int]  # streak length range
    intensity: tuple[float, float]  # streak brightness range (0-1), per layer
    max_angle: float  # the picture's rain direction is drawn from [-max_angle, max_angle]
    layer_spread: float  # each layer's angle deviates from it by up to this much
    width_sigma: float  # Gaussian softening of the streaks


PRESETS = {
    "light": RainPreset(layers=1, density=0.004, length=(8, 16), intensity=(0.45, 0.7), max_angle=20.0,
                        layer_spread=0.0, width_sigma=0.5),
    "heavy": RainPreset(layers=3, density=0.008, length=(14, 28), intensity=(0.6, 0.9), max_angle=30.0,
                        layer_spread=10.0, width_sigma=0.8),
}

# scikit-image's bundled colour photographs of natural scenes (shipped with the package, no download).
PHOTOGRAPHS = {
    "astronaut": skimage.data.astronaut,
    "chelsea": skimage.data.chelsea,
    "coffee": skimage.data.coffee,
    "rocket": skimage.data.rocket,
    "motorcycle": lambda: skimage.data.stereo_motorcycle()[0],
}
TEST_PHOTO_FRACTION = 0.2
SPLIT_IDS = {"train": 1, "test": 2}


def line_kernel(length: int, angle: float) -> np.ndarray:
    """Return a square anti-aliased line kernel (side ``length``, made odd) at ``angle`` degrees from vertical.

    The line of ``length`` pixels passes through the centre; the weights sum to 1.
    """
    size = length if length % 2 else length + 1
    centre, half = (size - 1) / 2, (length - 1) / 2
    theta = np.deg2rad(angle)
    dr, dc = half * np.cos(theta), half * np.sin(theta)
    rows, cols, values = line_aa(int(round(centre - dr)), int(round(centre - dc)),
                                 int(round(centre + dr)), int(round(centre + dc)))
    kernel = np.zeros((size, size))
    np.maximum.at(kernel, (rows, cols), values)
    return kernel / kernel.sum()


def rain_layer(height: int, width: int, density: float, length: int, angle: float, intensity: float,
               width_sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Return one ``[height, width]`` layer of rain streaks with values in [0, 1]."""
    margin = length
    drops = rng.random((height + 2 * margin, width + 2 * margin)) < density
    drops = drops * rng.uniform(0.5, 1.0, drops.shape)
    streaks = signal.fftconvolve(drops, line_kernel(length, angle), mode="same") * length
    streaks = ndimage.gaussian_filter(streaks, width_sigma, mode="constant")
    return np.clip(streaks[margin:margin + height, margin:margin + width] * intensity, 0.0, 1.0)


def add_rain(clean: np.ndarray, preset: RainPreset, rng: np.random.Generator) -> np.ndarray:
    """Return ``clean`` ([H, W, 3] in [0, 1]) with rain of ``preset`` screen-blended on, same shape and range."""
    height, width = clean.shape[:2]
    direction = rng.uniform(-preset.max_angle, preset.max_angle)
    transmitted = np.ones((height, width))  # product of (1 - layer): screen blend of all layers
    for _ in range(preset.layers):
        angle = direction + rng.uniform(-preset.layer_spread, preset.layer_spread)
        length = int(rng.integers(preset.length[0], preset.length[1] + 1))
        layer = rain_layer(height, width, preset.density, length, angle, rng.uniform(*preset.intensity),
                           preset.width_sigma, rng)
        transmitted *= 1.0 - layer
    return 1.0 - (1.0 - clean) * transmitted[..., None]


def _random_view(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Return a random square crop of ``photo`` resized to ``size`` x ``size``, mirrored at random; [0, 1] floats."""
    height, width = photo.shape[:2]
    shorter = min(height, width)
    side = int(rng.integers(min(size, shorter), shorter + 1))
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    view = resize(photo[top:top + side, left:left + side], (size, size), order=1, anti_aliasing=side > size)
    return view[:, ::-1] if rng.random() < 0.5 else view


def _load_photographs(clean_dir: str | os.PathLike | None) -> list[tuple[str, np.ndarray]]:
    """Return ``(name, [H, W, 3] float64 in [0, 1])`` of the clean pictures, in a fixed order."""
    if clean_dir is None:
        return [(name, load().astype(np.float64) / 255.0) for name, load in PHOTOGRAPHS.items()]
    return [(path.name, read_image(path).permute(1, 2, 0).double().numpy()) for path in list_images(clean_dir)]


def _split_photographs(photos: list, seed: int) -> tuple[list, list]:
    if len(photos) < 2:
        raise ValueError(f"need at least 2 clean pictures to keep train and test apart, got {len(photos)}")
    n_test = max(1, round(len(photos) * TEST_PHOTO_FRACTION))
    order = np.random.default_rng([seed, 0]).permutation(len(photos))
    return [photos[i] for i in sorted(order[n_test:])], [photos[i] for i in sorted(order[:n_test])]


def _write_split(folder: Path, photos: list, count: int, size: int, preset: RainPreset, seed: int,
                 split: str) -> None:
    (folder / "input").mkdir(parents=True)
    (folder / "target").mkdir()
    digits = max(4, len(str(count)))
    for index in range(count):
        rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
        name, photo = photos[index % len(photos)]
        clean = _random_view(photo, size, rng)
        rainy = add_rain(clean, preset, rng)
        number = f"{index + 1:0{digits}d}"
        for sub, picture, stem in (("input", rainy, "rain"), ("target", clean, "norain")):
            write_image(folder / sub / f"{stem}-{number}.png", torch.from_numpy(picture.transpose(2, 0, 1).copy()))


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: folder exists and is not empty (use --overwrite to replace it)")


def synthesize_dataset(out: str | os.PathLike, preset: str = "light", seed: int = 1234, n_train: int = 200,
                       n_test: int = 20, size: int = 128, clean_dir: str | os.PathLike | None = None,
                       overwrite: bool = False) -> Path:
    """Write ``n_train`` + ``n_test`` rainy/clean PNG pairs of ``size`` x ``size`` pixels to ``out``; returns ``out``.

    The folder is built beside ``out`` and renamed into place at the end; an existing non-empty ``out`` is
    refused unless ``overwrite``, and then replaced whole.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown rain preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"need at least one train and one test pair, got train={n_train}, test={n_test}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    out = Path(out)
    _check_out(out, overwrite)
    train_photos, test_photos = _split_photographs(_load_photographs(clean_dir), seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _write_split(staging / "train", train_photos, n_train, size, PRESETS[preset], seed, "train")
        _write_split(staging / "test", test_photos, n_test, size, PRESETS[preset], seed, "test")
        record = {"preset": preset, "rain": asdict(PRESETS[preset]), "seed": seed, "size": size,
                  "train": n_train, "test": n_test,
                  "clean": "skimage.data" if clean_dir is None else str(Path(clean_dir).resolve()),
                  "train_photographs": [name for name, _ in train_photos],
                  "test_photographs": [name for name, _ in test_photos]}
        (staging / "synth.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        staging.chmod(0o755)
        _check_out(out, overwrite)
        if out.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, retired / out.name)
            try:
                os.replace(staging, out)
            except BaseException:
                os.replace(retired / out.name, out)
                raise
            shutil.rmtree(retired)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
