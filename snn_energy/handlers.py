"""Counting handlers: one small function per kind of layer or operation, and the registries that pick them.

A module handler is called from a forward hook as ``handler(module, inputs, output, time_major, measure)`` and
returns the ``CallCounts`` of that call. ``time_major`` is True when the module runs in SpikingJelly's multi-step
mode, so that its tensors are ``[T, N, ...]``; the handler then treats ``T * N`` as the leading sample axis.
``measure(tensor, rows)`` is ``tensor_stats.measure`` or a caching equivalent (the profiler passes one).
A functional handler is called for an operator seen in a module's own forward code (``a * b``, ``x.mean(1)``,
``q @ k.transpose(-2, -1)``, ``F.linear``, ``F.conv2d``...) as ``handler(args, kwargs, out, measure)`` with
``out`` the operator's (first) output tensor; it returns the CallCounts (a list for several), or None when the
call is not one it counts. Handlers never synchronise with the device: what depends on values (kinds, nonzero
counts, exact accumulates) stays in device tensors until the profiler moves a whole sequence at once.

Conventions (one per quantity, used by every handler):

- ``macs``: dense multiply-accumulates of a synaptic layer: conv ``k_h k_w C_in C_out H_out W_out / groups``
  per sample, transposed conv ``k_h k_w C_in C_out H_in W_in / groups``, linear ``in x out`` per row;
  the convention of fvcore's FlopCountAnalysis (one MAC per multiply-add, bias ignored).
- the matrix-product family written in a forward (``@``, ``matmul``, ``mm``, ``bmm``, ``addmm``, ``baddbmm``,
  two-operand ``einsum``, ``F.linear``, ``F.conv*``, ``F.conv_transpose*``, ``F.scaled_dot_product_attention``)
  is synaptic work like a layer: dense MACs (``n k m`` per product), exact accumulates of its first binary or
  integer operand (each of its values v meets |v| x the other operand's matching entries).
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

from snn_energy.tensor_stats import TensorStats
from snn_energy.tensor_stats import measure as measure_tensor

SYNAPTIC = "synaptic"
NEURON = "neuron"
NORMALIZATION = "normalization"
POOLING = "pooling"
RESAMPLING = "resampling"
ELEMENTWISE = "elementwise"  # arithmetic written in a module's own forward code (gates, residual sums, means)

_SPIKINGJELLY_NEURON_PACKAGE = "spikingjelly.activation_based.neuron"


@dataclass
class Operand:
    """One measured input of a call: its device statistics, its elements per sample (a shape count) and, for a
    synaptic call, its value-weighted accumulates per sample (float64, device): what the call performs as
    accumulates if this operand turns out binary or integer (each input value v meets |v| x fan-out weights)."""

    stats: TensorStats
    elements: int
    accumulates: torch.Tensor | None = None


@dataclass
class CallCounts:
    """Counts of one call of one module or operator, measured without leaving the device.

    Dense counts (``macs``, ``mults``, ``adds``) are totals over the call (Python ints, from shapes only);
    per-sample tensors have one entry per index of the leading sample axis (``samples`` entries: ``N``, or
    ``T * N`` for time-major tensors). ``operands``: the inputs whose kind decides how a synaptic call is
    charged (the first binary or integer one gives its exact accumulates; none: real-valued, MACs).
    ``output``: a neuron's output statistics (spikes = its nonzero count). ``dead`` / ``saturated`` (neurons
    that never fire / fire at every timestep of the call) have one entry per image (time-major neuron calls).
    ``repeated``: for the encoding layer, whether its input was the same at every timestep (0-dim bool).
    """

    role: str
    samples: int
    macs: int = 0
    mults: int = 0
    adds: int = 0
    neurons: int = 0
    operands: tuple = ()
    output: TensorStats | None = None
    dead: torch.Tensor | None = None
    saturated: torch.Tensor | None = None
    repeated: torch.Tensor | None = None

    def resolved(self):
        """Return the host-side counts of this call (``transfer.resolve``; one transfer)."""
        from snn_energy.transfer import resolve_calls
        return resolve_calls([self])[0]


Measure = Callable[..., "tuple[TensorStats | None, torch.Tensor | None]"]  # tensor_stats.measure's signature
ModuleHandler = Callable[[nn.Module, tuple, object, bool, Measure], CallCounts]
FunctionalHandler = Callable[[tuple, dict, torch.Tensor, Measure], "CallCounts | list[CallCounts] | None"]


def measure(x: torch.Tensor, rows: int, weights: torch.Tensor | None = None, width: int | None = None,
            accumulates: bool = False, steps: int | None = None,
            scale: float = 1) -> tuple[TensorStats, torch.Tensor | None]:
    """The default ``Measure``: ``tensor_stats.measure`` without caching."""
    return measure_tensor(x, rows, weights, width, accumulates=accumulates, steps=steps, scale=scale)


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


@dataclass(frozen=True)
class ConvGeometry:
    """What a convolution's counts depend on besides shapes (from a ConvNd module or a functional call)."""

    kernel_size: tuple
    stride: tuple
    padding: object  # a tuple, "same" or "valid"
    dilation: tuple
    groups: int
    in_channels: int
    out_channels: int
    padding_mode: str = "zeros"
    bias: bool = False

    @staticmethod
    def of(module: nn.Module) -> "ConvGeometry":
        return ConvGeometry(tuple(module.kernel_size), tuple(module.stride), module.padding if isinstance(
            module.padding, str) else tuple(module.padding), tuple(module.dilation), module.groups,
            module.in_channels, module.out_channels, getattr(module, "padding_mode", "zeros"),
            module.bias is not None)

    def left_padding(self) -> tuple[int, ...]:
        if self.padding == "valid":
            return (0,) * len(self.kernel_size)
        if self.padding == "same":
            return tuple(d * (k - 1) // 2 for d, k in zip(self.dilation, self.kernel_size))
        return tuple(self.padding)


@functools.lru_cache(maxsize=1024)
def _conv_plan(geometry: ConvGeometry, shape_in: tuple, shape_out: tuple, transposed: bool) -> tuple:
    """Shape-only counts of a convolution on a batched ``[samples, C, *spatial]`` input, once per shape:
    (MACs, bias additions, input elements per sample, per-dimension fan-outs, float32 exact)."""
    per_tap = geometry.out_channels // geometry.groups if transposed else geometry.in_channels // geometry.groups
    elements_in, elements_out = prod(shape_in), prod(shape_out)
    macs = (elements_in if transposed else elements_out) * per_tap * prod(geometry.kernel_size)
    adds = elements_out if geometry.bias else 0
    fans = tuple(
        _fan_out(shape_in[2 + d], shape_out[2 + d], geometry.kernel_size[d], geometry.stride[d],
                 geometry.left_padding()[d], geometry.dilation[d], geometry.padding_mode, transposed)
        for d in range(len(geometry.kernel_size))
    )
    # per channel, the weighted sum of binary (or small integer) inputs stays below 2**24: float32 is exact
    exact32 = prod(shape_in[2:]) * prod(geometry.kernel_size) * 16 <= 2 ** 24
    return macs, adds, prod(shape_in[1:]), fans, exact32


@functools.lru_cache(maxsize=512)
def _outer_product(per_dimension: tuple, dtype, device) -> torch.Tensor:
    """The flattened outer product of the per-dimension fan-outs (one weight per input position), on ``device``
    (copied without a host synchronisation)."""
    weights = None
    with torch._C.DisableTorchFunction():
        for fan in per_dimension:
            fan = torch.tensor(fan, dtype=torch.float64)
            weights = fan if weights is None else torch.outer(weights.reshape(-1), fan)
        return weights.reshape(-1).to(dtype).to(device, non_blocking=True)


def _conv_family(geometry: ConvGeometry, x_raw: torch.Tensor, y_raw: torch.Tensor, time_major: bool,
                 measure: Measure, transposed: bool) -> CallCounts:
    nd = len(geometry.kernel_size)
    x, y = _batched(x_raw, nd + 1, time_major), _batched(y_raw, nd + 1, time_major)
    macs, adds, elements, fans, exact32 = _conv_plan(geometry, tuple(x.shape), tuple(y.shape), transposed)
    samples = x.shape[0]
    weights = _outer_product(fans, torch.float32 if exact32 else torch.float64, x.device)
    # every input value v meets C_out / groups weights at each of its fan-out positions: |v| accumulates each
    stats, accumulates = measure(x, samples, weights, weights.shape[0], accumulates=True,
                                 scale=geometry.out_channels // geometry.groups)
    return CallCounts(SYNAPTIC, samples=samples, macs=macs, adds=adds,
                      operands=(Operand(stats, elements, accumulates),))


def conv_counts(module: nn.Module, inputs: tuple, output, time_major: bool, measure: Measure = measure) -> CallCounts:
    """Counts of a ConvNd call: dense MACs, input kind and nonzeros, exact accumulates for binary/integer input.

    The exact count weights each input element by its fan-out: the number of (kernel tap, output position)
    pairs that read it (padding, stride, dilation and the padding mode included), times C_out / groups.
    """
    return _conv_family(ConvGeometry.of(module), first_tensor(inputs), first_tensor(output), time_major, measure,
                        transposed=False)


def conv_transpose_counts(module: nn.Module, inputs: tuple, output, time_major: bool,
                          measure: Measure = measure) -> CallCounts:
    """Counts of a ConvTransposeNd call; exact accumulates count only the products landing inside the output."""
    return _conv_family(ConvGeometry.of(module), first_tensor(inputs), first_tensor(output), time_major, measure,
                        transposed=True)


def _linear(x_raw: torch.Tensor, in_features: int, out_features: int, bias: bool, time_major: bool,
            measure: Measure) -> CallCounts:
    x = _batched(x_raw, 1, time_major)
    rows = x.numel() // in_features
    samples = x.shape[0]
    stats, accumulates = measure(x, samples, accumulates=True, scale=out_features)
    return CallCounts(
        SYNAPTIC, samples=samples, macs=rows * in_features * out_features, adds=rows * out_features if bias else 0,
        operands=(Operand(stats, x[0].numel() if samples else 0, accumulates),),
    )


def linear_counts(module: nn.Module, inputs: tuple, output, time_major: bool,
                  measure: Measure = measure) -> CallCounts:
    """Counts of a Linear call: ``in x out`` MACs per row; exact accumulates = nonzero (or |integer|) inputs x out."""
    return _linear(first_tensor(inputs), module.in_features, module.out_features, module.bias is not None,
                   time_major, measure)


def neuron_counts(module: nn.Module, inputs: tuple, output, time_major: bool,
                  measure: Measure = measure) -> CallCounts:
    """Counts of a spiking neuron call: neurons per sample, spikes (nonzero outputs) per sample, output kind.

    For a time-major call ``[T, N, ...]`` it also counts, per image, the neurons that never fire over the T
    timesteps (dead) and those that fire at every timestep (saturated).
    """
    y = first_tensor(output)
    if y.dim() == 0:
        y = y.reshape(1)
    timed = time_major and y.dim() >= 2
    samples = y.shape[0] * y.shape[1] if timed else y.shape[0]
    stats, _ = measure(y, samples, steps=y.shape[0] if timed else None)
    counts = CallCounts(NEURON, samples=samples, neurons=y.numel() // max(samples, 1), output=stats)
    if timed:
        counts.dead = counts.neurons - stats.ever
        counts.saturated = stats.always
    return counts


def batchnorm_counts(module: nn.Module, inputs: tuple, output, time_major: bool,
                     measure: Measure = measure) -> CallCounts:
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
                   measure: Measure = measure) -> CallCounts:
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
                    measure: Measure = measure) -> CallCounts:
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


@functools.lru_cache(maxsize=None)
def is_spikingjelly_neuron_type(module_type: type) -> bool:
    """Return True for the classes of SpikingJelly's spiking neurons (any class of its ``neuron`` package,
    non-spiking ones aside)."""
    return any(cls.__module__.startswith(_SPIKINGJELLY_NEURON_PACKAGE) and "NonSpiking" not in cls.__name__
               for cls in module_type.__mro__)


def module_handler(module: nn.Module) -> ModuleHandler | None:
    """Return the counting handler for ``module`` (SpikingJelly neurons first, then by class), or None."""
    if is_spikingjelly_neuron_type(type(module)):
        return neuron_counts
    return next((MODULE_HANDLERS[cls] for cls in type(module).__mro__ if cls in MODULE_HANDLERS), None)


# ---- functional operators seen in modules' own forward code ----------------------------------------------

def _samples(t: torch.Tensor) -> int:
    return t.shape[0] if t.dim() else 1


def _multiplications(args: tuple, kwargs: dict, out: torch.Tensor, measure: Measure = measure) -> CallCounts:
    return CallCounts(ELEMENTWISE, samples=_samples(out), mults=out.numel())


def _additions(args: tuple, kwargs: dict, out: torch.Tensor, measure: Measure = measure) -> CallCounts:
    return CallCounts(ELEMENTWISE, samples=_samples(out), adds=out.numel())


def _reduction(average: bool) -> FunctionalHandler:
    def count(args: tuple, kwargs: dict, out: torch.Tensor, measure: Measure = measure) -> CallCounts | None:
        x = first_tensor(args)
        if x is None:
            return None
        return CallCounts(ELEMENTWISE, samples=_samples(out), adds=max(x.numel() - out.numel(), 0),
                          mults=out.numel() if average else 0)
    return count


def _extremum(args: tuple, kwargs: dict, out: torch.Tensor, measure: Measure = measure) -> CallCounts | None:
    """max/min: element-wise between two tensors (one comparison per output) or a reduction."""
    other = args[1] if len(args) > 1 else kwargs.get("other")
    if isinstance(other, torch.Tensor):
        return _additions(args, kwargs, out)
    return _reduction(False)(args, kwargs, out)


def _functional_pooling(average: bool, adaptive: bool) -> FunctionalHandler:
    def count(args: tuple, kwargs: dict, out: torch.Tensor, measure: Measure = measure) -> CallCounts | None:
        x = first_tensor(args)
        kernel = None if adaptive else (args[1] if len(args) > 1 else kwargs.get("kernel_size"))
        if x is None or (kernel is None and not adaptive):
            return None
        return _window_ops(x, out, kernel, average, ELEMENTWISE)
    return count


def _interpolate(args: tuple, kwargs: dict, out: torch.Tensor, measure: Measure = measure) -> CallCounts | None:
    x = first_tensor(args)
    mode = args[3] if len(args) > 3 else kwargs.get("mode", "nearest")
    return None if x is None else _interpolation_ops(x, out, mode, ELEMENTWISE)


# ---- the matrix-product family written in a forward: synaptic work, like the layers -------------------------

def _operand(t: torch.Tensor, samples: int, meets: int, measure: Measure) -> Operand:
    """An operand of a product: each of its values meets ``meets`` values of the other operand (accumulates
    |v| x meets); per sample when its leading axis is the output's, else its total spread over the samples."""
    aligned = t.dim() >= 1 and t.shape[0] == samples and samples > 1
    rows = samples if aligned else 1
    stats, accumulates = measure(t, rows, accumulates=True, scale=meets if aligned else meets / samples)
    return Operand(stats, t.numel() // samples, accumulates if aligned else accumulates.expand(samples))


def _product(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, measure: Measure, adds: int = 0) -> CallCounts:
    """Counts of ``a @ b`` (torch.matmul broadcasting): dense MACs, both operands measured."""
    n = a.shape[-2] if a.dim() > 1 else 1
    k = a.shape[-1]
    m = b.shape[-1] if b.dim() > 1 else 1
    batch = out.numel() // max(n * m, 1)
    samples = out.shape[0] if out.dim() >= 3 else 1
    # an element of a meets m elements of b in each of the batch entries that broadcast it, and vice versa
    a_copies = batch // max(a.numel() // max(n * k, 1), 1)
    b_copies = batch // max(b.numel() // max(k * m, 1), 1)
    return CallCounts(SYNAPTIC, samples=samples, macs=batch * n * k * m, adds=adds, operands=(
        _operand(a, samples, m * a_copies, measure), _operand(b, samples, n * b_copies, measure)))


def _matmul(args: tuple, kwargs: dict, out: torch.Tensor, measure: Measure = measure) -> CallCounts | None:
    a, b = args[0], args[1] if len(args) > 1 else kwargs.get("other", kwargs.get("mat2"))
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        return None
    return _product(a, b, out, measure)


def _rmatmul(args: tuple, kwargs: dict, out: torch.Tensor, measure: Measure = measure) -> CallCounts | None:
    return _matmul((args[1], args[0]), {}, out, measure)


def _matmul_plus(args: tuple, kwargs: dict, out: torch.Tensor, measure: Measure = measure) -> CallCounts | None:
    """addmm / baddbmm / addmv: ``input + a @ b``, one addition per output element."""
    return _product(args[1], args[2], out, measure, adds=out.numel())


def _einsum(args: tuple, kwargs: dict, out: torch.Tensor, measure: Measure = measure) -> CallCounts | None:
    """Two-operand einsum without ellipsis: MACs = product of every index size; an operand's value meets the
    product of the sizes of the indices it lacks."""
    equation = args[0]
    operands = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
    if not isinstance(equation, str) or "..." in equation or len(operands) != 2:
        return None
    inputs = equation.replace(" ", "").split("->")[0].split(",")
    sizes = {}
    for letters, tensor in zip(inputs, operands):
        sizes.update(zip(letters, tensor.shape))
    total = prod(sizes.values())
    samples = out.shape[0] if out.dim() >= 2 else 1
    return CallCounts(SYNAPTIC, samples=samples, macs=total, operands=tuple(
        _operand(tensor, samples, total // max(prod(sizes[c] for c in set(letters)), 1), measure)
        for letters, tensor in zip(inputs, operands)))


def _bound(args: tuple, kwargs: dict, names: tuple) -> dict:
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


def _functional_conv(nd: int, transposed: bool) -> FunctionalHandler:
    names = (("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation") if transposed
             else ("input", "weight", "bias", "stride", "padding", "dilation", "groups"))

    def count(args: tuple, kwargs: dict, out: torch.Tensor, measure: Measure = measure) -> CallCounts:
        bound = _bound(args, kwargs, names)
        weight, groups = bound["weight"], bound.get("groups", 1)
        padding = bound.get("padding", 0)
        geometry = ConvGeometry(
            tuple(weight.shape[2:]), _as_tuple(bound.get("stride", 1), nd),
            padding if isinstance(padding, str) else _as_tuple(padding, nd), _as_tuple(bound.get("dilation", 1), nd),
            groups, weight.shape[0] if transposed else weight.shape[1] * groups,
            weight.shape[1] * groups if transposed else weight.shape[0], "zeros", bound.get("bias") is not None)
        return _conv_family(geometry, bound["input"], out, False, measure, transposed)
    return count


def _functional_linear(args: tuple, kwargs: dict, out: torch.Tensor, measure: Measure = measure) -> CallCounts:
    bound = _bound(args, kwargs, ("input", "weight", "bias"))
    weight = bound["weight"]
    return _linear(bound["input"], weight.shape[-1], weight.shape[0], bound.get("bias") is not None, False, measure)


def _attention(args: tuple, kwargs: dict, out: torch.Tensor, measure: Measure = measure) -> list[CallCounts]:
    """scaled_dot_product_attention: ``q @ k^T`` and ``softmax(.) @ v``, two synaptic calls (the softmax and the
    scaling are not counted); the attention weights are real-valued, so only a binary ``v`` makes the second
    product accumulates."""
    q, k, v = (_bound(args, kwargs, ("query", "key", "value"))[name] for name in ("query", "key", "value"))
    length, keys = q.shape[-2], k.shape[-2]
    batch = out.numel() // max(length * v.shape[-1], 1)
    samples = out.shape[0] if out.dim() >= 3 else 1
    scores = CallCounts(SYNAPTIC, samples=samples, macs=batch * length * keys * q.shape[-1], operands=(
        _operand(q, samples, keys * (batch // max(q.numel() // (length * q.shape[-1]), 1)), measure),
        _operand(k, samples, length * (batch // max(k.numel() // (keys * k.shape[-1]), 1)), measure)))
    values = CallCounts(SYNAPTIC, samples=samples, macs=batch * length * keys * v.shape[-1], operands=(
        _operand(v, samples, length * (batch // max(v.numel() // (keys * v.shape[-1]), 1)), measure),))
    return [scores, values]


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
    # the matrix-product family: synaptic work
    **{name: _matmul for name in ("matmul", "__matmul__", "mm", "bmm", "mv")},
    "__rmatmul__": _rmatmul,
    **{name: _matmul_plus for name in ("addmm", "baddbmm", "addmv")},
    "einsum": _einsum,
    "linear": _functional_linear,
    **{f"conv{d}d": _functional_conv(d, False) for d in (1, 2, 3)},
    **{f"conv_transpose{d}d": _functional_conv(d, True) for d in (1, 2, 3)},
    "scaled_dot_product_attention": _attention,
}

# Torch functions that move, view, create or compare data without arithmetic worth an energy charge: seen in a
# module's own code, they are neither counted nor reported as uncounted.
NO_ARITHMETIC = frozenset("""
    __get__ __set__ __getitem__ __setitem__ __len__ __iter__ __contains__ __format__ __repr__ __hash__ __bool__
    __index__ __int__ __float__ __array__ __reduce_ex__ __deepcopy__ __eq__ __ne__ __invert__ __and__ __or__
    __rand__ __ror__ size dim numel stride shape dtype device is_floating_point is_complex is_contiguous
    data_ptr element_size nelement ndimension type type_as to cpu cuda float double half bfloat16 int long bool
    byte detach detach_ clone contiguous copy_ requires_grad_ view view_as reshape reshape_as flatten unflatten
    squeeze squeeze_ unsqueeze unsqueeze_ expand expand_as repeat repeat_interleave permute transpose transpose_
    t movedim moveaxis narrow select index_select gather chunk split split_with_sizes unbind cat concat
    concatenate stack hstack vstack flip roll tile broadcast_to broadcast_tensors pad zeros zeros_like ones
    ones_like empty empty_like full full_like new_zeros new_ones new_empty new_full new_tensor arange linspace
    tensor as_tensor fill_ zero_ item tolist numpy masked_fill masked_fill_ where logical_and logical_or
    logical_not eq ne gt ge lt le isnan isinf isfinite any all dropout dropout1d dropout2d dropout3d
    feature_dropout alpha_dropout identity get_device is_leaf grad data _version retain_grad register_hook
    backward storage untyped_storage pin_memory share_memory_ is_shared is_pinned apply_ __torch_function__
""".split())
