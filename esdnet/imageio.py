"""Image files <-> float32 tensors ``[3, H, W]`` in [0, 1], with atomic writes and folder listings.

Reading goes through Pillow (PNG, JPEG, BMP) or tifffile (TIFF, as scikit-image does) and converts the
unambiguous cases to RGB:

- grayscale (``[H, W]`` or one channel) -> the gray value repeated on R, G and B;
- palette images -> their RGB colours (RGBA when the palette has a transparent entry, then as below);
  CMYK and YCbCr JPEGs -> RGB by Pillow;
- 8-bit samples are divided by 255, 16-bit samples by 65535, 1-bit samples map to 0 and 1, float samples
  (TIFF) are kept and must lie in [0, 1];
- an alpha channel that is fully opaque is dropped; a translucent one is composited on WHITE
  (``rgb * alpha + (1 - alpha)``), the usual background of a transparent picture.

Pillow decodes 16-bit colour PNGs at 8-bit precision (its own limit); 16-bit grayscale PNGs and 16-bit TIFFs
keep their full precision.
"""
from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
TIFF_SUFFIXES = (".tif", ".tiff")


class ImageReadError(ValueError):
    """An image file that cannot be read or converted; the message names the file and the problem."""


def natural_key(name: str) -> tuple:
    """Return a sort key ordering digit runs by value: ``rain-2`` before ``rain-10``, ``x-1x2`` before ``x-10x2``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Return the image files (png, jpg, jpeg, bmp, tif, tiff; any case) directly in ``folder``, in natural order.

    Raises FileNotFoundError when the folder does not exist, NotADirectoryError when it is a file and
    ValueError when it holds no image file.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: folder does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: is not a folder")
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise ValueError(f"{folder}: holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return sorted(files, key=lambda p: natural_key(p.name))


def _to_unit_float(samples: np.ndarray, path: Path) -> np.ndarray:
    """Scale integer/bool/float samples to float64 in [0, 1]."""
    if samples.dtype == np.bool_:
        return samples.astype(np.float64)
    if samples.dtype.kind == "u" and samples.dtype.itemsize in (1, 2):  # 8 or 16 bits, either byte order
        return samples.astype(np.float64) / (255.0 if samples.dtype.itemsize == 1 else 65535.0)
    if np.issubdtype(samples.dtype, np.floating):
        values = samples.astype(np.float64)
        if not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0:
            raise ImageReadError(f"{path}: float samples must be finite and lie in [0, 1] "
                                 f"(found {np.nanmin(values):.4g} to {np.nanmax(values):.4g})")
        return values
    raise ImageReadError(f"{path}: unsupported sample type {samples.dtype} (expected 8-bit, 16-bit, 1-bit or float)")


def _to_rgb(pixels: np.ndarray, path: Path) -> np.ndarray:
    """Return ``[H, W, 3]`` RGB from gray, gray+alpha, RGB or RGBA pixels in [0, 1]."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(f"{path}: expected a single gray, gray+alpha, RGB or RGBA picture, "
                             f"got an array of shape {pixels.shape} (several frames or pages?)")
    channels = pixels.shape[2]
    colour = pixels[..., :1] if channels in (1, 2) else pixels[..., :3]
    if channels in (2, 4):
        alpha = pixels[..., -1:]
        if np.any(alpha < 1.0):
            colour = colour * alpha + (1.0 - alpha)
    return np.repeat(colour, 3, axis=2) if colour.shape[2] == 1 else colour


def _read_with_pillow(path: Path) -> np.ndarray:
    """Return the samples of a Pillow-readable picture: [H, W] or [H, W, C], palette and CMYK/YCbCr resolved."""
    with Image.open(path) as picture:
        if getattr(picture, "n_frames", 1) > 1:
            raise ImageReadError(f"{path}: holds {picture.n_frames} frames; expected a single picture")
        picture.load()
        if picture.mode in ("P", "PA"):
            transparent = picture.mode == "PA" or "transparency" in picture.info
            picture = picture.convert("RGBA" if transparent else "RGB")
        elif picture.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
            picture = picture.convert("RGB")
        return np.asarray(picture)


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Return the picture in ``path`` as a float32 tensor ``[3, H, W]`` of RGB values in [0, 1].

    Raises FileNotFoundError for a missing file, IsADirectoryError for a folder and ImageReadError for a file
    that is not a readable image.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file does not exist")
    try:
        samples = tifffile.imread(path) if path.suffix.lower() in TIFF_SUFFIXES else _read_with_pillow(path)
    except ImageReadError:
        raise
    except Exception as err:  # the readers raise OSError, ValueError, SyntaxError, ... for broken files
        raise ImageReadError(f"{path}: cannot be read as an image ({type(err).__name__}: {err})") from err
    if samples.size == 0:
        raise ImageReadError(f"{path}: image has no pixels (shape {samples.shape})")
    rgb = _to_rgb(_to_unit_float(samples, path), path)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).to(torch.float32)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """Return ``(height, width)`` in pixels of an image file, from its header only (no pixel decoding)."""
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tiff:
                page = tiff.pages[0]
                return int(page.imagelength), int(page.imagewidth)
        with Image.open(path) as picture:
            width, height = picture.size
            return height, width
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: image file does not exist") from None
    except Exception as err:
        raise ImageReadError(f"{path}: cannot be read as an image ({type(err).__name__}: {err})") from err


def is_grayscale(image: torch.Tensor) -> bool:
    """Return True when the ``[3, H, W]`` image's three channels are equal (a grayscale picture read as RGB)."""
    return bool(torch.equal(image[0], image[1]) and torch.equal(image[1], image[2]))


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """Return uint8 pixels, ``[H, W, 3]`` from a ``[3, H, W]`` tensor or ``[H, W]`` from a ``[1, H, W]`` one, of
    values in [0, 1] (clamped, rounded to nearest)."""
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected an image tensor [3, H, W] or [1, H, W], got shape {tuple(image.shape)}")
    values = image.detach().to("cpu", torch.float64)
    if not torch.isfinite(values).all():
        raise ValueError("image tensor holds NaN or infinite values")
    pixels = torch.round(values.clamp(0.0, 1.0) * 255.0).to(torch.uint8)
    return pixels[0].numpy() if image.shape[0] == 1 else pixels.permute(1, 2, 0).contiguous().numpy()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder renamed over it; returns the path.

    A failure leaves no partial file: either the old content or the new one is there.
    """
    path = Path(path)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def write_image(path: str | os.PathLike, image: torch.Tensor) -> Path:
    """Save a ``[3, H, W]`` tensor in [0, 1] as an 8-bit RGB PNG at ``path`` (a ``[1, H, W]`` one as an 8-bit
    grayscale PNG), atomically; returns the path.

    Values are clamped to [0, 1] and rounded to the nearest of 256 levels, so an image read from an 8-bit
    file is written back with the same pixels. The same tensor always gives the same bytes.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: write_image saves PNG files; give a name ending in .png")
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())
