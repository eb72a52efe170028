"""Safe loading of ESDNet checkpoints: the authors' published files and this project's training checkpoints.

A checkpoint is read with ``torch.load(..., weights_only=True)``, so a file holding pickled code is refused
instead of run. The state_dict may be the file itself, sit under ``"state_dict"`` (or ``"model"``), and carry
a ``module.`` prefix on every key (saved from ``nn.DataParallel``/DDP). This project's files also record the
architecture they were trained as (``"arch": "snn"`` or ``"ann"``), which loading follows; the authors' files
record none and load as the SNN.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Mapping

import torch

from esdnet.config import ESDNetConfig, infer_config
from esdnet.model import ARCHS, ESDNet

STATE_DICT_KEYS = ("state_dict", "model")  # where a wrapping dict may keep the weights
DATA_PARALLEL_PREFIX = "module."
MAX_LISTED = 5  # offending keys named in one error message


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def read_checkpoint_file(path: str | Path) -> object:
    """Return the object a checkpoint file holds, read safely on the CPU; raise CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes), not a PyTorch checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first_line = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path}: refused: the file holds pickled objects that safe loading (weights_only=True) does not "
            f"allow, such as code; it was not run ({first_line})"
        ) from err
    except Exception as err:  # an untrusted file can fail the unpickler in many ways (KeyError, EOFError, ...)
        reason = str(err).strip() or type(err).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated or another format): {reason}"
                              ) from err


def extract_state_dict(obj: object, path: Path | str = "<checkpoint>") -> dict[str, torch.Tensor]:
    """Return the tensor dict inside a loaded checkpoint object, unwrapped and with ``module.`` prefixes removed."""
    if isinstance(obj, Mapping):
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: not a checkpoint: expected a dict of tensors, found {type(obj).__name__}")
    not_tensors = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{path}: not a state_dict: entries that are not tensors: {not_tensors[:MAX_LISTED]}")
    if all(k.startswith(DATA_PARALLEL_PREFIX) for k in obj):
        obj = {k[len(DATA_PARALLEL_PREFIX):]: v for k, v in obj.items()}
    return dict(obj)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Return the state_dict (name -> tensor, on CPU) held by a checkpoint file, whatever its layout."""
    path = Path(path)
    return extract_state_dict(read_checkpoint_file(path), path)


def recorded_arch(obj: object, path: Path | str = "<checkpoint>") -> str | None:
    """Return the architecture a loaded checkpoint object records (``"snn"`` or ``"ann"``), None if it records none."""
    arch = obj.get("arch") if isinstance(obj, Mapping) else None
    if arch is None:
        return None
    if arch not in ARCHS:
        raise CheckpointError(f"{path}: records an unknown architecture {arch!r} (expected one of {ARCHS})")
    return arch


def checkpoint_arch(path: str | Path) -> str | None:
    """Return the architecture recorded in a checkpoint file (``"snn"``/``"ann"``), None when it records none."""
    return recorded_arch(read_checkpoint_file(path), path)


def check_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], path: Path | str) -> None:
    """Raise CheckpointError naming the first missing, unexpected or wrongly shaped keys; return None if all match."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k}: checkpoint {list(state_dict[k].shape)} {state_dict[k].dtype}, model {list(v.shape)} {v.dtype}"
        for k, v in expected.items()
        if k in state_dict and (state_dict[k].shape != v.shape or state_dict[k].dtype != v.dtype)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys, first {missing[:MAX_LISTED]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys, first {unexpected[:MAX_LISTED]}")
    if wrong:
        problems.append(f"{len(wrong)} keys of the wrong shape or dtype, first {wrong[:MAX_LISTED]}")
    if problems:
        raise CheckpointError(f"{path}: does not match ESDNet: " + "; ".join(problems))


def build_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], arch: str = "snn", single_pass: bool = False, path: Path | str = "<state_dict>"
) -> ESDNet:
    """Return an ESDNet whose architecture is inferred from ``state_dict``, with those weights loaded."""
    try:
        config: ESDNetConfig = infer_config(state_dict)
    except (ValueError, IndexError) as err:
        raise CheckpointError(f"{path}: {err}") from err
    model = ESDNet(config, arch=arch, single_pass=single_pass)
    check_state_dict(model, state_dict, path)
    model.load_state_dict(state_dict)
    return model


def resolve_arch(recorded: str | None, asked: str | None, path: Path | str) -> str:
    """Return the architecture to build: the one ``asked`` for, else the ``recorded`` one, else ``"snn"``.

    Raises CheckpointError naming the file and both architectures when ``asked`` contradicts ``recorded``: an
    SNN's weights in the ANN twin (or the reverse) run, but derain badly, so it is never done silently.
    """
    if asked is not None and asked not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS} or None, got {asked!r}")
    if asked is not None and recorded is not None and asked != recorded:
        raise CheckpointError(f"{path}: records arch {recorded!r} (it was trained as the {recorded.upper()}), but "
                              f"arch {asked!r} was asked for")
    return asked or recorded or "snn"


def load_model(
    path: str | Path, arch: str | None = None, device: str | torch.device = "cpu", single_pass: bool = False
) -> ESDNet:
    """Return the ESDNet of a checkpoint, SNN or ANN twin, in eval mode on ``device``.

    ``arch``: None (default) loads the architecture the file records (this project's checkpoints record
    ``"snn"`` or ``"ann"``), or the SNN for a file recording none (the authors'); ``"snn"`` or ``"ann"`` asks
    for one, and a file recording the other is refused (CheckpointError naming both). The sizes (width, blocks
    per level, T) are inferred from the checkpoint's names and shapes.
    """
    obj = read_checkpoint_file(path)
    arch = resolve_arch(recorded_arch(obj, path), arch, path)
    model = build_from_state_dict(extract_state_dict(obj, path), arch=arch, single_pass=single_pass, path=path)
    return model.to(device).eval()
