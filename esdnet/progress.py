"""Progress bars that show on a terminal only: quiet when stderr is a pipe, a file or a CI log."""
from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(iterable=None, *, enabled: bool = True, **options) -> tqdm:
    """Return a tqdm bar over ``iterable`` (``options`` as tqdm's), drawn on stderr only when ``enabled`` and
    stderr is a terminal; otherwise a silent pass-through."""
    return tqdm(iterable, disable=not (enabled and sys.stderr.isatty()), **options)
