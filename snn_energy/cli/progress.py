"""A progress bar for the commands that loop over images: shown on a terminal, silent in pipes and CI logs."""
from __future__ import annotations

from tqdm import tqdm


def progress_bar(total: int, desc: str, unit: str = "image") -> tqdm:
    """Return a tqdm bar over ``total`` items (done count and rate, on stderr); disabled when stderr is not a
    terminal. Use it as a context manager and call ``update(n)``."""
    return tqdm(total=total, desc=desc, unit=unit, disable=None, dynamic_ncols=True, leave=False)
