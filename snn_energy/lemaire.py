"""The ``lemaire`` accounting: memory-aware energy after Lemaire et al. 2022, per layer, timestep and image.

Lemaire, Cordone, Castagnetti, Novac, Courtois, Miramond, "An analytical estimation of spiking neural networks
energy efficiency", ICONIP 2022 (arXiv 2210.13107), as SpikingJelly 2.0 implements it
(``spikingjelly.activation_based.op_counter.estimate_lemaire_energy``, which gives totals only). The formulas
below follow that implementation term for term, applied to the profiler's records, so that summed over a
forward they give its ``total_pj`` (tested); the costs come from SpikingJelly's own ``LemaireEnergyCostConfig``
(32-bit integer add 0.1 pJ and multiply 3.1 pJ, SRAM access energy interpolated on the buffer size from 10 pJ per
32-bit word at 8 KiB to 100 pJ at 1 MiB) and ``LemaireEnergyConfig`` (the spike FIFO of 1000 words).

Per synaptic call (Conv1d/2d/3d and Linear; ConvTranspose and every other layer are not modelled, as in
SpikingJelly), with 4-byte words:

- binary input (events): ``ac`` = input spikes x fan-out (C_out/groups x prod(ceil(k/stride))), addressing
  ``acc_addr`` = spikes x C_out/groups x prod(k) and 2 multiply-adds per spike to locate its first output;
  memory: each spike read from the FIFO, the weights it meets and, for each, a read and a write of a membrane
  potential (buffer: one timestep of the layer's output).
- other input (dense): ``mac`` = the dense MACs, addressing = input + output elements + C_out x prod(k) per call;
  memory: a conv reads its input once per weight use (a linear layer once), from a buffer of the whole call's
  input; every weight use reads a weight; a network without neurons (an ANN) writes its outputs.
- bias: one ``ac`` and one 4-byte read per output element.
- neurons (every neuron layer): a read and a write of every membrane potential per timestep, one ``ac`` per
  emitted spike written to the FIFO, and for LIF neurons one ``mac`` (the leak) per update.

Energy = compute (ac x E_add + mac x (E_mul + E_add)) + addressing (acc_addr x E_add + mac_addr x (E_mul + E_add))
+ memory (bytes x the per-byte cost of the buffer's size). Buffers are sized for one image (the batch of one that
the tests compare against SpikingJelly). The ANN side is charged as dense on every synaptic layer, without neurons.
"""
from __future__ import annotations

from math import ceil, prod

import numpy as np
import pandas as pd
import torch.nn as nn
from spikingjelly.activation_based.neuron import LIFNode
from spikingjelly.activation_based.op_counter import LemaireEnergyConfig

from snn_energy.energy import UNTIMED
from snn_energy.handlers import NEURON, SYNAPTIC
from snn_energy.recorder import ROOT_NAME
from snn_energy.tensor_stats import BINARY

WORD_BYTES = 4  # Lemaire's 32-bit words, as SpikingJelly's _LEMAIRE_ACCESS_WIDTH_BYTES
PARTS = ("compute", "addressing", "memory")
COLUMNS = ("lemaire_mac_ops", "lemaire_ac_ops", *(f"lemaire_{part}_pJ" for part in PARTS), "energy_lemaire_pJ",
           "lemaire_rate_pJ")
EVENT_DRIVEN = "Lemaire: event-driven (binary input)"
DENSE = "Lemaire: dense (non-binary input)"
NEURON_UPDATE = "Lemaire: neuron (potentials, spikes, leak)"
NOT_MODELLED = "not modelled by Lemaire"
_MODELLED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_GEOMETRY = ("modelled", "linear", "fan_in", "out_per_group", "out_channels", "taps", "event_taps", "params",
             "bias", "multi_step", "leaky")


def layer_geometry(model: nn.Module) -> pd.DataFrame:
    """Return, per module of ``model`` (index: qualified name, ``ROOT_NAME`` for the model itself), what Lemaire's
    formulas need: ``modelled`` (Conv1d/2d/3d or Linear), ``linear``, ``fan_in`` (weights per output element),
    ``out_per_group`` and ``out_channels``, ``taps`` (prod(kernel)) and ``event_taps`` (prod(ceil(k/stride))),
    ``params`` (the module's own parameters, a count), ``bias``, ``multi_step`` (SpikingJelly step mode "m")
    and ``leaky`` (a LIF neuron)."""
    rows = {}
    for name, module in model.named_modules():
        row = dict.fromkeys(_GEOMETRY, 0)
        row.update(params=sum(p.numel() for p in module.parameters(recurse=False)),
                   multi_step=getattr(module, "step_mode", "s") == "m", leaky=isinstance(module, LIFNode))
        if isinstance(module, nn.Linear):
            row.update(modelled=True, linear=True, fan_in=module.in_features, out_per_group=module.out_features,
                       out_channels=module.out_features, taps=1, event_taps=1, bias=module.bias is not None)
        elif isinstance(module, _MODELLED):
            row.update(modelled=True, fan_in=prod(module.weight.shape[1:]),
                       out_per_group=module.out_channels // module.groups, out_channels=module.out_channels,
                       taps=prod(module.kernel_size), bias=module.bias is not None,
                       event_taps=prod(ceil(k / s) for k, s in zip(module.kernel_size, module.stride)))
        rows[name or ROOT_NAME] = row
    return pd.DataFrame.from_dict(rows, orient="index").astype({"modelled": bool, "linear": bool, "bias": bool,
                                                                 "multi_step": bool, "leaky": bool})


def charge_rules(records: pd.DataFrame, geometry: pd.DataFrame) -> pd.Series:
    """Return per record row the Lemaire rule applied to it, in words."""
    modelled = records["layer"].map(geometry["modelled"]).fillna(False).astype(bool)
    synaptic = (records["role"] == SYNAPTIC) & modelled
    rules = np.select([synaptic & (records["input_kind"] == BINARY), synaptic, records["role"] == NEURON],
                      [EVENT_DRIVEN, DENSE, NEURON_UPDATE], NOT_MODELLED)
    return pd.Series(rules, index=records.index)


def lemaire_costs(records: pd.DataFrame, geometry: pd.DataFrame, *, network: str = "snn",
                  config: LemaireEnergyConfig | None = None) -> pd.DataFrame:
    """Return per record row Lemaire's operation counts and energies (pJ) for the SNN (``network="snn"``) or for
    the ANN run on those rows (``"ann"``: every synaptic layer dense, no neurons).

    Columns: ``lemaire_mac_ops`` and ``lemaire_ac_ops`` (the compute counts), ``lemaire_compute_pJ``,
    ``lemaire_addressing_pJ``, ``lemaire_memory_pJ``, their sum ``energy_lemaire_pJ``, and ``lemaire_rate_pJ``,
    the part driven by input spikes and emitted spikes (it scales with the firing rates).
    ``geometry``: ``layer_geometry`` of the model that produced the rows.
    """
    config = config or LemaireEnergyConfig(strict=False)
    cost = config.cost_config
    fifo_bytes = config.snn_fifo_capacity_elements * WORD_BYTES
    g = geometry.reindex(records["layer"]).reset_index(drop=True)
    frame = records.reset_index(drop=True)
    ann = network == "ann"
    synaptic = ((frame["role"] == SYNAPTIC) & g["modelled"].fillna(False).astype(bool)).to_numpy()
    events = synaptic & (frame["input_kind"] == BINARY).to_numpy() & (not ann)
    dense = synaptic & ~events
    neuron = (frame["role"] == NEURON).to_numpy() & (not ann)
    has_neurons = bool(neuron.any())
    timed = frame["timestep"] != UNTIMED
    # timesteps one call spans (a multi-step call holds all of them; buffers are sized on the call's tensors)
    steps = frame["timestep"].where(timed).groupby([frame["image"], frame["layer"], frame["role"]]).transform("count")
    call_steps = np.where(timed, steps, 1).astype(float)
    step_mode_split = np.where(g["multi_step"].fillna(False).to_numpy(bool), 1.0, call_steps)

    x = frame["input_elements"].to_numpy(float)
    spikes_in = frame["input_nonzero"].to_numpy(float)
    fan_in = g["fan_in"].fillna(0).to_numpy(float)
    out = np.divide(frame["macs"].to_numpy(float), fan_in, out=np.zeros(len(frame)), where=fan_in > 0)
    dense_macs = frame["macs"].to_numpy(float)
    opg, taps = g["out_per_group"].fillna(0).to_numpy(float), g["taps"].fillna(0).to_numpy(float)
    linear = g["linear"].fillna(False).to_numpy(bool)
    bias = g["bias"].fillna(False).to_numpy(bool) & synaptic
    params_bytes = g["params"].fillna(0).to_numpy(float) * WORD_BYTES
    fanout = spikes_in * opg * taps  # weight uses (memory fan-out) of the input spikes
    synops = spikes_in * opg * g["event_taps"].fillna(0).to_numpy(float)  # accumulates of the input spikes
    per_byte = np.vectorize(cost.memory_cost_pj, otypes=[float])
    fifo_per_byte = cost.memory_cost_pj(fifo_bytes)

    ac = np.where(events, synops, 0.0) + np.where(bias, out, 0)
    mac = np.where(dense, dense_macs, 0.0)
    acc_addr = np.where(events, fanout, 0.0) + np.where(
        dense, x + out + np.where(linear, 0.0, g["out_channels"].fillna(0).to_numpy(float) * taps) / call_steps, 0.0)
    mac_addr = np.where(events & ~linear, 2.0 * spikes_in, 0.0)
    # memory accesses: (bytes, buffer bytes) per kind
    accesses = [
        (np.where(events, spikes_in, np.where(dense & linear, x, np.where(dense, dense_macs, 0.0))) * WORD_BYTES,
         np.where(events, fifo_bytes, x * call_steps * WORD_BYTES)),
        (np.where(events, fanout, np.where(dense, dense_macs, 0.0)) * WORD_BYTES + np.where(bias, out, 0) * WORD_BYTES,
         params_bytes),
        (2 * np.where(events, fanout, 0.0) * WORD_BYTES, out * step_mode_split * WORD_BYTES),
        (np.where(dense & (not has_neurons), out, 0.0) * WORD_BYTES, out * call_steps * WORD_BYTES),
    ]
    neurons, spikes_out = frame["neurons"].to_numpy(float), frame["spikes"].to_numpy(float)
    ac += np.where(neuron, spikes_out, 0.0)
    mac += np.where(neuron & g["leaky"].fillna(False).to_numpy(bool), neurons, 0.0)
    accesses += [(np.where(neuron, 2 * neurons, 0.0) * WORD_BYTES, neurons * WORD_BYTES),
                 (np.where(neuron, spikes_out, 0.0) * WORD_BYTES, np.full(len(frame), float(fifo_bytes)))]
    memory = sum(np.where(size > 0, size * per_byte(capacity), 0.0) for size, capacity in accesses)
    e_mac = cost.e_mul_pj + cost.e_add_pj
    compute = ac * cost.e_add_pj + mac * e_mac
    addressing = acc_addr * cost.e_add_pj + mac_addr * e_mac
    # the spike-driven part: everything of an event-driven call but its bias, and each emitted spike's add + write
    rate = np.where(events, synops * cost.e_add_pj + addressing + spikes_in * WORD_BYTES * fifo_per_byte
                    + fanout * WORD_BYTES * per_byte(params_bytes)
                    + 2 * fanout * WORD_BYTES * per_byte(out * step_mode_split * WORD_BYTES), 0.0)
    rate += np.where(neuron, spikes_out * (cost.e_add_pj + WORD_BYTES * fifo_per_byte), 0.0)
    result = pd.DataFrame({"lemaire_mac_ops": mac, "lemaire_ac_ops": ac, "lemaire_compute_pJ": compute,
                           "lemaire_addressing_pJ": addressing, "lemaire_memory_pJ": memory,
                           "energy_lemaire_pJ": compute + addressing + memory, "lemaire_rate_pJ": rate})
    result.index = records.index
    return result
