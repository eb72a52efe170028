"""Shared test fixtures: the read-only ``../shared`` folder beside the repository, when present."""
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's shared folder (``../shared``); skips the test when a clone lacks it."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: it holds the authors' state_dict layout and the Rain100L sample")
    return SHARED


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Keep tests on the CI's two cores predictable."""
    torch.set_num_threads(2)
    yield
