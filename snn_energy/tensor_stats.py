"""What a tensor holds, checked at run time: binary spikes, integer values or real values, and its nonzero counts.

The checks are exact (every element is looked at whenever the answer could be "binary" or "integer") and use
only cheap element-wise passes (min/max, fractional parts, float sums) over chunks of about a million elements,
so that they never allocate a copy of a whole activation; a first sample of elements usually proves a tensor
real-valued without a full pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

import torch

BINARY = "binary"  # every element is 0 or 1
INTEGER = "integer"  # every element is a whole number, some not in {0, 1} (e.g. summed spikes of SEW blocks)
REAL = "real"  # anything else
KINDS = (BINARY, INTEGER, REAL)

_SAMPLE_SIZE = 4096
_CHUNK_ELEMENTS = 1 << 20  # temporaries of the checks stay this small
_EXACT_FLOAT32 = 2 ** 24  # whole numbers up to this are exact in float32 sums


def most_general_kind(kinds) -> str:
    """Return the most general of some kinds (REAL > INTEGER > BINARY), or "" when none is given."""
    present = set(kinds)
    return next((kind for kind in reversed(KINDS) if kind in present), "")


@dataclass(frozen=True)
class TensorSummary:
    """A tensor's kind, its nonzero elements per sample (float64, one per index of its sample axes), and the
    largest absolute value when it was computed (None for a tensor proved real-valued by its first elements)."""

    kind: str
    nonzero: torch.Tensor
    max_abs: float | None = None


def _first_elements(x: torch.Tensor) -> torch.Tensor:
    """Return some leading elements of ``x`` (up to ``_SAMPLE_SIZE``), without copying ``x``."""
    while x.dim() > 1 and x.numel() > _SAMPLE_SIZE:
        x = x[0]
    return x.reshape(-1)[:_SAMPLE_SIZE]


def _pieces(x: torch.Tensor):
    """Yield views of ``x`` that together hold each element once, of about ``_CHUNK_ELEMENTS`` each or less."""
    if x.numel() <= _CHUNK_ELEMENTS or x.dim() == 0:
        yield x
    elif x.is_contiguous():
        yield from x.view(-1).split(_CHUNK_ELEMENTS)
    elif x.dim() == 1:
        yield x
    else:
        for piece in x.split(max(_CHUNK_ELEMENTS // max(x[0].numel(), 1), 1)):
            yield from (_pieces(piece[0]) if piece.shape[0] == 1 else (piece,))


def exact_sum(rows: torch.Tensor) -> torch.Tensor:
    """Return the float64 row sums of a 2-D tensor of small whole numbers, exactly (float32 when that suffices)."""
    dtype = torch.float32 if rows.shape[1] <= _EXACT_FLOAT32 else torch.float64
    return rows.sum(1, dtype=dtype).double()


def _per_sample_sum(x: torch.Tensor, sample_dims: int) -> torch.Tensor:
    """Return the exact float64 sums of a tensor of small whole numbers per index of its first ``sample_dims`` axes."""
    dims = tuple(range(sample_dims, x.dim()))
    if not dims:
        return x.double().reshape(-1)
    dtype = torch.float32 if prod(x.shape[sample_dims:]) <= _EXACT_FLOAT32 else torch.float64
    return x.sum(dims, dtype=dtype).double().reshape(-1)


def _count_nonzero(x: torch.Tensor, sample_dims: int) -> torch.Tensor:
    """Return the number of nonzero elements per index of the first ``sample_dims`` axes (float64)."""
    def indicator(t: torch.Tensor) -> torch.Tensor:
        return torch.sign(t).abs_() if t.is_floating_point() else t.ne(0).to(torch.float32)

    if not x.is_contiguous():
        return _per_sample_sum(indicator(x), sample_dims)
    rows = x.reshape(prod(x.shape[:sample_dims]) if x.dim() >= sample_dims else 1, -1)
    total = torch.zeros(rows.shape[0], dtype=torch.float64, device=rows.device)
    for chunk in rows.split(max(_CHUNK_ELEMENTS // max(rows.shape[0], 1), 1), dim=1):
        total += exact_sum(indicator(chunk))
    return total


def _has_fraction(x: torch.Tensor, nonnegative: bool = False) -> bool:
    """Return True when some element of the float tensor ``x`` is not a whole number (NaN and inf included).

    A sum of nonnegative terms is zero exactly when every term is: one float sum per piece, no comparison pass.
    """
    for piece in _pieces(x):
        fractions = piece.frac()
        if not float((fractions if nonnegative else fractions.abs_()).sum()) == 0.0:
            return True
    return False


def _kind_and_range(x: torch.Tensor) -> tuple[str, float | None]:
    """Return the kind of ``x`` and its largest absolute value (None when its first elements proved it real)."""
    if x.dtype == torch.bool:
        return BINARY, 1.0
    if x.is_complex():
        return REAL, None
    if x.is_floating_point() and _has_fraction(_first_elements(x)):
        return REAL, None
    low, high = (float(v) for v in torch.aminmax(x)) if x.numel() else (0.0, 0.0)
    max_abs = max(abs(low), abs(high))
    if x.is_floating_point() and _has_fraction(x, nonnegative=low >= 0):
        return REAL, max_abs
    return (BINARY if low >= 0 and high <= 1 else INTEGER), max_abs


def value_kind(x: torch.Tensor) -> str:
    """Return BINARY, INTEGER or REAL for the values of the whole tensor ``x``."""
    return _kind_and_range(x)[0]


def describe(x: torch.Tensor, sample_dims: int = 1) -> TensorSummary:
    """Return the kind of ``x`` (BINARY, INTEGER or REAL, for the whole tensor) and its nonzero count per index
    of its first ``sample_dims`` dimensions (flattened: ``[N]``, or ``[T * N]`` for ``sample_dims=2``)."""
    kind, max_abs = _kind_and_range(x)
    if kind == BINARY and x.is_floating_point():
        # the sum of 0/1 values is their nonzero count
        return TensorSummary(kind, _per_sample_sum(x, sample_dims), max_abs)
    return TensorSummary(kind, _count_nonzero(x, sample_dims), max_abs)
