"""Where the bundled demo checkpoints are, for commands whose checkpoint option is left out."""
from __future__ import annotations

from pathlib import Path

import esdnet
from esdnet.cli.errors import UserError

WEIGHTS_DIR = Path(esdnet.__file__).resolve().parent / "weights"
DEMO_SNN = WEIGHTS_DIR / "demo_snn_small.pth"
DEMO_ANN = WEIGHTS_DIR / "demo_ann_small.pth"


def checkpoint_or_demo(given: str | Path | None, demo: Path, option: str) -> Path:
    """Return ``given`` as a Path, else the bundled ``demo`` checkpoint; raise UserError if that one is missing."""
    if given is not None:
        return Path(given)
    if not demo.is_file():
        raise UserError(f"no {option} given and the bundled demo checkpoint {demo} is missing "
                        "(regenerate it with benchmarks/train_demo_models.sh)")
    return demo
