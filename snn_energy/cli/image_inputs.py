"""The rainy images a command profiles: read, optionally resized, paired with clean targets, rain density known."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from esdnet.data import pair_files
from esdnet.imageio import list_images, read_image
from esdnet.rain_density import (
    DEFAULT_THRESHOLD, ESTIMATED, MEASURED, TOPHAT_RADIUS, estimated_rain_density, measured_rain_density,
)
from esdnet.sample_images import sample_images_dir, sample_targets_dir

MIN_SIDE = 16  # pixels: below this the U-Net's two down-samplings leave almost nothing


def shown_path(path: Path) -> str:
    """Return ``path`` relative to the working folder when it lies inside it (reports stay portable), else as is."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def image_side(text: str) -> int:
    """argparse type of ``--size``: an integer of at least MIN_SIDE pixels."""
    try:
        side = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got {text!r}") from None
    if side < MIN_SIDE:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_SIDE} pixels, got {side}")
    return side


class LazyImages(Sequence):
    """The images of ``paths`` read on access (``[3, H, W]`` in [0, 1]), resized to ``size`` when given: a data set
    is never held in memory at once."""

    def __init__(self, paths: list[Path], size: int | None):
        self.paths, self.size = list(paths), size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return resize(read_image(self.paths[index]), self.size)


@dataclass
class ImageSet:
    """Images as profiled (``[3, H, W]`` in [0, 1], read on access), their files, clean targets if known, and rain
    densities (0-1)."""

    paths: list[Path]
    images: Sequence[torch.Tensor]
    targets: Sequence[torch.Tensor] | None
    rain_density: list[float]
    density_kind: str  # MEASURED (against targets) or ESTIMATED (from the rainy image alone)
    source: str  # where the images came from, for the report
    size: int | None

    def density_description(self) -> str:
        """Return one sentence saying how the rain density was obtained."""
        if self.density_kind == MEASURED:
            return (f"measured against the clean targets: fraction of pixels whose gray value the rain raised by more "
                    f"than {DEFAULT_THRESHOLD} (of a 0-1 range), on the files at native size")
        return (f"estimated from the rainy image alone (no clean targets given): fraction of pixels standing more than "
                f"{DEFAULT_THRESHOLD} above a grey-scale opening with a disk of radius {TOPHAT_RADIUS} px (white "
                "top-hat), which also counts fine bright scene texture")


def resize(image: torch.Tensor, size: int | None) -> torch.Tensor:
    """Return ``image`` ([3, H, W]) resized to ``size`` x ``size`` (bilinear, antialiased), or itself when None."""
    if size is None:
        return image
    resized = F.interpolate(image.unsqueeze(0), size=(size, size), mode="bilinear", align_corners=False,
                            antialias=True)
    return resized[0].clamp(0.0, 1.0)


def load_image_set(images_dir: Path | None, targets_dir: Path | None, size: int | None) -> ImageSet:
    """List the rainy images of ``images_dir`` (default: the bundled samples, with their targets) and their targets,
    read each once for its rain density (and its size against its target's), and return them to be read on access.

    With targets the rain density is measured, without it is estimated (see ``esdnet.rain_density``). Raises
    FileNotFoundError/ValueError naming the folder when it is missing, empty or cannot be paired.
    """
    if images_dir is None:
        images_dir, source = sample_images_dir(), "the bundled sample rainy images (esdnet/samples)"
        targets_dir = sample_targets_dir() if targets_dir is None else targets_dir
    else:
        source = shown_path(images_dir)
    if targets_dir is not None:
        pairs = pair_files(images_dir, targets_dir)
        paths, target_paths = [rainy for rainy, _ in pairs], [target for _, target in pairs]
        density = []
        for path, target in pairs:
            r, c = read_image(path), read_image(target)
            if r.shape != c.shape:
                raise ValueError(f"{path} is {r.shape[1]}x{r.shape[2]} but its target is {c.shape[1]}x{c.shape[2]}")
            density.append(measured_rain_density(r, c))
        targets, kind = LazyImages(target_paths, size), MEASURED
    else:
        paths = list_images(images_dir)
        density = [estimated_rain_density(read_image(p)) for p in paths]
        targets, kind = None, ESTIMATED
    return ImageSet(paths=paths, images=LazyImages(paths, size), targets=targets, rain_density=density,
                    density_kind=kind, source=source, size=size)
