"""Counting handlers: one small function per kind of layer or operation, and the registries that pick them.

A module handler is called from a forward hook as ``handler(module, inputs, output, time_major, describe)`` and
returns the ``CallCounts`` of that call. ``time_major`` is True when the module runs in SpikingJelly's multi-step
mode, so that its tensors are ``[T, N, ...]``; the handler then treats ``T * N`` as the leading sample axis.
``describe`` is ``tensor_stats.describe`` or a caching equivalent (the profiler passes one).
A functional handler is called for an operator seen in a module's own forward code (``a * b``, ``x.mean(1)``,
``F.interpolate``...) as ``handler(args, kwargs, out)`` with ``out`` the operator's (first) output tensor; it
returns the CallCounts, or None when the call is not one it counts.

Conventions (one per quantity, used by every handler):

- ``macs``: dense multiply-accumulates of a synaptic layer: conv ``k_h k_w C_in C_out H_out W_out / groups``
  per sample, transposed conv ``k_h k_w C_in C_out H_in W_in / groups``, linear ``in x out`` per row;
  the convention of fvcore's FlopCountAnalysis (one MAC per multiply-add, bias ignored).
- ``sops``: accumulates a synaptic layer actually performs when its input is binary (the number of
  spike x weight products landing on valid output positions, padding and borders included) or integer-valued
  (each input value v counts |v| accumulates of the weights it meets); zero for real-valued input.
- ``mults`` / ``adds``: element-wise multiplications (divisions included) and additions (subtractions,
  reduction sums, pooling window additions and comparisons, bias additions). Batch norm is one fused
  multiply-add per element, counted in ``mults``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from math import prod
from typing import Callable

import torch
import torch.nn as nn

from snn_energy.tensor_stats import BINARY, INTEGER, REAL, TensorSummary, exact_sum
from snn_energy.tensor_stats import describe as tensor_describe

SYNAPTIC = "synaptic"
NEURON = "neuron"
NORMALIZATION = "normalization"
POOLING = "pooling"
RESAMPLING = "resampling"
ELEMENTWISE = "elementwise"  # arithmetic written in a module's own forward code (gates, residual sums, means)

_SPIKINGJELLY_NEURON_PACKAGE = "spikingjelly.activation_based.neuron"


@dataclass
class CallCounts:
    """Counts of one call of one module or operator.

    Dense counts (``macs``, ``mults``, ``adds``) are totals over the call; per-sample tensors have one entry per
    index of the leading sample axis (``samples`` entries: ``N``, or ``T * N`` for time-major tensors).
    ``input_elements`` and ``neurons`` are per sample. ``dead`` / ``saturated`` (neurons that never fire /
    fire at every timestep of the call) have one entry per image and exist only for time-major neuron calls.
    """

    role: str
    samples: int
    macs: int = 0
    mults: int = 0
    adds: int = 0
    input_kind: str = ""
    input_elements: int = 0
    input_nonzero: torch.Tensor | None = None
    sops: torch.Tensor | None = None
    neurons: int = 0
    spikes: torch.Tensor | None = None
    output_kind: str = ""
    dead: torch.Tensor | None = None
    saturated: torch.Tensor | None = None

    @property
    def real_input_macs(self) -> int:
        """The call's MACs when its input was real-valued (what a strict accounting charges as MACs), else 0."""
        return self.macs if self.input_kind == REAL else 0


Describe = Callable[[torch.Tensor, int], TensorSummary]
ModuleHandler = Callable[[nn.Module, tuple, object, bool, Describe], CallCounts]
FunctionalHandler = Callable[[tuple, dict, torch.Tensor], "CallCounts | None"]


def first_tensor(values) -> torch.Tensor | None:
    """Return ``values`` if it is a tensor, else the first tensor in a tuple/list of values, else None."""
    if isinstance(values, torch.Tensor):
        return values
    if isinstance(values, (tuple, list)):
        for value in values:
            if isinstance(value, torch.Tensor):
                return value
    return None


def _batched(x: torch.Tensor, feature_dims: int, time_major: bool) -> torch.Tensor:
    """Return ``x`` with one leading sample axis: time-major ``[T, N, ...]`` flattened, an unbatched input batched.

    ``feature_dims`` is the number of dimensions of one sample (``C, *spatial`` for a convolution).
    """
    if time_major:
        x = x.flatten(0, 1)
    if x.dim() == feature_dims:
        x = x.unsqueeze(0)
    return x


def _described(x_raw: torch.Tensor, feature_dims: int, time_major: bool, describe: Describe):
    """Return the batched input and its TensorSummary (per sample of the batched input)."""
    x = _batched(x_raw, feature_dims, time_major)
    if time_major:
        return x, describe(x_raw, 2)
    return x, describe(x_raw if x is x_raw else x, 1)


def _source_index(j: int, length: int, padding_mode: str) -> int | None:
    """Map a position of the padded input (relative to the unpadded start) to the input element it reads."""
    if 0 <= j < length:
        return j
    if padding_mode == "zeros":
        return None
    if padding_mode == "reflect":
        return -j if j < 0 else 2 * (length - 1) - j
    if padding_mode == "replicate":
        return min(max(j, 0), length - 1)
    return j % length  # circular


@functools.lru_cache(maxsize=512)
def _fan_out(length_in: int, length_out: int, kernel: int, stride: int, pad_left: int, dilation: int,
             padding_mode: str, transposed: bool) -> tuple[int, ...]:
    """Return, along one dimension, how many (kernel tap, valid output position) pairs each input element meets.

    Convolution: output ``o`` reads input ``o * stride - pad_left + k * dilation`` (through the padding mode).
    Transposed convolution: input ``i`` writes output ``i * stride - pad_left + k * dilation`` when inside.
    """
    counts = [0] * length_in
    for k in range(kernel):
        if transposed:
            for i in range(length_in):
                if 0 <= i * stride - pad_left + k * dilation < length_out:
                    counts[i] += 1
        else:
            for o in range(length_out):
                i = _source_index(o * stride - pad_left + k * dilation, length_in, padding_mode)
                if i is not None:
                    counts[i] += 1
    return tuple(counts)


def _left_padding(module: nn.Module) -> tuple[int, ...]:
    padding = module.padding
    if padding == "valid":
        return (0,) * len(module.kernel_size)
    if padding == "same":
        return tuple(d * (k - 1) // 2 for d, k in zip(module.dilation, module.kernel_size))
    return tuple(padding)


def _fan_out_weights(module: nn.Module, shape_in, shape_out, transposed: bool, dtype, device) -> torch.Tensor:
    """Return the flattened outer product of the per-dimension fan-outs: one weight per input position."""
    padding_mode = getattr(module, "padding_mode", "zeros")
    per_dimension = tuple(
        _fan_out(shape_in[d], shape_out[d], module.kernel_size[d], module.stride[d], _left_padding(module)[d],
                 module.dilation[d], padding_mode, transposed)
        for d in range(len(module.kernel_size))
    )
    return _outer_product(per_dimension, dtype, device)


@functools.lru_cache(maxsize=512)
def _outer_product(per_dimension: tuple, dtype, device) -> torch.Tensor:
    weights = None
    for fan in per_dimension:
        fan = torch.tensor(fan, dtype=torch.float64)
        weights = fan if weights is None else torch.outer(weights.reshape(-1), fan)
    return weights.reshape(-1).to(device=device, dtype=dtype)


def _conv_family_counts(module: nn.Module, inputs: tuple, output, time_major: bool, describe: Describe,
                        transposed: bool) -> CallCounts:
    nd = len(module.kernel_size)
    x, summary = _described(first_tensor(inputs), nd + 1, time_major, describe)
    y = _batched(first_tensor(output), nd + 1, time_major)
    groups = module.groups
    per_tap = module.out_channels // groups if transposed else module.in_channels // groups
    counts = CallCounts(
        SYNAPTIC, samples=x.shape[0],
        macs=(x.numel() if transposed else y.numel()) * per_tap * prod(module.kernel_size),
        adds=y.numel() if module.bias is not None else 0,
        input_kind=summary.kind, input_elements=x[0].numel(), input_nonzero=summary.nonzero,
    )
    if summary.kind != REAL:
        # every nonzero input (or |integer| of them) meets C_out / groups weights at each of its fan-out positions
        positions = prod(x.shape[2:])
        largest = positions * prod(module.kernel_size) * (summary.max_abs or 1.0) * x.shape[1]
        dtype = torch.float32 if largest <= 2 ** 24 and x.dtype == torch.float32 else torch.float64
        values = (x.abs() if summary.kind == INTEGER else x).to(dtype).reshape(-1, positions)
        weights = _fan_out_weights(module, x.shape[2:], y.shape[2:], transposed, dtype, x.device)
        per_channel = (values @ weights).reshape(x.shape[0], x.shape[1])
        counts.sops = per_channel.sum(1, dtype=torch.float64) * (module.out_channels // groups)
    return counts


def conv_counts(module: nn.Module, inputs: tuple, output, time_major: bool,
                describe: Describe = tensor_describe) -> CallCounts:
    """Counts of a ConvNd call: dense MACs, input kind and nonzeros, exact accumulates for binary/integer input.

    The exact count weights each input element by its fan-out: the number of (kernel tap, output position)
    pairs that read it (padding, stride, dilation and the padding mode included), times C_out / groups.
    """
    return _conv_family_counts(module, inputs, output, time_major, describe, transposed=False)


def conv_transpose_counts(module: nn.Module, inputs: tuple, output, time_major: bool,
                          describe: Describe = tensor_describe) -> CallCounts:
    """Counts of a ConvTransposeNd call; exact accumulates count only the products landing inside the output."""
    return _conv_family_counts(module, inputs, output, time_major, describe, transposed=True)


def linear_counts(module: nn.Module, inputs: tuple, output, time_major: bool,
                  describe: Describe = tensor_describe) -> CallCounts:
    """Counts of a Linear call: ``in x out`` MACs per row; exact accumulates = nonzero (or |integer|) inputs x out."""
    x, summary = _described(first_tensor(inputs), 1, time_major, describe)
    rows = x.numel() // module.in_features
    counts = CallCounts(
        SYNAPTIC, samples=x.shape[0],
        macs=rows * module.in_features * module.out_features,
        adds=rows * module.out_features if module.bias is not None else 0,
        input_kind=summary.kind, input_elements=x[0].numel(), input_nonzero=summary.nonzero,
    )
    if summary.kind == BINARY:
        counts.sops = summary.nonzero * module.out_features
    elif summary.kind == INTEGER:
        counts.sops = exact_sum(x.abs().reshape(x.shape[0], -1)) * module.out_features
    return counts


def neuron_counts(module: nn.Module, inputs: tuple, output, time_major: bool,
                  describe: Describe = tensor_describe) -> CallCounts:
    """Counts of a spiking neuron call: neurons per sample, spikes (nonzero outputs) per sample, output kind.

    For a time-major call ``[T, N, ...]`` it also counts, per image, the neurons that never fire over the T
    timesteps (dead) and those that fire at every timestep (saturated).
    """
    y = first_tensor(output)
    if y.dim() == 0:
        y = y.reshape(1)
    summary = describe(y, 2 if time_major else 1)
    samples = summary.nonzero.numel()
    counts = CallCounts(
        NEURON, samples=samples, neurons=y.numel() // max(samples, 1), spikes=summary.nonzero,
        output_kind=summary.kind,
    )
    if time_major and y.dim() >= 2:
        steps, images = y.shape[0], y.shape[1]
        fired = y if summary.kind == BINARY else (y != 0)
        fired_steps = fired.sum(0, dtype=torch.float32).reshape(images, -1)  # per neuron: timesteps it fired
        counts.dead = counts.neurons - exact_sum(fired_steps.clamp(max=1))
        counts.saturated = exact_sum(fired_steps.sub_(steps - 1).clamp_(min=0))  # 1 where it fired every time
    return counts


def batchnorm_counts(module: nn.Module, inputs: tuple, output, time_major: bool,
                     describe: Describe = tensor_describe) -> CallCounts:
    """Counts of a batch norm call: one fused multiply-add (scale and shift) per element, in ``mults``."""
    x = first_tensor(inputs)
    samples = x.shape[0] * x.shape[1] if time_major else x.shape[0]
    return CallCounts(NORMALIZATION, samples=samples, mults=x.numel())


def _as_tuple(value, nd: int) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * nd


def _window_ops(x: torch.Tensor, y: torch.Tensor, kernel_size, average: bool, role: str) -> CallCounts:
    """Pooling arithmetic: ``window - 1`` additions (or comparisons) per output, one division per average.

    ``kernel_size`` None means adaptive pooling: the windows tile the input, ``in - out`` additions in all.
    """
    if kernel_size is None:
        adds = max(x.numel() - y.numel(), 0)
    else:
        adds = y.numel() * (prod(_as_tuple(kernel_size, max(y.dim() - 2, 1))) - 1)
    return CallCounts(role, samples=y.shape[0] if y.dim() else 1, adds=adds, mults=y.numel() if average else 0)


def pooling_counts(module: nn.Module, inputs: tuple, output, time_major: bool,
                   describe: Describe = tensor_describe) -> CallCounts:
    """Counts of a pooling module call (max: comparisons counted as additions; average: plus one division)."""
    x, y = first_tensor(inputs), first_tensor(output)
    if time_major:
        x, y = x.flatten(0, 1), y.flatten(0, 1)
    average = "Avg" in type(module).__name__
    return _window_ops(x, y, getattr(module, "kernel_size", None), average, POOLING)


# interpolation taps per output element: each tap is one multiplication, taps - 1 additions
_INTERPOLATION_TAPS = {"nearest": 0, "nearest-exact": 0, "linear": 2, "bilinear": 4, "bicubic": 16, "trilinear": 8}


def _interpolation_ops(x: torch.Tensor, y: torch.Tensor, mode: str, role: str) -> CallCounts:
    if mode == "area":
        return _window_ops(x, y, None, True, role)
    taps = _INTERPOLATION_TAPS.get(mode, 0)
    return CallCounts(
        role, samples=y.shape[0] if y.dim() else 1, mults=y.numel() * taps, adds=y.numel() * max(taps - 1, 0)
    )


def upsample_counts(module: nn.Module, inputs: tuple, output, time_major: bool,
                    describe: Describe = tensor_describe) -> CallCounts:
    """Counts of an Upsample call: per output element, one multiplication per interpolation tap and taps - 1 adds."""
    x, y = first_tensor(inputs), first_tensor(output)
    if time_major:
        x, y = x.flatten(0, 1), y.flatten(0, 1)
    return _interpolation_ops(x, y, module.mode, RESAMPLING)


MODULE_HANDLERS: dict[type, ModuleHandler] = {
    nn.Conv1d: conv_counts, nn.Conv2d: conv_counts, nn.Conv3d: conv_counts,
    nn.ConvTranspose1d: conv_transpose_counts, nn.ConvTranspose2d: conv_transpose_counts,
    nn.ConvTranspose3d: conv_transpose_counts,
    nn.Linear: linear_counts,
    nn.modules.batchnorm._BatchNorm: batchnorm_counts,
    nn.AvgPool1d: pooling_counts, nn.AvgPool2d: pooling_counts, nn.AvgPool3d: pooling_counts,
    nn.MaxPool1d: pooling_counts, nn.MaxPool2d: pooling_counts, nn.MaxPool3d: pooling_counts,
    nn.AdaptiveAvgPool1d: pooling_counts, nn.AdaptiveAvgPool2d: pooling_counts,
    nn.AdaptiveAvgPool3d: pooling_counts, nn.AdaptiveMaxPool1d: pooling_counts,
    nn.AdaptiveMaxPool2d: pooling_counts, nn.AdaptiveMaxPool3d: pooling_counts,
    nn.Upsample: upsample_counts,
}
SYNAPTIC_HANDLERS = (conv_counts, conv_transpose_counts, linear_counts)


def is_spikingjelly_neuron(module: nn.Module) -> bool:
    """Return True for SpikingJelly spiking neurons (any class of its ``neuron`` package, non-spiking ones aside)."""
    return any(
        cls.__module__.startswith(_SPIKINGJELLY_NEURON_PACKAGE) and "NonSpiking" not in cls.__name__
        for cls in type(module).__mro__
    )


def module_handler(module: nn.Module) -> ModuleHandler | None:
    """Return the counting handler for ``module`` (SpikingJelly neurons first, then by class), or None."""
    if is_spikingjelly_neuron(module):
        return neuron_counts
    for cls in type(module).__mro__:
        handler = MODULE_HANDLERS.get(cls)
        if handler is not None:
            return handler
    return None


# ---- functional operators seen in modules' own forward code ----------------------------------------------

def _samples(t: torch.Tensor) -> int:
    return t.shape[0] if t.dim() else 1


def _multiplications(args: tuple, kwargs: dict, out: torch.Tensor) -> CallCounts:
    return CallCounts(ELEMENTWISE, samples=_samples(out), mults=out.numel())


def _additions(args: tuple, kwargs: dict, out: torch.Tensor) -> CallCounts:
    return CallCounts(ELEMENTWISE, samples=_samples(out), adds=out.numel())


def _reduction(average: bool) -> FunctionalHandler:
    def count(args: tuple, kwargs: dict, out: torch.Tensor) -> CallCounts | None:
        x = first_tensor(args)
        if x is None:
            return None
        return CallCounts(ELEMENTWISE, samples=_samples(out), adds=max(x.numel() - out.numel(), 0),
                          mults=out.numel() if average else 0)
    return count


def _extremum(args: tuple, kwargs: dict, out: torch.Tensor) -> CallCounts | None:
    """max/min: element-wise between two tensors (one comparison per output) or a reduction."""
    other = args[1] if len(args) > 1 else kwargs.get("other")
    if isinstance(other, torch.Tensor):
        return _additions(args, kwargs, out)
    return _reduction(False)(args, kwargs, out)


def _functional_pooling(average: bool, adaptive: bool) -> FunctionalHandler:
    def count(args: tuple, kwargs: dict, out: torch.Tensor) -> CallCounts | None:
        x = first_tensor(args)
        kernel = None if adaptive else (args[1] if len(args) > 1 else kwargs.get("kernel_size"))
        if x is None or (kernel is None and not adaptive):
            return None
        return _window_ops(x, out, kernel, average, ELEMENTWISE)
    return count


def _interpolate(args: tuple, kwargs: dict, out: torch.Tensor) -> CallCounts | None:
    x = first_tensor(args)
    mode = args[3] if len(args) > 3 else kwargs.get("mode", "nearest")
    return None if x is None else _interpolation_ops(x, out, mode, ELEMENTWISE)


_MULTIPLICATIONS = ("mul", "mul_", "multiply", "div", "div_", "divide", "true_divide", "__mul__", "__rmul__",
                    "__imul__", "__truediv__", "__rtruediv__", "__itruediv__")
_ADDITIONS = ("add", "add_", "sub", "sub_", "subtract", "rsub", "__add__", "__radd__", "__iadd__", "__sub__",
              "__rsub__", "__isub__")

FUNCTIONAL_HANDLERS: dict[str, FunctionalHandler] = {
    **{name: _multiplications for name in _MULTIPLICATIONS},
    **{name: _additions for name in _ADDITIONS},
    "sum": _reduction(False), "mean": _reduction(True),
    "max": _extremum, "min": _extremum, "amax": _reduction(False), "amin": _reduction(False),
    "maximum": _additions, "minimum": _additions,
    "interpolate": _interpolate,
    **{f"avg_pool{d}d": _functional_pooling(True, False) for d in (1, 2, 3)},
    **{f"max_pool{d}d": _functional_pooling(False, False) for d in (1, 2, 3)},
    **{f"adaptive_avg_pool{d}d": _functional_pooling(True, True) for d in (1, 2, 3)},
    **{f"adaptive_max_pool{d}d": _functional_pooling(False, True) for d in (1, 2, 3)},
}
