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
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.overrides import TorchFunctionMode, _get_current_function_mode

from snn_energy.deferred import DeferredMeasurements, deferrable
from snn_energy.errors import NoSynapticLayerError, ProfilerInternalError, ProfilerStateError
from snn_energy.handlers import (
    FUNCTIONAL_HANDLERS, NEURON, NO_ARITHMETIC, SYNAPTIC, SYNAPTIC_HANDLERS, CallCounts, Operand, first_tensor,
    module_handler, neuron_counts,
)
from snn_energy.row_plan import EXTREMES, sequence_rows
from snn_energy.tensor_stats import TensorStats, measure
from snn_energy.transfer import pack, to_host

ROOT_NAME = "(model)"  # the layer name of arithmetic written in the top-level model's own forward
STEP_MODES = ("auto", "m", "s")
_LABELS = ("layer", "role", "module_type", "timestep", "order", "input_kind", "is_encoding", "input_repeated")
_ADDITIVE = ("macs", "real_input_macs", "sops", "input_elements", "input_nonzero", "mults", "adds", "neurons",
             "spikes")
RECORD_COLUMNS = ("image", *_LABELS, *_ADDITIVE)

UNCOUNTED_COLUMNS = ("operation", "layer", "calls")
_PENDING_LIMIT = 64  # packed sequences kept on the device before they are moved to the host together
# Modules that only move or drop data: never probed for spikes, never reported as uncounted.
_PASS_THROUGH = (nn.Identity, nn.Flatten, nn.Unflatten, nn.modules.dropout._DropoutNd)
# PyTorch's own activations and normalisations: never spike generators, so not probed (a ReLU twin of an SNN would
# otherwise have every activation measured); each call is named in ``uncounted`` as the module type.
_NOT_SPIKING = tuple(getattr(nn, name) for name in (
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid",
    "LogSigmoid", "Tanh", "Tanhshrink", "Hardtanh", "Hardsigmoid", "Hardswish", "Hardshrink", "Softshrink",
    "Softplus", "Softsign", "Softmax", "Softmax2d", "LogSoftmax", "Softmin", "GLU", "LayerNorm", "GroupNorm",
    "LocalResponseNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "RMSNorm") if hasattr(nn, name))

_PROFILED_MODULES: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()


@dataclass
class _LayerSpec:
    name: str
    module_type: str
    handler: object  # the module's counting handler, or None (containers and unknown modules)
    probe: bool  # an unknown leaf module: recorded as a neuron when its output is verified binary
    named: bool = False  # a module known to do arithmetic that is not counted (``_NOT_SPIKING``): named uncounted
    multi_step: bool = False  # in SpikingJelly's multi-step mode when the profiler was entered


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
    probe: bool = False  # an unknown leaf module's call: a neuron if its output is binary, spiking, from non-binary input


@dataclass
class _Sequence:
    calls: list = field(default_factory=list)
    T: int | None = None
    N: int | None = None
    root_batch: int | None = None
    steps: int = 0
    first_encoding_input: torch.Tensor | None = None
    uncounted: dict = field(default_factory=dict)  # (operation, layer) -> calls
    uncounted_in_leaves: dict = field(default_factory=dict)  # the same, inside unknown leaf modules
    counted_leaves: set = field(default_factory=set)  # unknown leaf modules whose own operations were counted
    fired_steps: dict = field(default_factory=dict)  # single-step: neuron layer -> per-neuron firing count
    deferred: DeferredMeasurements = field(default_factory=DeferredMeasurements)  # its small tensors
    captures: dict = field(default_factory=lambda: defaultdict(list))


@dataclass
class _Packed:
    """A closed sequence waiting on the device: its calls and one flat tensor of everything they measured."""

    sequence: "_Sequence"
    T: int
    N: int
    first_image: int
    flat: torch.Tensor
    layout: tuple


@dataclass
class _RowBlock:
    """Rows of one sequence: ``labels`` (an array per label, one value per row; strings in object arrays) and
    ``values`` (an ``[rows, N]`` array per count)."""

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
            data[name].append(np.repeat(labels, len(block.images)))
        for name, values in block.values.items():
            data[name].append(values.reshape(-1))
    return pd.DataFrame({name: np.concatenate(parts) if parts else np.array([], dtype=object)
                         for name, parts in data.items()})


class _SharedOpCounter(TorchFunctionMode):
    """One mode for every active profiler: hands each torch function call made during a profiled forward to the
    profiler whose forward is running (the innermost one), so that profiling twins does not stack modes."""

    users = 0
    instance: "_SharedOpCounter | None" = None
    forwarding: list = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if _SharedOpCounter.forwarding:
            _SharedOpCounter.forwarding[-1]._record_functional(func, args, kwargs, out)
        return out

    @classmethod
    def acquire(cls) -> None:
        if cls.users == 0:
            cls.instance = cls()
            cls.instance.__enter__()
        cls.users += 1

    @classmethod
    def release(cls) -> None:
        cls.users -= 1
        if cls.users == 0 and cls.instance is not None:
            cls.instance.__exit__(None, None, None)
            cls.instance = None

    @classmethod
    def pause(cls) -> bool:
        """Take the mode off the top of the torch-function stack (while a counted layer runs: its own operations
        are its own, and are not worth a Python call each); return whether it was taken off."""
        if cls.instance is not None and _get_current_function_mode() is cls.instance:
            torch._C._pop_torch_function_stack()
            return True
        return False

    @classmethod
    def resume(cls) -> None:
        """Put the paused mode back on top of the torch-function stack."""
        torch._C._push_on_torch_function_stack(cls.instance)


class Profiler:
    """Count spikes and operations of ``model`` per layer, timestep and image while the context is active.

    ``step_mode``: ``"auto"`` (multi-step if any module has ``step_mode == "m"``, single-step if the model has
    SpikingJelly memory modules, else one forward per sequence), ``"m"`` or ``"s"`` to force it.
    ``encoding_layer``: qualified name of the encoding layer; default the first synaptic layer called.
    ``spike_maps``: qualified names of layers whose spike maps are kept (a neuron's output, a synaptic
    layer's input), one ``[T, ...]`` tensor per image, bool when binary; nothing is kept for other layers.
    ``spike_map_images``: keep spike maps of the first that many images only (None: every image).
    ``count_functional_ops``: count the arithmetic and matrix products of modules' own forward code.
    ``extra_handlers``: counting handlers for more module types (``{type: handler(module, inputs, output,
    time_major, measure)}``) or torch functions (``{"name": handler(args, kwargs, out, measure)}``), see
    ``handlers``; they take precedence over the built-in ones.

    Nothing measured leaves the model's device during a forward: each sequence's measurements are packed into
    one device tensor when it ends, and all packed sequences move to the host in one transfer when the rows are
    asked for (``records()``, ``neuron_extremes()``, ``uncounted()``) or when 64 of them wait.

    Raises NoSynapticLayerError on entry for a model without synaptic layer, ProfilerStateError when entered
    while active or when another profiler is attached to the same model, ValueError for unknown layer names.
    An error inside the profiler's own hooks is raised as ProfilerInternalError (not a ValueError).
    """

    def __init__(self, model: nn.Module, *, step_mode: str = "auto", encoding_layer: str | None = None,
                 spike_maps=(), spike_map_images: int | None = None, count_functional_ops: bool = True,
                 extra_handlers: dict | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if step_mode not in STEP_MODES:
            raise ValueError(f"step_mode must be one of {STEP_MODES}, got {step_mode!r}")
        self.model = model
        wanted = (*spike_maps, *([encoding_layer] if encoding_layer else []))
        names = {name for name, _ in model.named_modules()} if wanted else set()
        unknown = [name for name in wanted if name not in names]
        if unknown:
            raise ValueError(f"spike_maps / encoding_layer name no module of {type(model).__name__}: {unknown}")
        extra_handlers = dict(extra_handlers or {})
        wrong = [key for key, value in extra_handlers.items()
                 if not (isinstance(key, (type, str)) and callable(value))]
        if wrong:
            raise ValueError(f"extra_handlers: keys must be module types or torch function names and values "
                             f"callables; wrong entries for {wrong}")
        self.module_handlers = {k: v for k, v in extra_handlers.items() if isinstance(k, type)}
        self.functional_handlers = {**FUNCTIONAL_HANDLERS,
                                    **{k: v for k, v in extra_handlers.items() if isinstance(k, str)}}
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
        self._uncounted: dict[tuple, int] = {}
        self._pending: list[_Packed] = []
        self._order: dict[tuple, int] = {}
        self._active = False
        self._in_forward = False
        self._owners: list[_LayerSpec] = []
        self._paused: list[bool] = []  # per counted layer running now: whether it took the shared mode off
        self._specs: dict[nn.Module, _LayerSpec] = {}
        self._stats: dict[tuple, tuple] = {}
        self._sequence: _Sequence | None = None
        self._reset_seen = False
        self._handles: list = []
        self._patched_resets: list = []
        self._uses_mode = False
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
        specs = {module: self._spec_of(name, module) for name, module in modules}
        if not any(spec.handler in SYNAPTIC_HANDLERS for spec in specs.values()):
            raise NoSynapticLayerError(
                f"{type(self.model).__name__} has no synaptic layer (Conv1d/2d/3d, ConvTranspose1d/2d/3d, "
                "Linear): there are no synaptic operations to count"
            )
        self.step_mode = self._resolve_step_mode([module for _, module in modules])
        self._specs = specs
        try:
            # two global hooks (cheap to attach to a model of any size) that look each module up in ``specs``
            self._handles.append(register_module_forward_pre_hook(self._pre_hook))
            self._handles.append(register_module_forward_hook(self._post_hook))
            if self.step_mode == "s":
                self._watch_resets()
            if self.count_functional_ops:
                _SharedOpCounter.acquire()
                self._uses_mode = True
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
            self._specs = {}

    def _spec_of(self, name: str, module: nn.Module) -> _LayerSpec:
        handler = next((self.module_handlers[cls] for cls in type(module).__mro__ if cls in self.module_handlers),
                       None) if self.module_handlers else None
        handler = handler or module_handler(module)
        leaf = next(module.children(), None) is None
        return _LayerSpec(
            name=name or ROOT_NAME, module_type=type(module).__name__, handler=handler,
            probe=handler is None and leaf and not isinstance(module, (*_PASS_THROUGH, *_NOT_SPIKING)),
            named=handler is None and isinstance(module, _NOT_SPIKING),
            multi_step=getattr(module, "step_mode", None) == "m",
        )

    def _resume_mode(self) -> None:
        """Put back the shared mode that counted layers took off and did not put back (their forward raised)."""
        while self._paused:
            if self._paused.pop():
                _SharedOpCounter.resume()

    def _detach(self) -> None:
        self._resume_mode()
        if self in _SharedOpCounter.forwarding:
            _SharedOpCounter.forwarding.remove(self)
        if self._uses_mode:
            self._uses_mode = False
            _SharedOpCounter.release()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for module, had_own, original in self._patched_resets:
            if had_own:
                module.__dict__["reset"] = original
            else:
                del module.__dict__["reset"]
        self._patched_resets.clear()

    def _resolve_step_mode(self, modules: list) -> str:
        if self.requested_step_mode != "auto":
            return self.requested_step_mode
        if any(getattr(m, "step_mode", None) == "m" for m in modules):
            return "m"
        if any(callable(getattr(m, "reset", None)) and hasattr(m, "step_mode") for m in modules):
            return "s"
        if any(callable(getattr(m, "reset_mem", None)) for m in modules):
            return "s"  # snnTorch neurons keep their membrane between calls: one call per timestep
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
    def _pre_hook(self, module: nn.Module, args) -> None:
        spec = self._specs.get(module)
        if spec is None:
            return  # a module of another model
        sequence = self._sequence
        if module is self.model or (spec.multi_step and sequence is not None and sequence.T is None):
            with _internal(spec):
                if module is self.model:
                    self._begin_forward(args)
                self._owners.append(spec)
                self._find_time_axes(spec, args)
        else:
            self._owners.append(spec)  # the common case, kept free of context managers
        if spec.handler is not None and self._uses_mode:
            self._paused.append(_SharedOpCounter.pause())

    def _find_time_axes(self, spec: _LayerSpec, args) -> None:
        """Read T and N from the first multi-step module's input ``[T, N, ...]``."""
        sequence = self._sequence
        if spec.multi_step and sequence is not None and sequence.T is None:
            x = first_tensor(args)
            if x is not None and x.dim() >= 2:
                sequence.T, sequence.N = int(x.shape[0]), int(x.shape[1])

    def _post_hook(self, module: nn.Module, args, output) -> None:
        spec = self._specs.get(module)
        if spec is None:
            return
        if spec.handler is not None and self._paused and self._paused.pop():
            _SharedOpCounter.resume()
        if not (spec.handler is not None or spec.probe or spec.named or module is self.model):
            if self._owners and self._owners[-1] is spec:
                self._owners.pop()
            return
        with _internal(spec):
            if (spec.handler is not None or spec.probe) and self._sequence is not None:
                self._count_module(spec, module, args, output)
            elif spec.named and self._sequence is not None:
                self._name_uncounted(spec.module_type, spec)
            if self._owners and self._owners[-1] is spec:
                self._owners.pop()
            if module is self.model:
                self._end_forward()

    def _begin_forward(self, args) -> None:
        if self._in_forward:  # the previous forward raised: its partial records are dropped
            self._sequence = None
        if self._reset_seen:
            self._close_sequence()
            self._reset_seen = False
        self._owners.clear()
        self._resume_mode()
        if self._sequence is None:
            self._sequence = _Sequence()
        x = first_tensor(args)
        if self._sequence.root_batch is None and x is not None:
            self._sequence.root_batch = int(x.shape[0]) if x.dim() else 1
        self._sequence.steps += 1
        self._in_forward = True
        if self in _SharedOpCounter.forwarding:
            _SharedOpCounter.forwarding.remove(self)
        _SharedOpCounter.forwarding.append(self)

    def _end_forward(self) -> None:
        self._in_forward = False
        if self in _SharedOpCounter.forwarding:
            _SharedOpCounter.forwarding.remove(self)
        self._stats.clear()
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
        probe = spec.handler is None
        if probe:
            counts = neuron_counts(module, args, output, time_major, self._measure)
            rows = x.shape[0] * x.shape[1] if time_major else (x.shape[0] if x.dim() else 1)
            counts.operands = (Operand(self._measure(x, rows)[0], 0),)
        else:
            counts = spec.handler(module, args, output, time_major, self._measure)
        lead_tensor = y if counts.role == NEURON else x
        call = _Call(
            spec.name, counts.role, spec.module_type, self._order_of(spec.name, counts.role),
            self._current_step(), time_major, False, tuple(lead_tensor.shape[:2]), counts, probe=probe,
        )
        if counts.role == SYNAPTIC:
            self._mark_encoding(call, x, time_major)
        if counts.role == NEURON and not time_major and self.step_mode == "s":
            fired = self._sequence.fired_steps
            fired[spec.name] = fired.get(spec.name, 0) + (y != 0).to(torch.int32)
        if spec.name in self.spike_maps and self._keeps_spike_maps():
            kept = y if counts.role != SYNAPTIC else x
            self._sequence.captures[spec.name].append((time_major, kept.detach().clone()))
        self._sequence.calls.append(call)

    def _measure(self, tensor: torch.Tensor, rows: int, weights: torch.Tensor | None = None,
                 width: int | None = None, accumulates: bool = False, steps: int | None = None,
                 scale: float = 1) -> tuple[TensorStats, torch.Tensor | None]:
        """``tensor_stats.measure``, its statistics remembered during a forward: a neuron's spikes are measured
        once, not again as the next synaptic layer's input (a view of them, e.g. flattened over T and N), unless
        modified in place in between. Small tensors are measured together when the sequence ends (``deferred``)."""
        key = _data_key(tensor, rows)
        version = _version_of(tensor)
        entry = self._stats.get(key)
        deferred = deferrable(tensor, rows, weights, width, steps)
        if entry is not None and entry[1] == version and _same_data(entry[0](), tensor) and (
                steps is None or entry[2].ever is not None):
            if not accumulates:
                return entry[2], None
            if deferred:
                return entry[2], self._sequence.deferred.measure(tensor, rows, weights, width, scale)[1]
            return entry[2], measure(tensor, rows, weights, width, stats=False, accumulates=True, scale=scale)[1]
        if deferred:
            stats, summed = self._sequence.deferred.measure(tensor, rows, weights, width, scale)
            summed = summed if accumulates else None
        else:
            stats, summed = measure(tensor, rows, weights, width, accumulates=accumulates, steps=steps, scale=scale)
        if len(self._stats) >= 16:
            self._stats.clear()
        self._stats[key] = (weakref.ref(tensor), version, stats)
        return stats, summed

    def _record_functional(self, func, args, kwargs, out) -> None:
        """Count (or name as uncounted) one torch function call seen during a forward in a module's own code."""
        if not self._owners or self._sequence is None:
            return
        owner = self._owners[-1]
        if owner.handler is not None or owner.named:
            return  # arithmetic inside a counted layer (a neuron's dynamics, a pooling window) or a named one
        name = getattr(func, "__name__", None) or repr(func)
        handler = self.functional_handlers.get(name)
        if handler is None:
            if name not in NO_ARITHMETIC:
                self._name_uncounted(name, owner)
            return
        result = out[0] if isinstance(out, (tuple, list)) and out else out
        if not isinstance(result, torch.Tensor):
            return
        with _internal(owner):
            counts = handler(args, kwargs, result, self._measure)
            if counts is None:
                self._name_uncounted(name, owner)
                return
            self._sequence.counted_leaves.add(owner.name)
            for one in counts if isinstance(counts, list) else (counts,):
                self._sequence.calls.append(_Call(
                    owner.name, one.role, owner.module_type, self._order_of(owner.name, one.role),
                    self._current_step(), False, True, tuple(result.shape[:2]), one,
                ))

    def _name_uncounted(self, name: str, owner: _LayerSpec) -> None:
        # inside an unknown leaf module, its operations are named only if the module is counted otherwise (else
        # the module itself is named, or it is a neuron and they are its dynamics)
        table = self._sequence.uncounted_in_leaves if owner.probe else self._sequence.uncounted
        key = (name, owner.name)
        table[key] = table.get(key, 0) + 1

    def _order_of(self, layer: str, role: str) -> int:
        return self._order.setdefault((layer, role), len(self._order))

    def _mark_encoding(self, call: _Call, x: torch.Tensor, time_major: bool) -> None:
        """Flag the encoding layer's calls, and measure (on the device) whether its input is the same at every
        timestep."""
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
            call.counts.repeated = (x[1:] == x[:1]).all() if x.shape[0] > 1 else torch.zeros(
                (), dtype=torch.bool, device=x.device)
        elif self.step_mode == "s":
            if sequence.first_encoding_input is None:
                sequence.first_encoding_input = x.detach().clone()
                call.counts.repeated = torch.ones((), dtype=torch.bool, device=x.device)
            else:
                first = sequence.first_encoding_input
                call.counts.repeated = (first == x).all() if first.shape == x.shape else torch.zeros(
                    (), dtype=torch.bool, device=x.device)

    # ---- sequences -> rows ------------------------------------------------------------------------------------
    def _close_sequence(self) -> None:
        """Pack the finished sequence's measurements into one device tensor (no transfer), and forget its calls'
        tensors; every 64 packed sequences, move them to the host."""
        sequence, self._sequence = self._sequence, None
        self._stats.clear()
        if sequence is None or not (sequence.calls or sequence.uncounted or sequence.uncounted_in_leaves):
            return
        N = sequence.N or sequence.root_batch or 1
        T = sequence.steps if self.step_mode == "s" else (sequence.T or 1)
        self.timesteps = T
        extras = {}
        for layer, fired in sequence.fired_steps.items():
            per_image = fired.reshape(fired.shape[0], -1) if fired.dim() else fired.reshape(1, 1)
            if per_image.shape[0] == N:
                extras[f"dead:{layer}"] = (per_image == 0).sum(1)
                extras[f"saturated:{layer}"] = (per_image == T).sum(1)
                extras[f"neurons:{layer}"] = torch.full((1,), per_image.shape[1], device=per_image.device)
        with torch._C.DisableTorchFunction(), torch.no_grad():
            sequence.deferred.fill()
            flat, layout = pack([call.counts for call in sequence.calls], extras)
        sequence.fired_steps = {}
        self._pending.append(_Packed(sequence, T, N, self.images, flat, layout))
        self.images += N
        if len(self._pending) >= _PENDING_LIMIT:
            self._flush()

    def _flush(self) -> None:
        """Move every packed sequence to the host in one transfer and turn each into per-image rows."""
        pending, self._pending = self._pending, []
        for packed, values in zip(pending, to_host([p.flat for p in pending])):
            self._rows_of(packed, values)

    def _rows_of(self, packed: _Packed, values) -> None:
        """Turn one packed sequence's host values into its record, neuron-extreme and spike-map rows, and count
        what it left uncounted."""
        sequence, T, N = packed.sequence, packed.T, packed.N
        rows = sequence_rows(sequence.calls, packed.layout, values, T, N, self.step_mode, sequence.captures)
        for key in rows.dropped_probes:
            if key[1] not in sequence.counted_leaves:
                sequence.uncounted[key] = sequence.uncounted.get(key, 0) + 1
        for (operation, layer), number in sequence.uncounted_in_leaves.items():
            if layer in sequence.counted_leaves and layer not in rows.neuron_probes:
                sequence.uncounted[(operation, layer)] = number
        for key, number in sequence.uncounted.items():
            self._uncounted[key] = self._uncounted.get(key, 0) + number
        images = np.arange(packed.first_image, packed.first_image + N)
        if rows.labels is not None:
            self._record_blocks.append(_RowBlock(images, rows.labels, rows.values))
        if rows.extremes is not None:
            self._extreme_blocks.append(_RowBlock(images, {"layer": rows.extreme_layers}, rows.extremes))
        wanted = N if self.spike_map_images is None else max(0, self.spike_map_images - packed.first_image)
        for layer, captured in sequence.captures.items():
            dtype = torch.bool if layer in rows.binary_layers else torch.float32
            captured = [(time_major, tensor.to("cpu", dtype)) for time_major, tensor in captured]
            self.spike_maps[layer].extend(_spike_maps_per_image(captured, T, N)[:wanted])

    def _keeps_spike_maps(self) -> bool:
        """Whether the sequence being recorded still has images whose spike maps are wanted."""
        wanted = self.spike_map_images
        return wanted is None or self.images < wanted

    # ---- results ------------------------------------------------------------------------------------------------
    def records(self) -> pd.DataFrame:
        """Return one row per (image, layer, role, timestep) with the counts of every forward so far.

        Columns: see ``RECORD_COLUMNS``. Counts are per image: ``macs``, ``sops``, ``mults``, ``adds`` (operations;
        ``real_input_macs``: the MACs of the calls whose input was real-valued),
        ``input_elements`` / ``input_nonzero`` (a synaptic layer's input size and nonzero entries), ``neurons`` /
        ``spikes`` (a neuron layer's size and emitted spikes, summed over the calls of that timestep).
        """
        self._flush()
        frame = self._records_frame()
        # calls order of the rows' (layer, role): unknown leaf modules that were not neurons leave no gap
        frame["order"] = (frame["order"].rank(method="dense") - 1).astype(np.int64) if len(frame) else frame["order"]
        return frame

    def drain(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Return ``(records, neuron_extremes)`` of the forwards since the last drain and forget them, so that
        profiling a data set batch by batch keeps memory bounded. As ``records()`` and ``neuron_extremes()``,
        except that ``order`` is the call order itself (it sorts the same, with gaps where a probed module was
        no neuron)."""
        self._flush()
        records = self._records_frame()
        extremes = self.neuron_extremes()
        self._record_blocks, self._extreme_blocks = [], []
        return records, extremes

    def _records_frame(self) -> pd.DataFrame:
        frame = _frame(self._record_blocks, RECORD_COLUMNS)
        for name in ("image", "timestep", "order"):
            frame[name] = frame[name].astype(np.int64)
        for name in ("is_encoding", "input_repeated"):
            frame[name] = frame[name].astype(bool)
        return frame

    def neuron_extremes(self) -> pd.DataFrame:
        """Return one row per (image, neuron layer): ``neurons`` per timestep, ``dead_neurons`` (never fired over
        the image's timesteps) and ``saturated_neurons`` (fired at every timestep)."""
        self._flush()
        frame = _frame(self._extreme_blocks, ("image", "layer", *EXTREMES))
        frame["image"] = frame["image"].astype(np.int64)
        return frame

    def uncounted(self) -> pd.DataFrame:
        """Return one row per (operation or module type, layer) that ran and was not counted, with its calls:
        torch functions with arithmetic but no handler written in a module's own code (``softmax``, ``exp``...)
        and leaf modules without handler that are not spike generators (``ReLU``, ``LayerNorm``...)."""
        self._flush()
        rows = [(operation, layer, calls) for (operation, layer), calls in self._uncounted.items()]
        return pd.DataFrame(rows, columns=list(UNCOUNTED_COLUMNS)).astype({"calls": np.int64})

    @property
    def active_layer(self) -> str | None:
        """Qualified name of the innermost module running now (after an error: the one that raised), or None."""
        return self._owners[-1].name if self._owners else None


class _internal:
    """Context manager for the profiler's own work inside a hook: torch functions are not intercepted (its
    arithmetic is not the model's), autograd records nothing, and an exception it raises becomes
    ProfilerInternalError naming the layer. One object rather than three nested context managers, because it is
    entered at every counted call (``torch.no_grad()`` alone costs about 9 us to enter and leave)."""

    __slots__ = ("spec", "guard", "grad")

    def __init__(self, spec: _LayerSpec):
        self.spec = spec

    def __enter__(self):
        self.guard = torch._C.DisableTorchFunction()
        self.guard.__enter__()
        self.grad = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)
        return self

    def __exit__(self, exc_type, exc, tb):
        torch._C._set_grad_enabled(self.grad)
        self.guard.__exit__(exc_type, exc, tb)
        if exc_type is None or issubclass(exc_type, (ProfilerInternalError, KeyboardInterrupt, SystemExit)):
            return False
        raise ProfilerInternalError(
            f"snn_energy's profiler failed while counting layer '{self.spec.name}' ({self.spec.module_type}): "
            f"{exc_type.__name__}: {exc}") from exc


def _data_key(tensor: torch.Tensor, rows: int) -> tuple:
    """What identifies a tensor's elements in their order: a contiguous tensor and its contiguous views (flattened,
    reshaped) share the key; a strided one is keyed by its layout too."""
    layout = () if tensor.is_contiguous() else (tuple(tensor.shape), tensor.stride())
    return tensor.data_ptr(), tensor.numel(), tensor.dtype, rows, layout


def _same_data(remembered: torch.Tensor | None, tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` reads the elements of a remembered tensor that is still alive (a dead one's memory may
    hold another tensor now)."""
    return remembered is not None and remembered.data_ptr() == tensor.data_ptr() and \
        remembered.numel() == tensor.numel() and _version_of(remembered) == _version_of(tensor)


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
