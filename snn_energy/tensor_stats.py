"""What a tensor holds, measured on its device: binary spikes, integer values or real values, and nonzero counts.

``measure(x, rows)`` returns a ``TensorStats`` of device tensors (no host synchronisation): the smallest and
largest element, the largest absolute fractional part (zero exactly when every element is a whole number; NaN
and inf make it NaN), and the nonzero elements per row; for a ``[T, N, ...]`` neuron output (``steps=T``) also,
per image, the neurons nonzero at some timestep and those nonzero at every timestep. The kind is decided on the
host from the three scalars (``kind_of``), once per sequence, when the profiler moves everything it measured in
one transfer. The checks are exact: every element is looked at; minima and maxima involve no rounding, and the
sums are of 0/1 indicators (exact in float32 below 2**24 per row) or, for the value-weighted accumulates, of whole
numbers below 2**24 in float32 (float64 beyond).

Cost: each measured element is read or written about seven times (minimum and maximum, fractional part and its
extremes, nonzero indicator and its row sums, and for accumulates its magnitude and one matrix-vector product),
through two reusable scratch buffers: nothing is allocated per call once the buffers have grown.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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


KIND_NAMES = ("", *KINDS)  # kind codes are indices in this tuple: 0 none, then binary, integer, real (most general)
BINARY_CODE, INTEGER_CODE, REAL_CODE = (KIND_NAMES.index(kind) for kind in KINDS)


def kind_codes(low: np.ndarray, high: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Return the kind codes (see ``KIND_NAMES``) of tensors from their measured minima, maxima and largest absolute
    fractional parts: real unless every fractional part is zero (NaN is not), binary within [0, 1], else integer."""
    return np.where(fraction == 0.0, np.where((low >= 0) & (high <= 1), BINARY_CODE, INTEGER_CODE), REAL_CODE)


def kind_of(low: float, high: float, fraction: float) -> str:
    """Return the kind of one tensor from its measured minimum, maximum and largest absolute fractional part."""
    return KIND_NAMES[int(kind_codes(np.float64(low), np.float64(high), np.float64(fraction)))]


@dataclass(frozen=True)
class TensorStats:
    """Device-side measurements of one tensor: ``bounds`` (``[low, high, fraction]``: its minimum, maximum and
    largest absolute fractional part, one 3-vector so that packing a sequence concatenates instead of stacking
    thousands of scalars), ``nonzero`` ([rows]) and, for a neuron output measured over timesteps, ``ever`` /
    ``always`` ([images]: neurons nonzero at some / at every timestep)."""

    bounds: torch.Tensor
    nonzero: torch.Tensor
    ever: torch.Tensor | None = None
    always: torch.Tensor | None = None


def row_sum(values: torch.Tensor) -> torch.Tensor:
    """Return the exact sums of the rows of a 2-D tensor of whole numbers (float32 when exact, else float64)."""
    return values.sum(1, dtype=torch.float32 if values.shape[1] <= EXACT_FLOAT32 else torch.float64)


_CHUNK_ELEMENTS = 1 << 20  # on the CPU, temporaries stay this small (or one row, or one neuron output), and are reused
_DEVICE_CHUNK_ELEMENTS = 1 << 26  # on an accelerator, larger chunks: each one costs a kernel launch per operation
_SMALL_ELEMENTS = 1 << 15  # below this, temporaries are allocated: writing into a buffer (``out=``) costs more
_scratch: dict = {}


def _buffer(elements: int, dtype, device) -> torch.Tensor:
    """A reusable flat scratch tensor of at least ``elements`` elements (grown when needed)."""
    key = (dtype, device)
    buffer = _scratch.get(key)
    if buffer is None or buffer.numel() < elements:
        buffer = _scratch[key] = torch.empty(elements, dtype=dtype, device=device)
    return buffer


def _stats_of(piece: torch.Tensor, scratch: torch.Tensor | None) -> tuple:
    """([low, high, largest |fractional part|], 0/1 nonzero indicator) of a 2-D piece; the temporaries are written
    to ``scratch`` (None: allocated, cheaper for small pieces than writing to a buffer)."""
    low, high = torch.aminmax(piece)
    fraction = torch.frac(piece) if scratch is None else torch.frac(piece, out=scratch)
    fraction_low, fraction_high = torch.aminmax(fraction)
    largest = torch.maximum(fraction_high, fraction_low.neg())  # zero exactly when both are (NaN propagates)
    return torch.stack((low, high, largest)), (piece != 0) if scratch is None else torch.ne(piece, 0, out=scratch)


def measure(x: torch.Tensor, rows: int, weights: torch.Tensor | None = None, width: int | None = None,
            stats: bool = True, accumulates: bool = False, steps: int | None = None,
            scale: float = 1) -> tuple[TensorStats | None, torch.Tensor | None]:
    """Measure ``x`` on its device; return its ``TensorStats`` (nonzero counts per one of ``rows`` leading rows)
    when ``stats``, and when ``accumulates`` the value-weighted sums per row, float64: the sum of ``|x|``, each
    element weighted by ``weights[j]`` (``x`` seen as ``[-1, width]`` rows of ``width`` elements) when given, times
    ``scale``.
    ``steps``: ``x`` is ``[steps, images, ...]`` (``rows = steps * images``); the stats then also count, per
    image, the elements nonzero at some timestep (``ever``) and at every timestep (``always``).

    Chunks of about a million elements on the CPU, 64 million on an accelerator (rows of ``width``; columns,
    holding every timestep, when ``steps`` is given) go through reusable scratch buffers. The weighted sums are
    exact while each row's sum stays below 2**24 in float32 (``weights.dtype`` float64 computes in float64).
    """
    if x.is_complex():
        x = x.abs()
    elif x.dtype == torch.bool or not x.is_floating_point():
        x = x.to(torch.float32)
    dtype = torch.float64 if (weights is not None and weights.dtype == torch.float64) or x.dtype == torch.float64 \
        else torch.float32
    if weights is not None and weights.dtype != dtype:
        weights = weights.to(dtype)
    if x.numel() == 0 or rows == 0:
        empty = torch.zeros(rows, device=x.device)
        per_image = torch.zeros(rows // steps if steps else 0, device=x.device)
        measured = TensorStats(torch.zeros(3, device=x.device), empty, *((per_image, per_image) if steps else ()))
        return (measured if stats else None), (empty.double() if accumulates else None)
    width = width or x.numel() // rows
    grid = x.reshape(-1, width)
    chunk = _CHUNK_ELEMENTS if x.device.type == "cpu" else _DEVICE_CHUNK_ELEMENTS
    if steps:  # chunks of columns (neurons), so that every chunk holds all the timesteps of its neurons
        columns = max(1, chunk // grid.shape[0])
        pieces = [grid[:, start:start + columns] for start in range(0, width, columns)]
    else:  # chunks of rows
        step = max(1, chunk // width)
        pieces = [grid[start:start + step] for start in range(0, grid.shape[0], step)]
    small = x.numel() <= _SMALL_ELEMENTS
    scratch = None if small else _buffer(pieces[0].numel(), x.dtype, x.device)
    magnitudes = _buffer(pieces[0].numel(), dtype, x.device) if (
        accumulates and not small and dtype != x.dtype) else scratch  # float64 sums need a float64 buffer
    if len(pieces) == 1:  # the common case, without lists
        sums = _weighted_sums(grid, weights, dtype, magnitudes) if accumulates else None
        measured = _piece_stats(grid, scratch, rows, steps) if stats else None
        return measured, (None if sums is None else _scaled(_per_row(sums, rows), scale))
    if steps:
        offsets = range(0, width, columns)
        sums = torch.stack([_weighted_sums(piece, None if weights is None else weights[start:start + columns],
                                           dtype, magnitudes) for start, piece in zip(offsets, pieces)]).sum(0) \
            if accumulates else None
    else:
        sums = torch.cat([_weighted_sums(piece, weights, dtype, magnitudes) for piece in pieces]) if accumulates \
            else None
    measured = _combined_stats([_piece_stats(piece, scratch, piece.shape[0], steps) for piece in pieces], rows,
                               by_columns=bool(steps)) if stats else None
    return measured, (None if sums is None else _scaled(_per_row(sums, rows), scale))


def _scaled(sums: torch.Tensor, scale: float) -> torch.Tensor:
    """``sums`` in float64, times ``scale``."""
    sums = sums.to(torch.float64)
    return sums if scale == 1 else sums * scale


def _combined_stats(parts: list, rows: int, by_columns: bool) -> TensorStats:
    """The ``TensorStats`` of a tensor from those of its chunks: of its columns (counts add up) or of its rows."""
    bounds = torch.stack([part.bounds for part in parts])  # [parts, 3]
    bounds = torch.cat((bounds[:, :1].amin(0), bounds[:, 1:].amax(0)))  # NaN propagates
    if not by_columns:
        return TensorStats(bounds, _per_row(torch.cat([part.nonzero for part in parts]), rows))
    total = lambda name: None if getattr(parts[0], name) is None else torch.stack(
        [getattr(part, name) for part in parts]).sum(0)
    return TensorStats(bounds, total("nonzero"), total("ever"), total("always"))


def _weighted_sums(piece: torch.Tensor, weights: torch.Tensor | None, dtype, buffer: torch.Tensor | None):
    """Per row of a 2-D piece: the sum of ``|x|``, weighted by ``weights`` when given (in ``dtype``)."""
    if buffer is None:
        magnitude = piece.to(dtype).abs()
    else:
        magnitude = buffer[:piece.numel()].view(piece.shape)
        magnitude = torch.abs(piece, out=magnitude) if magnitude.dtype == piece.dtype else magnitude.copy_(
            piece).abs_()
    return torch.mv(magnitude, weights) if weights is not None else magnitude.sum(1)


def _piece_stats(piece: torch.Tensor, scratch: torch.Tensor | None, rows: int, steps: int | None) -> TensorStats:
    """The ``TensorStats`` of a 2-D piece, nonzero counts per one of ``rows`` rows (``steps``: see ``measure``)."""
    bounds, indicator = _stats_of(piece, None if scratch is None else scratch[:piece.numel()].view(piece.shape))
    ever = always = None
    if steps:
        per_neuron = indicator.view(steps, rows // steps, -1)
        ever, always = row_sum(per_neuron.amax(0)), row_sum(per_neuron.amin(0))
    return TensorStats(bounds, _per_row(row_sum(indicator), rows), ever, always)


def _per_row(values: torch.Tensor, rows: int) -> torch.Tensor:
    """Sums of ``values`` (one per row of the measured grid) per one of ``rows`` leading rows."""
    return values if values.shape[0] == rows else values.reshape(rows, -1).sum(1, dtype=torch.float64)


def describe(x: torch.Tensor, sample_dims: int = 1) -> tuple[str, torch.Tensor]:
    """Return the kind of ``x`` and its nonzero count per index of its first ``sample_dims`` dimensions
    (float64, on the CPU). A convenience for one tensor: it synchronises with the device."""
    rows = 1
    for size in x.shape[:sample_dims]:
        rows *= size
    stats, _ = measure(x.reshape(1) if x.dim() == 0 else x, max(rows, 1))
    low, high, fraction = (float(v) for v in stats.bounds.double().cpu())
    return kind_of(low, high, fraction), stats.nonzero.double().cpu()
