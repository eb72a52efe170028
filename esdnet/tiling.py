"""Tiled inference as the ESDNet authors run their test set: overlapping square tiles, distance-weighted merge.

Tile starts along an axis of length L: 0, s, 2s, ... (s = tile_size - overlap) while the tile ends before L,
then one last tile flush with the far edge (start L - tile_size). Every tile's output is weighted by
``1 / sqrt(dh^2 + dw^2 + 1e-3)``, the inverse distance of a pixel to the tile centre (tile_size / 2, as the
authors' ``test.py``), and each output pixel is the weighted mean of the tiles that cover it. An image side
shorter than a tile is first padded at the bottom/right (reflection where the side is long enough, else
edge replication) and the result is cropped back.

The merge accumulates in float64: for a model that returns its input, each output pixel is
``sum(w_i x) / sum(w_i)`` computed within about 1e-16 of ``x``, which rounds back to the very same float32
value, so the identity comes back bit-identical.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

TILE_SIZE = 80
TILE_OVERLAP = 8


def tile_starts(length: int, tile_size: int = TILE_SIZE, overlap: int = TILE_OVERLAP) -> list[int]:
    """Return the start offsets (pixels) of the tiles covering an axis of ``length >= tile_size`` pixels."""
    if tile_size < 1:
        raise ValueError(f"tile size must be a positive number of pixels, got {tile_size}")
    if not 0 <= overlap < tile_size:
        raise ValueError(f"overlap must lie in [0, tile_size={tile_size}), got {overlap}")
    if length < tile_size:
        raise ValueError(f"axis of {length} pixels is shorter than a tile of {tile_size}")
    starts = list(range(0, length - tile_size, tile_size - overlap))
    return starts + [length - tile_size]


def tile_weights(tile_size: int = TILE_SIZE, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """Return the ``[tile_size, tile_size]`` merge weights: inverse distance to the tile centre (unnormalised)."""
    offsets = torch.arange(tile_size, dtype=torch.float64) - tile_size / 2
    distance_sq = offsets.view(-1, 1) ** 2 + offsets.view(1, -1) ** 2
    return (1.0 / torch.sqrt(distance_sq + 1e-3)).to(dtype=dtype, device=device)


def _pad_to_at_least(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad ``[N, C, H, W]`` at the bottom/right up to ``height`` x ``width`` (reflect when possible, else replicate)."""
    pad_h, pad_w = max(0, height - image.shape[2]), max(0, width - image.shape[3])
    if not pad_h and not pad_w:
        return image
    reflectable = pad_h < image.shape[2] and pad_w < image.shape[3]
    return F.pad(image, (0, pad_w, 0, pad_h), mode="reflect" if reflectable else "replicate")


@torch.no_grad()
def tiled_inference(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor,
                    tile_size: int = TILE_SIZE, overlap: int = TILE_OVERLAP, batch_size: int = 16) -> torch.Tensor:
    """Return ``model`` applied to ``image`` ([N, C, H, W] or [C, H, W], any H and W) tile by tile, merged.

    ``model`` maps a batch of tiles ``[B, C, tile_size, tile_size]`` to outputs of the same shape and must
    not carry state from one call to the next; up to ``batch_size`` tiles (from all images) go per call. The
    output has the input's shape, dtype and device. Runs without gradients.
    """
    if image.ndim not in (3, 4):
        raise ValueError(f"expected an image [C, H, W] or a batch [N, C, H, W], got shape {tuple(image.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch = image.unsqueeze(0) if image.ndim == 3 else image
    n, channels, height, width = batch.shape
    padded = _pad_to_at_least(batch, tile_size, tile_size)
    corners = [(top, left) for top in tile_starts(padded.shape[2], tile_size, overlap)
               for left in tile_starts(padded.shape[3], tile_size, overlap)]
    jobs = [(i, top, left) for i in range(n) for top, left in corners]

    weights = tile_weights(tile_size, device=batch.device)
    merged = torch.zeros(padded.shape, dtype=torch.float64, device=batch.device)
    weight_sum = torch.zeros(padded.shape[2:], dtype=torch.float64, device=batch.device)
    for top, left in corners:
        weight_sum[top:top + tile_size, left:left + tile_size] += weights
    for first in range(0, len(jobs), batch_size):
        chunk = jobs[first:first + batch_size]
        tiles = torch.stack([padded[i, :, top:top + tile_size, left:left + tile_size] for i, top, left in chunk])
        outputs = model(tiles)
        if outputs.shape != tiles.shape:
            raise ValueError(f"model returned shape {tuple(outputs.shape)} for tiles of shape {tuple(tiles.shape)}")
        for (i, top, left), out in zip(chunk, outputs):
            merged[i, :, top:top + tile_size, left:left + tile_size] += weights * out.to(torch.float64)
    result = (merged / weight_sum)[:, :, :height, :width].to(image.dtype)
    return result[0] if image.ndim == 3 else result
