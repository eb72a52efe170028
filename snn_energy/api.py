"""``profile(model, inputs, **options)``: the one entry point, from a model and images to a ProfileResult."""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from spikingjelly.activation_based import functional

from snn_energy import lemaire, tables
from snn_energy.aggregate import Aggregate
from snn_energy.energy import default_sweep_ratios, energy_constants, sensitivity_sweep
from snn_energy.errors import ModelInputError, ProfilerError, ProfilerInternalError
from snn_energy.handlers import SYNAPTIC_HANDLERS, module_handler
from snn_energy.recorder import Profiler
from snn_energy.result import ProfileResult

_FORWARD_ERRORS = (RuntimeError, ValueError, AssertionError, IndexError, TypeError)
DERIVED_SOURCES = {"same_T": "derived: the model's own dense MACs",
                   "T1": "derived: the model's timestep-0 and untimed rows"}


def profile(model: nn.Module, inputs, *, timesteps: int | None = None, step_mode: str = "auto",
            constants="fp32", e_mac_pJ: float | None = None, e_ac_pJ: float | None = None,
            accounting: str = "strict", encoding_policy: str = "per_timestep", encoding_layer: str | None = None,
            fold_batchnorm: bool = False, ann_twin: nn.Module | None = None,
            single_pass_ann: nn.Module | None = None, spike_maps=(), spike_map_images: int | None = None,
            sweep_ratios=None, count_functional_ops: bool = True, extra_handlers: dict | None = None,
            target_saving: float = tables.DEFAULT_TARGET_SAVING, record_images: int | None = 16,
            progress=None) -> ProfileResult:
    """Profile ``model`` on ``inputs`` and return its spike, operation and energy tables (energies in pJ).

    ``inputs``: one batch (a tensor whose first axis is the images) or an iterable of batches, each a tensor or
    a sequence whose first element is the model's input (e.g. a DataLoader of (input, target) pairs). Batches are
    profiled as they come and folded into running per-layer and per-timestep statistics (``snn_energy.aggregate``),
    so memory does not grow with the number of images beyond one row per image (``result.images``); the tables do
    not depend on how the images are split into batches.
    ``timesteps``: None when the model handles time itself (e.g. repeats a static image over T inside);
    T to have the profiler drive time: a multi-step model gets the batch repeated to ``[T, N, ...]``, a
    single-step model is called T times on it. Neuron states are reset (``functional.reset_net``) after every
    batch. The model runs under ``torch.no_grad()`` in whatever train/eval mode it is in.
    ``constants``: a Horowitz preset name (``fp32`` default, ``fp16``, ``int32``, ``int8``) or EnergyConstants;
    ``e_mac_pJ`` and ``e_ac_pJ`` together give custom constants. ``accounting``: which accounting ``energy_pJ``
    columns use (``strict`` default, or ``paper``; both are always in ``energy_paper_pJ``/``energy_strict_pJ``).
    ``encoding_policy``: ``per_timestep`` (default) or ``once`` for a static image repeated over T.
    ``ann_twin`` / ``single_pass_ann``: the ANN with the same T and the single-pass ANN (T=1), profiled on the
    same batches for the savings (when ``timesteps`` is given, the single-pass ANN gets ``timesteps=1``);
    without them their dense counts are derived from the model's own rows.
    ``spike_maps``: layer names whose spike maps to keep, of the first ``spike_map_images`` images (None: all). ``sweep_ratios``: E_AC/E_MAC ratios of the sweep.
    ``target_saving``: the saving (a fraction) whose firing rate the summary gives (``rate_for_target_saving``).
    ``extra_handlers``: counting handlers for your own module types or torch functions (see ``Profiler``).
    ``record_images``: keep the raw rows (``result.records``, ``neuron_extremes``, ``ann_records``) of the first
    this many images only (None: all; each image has one row per layer, role and timestep).
    ``progress``: called with the number of images of each batch once it is profiled (e.g. a tqdm bar's update).

    Every operation or leaf module that ran and was not counted is listed in ``result.uncounted`` and named in
    one warning. A model in which no spiking neuron ran and no synaptic input was binary (a plain ANN) draws a
    warning, and its savings against the ANN references are NaN (not applicable); its MACs are still reported.

    Raises ModelInputError when the model fails on the input (the message names the shape and the layer),
    NoSynapticLayerError, ProfilerStateError, and ValueError (ProfilerError for ``inputs``) for an unknown
    option, empty ``inputs`` or a batch that is not a tensor; ProfilerInternalError (a RuntimeError chaining the
    original exception) when the profiler's own counting fails.
    """
    options = tables.EnergyOptions(
        constants=energy_constants(constants, e_mac_pJ=e_mac_pJ, e_ac_pJ=e_ac_pJ), accounting=accounting,
        encoding_policy=encoding_policy, fold_batchnorm=fold_batchnorm, target_saving=target_saving,
    )
    if timesteps is not None and (not isinstance(timesteps, int) or timesteps < 1):
        raise ValueError(f"timesteps must be a positive integer or None, got {timesteps!r}")
    profilers = {"snn": Profiler(model, step_mode=step_mode, encoding_layer=encoding_layer, spike_maps=spike_maps,
                                 spike_map_images=spike_map_images, count_functional_ops=count_functional_ops,
                                 extra_handlers=extra_handlers)}
    with contextlib.ExitStack() as stack, torch.no_grad():
        stack.enter_context(profilers["snn"])
        for role, twin in (("same_T", ann_twin), ("T1", single_pass_ann)):
            if twin is not None:  # the twins take their inputs the way the model does: same step mode
                profilers[role] = stack.enter_context(Profiler(
                    twin, step_mode=profilers["snn"].step_mode, count_functional_ops=count_functional_ops,
                    extra_handlers=extra_handlers))
        ann_sources = {reference: "twin" if reference in profilers else DERIVED_SOURCES[reference]
                       for reference in tables.ANN_REFERENCES}
        aggregate = Aggregate(options, _geometries(profilers), ann_sources, record_images)
        for batch in _batches(inputs):
            for role, profiler in profilers.items():
                # the single-pass ANN runs one timestep where the profiler drives time for the others
                _run_batch(profiler, batch, 1 if role == "T1" and timesteps else timesteps)
            records, extremes = profilers["snn"].drain()
            aggregate.add(records, extremes, {role: profiler.drain()[0] for role, profiler in profilers.items()
                                              if role != "snn"})
            if progress is not None:
                progress(len(batch))
    if profilers["snn"].images == 0:
        raise ValueError("inputs: no batch to profile (an empty iterable was given)")
    return _result(profilers["snn"], aggregate, options, sweep_ratios)


def _batches(inputs) -> Iterable[torch.Tensor]:
    """Yield the model input of each batch of ``inputs`` (see ``profile``)."""
    if isinstance(inputs, torch.Tensor):
        yield inputs
        return
    if not isinstance(inputs, Iterable):
        raise ProfilerError(f"inputs must be a tensor or an iterable of batches, got {type(inputs).__name__}")
    for index, batch in enumerate(inputs):
        if isinstance(batch, (tuple, list)) and batch:
            batch = batch[0]
        if not isinstance(batch, torch.Tensor):
            raise ProfilerError(f"inputs: batch {index} is a {type(batch).__name__}, expected a tensor")
        yield batch


def _run_batch(profiler: Profiler, batch: torch.Tensor, timesteps: int | None) -> None:
    model = profiler.model
    parameter = next(model.parameters(), None)
    x = batch.to(parameter.device) if parameter is not None else batch
    try:
        if timesteps is None:
            model(x)
        elif profiler.step_mode == "m":
            model(x.unsqueeze(0).expand(timesteps, *x.shape).contiguous())
        else:
            for _ in range(timesteps):
                model(x)
    except ProfilerInternalError:
        raise
    except _FORWARD_ERRORS as err:
        raise ModelInputError(_input_error_message(profiler, batch, timesteps, err)) from err
    finally:
        reset_states(model)
    profiler.end_sequence()


def reset_states(model: nn.Module) -> None:
    """Reset the neuron states of ``model``: SpikingJelly's ``reset_net`` and snnTorch's ``reset_mem``."""
    functional.reset_net(model)
    for module in model.modules():
        if callable(getattr(module, "reset_mem", None)):
            module.reset_mem()


def _input_error_message(profiler: Profiler, batch: torch.Tensor, timesteps: int | None, err: Exception) -> str:
    model = profiler.model
    message = (f"inputs: {type(model).__name__} failed on a batch of shape {list(batch.shape)} "
               f"(rank {batch.dim()}{f', repeated over T={timesteps}' if timesteps else ''})")
    if profiler.active_layer is not None:
        layer = dict(model.named_modules()).get(profiler.active_layer, model)
        message += f" in layer '{profiler.active_layer}' ({type(layer).__name__})"
    first = next(((n, m) for n, m in model.named_modules() if module_handler(m) in SYNAPTIC_HANDLERS), None)
    if first is not None and hasattr(first[1], "kernel_size"):
        name, layer = first
        rank = len(layer.kernel_size) + 2 + (getattr(layer, "step_mode", "s") == "m")
        message += f"; its first declared synaptic layer '{name}' ({type(layer).__name__}) takes rank-{rank} tensors"
    return f"{message}: {err}"


def _geometries(profilers: dict[str, Profiler]) -> dict[str, pd.DataFrame]:
    """Return ``lemaire.layer_geometry`` of the model and of each ANN reference (the model's own without a twin)."""
    geometry = {"snn": lemaire.layer_geometry(profilers["snn"].model)}
    for reference in tables.ANN_REFERENCES:
        twin = profilers.get(reference)
        geometry[reference] = lemaire.layer_geometry(twin.model) if twin is not None else geometry["snn"]
    return geometry


def _result(snn: Profiler, aggregate: Aggregate, options: tables.EnergyOptions, sweep_ratios) -> ProfileResult:
    ann_sources = aggregate.ann_sources
    images = aggregate.images()
    ann_images = {reference: aggregate.ann_images(reference) for reference in ann_sources}
    ann_costs = {reference: tables.ann_costs_long(frame) for reference, frame in ann_images.items()}
    summary, sweep_totals = tables.summary_table(
        pd.concat(aggregate.image_totals), aggregate.summary_scalars, images, ann_costs, ann_sources, options,
        snn.encoding_layer, snn.timesteps)
    settings = {
        "model": type(snn.model).__name__, "step_mode": snn.step_mode, "timesteps": snn.timesteps,
        "images": snn.images, "constants": options.constants.name, "e_mac_pJ": options.constants.e_mac_pJ,
        "e_ac_pJ": options.constants.e_ac_pJ, "accounting": options.accounting,
        "encoding_policy": options.encoding_policy, "encoding_layer": snn.encoding_layer,
        "e_spike_pJ": options.constants.e_spike_pJ, "e_neuron_pJ": options.constants.e_neuron_pJ,
        "constants_source": options.constants.source, "target_saving": options.target_saving,
        "fold_batchnorm": options.fold_batchnorm, "ann_sources": ann_sources,
        "count_functional_ops": snn.count_functional_ops, "record_images": aggregate.record_images,
    }
    uncounted = snn.uncounted()
    if len(uncounted):
        grouped = uncounted.groupby("operation", sort=False).agg(layers=("layer", "size"), calls=("calls", "sum"))
        listed = ", ".join(f"{name} ({row.calls} calls in {row.layers} layer{'s' * int(row.layers > 1)})"
                           for name, row in grouped.iterrows())
        warnings.warn(f"{type(snn.model).__name__}: operations that ran and were not counted (result.uncounted "
                      f"lists them per layer; extra_handlers= counts them): {listed}", stacklevel=3)
    sensitivity = sensitivity_sweep(
        sweep_totals, default_sweep_ratios() if sweep_ratios is None else sweep_ratios, options.constants)
    settings["spiking"] = aggregate.spiking
    if not settings["spiking"]:
        warnings.warn(f"{type(snn.model).__name__} is not spiking: no spiking neuron ran and no synaptic input was "
                      "binary, so its savings against an ANN are not applicable (NaN); its MACs are reported",
                      stacklevel=3)
        for table in (summary, images, sensitivity):
            table.loc[:, [c for c in table.columns if "saving" in c and c != "target_saving"]] = np.nan
    twins = [reference for reference, source in ann_sources.items() if source == "twin"]
    macs = {reference: tables.synaptic_macs_per_layer(aggregate.ann_macs[reference]) for reference in ann_sources}
    return ProfileResult(
        summary=summary,
        layers=tables.layer_table(aggregate.layer_stats, aggregate.layer_meta, aggregate.extreme_stats, options,
                                  macs["T1"], macs["same_T"]),
        timesteps=tables.timestep_table(aggregate.timestep_stats, aggregate.timestep_meta),
        images=images,
        sensitivity=sensitivity,
        records=aggregate.records(),
        neuron_extremes=aggregate.extremes(),
        settings=settings,
        spike_maps={name: maps for name, maps in snn.spike_maps.items() if maps},
        ann_records={reference: aggregate.ann_records(reference) for reference in twins},
        ann_layers={reference: tables.ann_layer_table(aggregate.ann_layer_stats[reference], snn.images)
                    for reference in twins},
        ann_images={reference: ann_images[reference] for reference in twins},
        uncounted=uncounted,
    )
