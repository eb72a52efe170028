"""Device-side counts packed into one tensor, moved to the host in one transfer, and decoded there.

The profiler measures every call on the model's device (``handlers.CallCounts``); at the end of a sequence it
``pack``s them into one flat float64 device tensor (one stack, one concatenation: no synchronisation), and when
the rows are wanted it moves every packed sequence to the host at once (``to_host``). There, ``slots_of`` turns a
sequence's layout into index arrays (once per call structure) and ``kinds_of`` decides, for every call at once,
the kinds from the measured minimum, maximum and fractional parts, and which operand is the spiking one: a
synaptic call's exact accumulates are kept when that operand is binary or integer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from snn_energy.handlers import CallCounts
from snn_energy.tensor_stats import BINARY_CODE, INTEGER_CODE, KIND_NAMES
from snn_energy.tensor_stats import kind_codes as codes_of


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
    dead: np.ndarray | None = None
    saturated: np.ndarray | None = None
    repeated: bool | None = None


class _Packer:
    """Collects device tensors: scalars (0-dim, or 1-D groups of them) and vectors; ``flat()`` returns them as one
    float64 tensor (scalars first).

    A scalar's slot is its index; a vector's slot is ``(start, stop)`` counted from the first vector element."""

    def __init__(self, device):
        self.scalars = [torch.zeros(1, dtype=torch.float64, device=device)]
        self.scalar_length = 1
        self.vectors = [torch.empty(0, dtype=torch.float64, device=device)]
        self.vector_length = 0

    def scalar(self, value: torch.Tensor) -> int:
        return self.group(value.reshape(1))

    def group(self, values: torch.Tensor) -> int:
        """Add a 1-D tensor of scalars; return the slot of its first one."""
        self.scalars.append(values)
        self.scalar_length += values.shape[0]
        return self.scalar_length - values.shape[0]

    def vector(self, value: torch.Tensor) -> tuple:
        value = value if value.dim() == 1 else value.reshape(-1)
        self.vectors.append(value)
        start = self.vector_length
        self.vector_length += value.shape[0]
        return start, self.vector_length

    def flat(self) -> torch.Tensor:
        return torch.cat([torch.cat(self.scalars).to(torch.float64), torch.cat(self.vectors).to(torch.float64)])


def _stats_slots(packer: _Packer, stats) -> tuple:
    first = packer.group(stats.bounds)
    return first, first + 1, first + 2, packer.vector(stats.nonzero)


def pack(calls: list[CallCounts], extras: dict | None = None, device=None) -> tuple[torch.Tensor, tuple]:
    """Return one flat float64 device tensor holding every measured tensor of ``calls`` (and of ``extras``, a
    dict name -> tensor), and its layout (nested tuples, hashable), which ``slots_of`` reads. No host
    synchronisation.

    Layout: ``(scalars, calls, extras)``; per call ``(operands, output, dead, saturated, repeated)`` with
    ``operands`` a tuple of ``(stats, elements, accumulates)``, and stats ``(low, high, fraction, nonzero)``."""
    if device is None:
        device = next((op.stats.bounds.device for c in calls for op in c.operands), None) or next(
            (c.output.bounds.device for c in calls if c.output is not None), None) or next(
            (t.device for t in (extras or {}).values()), torch.device("cpu"))
    packer = _Packer(device)
    layouts = []
    vector = lambda value: None if value is None else packer.vector(value)
    for counts in calls:
        layouts.append((
            tuple((_stats_slots(packer, op.stats), op.elements, vector(op.accumulates)) for op in counts.operands),
            None if counts.output is None else _stats_slots(packer, counts.output),
            vector(counts.dead), vector(counts.saturated),
            None if counts.repeated is None else packer.scalar(counts.repeated),
        ))
    extra_layout = tuple((name, packer.vector(value)) for name, value in (extras or {}).items())
    with torch._C.DisableTorchFunction():
        flat = packer.flat()
    return flat, (packer.scalar_length, tuple(layouts), extra_layout)


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


@dataclass(frozen=True)
class Slots:
    """Where each measurement of a packed sequence lies in its flat values, per call and per operand (operands
    numbered in call order). Scalars are positions; vectors are ``[start, stop)`` rows; -1 marks an absent one."""

    operand_call: np.ndarray  # [operands] the call of each operand
    operand_elements: np.ndarray  # [operands] elements per sample
    operand_scalars: np.ndarray  # [operands, 3] low, high, fraction
    operand_nonzero: np.ndarray  # [operands, 2]
    operand_accumulates: np.ndarray  # [operands, 2]
    first_operand: np.ndarray  # [calls] the call's first operand
    output_scalars: np.ndarray  # [calls, 3]
    output_nonzero: np.ndarray  # [calls, 2]
    dead: np.ndarray  # [calls, 2]
    saturated: np.ndarray  # [calls, 2]
    repeated: np.ndarray  # [calls]
    extras: dict  # name -> (start, stop)


def slots_of(layout: tuple) -> Slots:
    """Return the ``Slots`` of a packed sequence from its ``pack`` layout."""
    scalars, calls, extras = layout
    vector = lambda slot: (-1, -1) if slot is None else (scalars + slot[0], scalars + slot[1])
    operands = [(index, stats, elements, accumulates) for index, call in enumerate(calls)
                for stats, elements, accumulates in call[0]]
    first, count = [], 0
    for call in calls:
        first.append(count if call[0] else -1)
        count += len(call[0])
    no_stats = (-1, -1, -1, None)
    outputs = [call[1] or no_stats for call in calls]
    as_array = lambda values, width: np.array(values, dtype=np.int64).reshape(-1, width)
    return Slots(
        operand_call=np.array([op[0] for op in operands], dtype=np.int64),
        operand_elements=np.array([op[2] for op in operands], dtype=np.int64),
        operand_scalars=as_array([op[1][:3] for op in operands], 3),
        operand_nonzero=as_array([vector(op[1][3]) for op in operands], 2),
        operand_accumulates=as_array([vector(op[3]) for op in operands], 2),
        first_operand=np.array(first, dtype=np.int64),
        output_scalars=as_array([output[:3] for output in outputs], 3),
        output_nonzero=as_array([vector(output[3]) for output in outputs], 2),
        dead=as_array([vector(call[2]) for call in calls], 2),
        saturated=as_array([vector(call[3]) for call in calls], 2),
        repeated=np.array([-1 if call[4] is None else call[4] for call in calls], dtype=np.int64),
        extras={name: vector(slot) for name, slot in extras},
    )


def kind_codes(values: np.ndarray, scalars: np.ndarray) -> np.ndarray:
    """Return the kind code (see ``KIND_NAMES``) of each tensor whose low, high and fraction lie at the rows of
    ``scalars`` ([tensors, 3] positions in ``values``; -1: no tensor, code 0): ``tensor_stats.kind_of`` at once."""
    return np.where(scalars[:, 0] >= 0, codes_of(*(values[scalars[:, i]] for i in range(3))), 0)


@dataclass(frozen=True)
class Kinds:
    """Measured kinds of one packed sequence's calls and operands, as codes (see ``KIND_NAMES``)."""

    operand: np.ndarray  # [operands]
    spiking: np.ndarray  # [operands] binary or integer: its accumulates are what the call performs
    chosen: np.ndarray  # [calls] the call's spiking operand: its first binary or integer one, else its first; -1
    chosen_operand: np.ndarray  # [operands] whether the operand is its call's chosen one
    input: np.ndarray  # [calls] the chosen operand's kind, 0 without operand
    output: np.ndarray  # [calls] 0 without output statistics


def kinds_of(slots: Slots, values: np.ndarray) -> Kinds:
    """Return the kinds of every call and operand of a packed sequence from its flat ``values``."""
    operand = kind_codes(values, slots.operand_scalars)
    spiking = (operand == BINARY_CODE) | (operand == INTEGER_CODE)
    chosen = slots.first_operand.copy()
    inputs = np.zeros(len(chosen), dtype=np.int64)
    if len(operand):
        starts = chosen[chosen >= 0]  # the operands of a call are consecutive: one segment per call
        first_spiking = np.minimum.reduceat(np.where(spiking, np.arange(len(operand)), len(operand)), starts)
        chosen[chosen >= 0] = np.where(first_spiking < len(operand), first_spiking, starts)
        inputs[chosen >= 0] = operand[chosen[chosen >= 0]]
    chosen_operand = chosen[slots.operand_call] == np.arange(len(operand))
    return Kinds(operand, spiking, chosen, chosen_operand, inputs, kind_codes(values, slots.output_scalars))


def resolve_calls(calls: list[CallCounts]) -> list[Resolved]:
    """Pack, move (one transfer) and resolve some calls: the host-side counts, e.g. of a handler in a test."""
    flat, layout = pack(calls)
    values = to_host([flat])[0]
    slots = slots_of(layout)
    kinds = kinds_of(slots, values)
    vector = lambda slot: None if slot[0] < 0 else values[slot[0]:slot[1]]
    resolved = []
    for index, counts in enumerate(calls):
        result = Resolved(counts.role, counts.samples, counts.macs, counts.mults, counts.adds, counts.neurons,
                          output_kind=KIND_NAMES[kinds.output[index]], spikes=vector(slots.output_nonzero[index]),
                          dead=vector(slots.dead[index]), saturated=vector(slots.saturated[index]))
        chosen = kinds.chosen[index]
        if chosen >= 0:
            result.input_kind = KIND_NAMES[kinds.input[index]]
            result.input_elements = int(slots.operand_elements[chosen])
            result.input_nonzero = vector(slots.operand_nonzero[chosen])
            accumulates = vector(slots.operand_accumulates[chosen])
            if accumulates is not None:
                result.sops = accumulates if kinds.spiking[chosen] else np.zeros_like(accumulates)
        if slots.repeated[index] >= 0:
            result.repeated = bool(values[slots.repeated[index]])
        resolved.append(result)
    return resolved
