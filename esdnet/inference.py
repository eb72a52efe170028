"""Deraining images with a loaded ESDNet: tensors, files and folders (the authors' tiled inference)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from esdnet.imageio import list_images, read_image, write_image
from esdnet.tiling import TILE_OVERLAP, TILE_SIZE, tiled_inference


def _device_of(model: Callable[[torch.Tensor], torch.Tensor]) -> torch.device:
    """The device of a module's first parameter; CPU for a plain callable."""
    if isinstance(model, torch.nn.Module):
        return next(model.parameters()).device
    return torch.device("cpu")


@torch.no_grad()
def derain_tensor(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile_size: int | None = TILE_SIZE,
                  overlap: int = TILE_OVERLAP, batch_size: int = 16) -> torch.Tensor:
    """Return the derained ``[3, H, W]`` image in [0, 1]: tiled (the authors' 80 px tiles) or whole if ``tile_size`` is None."""
    image = image.to(_device_of(model))
    if tile_size is None:
        out = model(image.unsqueeze(0))[0]
    else:
        out = tiled_inference(model, image, tile_size=tile_size, overlap=overlap, batch_size=batch_size)
    return out.clamp(0.0, 1.0).cpu()


def input_images(source: str | Path) -> list[Path]:
    """Return the image files to derain: ``source`` itself if it is a file, else the images in that folder."""
    source = Path(source)
    if source.is_file():
        return [source]
    return list_images(source)


def output_paths(inputs: list[Path], source: Path, output: Path) -> list[Path]:
    """Return where each derained image goes: ``output`` itself for one input file, else ``output/<stem>.png``."""
    if source.is_file() and output.suffix.lower() == ".png":
        return [output]
    if output.exists() and not output.is_dir():
        raise FileExistsError(f"{output}: exists and is not a folder (give a .png path for a single input image)")
    return [output / f"{path.stem}.png" for path in inputs]


def derain_files(model: Callable[[torch.Tensor], torch.Tensor], source: str | Path, output: str | Path,
                 tile_size: int | None = TILE_SIZE, overlap: int = TILE_OVERLAP, batch_size: int = 16,
                 progress: bool = True) -> list[Path]:
    """Derain an image file or every image of a folder into ``output``; returns the written PNG paths.

    All results are first written to a temporary folder beside ``output`` and moved in place only when every
    image succeeded, so a bad input file (named in the error) leaves nothing written.
    """
    source, output = Path(source), Path(output)
    inputs = input_images(source)
    targets = output_paths(inputs, source, output)
    stage_parent = output.parent
    stage_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=stage_parent))
    try:
        for path, target in tqdm(list(zip(inputs, targets)), desc="derain", unit="img", disable=not progress):
            write_image(staging / target.name, derain_tensor(model, read_image(path), tile_size, overlap, batch_size))
        targets[0].parent.mkdir(exist_ok=True)
        for target in targets:
            (staging / target.name).replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return targets
