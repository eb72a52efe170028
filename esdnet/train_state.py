"""Training checkpoints that load with ``torch.load(weights_only=True)``: random states and atomic writes.

Everything saved is a tensor, number, string, bool, None, list or dict: the random states of Python's
``random`` and NumPy are converted from tuples and arrays to lists and tensors, and back on restore.
"""
from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from esdnet.checkpoint import CheckpointError, read_checkpoint_file
from esdnet.imageio import atomic_write_bytes


def capture_rng_state() -> dict[str, Any]:
    """Return the states of torch (CPU and every CUDA device), Python ``random`` and NumPy's global generator."""
    version, internal, gauss_next = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Set the generators to a state returned by ``capture_rng_state`` (CUDA ones only when devices match)."""
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"]), python["gauss_next"]))
    numpy = state["numpy"]
    np.random.set_state({
        "bit_generator": numpy["bit_generator"],
        "state": {"key": numpy["key"].numpy().astype(np.uint32), "pos": numpy["pos"]},
        "has_gauss": numpy["has_gauss"],
        "gauss": numpy["gauss"],
    })


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` ``obj`` to ``path`` through a temporary file renamed over it; returns the path.

    A crash mid-write leaves the previous file (or none), never a truncated one.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


REQUIRED_KEYS = ("state_dict", "config", "arch", "options", "optimizer", "scheduler", "epoch", "step_in_epoch",
                 "global_step", "rng")


def read_training_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Return the dict of a training checkpoint written by ``esdnet.train`` (safe loading, on the CPU).

    Raises CheckpointError naming the file when it is missing, unreadable or lacks the training state (a
    weights-only file cannot be resumed).
    """
    path = Path(path)
    checkpoint = read_checkpoint_file(path)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path}: not a training checkpoint (found {type(checkpoint).__name__}, expected a dict)")
    missing = [key for key in REQUIRED_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path}: not a resumable training checkpoint: missing {missing} "
                              "(weights-only files cannot be resumed)")
    return checkpoint
