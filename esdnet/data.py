"""Paired rainy/clean image data sets in the authors' layout ``DATASET/{train,test}/{input,target}/``.

Pairing (``pair_files``): an input is matched to the target whose stem is, in this order of preference,
- the same stem (``0001.png`` / ``0001.png``),
- the stem without a trailing ``x<digits>`` (Rain200H/Rain100H: ``norain-1x2.png`` / ``norain-1.png``),
- the stem with ``no`` in front of a leading ``rain`` (Rain100L: ``rain-001.png`` / ``norain-001.png``),
- both changes together.
When every input finds a distinct target this way, that pairing is used (targets that no input names are
ignored, so a folder of a few predictions pairs with a full target folder). When no input finds one, files are
paired in natural sorted order, which needs equal counts. A partial match (some inputs pair by name, some
do not) is an error: it points to missing or misnamed files.

Images are read from disk on every access (``cache=False``, the default), or read once when the data set is
built and kept in memory as float32 tensors (``cache=True``: 12 bytes per pixel and pair, about 56 MB for
Rain100L's 200 training pairs of 481x321, which also checks every pair's sizes up front).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from esdnet.imageio import image_size, list_images, read_image

def _target_stem_candidates(stem: str) -> list[str]:
    """Return the target stems an input stem may pair with, most specific first."""
    without_scale = re.sub(r"x\d+$", "", stem)
    candidates = [stem, without_scale]
    for name in (stem, without_scale):
        if name.startswith("rain"):
            candidates.append("no" + name)
    return list(dict.fromkeys(candidates))


def pair_files(input_dir: str | os.PathLike, target_dir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """Return ``(input_file, target_file)`` pairs of the image files of two folders, by name or sorted order.

    See the module docstring for the rules. Raises FileNotFoundError/ValueError naming the folder when one is
    missing or empty, and ValueError naming both folders when they cannot be paired.
    """
    inputs, targets = list_images(input_dir), list_images(target_dir)
    by_stem = {path.stem: path for path in targets}
    matched: dict[Path, Path] = {}
    for path in inputs:
        stem = next((c for c in _target_stem_candidates(path.stem) if c in by_stem), None)
        if stem is not None:
            matched[path] = by_stem[stem]
    if not matched:
        if len(inputs) != len(targets):
            raise ValueError(f"cannot pair by name, and the counts differ: {len(inputs)} images in {input_dir} "
                             f"but {len(targets)} in {target_dir}")
        return list(zip(inputs, targets))
    unmatched = [path.name for path in inputs if path not in matched]
    if unmatched:
        raise ValueError(f"{len(unmatched)} of {len(inputs)} images in {input_dir} have no target of matching name "
                         f"in {target_dir} (e.g. {', '.join(unmatched[:3])}) while the others do")
    used: dict[Path, Path] = {}
    for path, target in matched.items():
        if target in used:
            raise ValueError(f"{input_dir}: {used[target].name} and {path.name} both pair with {target}")
        used[target] = path
    return [(path, matched[path]) for path in inputs]


def paired_by_name(pairs: list[tuple[Path, Path]]) -> bool:
    """Return True when every pair of ``pair_files`` was matched by name, False when they were paired by sorted
    order (no input name matched a target)."""
    return all(target.stem in _target_stem_candidates(path.stem) for path, target in pairs)


def _load_pair(input_path: Path, target_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    rainy, clean = read_image(input_path), read_image(target_path)
    if rainy.shape != clean.shape:
        raise ValueError(f"{input_path} is {rainy.shape[1]}x{rainy.shape[2]} but its target {target_path} is "
                         f"{clean.shape[1]}x{clean.shape[2]} (height x width)")
    return rainy, clean


class PairedImageDataset(Dataset):
    """Rainy/clean pairs from ``data_dir/split/{input,target}`` (or ``data_dir/{input,target}`` when split is None).

    Items are ``(rainy, clean)`` float32 tensors ``[3, h, w]`` in [0, 1]: a random ``crop_size`` square taken
    at the same place in both images (torch's global random generator, so ``torch.manual_seed`` and DataLoader
    workers make it reproducible), optionally flipped left-right and up-down at random (``flip``); or the
    whole images when ``crop_size`` is None (different sizes then need ``batch_size=1``).
    ``indices`` keeps only those pairs (positions in the pairing order), e.g. from ``split_indices``: a
    validation set is ``PairedImageDataset(data, "train", indices=val_idx)``, carved from the TRAIN folder.
    A ``crop_size`` larger than any input image is refused when the data set is built (headers only).
    ``pairs`` holds the ``(input_path, target_path)`` of every item.
    """

    def __init__(self, data_dir: str | os.PathLike, split: str | None = "train", crop_size: int | None = None,
                 flip: bool = False, cache: bool = False, indices: Sequence[int] | None = None):
        root = Path(data_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: data folder does not exist")
        folder = root / split if split is not None else root
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: split folder does not exist (expected {folder}/input and "
                                    f"{folder}/target)")
        if crop_size is not None and crop_size < 1:
            raise ValueError(f"crop_size must be a positive number of pixels or None, got {crop_size}")
        pairs = pair_files(folder / "input", folder / "target")
        if indices is not None:
            bad = [i for i in indices if not 0 <= i < len(pairs)]
            if bad:
                raise ValueError(f"indices {bad[:3]} out of range for the {len(pairs)} pairs in {folder}")
            pairs = [pairs[i] for i in indices]
        if crop_size is not None:
            for input_path, _ in pairs:  # fail now, not epochs later; reads headers only
                height, width = image_size(input_path)
                if crop_size > min(height, width):
                    raise ValueError(f"{input_path}: crop {crop_size}x{crop_size} is larger than the image "
                                     f"({height}x{width}, height x width)")
        self.pairs = pairs
        self.crop_size = crop_size
        self.flip = flip
        self._cache = [_load_pair(*pair) for pair in pairs] if cache else None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rainy, clean = self._cache[index] if self._cache is not None else _load_pair(*self.pairs[index])
        if self.crop_size is None:
            return rainy, clean
        height, width = rainy.shape[1:]
        top = int(torch.randint(0, height - self.crop_size + 1, ()))
        left = int(torch.randint(0, width - self.crop_size + 1, ()))
        window = (slice(None), slice(top, top + self.crop_size), slice(left, left + self.crop_size))
        rainy, clean = rainy[window], clean[window]
        if self.flip:
            dims = [d for d in (2, 1) if torch.rand(()) < 0.5]
            if dims:
                rainy, clean = rainy.flip(dims), clean.flip(dims)
        return rainy.contiguous(), clean.contiguous()


def split_indices(count: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Return sorted ``(train_indices, val_indices)`` of ``count`` items, a seeded random ``val_fraction`` held out.

    At least one item goes to each side; the same seed always gives the same split.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    if count < 2:
        raise ValueError(f"cannot split {count} item(s) into training and validation sets")
    n_val = min(count - 1, max(1, round(count * val_fraction)))
    order = np.random.default_rng(seed).permutation(count)
    return sorted(int(i) for i in order[n_val:]), sorted(int(i) for i in order[:n_val])

