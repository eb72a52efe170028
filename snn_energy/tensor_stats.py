"""What a tensor holds, measured on its device: binary spikes, integer values or real values, and nonzero counts.

``measure(x, rows)`` returns a ``TensorStats`` of device tensors (no host synchronisation): the smallest and
largest element, the sum of the absolute fractional parts (zero exactly when every element is a whole number;
NaN and inf make it non-zero), and the nonzero elements per row. The kind is decided on the host from the three
scalars (``kind_of``), once per sequence, when the profiler moves everything it measured in one transfer.
The checks are exact: every element is looked at, and the sums involved are of nonnegative terms (a sum of
nonnegative numbers is zero exactly when each is) or of whole numbers below 2**24 in float32 (float64 beyond).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

BINARY = "binary"  # every element is 0 or 1
INTEGER = "integer"  # every element is a whole number, some not in {0, 1} (e.g. summed spikes of SEW blocks)
REAL = "real"  # anything else
KINDS = (BINARY, INTEGER, REAL)

EXACT_FLOAT32 = 2 ** 24  # whole numbers up to this are exact in float32 sums


def most_general_kind(kinds) -> str:
    """Return the most general of some kinds (REAL > INTEGER > BINARY), or "" when none is given."""
    present = set(kinds)
    return next((kind for kind in reversed(KINDS) if kind in present), "")


def kind_of(low: float, high: float, fraction: float) -> str:
    """Return the kind of a tensor from its measured minimum, maximum and summed absolute fractional parts."""
    if not fraction == 0.0:  # NaN included
        return REAL
    return BINARY if low >= 0 and high <= 1 else INTEGER


@dataclass(frozen=True)
class TensorStats:
    """Device-side measurements of one tensor: ``low``/``high``/``fraction`` (0-dim) and ``nonzero`` ([rows])."""

    low: torch.Tensor
    high: torch.Tensor
    fraction: torch.Tensor
    nonzero: torch.Tensor

    def scalars(self) -> tuple:
        return self.low, self.high, self.fraction


def row_sum(values: torch.Tensor) -> torch.Tensor:
    """Return the exact sums of the rows of a 2-D tensor of whole numbers (float32 when exact, else float64)."""
    return values.sum(1, dtype=torch.float32 if values.shape[1] <= EXACT_FLOAT32 else torch.float64)


def measure(x: torch.Tensor, rows: int) -> tuple[TensorStats, torch.Tensor]:
    """Return the ``TensorStats`` of ``x`` (``rows`` leading rows for the nonzero counts) and ``|x|`` as float
    (a temporary the caller may reuse, e.g. for value-weighted accumulates). Nothing leaves the device."""
    if x.is_complex():
        x = x.abs()
    elif x.dtype == torch.bool or not x.is_floating_point():
        x = x.to(torch.float32)
    flat = x.reshape(rows, -1) if x.numel() else x.reshape(rows, 0)
    if flat.shape[1] == 0:
        zero = torch.zeros((), device=x.device)
        return TensorStats(zero, zero, zero, torch.zeros(rows, device=x.device)), flat
    low, high = torch.aminmax(flat)
    magnitude = flat.abs()
    nonzero = row_sum(torch.sign(magnitude))
    fraction = magnitude.frac().sum()
    return TensorStats(low, high, fraction, nonzero), magnitude


def describe(x: torch.Tensor, sample_dims: int = 1) -> tuple[str, torch.Tensor]:
    """Return the kind of ``x`` and its nonzero count per index of its first ``sample_dims`` dimensions
    (float64, on the CPU). A convenience for one tensor: it synchronises with the device."""
    rows = 1
    for size in x.shape[:sample_dims]:
        rows *= size
    stats, _ = measure(x.reshape(1) if x.dim() == 0 else x, max(rows, 1))
    low, high, fraction = (float(v) for v in torch.stack(stats.scalars()).double().cpu())
    return kind_of(low, high, fraction), stats.nonzero.double().cpu()


def value_kind(x: torch.Tensor) -> str:
    """Return BINARY, INTEGER or REAL for the values of the whole tensor ``x`` (synchronises)."""
    return describe(x, 0)[0]
