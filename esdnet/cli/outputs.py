"""Output paths checked before any work, with errors in words (no raw errno text)."""
from __future__ import annotations

import os
from pathlib import Path

from esdnet.cli.errors import UserError

FOLDER, FILE = "folder", "file"


def _nearest_existing(path: Path) -> Path:
    """Return ``path`` or its closest ancestor that exists (as something: a folder, a file)."""
    path = path.absolute()
    while not path.exists() and not path.is_symlink() and path != path.parent:
        path = path.parent
    return path


def check_output(path: str | os.PathLike, option: str, kind: str = FOLDER) -> Path:
    """Return ``path`` as a Path if a ``kind`` (``"folder"`` or ``"file"``) can be written there; raise UserError.

    Refused, in words naming ``option`` and the path: a folder wanted where a file is (or the reverse), a path
    below a file (``file.png/sub``), and a place the user may not write in (the folder itself when it exists,
    else the nearest existing folder above it, where the missing ones will be created).
    """
    path = Path(path)
    if kind not in (FOLDER, FILE):
        raise ValueError(f"kind must be {FOLDER!r} or {FILE!r}, got {kind!r}")
    if path.exists():
        if kind == FOLDER and not path.is_dir():
            raise UserError(f"{option} {path}: is a file, not a folder")
        if kind == FILE and path.is_dir():
            raise UserError(f"{option} {path}: is a folder, not a file")
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        raise UserError(f"{option} {path}: cannot be created, {ancestor} is a file, not a folder")
    for place in ([path] if path.is_dir() else []) + [ancestor]:
        if not os.access(place, os.W_OK | os.X_OK):
            raise UserError(f"{option} {path}: no permission to write in {place}")
    return path
