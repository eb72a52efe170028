"""Small tensors measured together at the end of a sequence, instead of one by one during the forward.

Measuring a tensor takes about fifteen torch operations; for a tensor of a few hundred elements (ESDNet's attention
convolutions run on pooled features: about 200 such calls per forward) their fixed cost, ~10 us each on a CPU
and a kernel launch each on a GPU, is all there is. ``DeferredMeasurements.measure`` instead keeps a float64
copy of the tensor and returns placeholder tensors (``tensor_stats.TensorStats`` and accumulates, exactly as
``tensor_stats.measure`` returns them); ``fill()``, called when the sequence ends and before it is packed,
measures every kept tensor at once with scatter reductions (about twenty operations however many there are)
and copies the results into the placeholders. The values are those of ``tensor_stats.measure``: exact minima,
maxima, largest absolute fractional parts, nonzero counts per row and value-weighted sums in float64.

Index tensors that depend only on the kept tensors' shapes are built once per structure and reused.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import torch

from snn_energy.tensor_stats import TensorStats

DEFERRED_ELEMENTS = 4096  # tensors up to this many elements are measured at the end of the sequence


class _Entry(NamedTuple):
    values: torch.Tensor  # the tensor's elements, flat, float64 (a copy: later in-place changes do not reach it)
    rows: int
    weights: torch.Tensor | None  # one weight per element of a row of ``width`` elements, or None
    width: int
    scale: float
    block: torch.Tensor  # the placeholders' storage: [low, high, fraction, nonzero per row..., sums per row...]


def deferrable(x: torch.Tensor, rows: int, weights: torch.Tensor | None, width: int | None,
               steps: int | None) -> bool:
    """Whether a measurement can wait for ``DeferredMeasurements.fill`` (a small tensor split evenly into rows)."""
    count = x.numel()
    return steps is None and 0 < count <= DEFERRED_ELEMENTS and rows > 0 and count % rows == 0 and (
        weights is None or (width is not None and count % width == 0 and weights.shape[0] == width))


class DeferredMeasurements:
    """The small tensors of one sequence, kept until ``fill()``."""

    def __init__(self):
        self.entries: list[_Entry] = []

    def measure(self, x: torch.Tensor, rows: int, weights: torch.Tensor | None = None, width: int | None = None,
                scale: float = 1) -> tuple[TensorStats, torch.Tensor]:
        """Keep ``x`` (see ``deferrable``); return placeholders of its ``TensorStats`` and of its accumulates per
        row (``tensor_stats.measure``'s meaning), valid after ``fill()``."""
        if x.is_complex():
            x = x.abs()
        values = x.detach().reshape(-1).to(torch.float64, copy=True)
        block = torch.empty(3 + 2 * rows, dtype=torch.float64, device=x.device)
        self.entries.append(_Entry(values, rows, weights, width or x.numel() // rows, scale, block))
        return TensorStats(block[:3], block[3:3 + rows]), block[3 + rows:]

    def fill(self) -> None:
        """Measure every kept tensor at once and write the results into their placeholders (no synchronisation)."""
        if not self.entries:
            return
        entries, self.entries = self.entries, []
        device = entries[0].values.device
        plan = _plan(tuple((e.values.shape[0], e.rows, e.width, e.weights is not None, e.scale) for e in entries),
                     device)
        values = torch.cat([entry.values for entry in entries])
        # reductions into outputs of known size (scatter, not segment_reduce): nothing waits for the device
        extreme = lambda data, reduce, start: torch.full((len(entries),), start, dtype=torch.float64,
                                                          device=device).scatter_reduce_(0, plan.tensor_of, data, reduce)
        bounds = torch.stack((  # NaN propagates through amin and amax
            extreme(values, "amin", float("inf")), extreme(values, "amax", float("-inf")),
            extreme(torch.frac(values).abs_(), "amax", 0.0)), 1)
        row_sum = lambda data: torch.zeros(plan.rows, dtype=torch.float64, device=device).index_add_(
            0, plan.row_of, data)
        nonzero = row_sum((values != 0).to(torch.float64))
        weights = torch.cat([entry.weights.to(torch.float64) if entry.weights is not None else plan.one
                             for entry in entries])
        sums = row_sum(values.abs_().mul_(weights[plan.weight_of_element])).mul_(plan.row_scale)
        results = torch.cat((bounds.reshape(-1), nonzero, sums))[plan.order]
        torch._foreach_copy_([entry.block for entry in entries], list(results.split(plan.blocks)))


@dataclass(frozen=True)
class _Plan:
    """Index tensors of one structure of kept tensors (see ``_plan``)."""

    tensor_of: torch.Tensor  # [elements] the kept tensor of each element
    row_of: torch.Tensor  # [elements] the row (of all tensors' rows) of each element
    rows: int
    weight_of_element: torch.Tensor  # [elements] the position of each element's weight in the joined weights
    row_scale: torch.Tensor  # [rows] the scale of each row's tensor
    order: torch.Tensor  # positions, in (bounds, nonzero, sums), of each placeholder block's values in turn
    blocks: tuple  # block sizes
    one: torch.Tensor  # the weight of a tensor without weights


@functools.lru_cache(maxsize=16)
def _plan(structure: tuple, device) -> _Plan:
    """Index tensors for kept tensors of ``structure`` (per tensor: elements, rows, width, weighted, scale), built
    on the host once and moved to ``device``."""
    tensor_of, row_of, weight_of_element, row_scale, order = [], [], [], [], []
    weights_start, row_start = 0, 0
    tensors, total_rows = len(structure), sum(rows for _, rows, _, _, _ in structure)
    for index, (elements, rows, width, weighted, scale) in enumerate(structure):
        tensor_of += [index] * elements
        row_of += [row_start + r for r in range(rows) for _ in range(elements // rows)]
        row_scale += [scale] * rows
        if weighted:
            weight_of_element += [weights_start + j for j in range(width)] * (elements // width)
            weights_start += width
        else:
            weight_of_element += [weights_start] * elements
            weights_start += 1
        order += [3 * index + k for k in range(3)]
        order += [3 * tensors + row_start + r for r in range(rows)]
        order += [3 * tensors + total_rows + row_start + r for r in range(rows)]
        row_start += rows
    as_tensor = lambda values, dtype=torch.int64: torch.tensor(values, dtype=dtype).to(device, non_blocking=True)
    return _Plan(
        tensor_of=as_tensor(tensor_of),
        row_of=as_tensor(row_of),
        rows=total_rows,
        weight_of_element=as_tensor(weight_of_element),
        row_scale=as_tensor(row_scale, torch.float64),
        order=as_tensor(order),
        blocks=tuple(3 + 2 * rows for _, rows, _, _, _ in structure),
        one=torch.ones(1, dtype=torch.float64).to(device, non_blocking=True),
    )
