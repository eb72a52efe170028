"""The profiler: forward hooks that count spikes and operations per layer, timestep and image.

``Profiler(model)`` is a context manager. On entry it attaches one forward pre-hook and one forward hook to
every module of the model (and, unless disabled, a ``TorchFunctionMode`` that sees the arithmetic written in
modules' own forward code, such as attention gates and residual sums); on exit, also on error, it removes them
all. Hooks never change a tensor: the model's outputs and gradients are bit-identical with and without it.

What makes a timestep:

- Multi-step models (any module with ``step_mode == "m"``, SpikingJelly's multi-step mode): one forward is one
  sequence of images. ``T`` and ``N`` are read from the first multi-step module's input ``[T, N, ...]``.
  A multi-step module's tensors are split along T. A plain module whose input has ``T * N`` rows (inside a
  ``SeqToANNContainer`` or ``seq_to_ann_forward``) is split the same way, rows ``t * N + n``. A module whose
  input has ``N`` rows ran once outside the time loop (e.g. after a mean over T): its timestep is ``-1``.
- Single-step models (SpikingJelly memory modules, no multi-step module): each forward of the model is one
  timestep; a sequence ends at ``functional.reset_net(model)`` (the modules' ``reset`` is watched while the
  profiler is active) or when the profiler exits.
- Models with neither (plain ANNs): one forward is one sequence, every row has timestep ``-1``.

Records accumulate over every forward made inside the context (a data set), one row per image, layer, role and
timestep (``records()``), plus per image and neuron layer the dead and saturated neurons (``neuron_extremes()``).
"""
from __future__ import annotations

import weakref
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from snn_energy.errors import NoSynapticLayerError, ProfilerStateError
from snn_energy.handlers import (
    ELEMENTWISE, FUNCTIONAL_HANDLERS, NEURON, SYNAPTIC, SYNAPTIC_HANDLERS, CallCounts, first_tensor,
    module_handler, neuron_counts,
)
from snn_energy.tensor_stats import BINARY, TensorSummary, describe, most_general_kind, value_kind

ROOT_NAME = "(model)"  # the layer name of arithmetic written in the top-level model's own forward
STEP_MODES = ("auto", "m", "s")
_LABELS = ("layer", "role", "module_type", "timestep", "order", "input_kind", "is_encoding", "input_repeated")
_ADDITIVE = ("macs", "real_input_macs", "sops", "input_elements", "input_nonzero", "mults", "adds", "neurons",
             "spikes")
RECORD_COLUMNS = ("image", *_LABELS, *_ADDITIVE)

_PROFILED_MODULES: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()


@dataclass
class _LayerSpec:
    name: str
    module_type: str
    handler: object  # the module's counting handler, or None (containers and unknown modules)
    probe: bool  # an unknown leaf module: recorded as a neuron when its output is verified binary


@dataclass
class _Call:
    layer: str
    role: str
    module_type: str
    order: int
    step: int | None  # timestep in single-step mode
    time_major: bool  # the counted tensor was [T, N, ...]
    functional: bool
    lead: tuple
    counts: CallCounts
    is_encoding: bool = False
    input_repeated: bool = False


@dataclass
class _Sequence:
    calls: list = field(default_factory=list)
    T: int | None = None
    N: int | None = None
    root_batch: int | None = None
    steps: int = 0
    first_encoding_input: torch.Tensor | None = None
    fired_steps: dict = field(default_factory=dict)  # single-step: neuron layer -> per-neuron firing count
    captures: dict = field(default_factory=lambda: defaultdict(list))


@dataclass
class _RowBlock:
    """Rows of one sequence: ``labels`` (one value per row), ``values`` (an ``[rows, N]`` array per count)."""

    images: np.ndarray
    labels: dict
    values: dict


def _frame(blocks: list[_RowBlock], columns) -> pd.DataFrame:
    """Return the DataFrame of row blocks, one row per (block row, image), with the given columns."""
    data = {name: [] for name in columns}
    for block in blocks:
        rows = len(next(iter(block.labels.values())))
        data["image"].append(np.tile(block.images, rows))
        for name, labels in block.labels.items():
            data[name].append(np.repeat(np.array(labels, dtype=object), len(block.images)))
        for name, values in block.values.items():
            data[name].append(values.reshape(-1))
    return pd.DataFrame({name: np.concatenate(parts) if parts else np.array([], dtype=object)
                         for name, parts in data.items()})


class _FunctionalOpCounter(TorchFunctionMode):
    """Sees every torch function call; hands the arithmetic ones made during a forward to the profiler."""

    def __init__(self, profiler: "Profiler"):
        super().__init__()
        self._profiler = profiler

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        profiler = self._profiler
        if profiler._in_forward and not profiler._busy:
            handler = FUNCTIONAL_HANDLERS.get(getattr(func, "__name__", None))
            if handler is not None:
                profiler._record_functional(handler, args, kwargs, out)
        return out


class Profiler:
    """Count spikes and operations of ``model`` per layer, timestep and image while the context is active.

    ``step_mode``: ``"auto"`` (multi-step if any module has ``step_mode == "m"``, single-step if the model has
    SpikingJelly memory modules, else one forward per sequence), ``"m"`` or ``"s"`` to force it.
    ``encoding_layer``: qualified name of the encoding layer; default the first synaptic layer called.
    ``spike_maps``: qualified names of layers whose spike maps are kept (a neuron's output, a synaptic
    layer's input), one ``[T, ...]`` tensor per image, bool when binary; nothing is kept for other layers.
    ``spike_map_images``: keep spike maps of the first that many images only (None: every image).
    ``count_functional_ops``: count the element-wise arithmetic of modules' own forward code.

    Raises NoSynapticLayerError on entry for a model without synaptic layer, ProfilerStateError when entered
    while active or when another profiler is attached to the same model, ValueError for unknown layer names.
    """

    def __init__(self, model: nn.Module, *, step_mode: str = "auto", encoding_layer: str | None = None,
                 spike_maps=(), spike_map_images: int | None = None, count_functional_ops: bool = True):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if step_mode not in STEP_MODES:
            raise ValueError(f"step_mode must be one of {STEP_MODES}, got {step_mode!r}")
        self.model = model
        names = {name for name, _ in model.named_modules()}
        unknown = [name for name in (*spike_maps, *([encoding_layer] if encoding_layer else [])) if name not in names]
        if unknown:
            raise ValueError(f"spike_maps / encoding_layer name no module of {type(model).__name__}: {unknown}")
        self.requested_step_mode = step_mode
        self.encoding_layer = encoding_layer
        self.spike_map_layers = tuple(spike_maps)
        if spike_map_images is not None and spike_map_images < 1:
            raise ValueError(f"spike_map_images must be a positive integer or None, got {spike_map_images!r}")
        self.spike_map_images = spike_map_images
        self.count_functional_ops = count_functional_ops
        self.spike_maps: dict[str, list[torch.Tensor]] = {name: [] for name in self.spike_map_layers}
        self.images = 0
        self.timesteps: int | None = None
        self._record_blocks: list[_RowBlock] = []
        self._extreme_blocks: list[_RowBlock] = []
        self._order: dict[tuple, int] = {}
        self._active = False
        self._busy = False
        self._in_forward = False
        self._owners: list[_LayerSpec] = []
        self._summaries: dict[tuple, tuple] = {}
        self._sequence: _Sequence | None = None
        self._reset_seen = False
        self._handles: list = []
        self._patched_resets: list = []
        self._mode: _FunctionalOpCounter | None = None
        self.step_mode: str | None = None

    # ---- context management -------------------------------------------------------------------------------
    def __enter__(self) -> "Profiler":
        if self._active:
            raise ProfilerStateError("this Profiler is already active: it cannot be entered twice at once")
        modules = list(self.model.named_modules())
        if any(module in _PROFILED_MODULES for _, module in modules):
            raise ProfilerStateError(
                f"{type(self.model).__name__} (or one of its submodules) is already profiled by another Profiler"
            )
        specs = {}
        for name, module in modules:
            handler = module_handler(module)
            specs[module] = _LayerSpec(
                name=name or ROOT_NAME, module_type=type(module).__name__, handler=handler,
                probe=handler is None and next(module.children(), None) is None,
            )
        if not any(spec.handler in SYNAPTIC_HANDLERS for spec in specs.values()):
            raise NoSynapticLayerError(
                f"{type(self.model).__name__} has no synaptic layer (Conv1d/2d/3d, ConvTranspose1d/2d/3d, "
                "Linear): there are no synaptic operations to count"
            )
        self.step_mode = self._resolve_step_mode()
        try:
            for module, spec in specs.items():
                self._handles.append(module.register_forward_pre_hook(self._pre_hook(spec, module is self.model)))
                self._handles.append(module.register_forward_hook(self._post_hook(spec, module is self.model)))
            if self.step_mode == "s":
                self._watch_resets()
            if self.count_functional_ops:
                self._mode = _FunctionalOpCounter(self)
                self._mode.__enter__()
        except BaseException:
            self._detach()
            raise
        for _, module in modules:
            _PROFILED_MODULES.add(module)
        self._active = True
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None and not self._in_forward:
                self._close_sequence()
            self._sequence = None
        finally:
            self._detach()
            for module in self.model.modules():
                _PROFILED_MODULES.discard(module)
            self._active = False
            self._in_forward = False
            self._owners.clear()

    def _detach(self) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for module, had_own, original in self._patched_resets:
            if had_own:
                module.__dict__["reset"] = original
            else:
                del module.__dict__["reset"]
        self._patched_resets.clear()

    def _resolve_step_mode(self) -> str:
        if self.requested_step_mode != "auto":
            return self.requested_step_mode
        modules = list(self.model.modules())
        if any(getattr(m, "step_mode", None) == "m" for m in modules):
            return "m"
        if any(callable(getattr(m, "reset", None)) and hasattr(m, "step_mode") for m in modules):
            return "s"
        return "m"

    def _watch_resets(self) -> None:
        """Wrap every module's ``reset`` (what ``functional.reset_net`` calls) to end the current sequence."""
        for module in self.model.modules():
            original = getattr(module, "reset", None)
            if not callable(original):
                continue
            had_own = "reset" in module.__dict__

            def reset(*args, _original=original, **kwargs):
                self._reset_seen = True
                return _original(*args, **kwargs)

            self._patched_resets.append((module, had_own, module.__dict__.get("reset")))
            module.__dict__["reset"] = reset

    # ---- hooks ----------------------------------------------------------------------------------------------
    def _pre_hook(self, spec: _LayerSpec, is_root: bool):
        def hook(module, args):
            if is_root:
                self._begin_forward(args)
            self._owners.append(spec)
            sequence = self._sequence
            if sequence is not None and sequence.T is None and getattr(module, "step_mode", None) == "m":
                x = first_tensor(args)
                if x is not None and x.dim() >= 2:
                    sequence.T, sequence.N = int(x.shape[0]), int(x.shape[1])
        return hook

    def _post_hook(self, spec: _LayerSpec, is_root: bool):
        def hook(module, args, output):
            if (spec.handler is not None or spec.probe) and self._sequence is not None:
                self._count_module(spec, module, args, output)
            if self._owners and self._owners[-1] is spec:
                self._owners.pop()
            if is_root:
                self._end_forward()
        return hook

    def _begin_forward(self, args) -> None:
        if self._in_forward:  # the previous forward raised: its partial records are dropped
            self._sequence = None
        if self._reset_seen:
            self._close_sequence()
            self._reset_seen = False
        self._owners.clear()
        if self._sequence is None:
            self._sequence = _Sequence()
        x = first_tensor(args)
        if self._sequence.root_batch is None and x is not None:
            self._sequence.root_batch = int(x.shape[0]) if x.dim() else 1
        self._sequence.steps += 1
        self._in_forward = True

    def _end_forward(self) -> None:
        self._in_forward = False
        if self.step_mode == "m":
            self._close_sequence()

    def end_sequence(self) -> None:
        """End the current sequence now: in single-step mode the next forward is timestep 0 of new images (what
        ``functional.reset_net(model)`` also does; needed for a model without resettable modules)."""
        if not self._in_forward:
            self._close_sequence()
            self._reset_seen = False

    def _current_step(self) -> int | None:
        return self._sequence.steps - 1 if self.step_mode == "s" else None

    def _count_module(self, spec: _LayerSpec, module: nn.Module, args, output) -> None:
        x, y = first_tensor(args), first_tensor(output)
        if x is None or y is None:
            return
        time_major = getattr(module, "step_mode", None) == "m" and x.dim() >= 2
        self._busy = True
        try:
            with torch.no_grad():
                if spec.handler is None:
                    if value_kind(y) != BINARY or not float(y.sum()) > 0 or value_kind(x) == BINARY:
                        return  # not a spike generator: no binary output with spikes, or it passes spikes on
                    counts = neuron_counts(module, args, output, time_major, self._describe)
                else:
                    counts = spec.handler(module, args, output, time_major, self._describe)
                lead_tensor = y if counts.role == NEURON else x
                call = _Call(
                    spec.name, counts.role, spec.module_type, self._order_of(spec.name, counts.role),
                    self._current_step(), time_major, False, tuple(lead_tensor.shape[:2]), counts,
                )
                if counts.role == SYNAPTIC:
                    self._mark_encoding(call, x, time_major)
                if counts.role == NEURON and not time_major and self.step_mode == "s":
                    fired = self._sequence.fired_steps
                    fired[spec.name] = fired.get(spec.name, 0) + (y != 0).to(torch.int32)
                if spec.name in self.spike_maps and self._keeps_spike_maps():
                    kept = y if counts.role != SYNAPTIC else x
                    kind = counts.output_kind if counts.role == NEURON else counts.input_kind
                    kept = kept.detach().to("cpu", torch.bool if kind == BINARY else torch.float32, copy=True)
                    self._sequence.captures[spec.name].append((time_major, kept))
                self._sequence.calls.append(call)
        finally:
            self._busy = False

    def _describe(self, tensor: torch.Tensor, sample_dims: int) -> TensorSummary:
        """``tensor_stats.describe``, remembered for the last tensors seen: a neuron's spikes are checked once,
        not again as the next synaptic layer's input (unless modified in place in between)."""
        key = (id(tensor), sample_dims)
        version = _version_of(tensor)
        entry = self._summaries.get(key)
        if entry is not None and entry[0]() is tensor and entry[1] == version:
            return entry[2]
        summary = describe(tensor, sample_dims)
        if len(self._summaries) >= 16:
            self._summaries.clear()
        self._summaries[key] = (weakref.ref(tensor), version, summary)
        return summary

    def _record_functional(self, handler, args, kwargs, out) -> None:
        if not self._owners or self._sequence is None:
            return
        owner = self._owners[-1]
        result = out[0] if isinstance(out, (tuple, list)) else out
        if owner.handler is not None or not isinstance(result, torch.Tensor):
            return  # arithmetic inside a counted layer (a neuron's dynamics, a pooling window) is its own
        self._busy = True
        try:
            counts = handler(args, kwargs, result)
        finally:
            self._busy = False
        if counts is None:
            return
        self._sequence.calls.append(_Call(
            owner.name, ELEMENTWISE, owner.module_type, self._order_of(owner.name, ELEMENTWISE),
            self._current_step(), False, True, tuple(result.shape[:2]), counts,
        ))

    def _order_of(self, layer: str, role: str) -> int:
        return self._order.setdefault((layer, role), len(self._order))

    def _mark_encoding(self, call: _Call, x: torch.Tensor, time_major: bool) -> None:
        """Flag the encoding layer's calls, and whether its input is the same at every timestep."""
        if self.encoding_layer is None:
            self.encoding_layer = call.layer
        if call.layer != self.encoding_layer:
            return
        call.is_encoding = True
        sequence = self._sequence
        if not time_major and self.step_mode == "m" and sequence.T and sequence.N and sequence.T > 1 \
                and x.shape[0] == sequence.T * sequence.N:
            x, time_major = x.unflatten(0, (sequence.T, sequence.N)), True
        if time_major:
            call.input_repeated = x.shape[0] > 1 and all(torch.equal(x[0], x[t]) for t in range(1, x.shape[0]))
        elif self.step_mode == "s":
            if sequence.first_encoding_input is None:
                sequence.first_encoding_input = x.detach().clone()
                call.input_repeated = True
            else:
                first = sequence.first_encoding_input
                call.input_repeated = first.shape == x.shape and torch.equal(first, x)

    # ---- sequences -> rows ------------------------------------------------------------------------------------
    def _close_sequence(self) -> None:
        """Turn the finished sequence's calls into per-image rows, and forget the calls."""
        sequence, self._sequence = self._sequence, None
        self._summaries.clear()
        if sequence is None or not sequence.calls:
            return
        N = sequence.N or sequence.root_batch or 1
        if self.step_mode == "s":
            T = sequence.steps
            repeated = T > 1 and all(c.input_repeated for c in sequence.calls if c.is_encoding)
            for call in sequence.calls:
                if call.is_encoding:
                    call.input_repeated = repeated
        else:
            T = sequence.T or 1
        self.timesteps = T
        rows: dict[tuple, dict] = {}
        extremes: dict[str, list] = defaultdict(lambda: [np.zeros(N), np.zeros(N), 0])
        for call in sequence.calls:
            for timestep, values in self._per_image(call, T, N).items():
                key = (call.layer, call.role, call.module_type, timestep)
                row = rows.get(key)
                if row is None:
                    row = rows[key] = dict.fromkeys(_ADDITIVE, 0.0)
                    row.update(order=call.order, input_kind="", is_encoding=call.is_encoding,
                               input_repeated=call.input_repeated)
                for name, value in values.items():
                    row[name] = row[name] + value
                row["input_kind"] = most_general_kind((row["input_kind"], call.counts.input_kind))
            if call.counts.dead is not None and call.counts.dead.numel() == N:
                entry = extremes[call.layer]
                entry[0] += call.counts.dead.double().cpu().numpy()
                entry[1] += call.counts.saturated.double().cpu().numpy()
                entry[2] += call.counts.neurons
        for layer, fired in sequence.fired_steps.items():
            per_image = fired.reshape(fired.shape[0], -1) if fired.dim() else fired.reshape(1, 1)
            if per_image.shape[0] == N:
                extremes[layer] = [
                    (per_image == 0).sum(1).double().cpu().numpy(),
                    (per_image == T).sum(1).double().cpu().numpy(),
                    per_image.shape[1],
                ]
        images = np.arange(self.images, self.images + N)
        labels = dict(zip(_LABELS[:4], map(list, zip(*rows))))
        for name in _LABELS[4:]:
            labels[name] = [row[name] for row in rows.values()]
        values = {name: np.empty((len(rows), N)) for name in _ADDITIVE}
        for i, row in enumerate(rows.values()):
            for name in _ADDITIVE:
                values[name][i] = row[name]
        self._record_blocks.append(_RowBlock(images, labels, values))
        if extremes:
            self._extreme_blocks.append(_RowBlock(images, {"layer": list(extremes)}, {
                name: np.array([np.broadcast_to(entry[i], (N,)) for entry in extremes.values()], dtype=float)
                for i, name in enumerate(("dead_neurons", "saturated_neurons", "neurons"))
            }))
        wanted = N if self.spike_map_images is None else max(0, self.spike_map_images - self.images)
        for layer, captured in sequence.captures.items():
            self.spike_maps[layer].extend(_spike_maps_per_image(captured, T, N)[:wanted])
        self.images += N

    def _keeps_spike_maps(self) -> bool:
        """Whether the sequence being recorded still has images whose spike maps are wanted."""
        return self.spike_map_images is None or self.images < self.spike_map_images

    @staticmethod
    def _per_image(call: _Call, T: int, N: int) -> dict[int, dict]:
        """Split one call's counts per image, keyed by timestep (-1: not split by time).

        Each value maps a count name to a number (the same for every image: dense counts) or an ``[N]`` array.
        """
        counts = call.counts
        samples = max(counts.samples, 1)
        steps, timed = None, False  # steps None: the leading axis is not the images, totals are shared evenly
        if call.time_major:
            if call.lead[1] == N:
                steps, timed = call.lead[0], True
        elif T > 1 and call.step is None and (samples == T * N or (call.functional and call.lead == (T, N))):
            steps, timed = T, True
        elif samples == N:
            steps = 1
        rows = (steps or 1) * N
        dense = {
            "macs": counts.macs / rows, "real_input_macs": counts.real_input_macs / rows,
            "mults": counts.mults / rows, "adds": counts.adds / rows,
            "input_elements": counts.input_elements * samples / rows, "neurons": counts.neurons * samples / rows,
        }
        measured = {}
        for name in ("input_nonzero", "sops", "spikes"):
            tensor = getattr(counts, name)
            if tensor is not None:
                values = tensor.double().cpu().numpy()
                measured[name] = (values.reshape(steps, N) if steps and values.size == rows
                                  else np.full((steps or 1, N), values.sum() / rows))
        if not timed:
            return {-1 if call.step is None else call.step: {**dense, **{k: v[0] for k, v in measured.items()}}}
        return {t: {**dense, **{k: v[t] for k, v in measured.items()}} for t in range(steps)}

    # ---- results ------------------------------------------------------------------------------------------------
    def records(self) -> pd.DataFrame:
        """Return one row per (image, layer, role, timestep) with the counts of every forward so far.

        Columns: see ``RECORD_COLUMNS``. Counts are per image: ``macs``, ``sops``, ``mults``, ``adds`` (operations;
        ``real_input_macs``: the MACs of the calls whose input was real-valued),
        ``input_elements`` / ``input_nonzero`` (a synaptic layer's input size and nonzero entries), ``neurons`` /
        ``spikes`` (a neuron layer's size and emitted spikes, summed over the calls of that timestep).
        """
        frame = _frame(self._record_blocks, RECORD_COLUMNS)
        for name in ("image", "timestep", "order"):
            frame[name] = frame[name].astype(np.int64)
        for name in ("is_encoding", "input_repeated"):
            frame[name] = frame[name].astype(bool)
        return frame

    def neuron_extremes(self) -> pd.DataFrame:
        """Return one row per (image, neuron layer): ``neurons`` per timestep, ``dead_neurons`` (never fired over
        the image's timesteps) and ``saturated_neurons`` (fired at every timestep)."""
        frame = _frame(self._extreme_blocks, ("image", "layer", "neurons", "dead_neurons", "saturated_neurons"))
        frame["image"] = frame["image"].astype(np.int64)
        return frame

    @property
    def active_layer(self) -> str | None:
        """Qualified name of the innermost module running now (after an error: the one that raised), or None."""
        return self._owners[-1].name if self._owners else None


def _version_of(tensor: torch.Tensor) -> int | None:
    """Return the tensor's in-place modification counter (None for inference-mode tensors, which have none)."""
    return None if tensor.is_inference() else tensor._version


def _spike_maps_per_image(captured: list, T: int, N: int) -> list[torch.Tensor]:
    """Return one ``[timesteps, ...]`` tensor per image from the captured calls of one sequence (none when a
    captured tensor's leading axis is neither ``[T, N]``, ``T * N`` nor ``N``)."""
    per_call = []
    for time_major, tensor in captured:
        if time_major:
            per_call.append(tensor.transpose(0, 1))
        elif T > 1 and tensor.shape[0] == T * N:
            per_call.append(tensor.unflatten(0, (T, N)).transpose(0, 1))
        else:
            per_call.append(tensor.unsqueeze(1))
    if any(t.shape[0] != N for t in per_call):
        return []
    return list(torch.cat(per_call, dim=1).unbind(0))  # [N, timesteps, ...] -> per image
