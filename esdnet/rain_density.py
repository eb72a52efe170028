"""Rain density of a rainy picture: the fraction of its pixels covered by rain streaks.

Two definitions, stated wherever a density is reported:

- ``measured`` (a clean target is known): the fraction of pixels whose gray value (mean of R, G, B) in the
  rainy picture exceeds the clean one by more than ``threshold``. Rain streaks only brighten a picture
  (synthetic rain is screen-blended on), so this counts the pixels that rain visibly changed.
- ``estimated`` (the rainy picture alone): the fraction of pixels whose gray value exceeds a grey-scale
  morphological opening of the picture by more than ``threshold`` (a white top-hat). Thin bright structures
  narrower than the opening's disk, which in a rainy picture are mostly streaks, stand out; fine bright
  texture of the scene counts too, so this is an estimate, biased upwards on textured scenes.
"""
from __future__ import annotations

import torch
from skimage.morphology import disk, white_tophat

MEASURED = "measured"
ESTIMATED = "estimated"
DEFAULT_THRESHOLD = 0.05  # gray-value difference (of a [0, 1] range) that counts as visible rain, about 13/255
TOPHAT_RADIUS = 3  # pixels: streaks up to about 6 px wide fit inside the opening's disk


def _gray(image: torch.Tensor) -> torch.Tensor:
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an RGB image tensor [3, H, W], got shape {tuple(image.shape)}")
    return image.to(torch.float64).mean(0)


def measured_rain_density(rainy: torch.Tensor, clean: torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> float:
    """Return the fraction (0-1) of pixels where ``rainy`` is brighter than ``clean`` by more than ``threshold``.

    Both are ``[3, H, W]`` tensors in [0, 1] of the same size.
    """
    if rainy.shape != clean.shape:
        raise ValueError(f"rainy image {tuple(rainy.shape)} and clean target {tuple(clean.shape)} differ in shape")
    return float(((_gray(rainy) - _gray(clean)) > threshold).double().mean())


def estimated_rain_density(rainy: torch.Tensor, threshold: float = DEFAULT_THRESHOLD,
                           radius: int = TOPHAT_RADIUS) -> float:
    """Return the fraction (0-1) of pixels where the white top-hat of the gray ``rainy`` image exceeds ``threshold``."""
    tophat = white_tophat(_gray(rainy).numpy(), footprint=disk(radius))
    return float((tophat > threshold).mean())
