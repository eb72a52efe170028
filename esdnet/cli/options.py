"""Options shared by several sub-commands (ESDNet's and the profiling ones)."""
from __future__ import annotations

import argparse

import torch

from esdnet.cli.errors import UserError


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--device`` (``auto`` picks CUDA when available, else CPU)."""
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: %(default)s)")


def resolve_device(name: str) -> torch.device:
    """Return the torch device for a ``--device`` value; raises UserError for one that is absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UserError(f"--device {name!r}: {err}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name!r}: CUDA is not available on this machine")
    return device
