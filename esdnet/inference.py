"""Deraining images with a loaded ESDNet: tensors, files and folders (the authors' tiled inference)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from esdnet.imageio import is_grayscale, list_images, read_image, write_image
from esdnet.progress import progress_bar
from esdnet.tiling import TILE_OVERLAP, TILE_SIZE, tiled_inference


def _device_of(model: Callable[[torch.Tensor], torch.Tensor]) -> torch.device:
    """The device of a module's first parameter; CPU for a plain callable."""
    if isinstance(model, torch.nn.Module):
        return next(model.parameters()).device
    return torch.device("cpu")


EDGE_PAD = 8  # pixels of the image reflected around it before inference, cropped after


def reflect_pad(image: torch.Tensor, pad: int) -> tuple[torch.Tensor, int]:
    """Return ``image`` ``[C, H, W]`` with ``pad`` pixels reflected on each side (fewer when the image is smaller
    than that: at most ``min(H, W) - 1``), and the padding used (pixels)."""
    pad = max(0, min(pad, image.shape[1] - 1, image.shape[2] - 1))
    if pad == 0:
        return image, 0
    return F.pad(image.unsqueeze(0), (pad, pad, pad, pad), mode="reflect")[0], pad


@torch.no_grad()
def derain_tensor(model: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, tile_size: int | None = TILE_SIZE,
                  overlap: int = TILE_OVERLAP, batch_size: int = 16, edge_pad: int = EDGE_PAD) -> torch.Tensor:
    """Return the derained ``[3, H, W]`` image, clamped to [0, 1]: tiled (the authors' 80 px tiles) or whole if
    ``tile_size`` is None. A grayscale image (three equal channels) comes back grayscale: the mean of the
    network's three output channels, on all three.

    ``edge_pad``: the image is extended by that many reflected pixels on each side before inference and the result
    cropped back, so that the network's zero padding falls on the reflection rather than on the image's outermost
    pixels, which otherwise come out visibly worse (a frame along the edges); 0 runs the authors' procedure as is.
    """
    gray = is_grayscale(image)
    height, width = image.shape[1:]
    image, pad = reflect_pad(image.to(_device_of(model)), edge_pad)
    if tile_size is None:
        out = model(image.unsqueeze(0))[0]
    else:
        out = tiled_inference(model, image, tile_size=tile_size, overlap=overlap, batch_size=batch_size)
    out = out[:, pad:pad + height, pad:pad + width]
    if gray:
        out = out.mean(dim=0, keepdim=True).expand(3, -1, -1)
    return out.clamp(0.0, 1.0).cpu()


def input_images(source: str | Path) -> list[Path]:
    """Return the image files to derain: ``source`` itself if it is a file, else the images in that folder."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such image file or folder")
    return list_images(source)


def writes_one_file(source: Path, output: Path) -> bool:
    """Return True when ``output`` names the PNG file of a single input image, False when it names a folder.

    Raises ValueError for a folder of images with an output ending in ``.png`` (a folder is needed there).
    """
    if output.suffix.lower() != ".png":
        return False
    if not Path(source).is_file():
        raise ValueError(f"{output}: the input {source} is a folder of images, so the output must be a folder, "
                         "not a .png file name")
    return True


def output_paths(inputs: list[Path], source: Path, output: Path) -> list[Path]:
    """Return where each derained image goes: ``output`` itself for one input file, else ``output/<stem>.png``."""
    if writes_one_file(source, output):
        return [output]
    if output.exists() and not output.is_dir():
        raise FileExistsError(f"{output}: exists and is not a folder (give a .png path for a single input image)")
    return [output / f"{path.stem}.png" for path in inputs]


def derain_files(model: Callable[[torch.Tensor], torch.Tensor], source: str | Path, output: str | Path,
                 tile_size: int | None = TILE_SIZE, overlap: int = TILE_OVERLAP, batch_size: int = 16,
                 progress: bool = True, edge_pad: int = EDGE_PAD) -> list[Path]:
    """Derain an image file or every image of a folder into ``output``; returns the written PNG paths.

    Results are written to a temporary folder beside ``output`` and moved in place when every image succeeded,
    so a bad input file (named in the error) leaves nothing written. On KeyboardInterrupt (Ctrl-C) the images
    finished so far are moved in place (each whole) and the KeyboardInterrupt is raised again, saying how many.
    A grayscale input is written as a grayscale PNG (see ``derain_tensor``). ``progress``: a bar on a terminal.
    """
    source, output = Path(source), Path(output)
    inputs = input_images(source)
    targets = output_paths(inputs, source, output)
    stage_parent = output.parent
    stage_parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".tmp", dir=stage_parent))
    finished: list[Path] = []

    def move_in_place() -> None:
        if finished:
            targets[0].parent.mkdir(exist_ok=True)
        for target in finished:
            (staging / target.name).replace(target)

    try:
        for path, target in progress_bar(list(zip(inputs, targets)), enabled=progress, desc="derain", unit="img"):
            image = read_image(path)
            derained = derain_tensor(model, image, tile_size, overlap, batch_size, edge_pad)
            write_image(staging / target.name, derained[:1] if is_grayscale(image) else derained)
            finished.append(target)
        move_in_place()
    except KeyboardInterrupt:
        move_in_place()
        where = f" in {targets[0].parent}" if finished else ""
        raise KeyboardInterrupt(f"kept the {len(finished)} of {len(targets)} images finished{where}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return targets
