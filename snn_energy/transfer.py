"""Device-side counts packed into one tensor, moved to the host in one transfer, and resolved there.

The profiler measures every call on the model's device (``handlers.CallCounts``); at the end of a sequence it
``pack``s them into one flat float64 device tensor (one stack, one concatenation: no synchronisation), and when
the rows are wanted it moves every packed sequence to the host at once (``to_host``) and ``resolve``s each call:
the kinds are decided from the measured minimum, maximum and fractional parts, and a synaptic call's exact
accumulates are kept when its chosen operand is binary or integer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from snn_energy.handlers import CallCounts
from snn_energy.tensor_stats import BINARY, INTEGER, REAL, kind_of


@dataclass
class Resolved:
    """Host-side counts of one call (see ``handlers.CallCounts``); per-sample arrays are float64 numpy arrays."""

    role: str
    samples: int
    macs: int
    mults: int
    adds: int
    neurons: int
    input_kind: str = ""
    input_elements: float = 0
    input_nonzero: np.ndarray | None = None
    sops: np.ndarray | None = None
    output_kind: str = ""
    spikes: np.ndarray | None = None
    input_low: float = 0.0
    dead: np.ndarray | None = None
    saturated: np.ndarray | None = None
    repeated: bool | None = None
    extra: dict | None = None

    @property
    def real_input_macs(self) -> int:
        """The call's MACs when its input was real-valued (what a strict accounting charges as MACs), else 0."""
        return self.macs if self.input_kind == REAL else 0


class _Packer:
    """Collects 0-dim and 1-D device tensors; ``flat()`` returns them as one float64 tensor (scalars first)."""

    def __init__(self, device):
        self.scalars = [torch.zeros((), dtype=torch.float64, device=device)]
        self.vectors = [torch.empty(0, dtype=torch.float64, device=device)]
        self.vector_length = 0

    def scalar(self, value: torch.Tensor) -> tuple:
        self.scalars.append(value)
        return ("s", len(self.scalars) - 1)

    def vector(self, value: torch.Tensor) -> tuple:
        value = value.reshape(-1)
        self.vectors.append(value)
        start = self.vector_length
        self.vector_length += value.shape[0]
        return ("v", start, self.vector_length)

    def flat(self) -> torch.Tensor:
        return torch.cat([torch.stack(self.scalars).to(torch.float64), torch.cat(self.vectors).to(torch.float64)])


def _stats_slots(packer: _Packer, stats) -> tuple:
    return tuple(packer.scalar(v) for v in stats.scalars()) + (packer.vector(stats.nonzero),)


def pack(calls: list[CallCounts], extras: dict | None = None, device=None) -> tuple[torch.Tensor, tuple]:
    """Return one flat float64 device tensor holding every measured tensor of ``calls`` (and of ``extras``, a
    dict name -> tensor), and the layout that ``resolve`` reads it back with. No host synchronisation."""
    if device is None:
        device = next((op.stats.low.device for c in calls for op in c.operands), None) or next(
            (c.output.low.device for c in calls if c.output is not None), None) or next(
            (t.device for t in (extras or {}).values()), torch.device("cpu"))
    packer = _Packer(device)
    layouts = []
    for counts in calls:
        layout = {
            "operands": [(_stats_slots(packer, op.stats), op.elements,
                          None if op.accumulates is None else packer.vector(op.accumulates)) for op in counts.operands],
            "output": None if counts.output is None else _stats_slots(packer, counts.output),
        }
        for name in ("dead", "saturated"):
            value = getattr(counts, name)
            layout[name] = None if value is None else packer.vector(value)
        layout["repeated"] = None if counts.repeated is None else packer.scalar(counts.repeated)
        layout["extra"] = {name: packer.vector(value) for name, value in counts.extra.items()}
        layouts.append(layout)
    extra_layout = {name: packer.vector(value) for name, value in (extras or {}).items()}
    with torch._C.DisableTorchFunction():
        flat = packer.flat()
    return flat, (len(packer.scalars), layouts, extra_layout)


def to_host(flats: list[torch.Tensor]) -> list[np.ndarray]:
    """Move packed tensors to the host in one transfer; return them as float64 numpy arrays."""
    if not flats:
        return []
    with torch._C.DisableTorchFunction():
        joined = torch.cat(flats).cpu().numpy()
    parts, start = [], 0
    for flat in flats:
        parts.append(joined[start:start + flat.shape[0]])
        start += flat.shape[0]
    return parts


def _read(values: np.ndarray, scalars: int, slot):
    if slot is None:
        return None
    if slot[0] == "s":
        return float(values[slot[1]])
    return values[scalars + slot[1]:scalars + slot[2]]


def _read_stats(values, scalars, slots):
    low, high, fraction, nonzero = (_read(values, scalars, slot) for slot in slots)
    return kind_of(low, high, fraction), low, nonzero


def resolve(calls: list[CallCounts], values: np.ndarray, layout: tuple) -> tuple[list[Resolved], dict]:
    """Return the host-side counts of ``calls`` from their packed ``values`` (see ``pack``), and the extras."""
    scalars, layouts, extra_layout = layout
    resolved = []
    for counts, call_layout in zip(calls, layouts):
        result = Resolved(counts.role, counts.samples, counts.macs, counts.mults, counts.adds, counts.neurons)
        operands = [(*_read_stats(values, scalars, stats), elements, _read(values, scalars, acc))
                    for stats, elements, acc in call_layout["operands"]]
        if operands:
            # the first binary or integer operand is the spiking one: its accumulates are the call's
            chosen = next((op for op in operands if op[0] in (BINARY, INTEGER)), operands[0])
            kind, low, nonzero, elements, accumulates = chosen
            result.input_kind, result.input_low, result.input_nonzero = kind, low, nonzero
            result.input_elements = elements
            if accumulates is not None:
                result.sops = accumulates if kind in (BINARY, INTEGER) else np.zeros_like(accumulates)
        if call_layout["output"] is not None:
            result.output_kind, _, result.spikes = _read_stats(values, scalars, call_layout["output"])
        result.dead = _read(values, scalars, call_layout["dead"])
        result.saturated = _read(values, scalars, call_layout["saturated"])
        repeated = _read(values, scalars, call_layout["repeated"])
        result.repeated = None if repeated is None else bool(repeated)
        result.extra = {name: _read(values, scalars, slot) for name, slot in call_layout["extra"].items()}
        resolved.append(result)
    extras = {name: _read(values, scalars, slot) for name, slot in extra_layout.items()}
    return resolved, extras


def resolve_calls(calls: list[CallCounts]) -> list[Resolved]:
    """Pack, move (one transfer) and resolve some calls: the host-side counts, e.g. of a handler in a test."""
    flat, layout = pack(calls)
    return resolve(calls, to_host([flat])[0], layout)[0]
