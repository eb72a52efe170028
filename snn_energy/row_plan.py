"""The per-image rows of one profiled sequence, from a plan built once per call structure.

A sequence's calls (layers, roles, timesteps, shapes, dense counts, and where the packed values of each lie) are
the same at every forward of a model on inputs of one shape; only the measured values change. ``sequence_rows``
therefore keys each sequence by that structure and keeps, per structure, a ``_Plan``: the rows (one per layer,
role, module type and timestep, in the order the calls first reach them), their dense counts, and index arrays
that add each measured value into its row and image. Reading a sequence is then a few numpy operations: the kinds
of every call at once (``transfer.kinds_of``), one ``np.add.at`` of the contributions they enable, and the
labels that depend on kinds.

Every row value is the sum, in call order, of the calls' contributions (as a Python loop over the calls would
add them), so that a plan gives the same numbers, bit for bit, as adding call by call.

How a call splits over timesteps and images (``_split``): a time-major call whose lead axes are ``[T', N]``
gives ``T'`` timesteps; a call of a multi-step model whose samples are ``T * N`` (or a functional call with lead
``[T, N]``) gives ``T``; other calls give one row, at their single-step timestep or ``-1``. A per-sample
measurement of exactly ``timesteps * N`` entries goes to its timestep and image; any other is shared evenly (its
sum over the rows); dense counts are shared evenly.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from snn_energy.handlers import NEURON
from snn_energy.tensor_stats import BINARY_CODE, KIND_NAMES, REAL_CODE
from snn_energy.transfer import Kinds, Slots, kinds_of, slots_of

DENSE = ("macs", "mults", "adds", "neurons")  # the same for every image: summed once per plan
MEASURED = ("real_input_macs", "input_elements", "input_nonzero", "sops", "spikes")  # added per sequence
EXTREMES = ("neurons", "dead_neurons", "saturated_neurons")  # the counts of neuron_extremes, in column order
_PLAN_CACHE_SIZE = 16  # call structures whose plans are kept (all profilers together)
_structures: "OrderedDict[_Signature, _Structure]" = OrderedDict()


class _Signature:
    """A sequence's structure as a hashable key whose hash is computed once (the key has thousands of items)."""

    __slots__ = ("key", "hash")

    def __init__(self, key: tuple):
        self.key, self.hash = key, hash(key)

    def __hash__(self) -> int:
        return self.hash

    def __eq__(self, other) -> bool:
        return self.hash == other.hash and self.key == other.key


@dataclass(frozen=True)
class _CallInfo:
    """What a plan needs of one call (its part of the structural signature)."""

    layer: str
    role: str
    module_type: str
    order: int
    step: int | None
    time_major: bool
    functional: bool
    lead: tuple
    is_encoding: bool
    probe: bool
    samples: int
    macs: int
    mults: int
    adds: int
    neurons: int


@dataclass
class _Structure:
    """One call structure: its calls, slots, probed calls, and a plan per set of probed layers found spiking."""

    calls: list
    slots: Slots
    probes: np.ndarray  # probed calls (unknown leaf modules) that have output statistics
    is_neuron: np.ndarray  # [calls] whether the call's role is a neuron's
    plans: dict = field(default_factory=dict)


class _Contributions:
    """Measured values added into the rows, one entry per (call, timestep, count, operand), in call order.

    Entry ``k`` adds, to row ``row[k]`` of count ``MEASURED[count[k]]`` for image ``n``, the source value at
    ``base[k] + stride[k] * n`` when condition ``condition[k]`` holds (see ``_conditions``). Sources: the packed
    values, then the plan's extra values: constants (dense counts that depend on kinds) and the sums per row of
    vectors that do not split into the rows (``shared``: position, start, stop, rows), computed per sequence."""

    def __init__(self, packed_length: int, N: int):
        self.packed_length, self.N = packed_length, N
        self.count, self.row, self.base, self.stride, self.condition = [], [], [], [], []
        self.extra: list = []
        self.shared: list = []
        self._shared_of: dict = {}

    def add(self, count: str, row: int, source: tuple, condition: int) -> None:
        self.count.append(MEASURED.index(count))
        self.row.append(row)
        self.base.append(source[0])
        self.stride.append(source[1])
        self.condition.append(condition)

    def constant(self, value: float) -> tuple:
        """Return the source of a value that is the same for every image."""
        self.extra.append(value)
        return self.packed_length + len(self.extra) - 1, 0

    def vector(self, slot, step: int, steps, rows: int) -> tuple:
        """Return the source of a per-sample vector's values at one timestep: one per image when it has
        ``steps * N`` entries, else its sum shared evenly over the ``rows``."""
        start, stop = slot
        if steps and stop - start == rows:
            return start + step * self.N, 1
        source = self._shared_of.get((start, stop))
        if source is None:
            source = self._shared_of[(start, stop)] = self.constant(0.0)  # its value is computed per sequence
            self.shared.append((len(self.extra) - 1, start, stop, rows))
        return source

    def arrays(self, rows: int) -> dict:
        """Return the plan's fields for these entries (targets in a ``[MEASURED, rows, N]`` block)."""
        return dict(target=_indices(self.count) * rows + _indices(self.row), base=_indices(self.base),
                    stride=_indices(self.stride), condition=_indices(self.condition),
                    extra=np.array(self.extra, dtype=float), shared=self.shared)


@dataclass
class _Plan:
    """The rows of one call structure given which probed layers are neurons; see the module docstring."""

    dropped_probes: list  # (module type, layer) of each probed call that was no neuron, in call order
    labels: dict  # layer, role, module_type, timestep, order, is_encoding: one array each, per row (``_labels``)
    dense: dict  # name -> [rows] sums of the ``DENSE`` counts
    kind_rows: np.ndarray  # with kind_calls: (row, call) pairs; a row's input kind is the most general of its calls'
    kind_calls: np.ndarray
    first_calls: np.ndarray  # [rows] the call that opened each row (the row's ``repeated`` is its)
    encoding_repeats: np.ndarray  # positions of the ``repeated`` flags of the kept encoding calls
    target: np.ndarray  # contributions (see ``_Contributions``): count * rows + row
    base: np.ndarray
    stride: np.ndarray
    condition: np.ndarray
    extra: np.ndarray
    shared: list
    extreme_layers: np.ndarray  # the neuron layers of ``neuron_extremes``, in order
    extreme_calls: np.ndarray  # per call with dead counts, in call order: its extreme layer,
    extreme_dead: np.ndarray  # the start of its dead and saturated vectors
    extreme_saturated: np.ndarray
    extreme_neurons: np.ndarray  # [extreme layers] the neurons of their calls
    extreme_extras: list  # (layer index, dead start, saturated start, neurons position): single-step extras
    layer_calls: dict  # layer -> its kept calls (for spike maps)

    @property
    def rows(self) -> int:
        return len(self.first_calls)


@dataclass
class SequenceRows:
    """The rows of one sequence: ``labels`` (an array per label) and ``values`` (``[rows, N]`` per count) of the
    records (None without rows); ``extreme_layers`` and ``extremes`` (``[layers, N]`` per count, None without
    neuron layer) of ``neuron_extremes``; the probed layers that were spike generators (``neuron_probes``) and
    the probed calls that were not (``dropped_probes``: module type, layer); ``binary_layers``: those of the
    asked layers whose calls had binary spikes (a neuron's output, else the input)."""

    labels: dict | None
    values: dict | None
    extreme_layers: np.ndarray
    extremes: dict | None
    neuron_probes: frozenset
    dropped_probes: list
    binary_layers: set


def sequence_rows(calls: list, layout: tuple, values: np.ndarray, T: int, N: int, step_mode: str,
                  binary_asked=()) -> SequenceRows:
    """Return the rows of one sequence of ``calls`` (the recorder's ``_Call``s) from its packed ``values``
    (``pack``'s layout), and which of the ``binary_asked`` layers had binary spikes."""
    structure = _structure_of(calls, layout, T, N, step_mode)
    kinds = kinds_of(structure.slots, values)
    neuron_probes = _neuron_probes(structure, kinds, values)
    plan = structure.plans.get(neuron_probes)
    if plan is None:
        plan = structure.plans[neuron_probes] = _build_plan(structure, neuron_probes, len(values), T, N)
    labels = counts = None
    if plan.rows:
        labels = {**plan.labels, "input_kind": _input_kinds(plan, kinds),
                  "input_repeated": _input_repeated(plan, structure, values, T, step_mode)}
        counts = {**{name: np.repeat(sums[:, None], N, axis=1) for name, sums in plan.dense.items()},
                  **_measured(plan, kinds, values, N)}
    return SequenceRows(labels, counts, plan.extreme_layers, _extremes(plan, values, N), neuron_probes,
                        plan.dropped_probes, _binary_layers(binary_asked, plan, structure, kinds))


def _structure_of(calls: list, layout: tuple, T: int, N: int, step_mode: str) -> _Structure:
    """Return the cached structure of a sequence (built at its first sight; beyond ``_PLAN_CACHE_SIZE``, the
    least recently used is forgotten)."""
    infos = tuple([(c.layer, c.role, c.module_type, c.order, c.step, c.time_major, c.functional, c.lead,
                    c.is_encoding, c.probe, k.samples, k.macs, k.mults, k.adds, k.neurons)
                   for c in calls for k in (c.counts,)])  # the fields of ``_CallInfo``
    key = _Signature((step_mode, T, N, layout, infos))
    structure = _structures.get(key)
    if structure is not None:
        _structures.move_to_end(key)
        return structure
    infos = [_CallInfo(*info) for info in infos]
    slots = slots_of(layout)
    probes = [i for i, info in enumerate(infos) if info.probe and slots.output_scalars[i, 0] >= 0]
    structure = _structures[key] = _Structure(infos, slots, np.array(probes, dtype=np.int64),
                                              np.array([info.role == NEURON for info in infos], dtype=bool))
    if len(_structures) > _PLAN_CACHE_SIZE:
        _structures.popitem(last=False)
    return structure


def _neuron_probes(structure: _Structure, kinds: Kinds, values: np.ndarray) -> frozenset:
    """Return the layers of the probed calls that behaved as neurons: binary output with spikes (a positive
    nonzero count), non-binary input."""
    probes = structure.probes
    if not len(probes):
        return frozenset()
    start, stop = structure.slots.output_nonzero[probes].T
    positive = np.concatenate(([0], np.cumsum(values > 0)))
    spiking = (kinds.output[probes] == BINARY_CODE) & (positive[stop] > positive[start]) & (
        kinds.input[probes] != BINARY_CODE)
    return frozenset(structure.calls[i].layer for i in probes[spiking])


def _split(info: _CallInfo, T: int, N: int) -> tuple:
    """Return ``(steps, timed, rows)`` of a call: ``steps`` leading rows per image of its per-sample
    measurements (None: they are not per image, and are shared evenly), whether these are timesteps, and the
    rows its counts are divided over."""
    samples = max(info.samples, 1)
    steps, timed = None, False
    if info.time_major:
        if info.lead[1] == N:
            steps, timed = info.lead[0], True
    elif T > 1 and info.step is None and (samples == T * N or (info.functional and info.lead == (T, N))):
        steps, timed = T, True
    elif samples == N:
        steps = 1
    return steps, timed, (steps or 1) * N


def _conditions(calls: int, operands: int) -> tuple:
    """Return the first condition number of each kind: 0 always; per call, its input is real; per operand, it
    is its call's chosen one; per operand, it is chosen and spiking (binary or integer)."""
    return 0, 1, 1 + calls, 1 + calls + operands


def _enabled(kinds: Kinds) -> np.ndarray:
    """Return which conditions (``_conditions``) hold for a sequence of these kinds."""
    chosen = kinds.chosen_operand
    return np.concatenate(([True], kinds.input == REAL_CODE, chosen, chosen & kinds.spiking))


def _kept_calls(calls: list, neuron_probes: frozenset) -> tuple:
    """Return the calls that give rows, and the (module type, layer) of the probed calls that were no neuron;
    the other calls of a neuron probe (arithmetic in its forward) are its dynamics, dropped."""
    kept, dropped = [], []
    for index, info in enumerate(calls):
        if info.probe and info.layer not in neuron_probes:
            dropped.append((info.module_type, info.layer))
        elif not (info.functional and info.layer in neuron_probes):
            kept.append(index)
    return kept, dropped


def _build_plan(structure: _Structure, neuron_probes: frozenset, packed_length: int, T: int, N: int) -> _Plan:
    """Return the plan of a structure whose probed ``neuron_probes`` layers are neurons."""
    calls, slots = structure.calls, structure.slots
    kept, dropped = _kept_calls(calls, neuron_probes)
    operands = [[] for _ in calls]
    for operand, call in enumerate(slots.operand_call.tolist()):
        operands[call].append(operand)
    elements_of, nonzero_of = slots.operand_elements.tolist(), slots.operand_nonzero.tolist()
    accumulates_of, spikes_of = slots.operand_accumulates.tolist(), slots.output_nonzero.tolist()
    _, real_input, chosen, chosen_spiking = _conditions(len(calls), len(slots.operand_call))
    rows: dict = {}
    labels, first_calls, kind_pairs = [], [], []
    dense = {name: [] for name in DENSE}
    entries = _Contributions(packed_length, N)
    for index in kept:
        info = calls[index]
        steps, timed, per_rows = _split(info, T, N)
        samples = max(info.samples, 1)
        for step, timestep in enumerate(range(steps) if timed else [-1 if info.step is None else info.step]):
            key = (info.layer, info.role, info.module_type, timestep)
            row = rows.get(key)
            if row is None:
                row = rows[key] = len(rows)
                labels.append((*key, info.order, info.is_encoding))
                first_calls.append(index)
                for sums in dense.values():
                    sums.append(0.0)
            kind_pairs.append((row, index))
            for name, total in (("macs", info.macs), ("mults", info.mults), ("adds", info.adds),
                                ("neurons", info.neurons * samples)):
                dense[name][row] = dense[name][row] + total / per_rows
            if info.macs:
                entries.add("real_input_macs", row, entries.constant(info.macs / per_rows), real_input + index)
            for operand in operands[index]:
                if elements_of[operand]:
                    entries.add("input_elements", row, entries.constant(elements_of[operand] * samples / per_rows),
                                chosen + operand)
                entries.add("input_nonzero", row, entries.vector(nonzero_of[operand], step, steps, per_rows),
                            chosen + operand)
                if accumulates_of[operand][0] >= 0:
                    entries.add("sops", row, entries.vector(accumulates_of[operand], step, steps, per_rows),
                                chosen_spiking + operand)
            if spikes_of[index][0] >= 0:
                entries.add("spikes", row, entries.vector(spikes_of[index], step, steps, per_rows), 0)
    layer_calls: dict = {}
    for index in kept:
        layer_calls.setdefault(calls[index].layer, []).append(index)
    return _Plan(
        dropped_probes=dropped,
        labels=_labels(labels),
        dense={name: np.array(sums, dtype=float) for name, sums in dense.items()},
        kind_rows=_indices([row for row, _ in kind_pairs]), kind_calls=_indices([call for _, call in kind_pairs]),
        first_calls=_indices(first_calls),
        encoding_repeats=_indices([slots.repeated[i] for i in kept
                                   if calls[i].is_encoding and slots.repeated[i] >= 0]),
        **entries.arrays(len(rows)), **_extreme_plan(structure, kept, N),
        layer_calls={layer: _indices(indices) for layer, indices in layer_calls.items()},
    )


def _extreme_plan(structure: _Structure, kept: list, N: int) -> dict:
    """Return the plan's fields for ``neuron_extremes``: the kept calls with dead counts per image add up per
    layer, in call order; a layer with single-step extras (``dead:``, ``saturated:``, ``neurons:``) takes those."""
    calls, slots = structure.calls, structure.slots
    layers: dict = {}
    neurons, with_dead = [], []

    def layer_index(name: str) -> int:  # the layer's position, a new one (with no neurons yet) at its first sight
        if name not in layers:
            layers[name] = len(layers)
            neurons.append(0)
        return layers[name]

    dead_of, saturated_of = slots.dead.tolist(), slots.saturated.tolist()
    for index in kept:
        start, stop = dead_of[index]
        if start >= 0 and stop - start == N:
            layer = layer_index(calls[index].layer)
            neurons[layer] += calls[index].neurons
            with_dead.append((layer, start, saturated_of[index][0]))
    extras = []
    for name, (start, _) in slots.extras.items():
        kind, layer_name = name.split(":", 1)
        if kind == "dead":
            layer = layer_index(layer_name)
            extras.append((layer, start, slots.extras[f"saturated:{layer_name}"][0],
                           slots.extras[f"neurons:{layer_name}"][0]))
    return dict(extreme_layers=_objects(list(layers)), extreme_calls=_indices([entry[0] for entry in with_dead]),
                extreme_dead=_indices([entry[1] for entry in with_dead]),
                extreme_saturated=_indices([entry[2] for entry in with_dead]),
                extreme_neurons=np.array(neurons, dtype=float), extreme_extras=extras)


def _labels(rows: list) -> dict:
    """Return the structural labels of the rows (tuples layer, role, module_type, timestep, order, is_encoding) as
    one array per label: Python strings in object arrays, int64, bool."""
    layers, roles, module_types, timesteps, orders, encoding = zip(*rows) if rows else ((),) * 6
    return dict(layer=_objects(layers), role=_objects(roles), module_type=_objects(module_types),
                timestep=np.array(timesteps, dtype=np.int64), order=np.array(orders, dtype=np.int64),
                is_encoding=np.array(encoding, dtype=bool))


def _indices(values) -> np.ndarray:
    """Return a 1-D int64 array of the values (positions, rows, conditions)."""
    return np.array(values, dtype=np.int64)


def _objects(values) -> np.ndarray:
    """Return a 1-D object array of Python values."""
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _input_kinds(plan: _Plan, kinds: Kinds) -> np.ndarray:
    """Return each row's input kind: the most general of its calls' (``""`` when none has an input)."""
    codes = np.zeros(plan.rows, dtype=np.int64)
    np.maximum.at(codes, plan.kind_rows, kinds.input[plan.kind_calls])
    return _objects(list(KIND_NAMES))[codes]


def _input_repeated(plan: _Plan, structure: _Structure, values: np.ndarray, T: int, step_mode: str) -> np.ndarray:
    """Return each row's ``input_repeated``: its first call's measured flag (False without one); in single-step
    mode, for the encoding layer, whether its input was the same at every timestep of the sequence."""
    positions = structure.slots.repeated[plan.first_calls]
    flags = np.zeros(plan.rows, dtype=bool)
    flags[positions >= 0] = values[positions[positions >= 0]] != 0
    if step_mode == "s":
        repeats = values[plan.encoding_repeats]
        flags[plan.labels["is_encoding"]] = T > 1 and len(repeats) > 0 and bool((repeats != 0).all())
    return flags


def _binary_layers(names, plan: _Plan, structure: _Structure, kinds: Kinds) -> set:
    """Return those of ``names`` whose kept calls had binary spikes (a neuron's output, else the input)."""
    if not names:
        return set()
    spikes = np.where(structure.is_neuron, kinds.output, kinds.input)
    calls = plan.layer_calls
    return {name for name in names if name in calls and (spikes[calls[name]] == BINARY_CODE).any()}


def _measured(plan: _Plan, kinds: Kinds, values: np.ndarray, N: int) -> dict:
    """Return the ``MEASURED`` counts, ``[rows, N]`` each: the enabled contributions added in call order."""
    extra = plan.extra.copy()
    for position, start, stop, rows in plan.shared:
        extra[position] = values[start:stop].sum() / rows
    keep = _enabled(kinds)[plan.condition]
    images = np.arange(N)
    sources = np.concatenate((values, extra))[plan.base[keep, None] + plan.stride[keep, None] * images]
    sums = np.zeros(len(MEASURED) * plan.rows * N)
    np.add.at(sums, (plan.target[keep, None] * N + images).reshape(-1), sources.reshape(-1))
    return dict(zip(MEASURED, sums.reshape(len(MEASURED), plan.rows, N)))


def _extremes(plan: _Plan, values: np.ndarray, N: int) -> dict | None:
    """Return the sequence's ``neuron_extremes`` counts (``EXTREMES``), a ``[layers, N]`` array each."""
    if not len(plan.extreme_layers):
        return None
    images = np.arange(N)
    targets = (plan.extreme_calls[:, None] * N + images).reshape(-1)
    counts = {}
    for name, starts in (("dead_neurons", plan.extreme_dead), ("saturated_neurons", plan.extreme_saturated)):
        sums = np.zeros(len(plan.extreme_layers) * N)
        np.add.at(sums, targets, values[starts[:, None] + images].reshape(-1))
        counts[name] = sums.reshape(-1, N)
    counts["neurons"] = np.repeat(plan.extreme_neurons[:, None], N, axis=1)
    for layer, dead, saturated, neurons in plan.extreme_extras:
        counts["dead_neurons"][layer] = values[dead:dead + N]
        counts["saturated_neurons"][layer] = values[saturated:saturated + N]
        counts["neurons"][layer] = values[neurons]
    return counts
