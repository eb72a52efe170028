"""The energy model: constants per operation, the accountings, ANN references, break-even points, a sweep.

The ``paper`` and ``strict`` accountings turn a record row into operation counts: ``mac_ops`` (charged E_MAC
each), ``ac_ops`` (E_AC each), ``spike_ops`` (emitted spikes, E_spike each) and ``neuron_ops`` (neuron updates,
E_neuron each), so that energy = E_MAC x mac_ops + E_AC x ac_ops + E_spike x spike_ops + E_neuron x neuron_ops
in picojoules, and the saving as a function of the ratio E_AC / E_MAC has a closed form (the sensitivity sweep,
the break-even ratio). The third accounting, ``lemaire``, is memory-aware and lives in ``snn_energy.lemaire``.

- ``paper``: the usual SNN-paper accounting. The encoding layer in MACs; synaptic layers that run once per
  forward outside the time loop (timestep -1: after the temporal readout, or on time-pooled values) in MACs, in
  the SNN as in its twin, since they do the same work in both; every other synaptic layer charged
  E_AC x (nonzero fraction of its input) x its MACs, per timestep, whether its input holds spikes or real values
  (the convention's known blind spot, which ``strict`` corrects).
- ``strict``: every synaptic layer call whose input is binary at run time is charged its exact accumulates
  (``sops``), integer inputs their value-weighted accumulates (also ``sops``), real-valued inputs their MACs
  (``real_input_macs``); bias additions, pooling, resampling and element-wise arithmetic in the modules' own code
  are charged (multiplications as MACs, additions as ACs); batch norm as one MAC per element unless
  ``fold_batchnorm`` (folded into the preceding convolution for inference).
- Both charge every neuron layer's emitted spikes (E_spike) and updates (E_neuron); the Horowitz presets set
  both to 0, the ``snn-deraining`` preset charges 3.7 pJ per spike.
- The ANN side (``ann_operation_costs``): the same rows run as an ANN, every synaptic MAC charged E_MAC
  (plus, under ``strict``, the same non-synaptic arithmetic); it emits no spikes.

Encoding policy: a static image repeated over T gives the encoding layer the same input at every timestep;
``per_timestep`` charges it T times (what the network computes), ``once`` charges its first timestep only
(what hardware caching the result would do). ``once`` applies only when the input was verified identical.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from snn_energy.handlers import NEURON, NORMALIZATION, SYNAPTIC
from snn_energy.tensor_stats import BINARY, INTEGER

OP_ACCOUNTINGS = ("paper", "strict")  # priced per operation: E_MAC, E_AC, E_spike, E_neuron
LEMAIRE = "lemaire"  # memory-aware, see snn_energy.lemaire
ACCOUNTINGS = (*OP_ACCOUNTINGS, LEMAIRE)
ENCODING_POLICIES = ("per_timestep", "once")
UNTIMED = -1  # the timestep of a call made once per forward, outside the time loop
DEFAULT_TARGET_SAVING = 0.54  # ESDNet's published saving against its ANN counterpart

# The rule each accounting applies to a record row (the ``charge_<accounting>`` columns).
MAC_ENCODING = "MAC: encoding"
MAC_UNTIMED = "MAC: outside the time loop (run once per forward)"
AC_RATE_SPIKES = "AC x rate: spike input"
AC_RATE_REAL = "AC x rate: real input (paper convention)"
EXACT_AC_BINARY = "exact AC: binary input"
VALUE_AC_INTEGER = "value-weighted AC: integer input"
MAC_REAL = "MAC: real input"
NEURON_CHARGE = "neuron: E_spike x spikes + E_neuron x updates"
FREE = "free"
ARITHMETIC = "arithmetic: multiplications as MAC, additions as AC"
BATCHNORM = "MAC: batch norm (one per element)"
BATCHNORM_FOLDED = "free: batch norm folded"


@dataclass(frozen=True)
class EnergyConstants:
    """Energy, in picojoules, of one multiply-accumulate (``e_mac_pJ``), one accumulate (``e_ac_pJ``), one
    emitted spike (``e_spike_pJ``, default 0) and one neuron update (``e_neuron_pJ``, default 0)."""

    e_mac_pJ: float
    e_ac_pJ: float
    name: str = "custom"
    e_spike_pJ: float = 0.0
    e_neuron_pJ: float = 0.0
    source: str = field(default="", compare=False)  # where the numbers come from, in words

    def __post_init__(self) -> None:
        for field_name in ("e_mac_pJ", "e_ac_pJ", "e_spike_pJ", "e_neuron_pJ"):
            value = getattr(self, field_name)
            positive = field_name in ("e_mac_pJ", "e_ac_pJ")
            if not (isinstance(value, (int, float)) and math.isfinite(value) and (value > 0 or
                                                                                  (not positive and value == 0))):
                kind = "positive" if positive else "nonnegative"
                raise ValueError(f"energy constant {field_name} must be a {kind} finite number of pJ, got {value!r}")

    @property
    def ac_mac_ratio(self) -> float:
        """E_AC / E_MAC (dimensionless)."""
        return self.e_ac_pJ / self.e_mac_pJ


_HOROWITZ = "Horowitz, 'Computing's energy problem', ISSCC 2014, 45 nm: E_MAC = multiply + add, E_AC = add"
# Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm: E_MAC = multiply + add, E_AC = add; no spike term.
HOROWITZ_45NM: dict[str, EnergyConstants] = {
    "fp32": EnergyConstants(4.6, 0.9, "fp32", source=_HOROWITZ),
    "fp16": EnergyConstants(1.5, 0.4, "fp16", source=_HOROWITZ),
    "int32": EnergyConstants(3.2, 0.1, "int32", source=_HOROWITZ),
    "int8": EnergyConstants(0.23, 0.03, "int8", source=_HOROWITZ),
}
# The constants of the SNN-deraining literature (45 nm): 12.5 pJ per MAC, 77 fJ per synaptic operation, 3.7 pJ per
# emitted spike. Verified in SpikeRain's profiler (WACV 2026, github.com/tanvirnwu/SpikeRain_WACV_2025,
# model_complexity.py: ENERGY_PER_MAC_PJ = 12.5, ENERGY_PER_SOP_PJ = 0.077, ENERGY_PER_SIGN_PJ = 3.7 "per emitted
# spike"), which takes them from Chen et al., "Exploring the Potentials of Spiking Neural Networks for Image
# Deraining" (the VLIF paper, AAAI 2026, arXiv 2512.02258) and the works it cites, Hu, Tang & Pan, "Spiking Deep
# Residual Networks" (IEEE TNNLS 2021) among them. The texts of those two papers could not be checked here.
SNN_DERAINING = EnergyConstants(
    12.5, 0.077, "snn-deraining", e_spike_pJ=3.7,
    source="SpikeRain (WACV 2026) model_complexity.py, after Chen et al. AAAI 2026 (VLIF) and Hu, Tang & Pan 2021",
)
PRESETS: dict[str, EnergyConstants] = {**HOROWITZ_45NM, SNN_DERAINING.name: SNN_DERAINING}
DEFAULT_CONSTANTS = "fp32"


def energy_constants(constants: str | EnergyConstants = DEFAULT_CONSTANTS, *, e_mac_pJ: float | None = None,
                     e_ac_pJ: float | None = None, e_spike_pJ: float | None = None,
                     e_neuron_pJ: float | None = None) -> EnergyConstants:
    """Return the constants named by a preset (Horowitz ``fp32``, ``fp16``, ``int32``, ``int8``, or
    ``snn-deraining``) or given as EnergyConstants; ``e_mac_pJ`` and ``e_ac_pJ`` together replace E_MAC and E_AC,
    ``e_spike_pJ`` / ``e_neuron_pJ`` the spike and neuron-update terms (pJ; the result is then named "custom")."""
    if isinstance(constants, EnergyConstants):
        base = constants
    elif constants in PRESETS:
        base = PRESETS[constants]
    else:
        raise ValueError(f"unknown energy constants {constants!r}; choose one of {sorted(PRESETS)}")
    if (e_mac_pJ is None) != (e_ac_pJ is None):
        raise ValueError("custom energy constants need both e_mac_pJ and e_ac_pJ")
    overrides = {name: float(value) for name, value in (("e_mac_pJ", e_mac_pJ), ("e_ac_pJ", e_ac_pJ),
                                                         ("e_spike_pJ", e_spike_pJ), ("e_neuron_pJ", e_neuron_pJ))
                 if value is not None}
    if not overrides:
        return base
    if e_mac_pJ is not None:  # custom E_MAC / E_AC: no preset's spike term carries over unless given
        base = EnergyConstants(float(e_mac_pJ), float(e_ac_pJ))
    return dataclasses.replace(base, **overrides, name="custom", source="given")


def check_accounting(accounting: str, encoding_policy: str = "per_timestep") -> None:
    """Raise ValueError naming the option when ``accounting`` or ``encoding_policy`` is unknown."""
    if accounting not in ACCOUNTINGS:
        raise ValueError(f"accounting must be one of {ACCOUNTINGS}, got {accounting!r}")
    if encoding_policy not in ENCODING_POLICIES:
        raise ValueError(f"encoding_policy must be one of {ENCODING_POLICIES}, got {encoding_policy!r}")


def _check_op_accounting(accounting: str, encoding_policy: str = "per_timestep") -> None:
    check_accounting(accounting, encoding_policy)
    if accounting not in OP_ACCOUNTINGS:
        raise ValueError(f"accounting {accounting!r} is not priced per operation: use snn_energy.lemaire")


def input_rate(records: pd.DataFrame) -> pd.Series:
    """Return each row's input firing rate: nonzero input elements / input elements (NaN without input)."""
    return records["input_nonzero"] / records["input_elements"].where(records["input_elements"] > 0)


def encoding_charge(records: pd.DataFrame, encoding_policy: str) -> pd.Series:
    """Return per row 1, or 0 for the encoding layer's later timesteps when charged ``once`` on a repeated input."""
    skipped = (
        (encoding_policy == "once") & records["is_encoding"] & records["input_repeated"] & (records["timestep"] > 0)
    )
    return (~skipped).astype(float)


def spike_fed(records: pd.DataFrame) -> pd.Series:
    """Return per row whether it is a synaptic call on binary input (spikes) inside the time loop, not the
    encoding layer: the rows whose cost follows the input firing rate."""
    return ((records["role"] == SYNAPTIC) & (records["input_kind"] == BINARY) & ~records["is_encoding"]
            & (records["timestep"] != UNTIMED))


def _paper_rules(records: pd.DataFrame) -> pd.Series:
    synaptic = records["role"] == SYNAPTIC
    rules = np.select(
        [synaptic & records["is_encoding"], synaptic & (records["timestep"] == UNTIMED),
         synaptic & (records["input_kind"] == BINARY), synaptic, records["role"] == NEURON],
        [MAC_ENCODING, MAC_UNTIMED, AC_RATE_SPIKES, AC_RATE_REAL, NEURON_CHARGE], FREE)
    return pd.Series(rules, index=records.index)


def _strict_rules(records: pd.DataFrame, fold_batchnorm: bool) -> pd.Series:
    synaptic, role = records["role"] == SYNAPTIC, records["role"]
    rules = np.select(
        [synaptic & (records["input_kind"] == BINARY), synaptic & (records["input_kind"] == INTEGER), synaptic,
         role == NEURON, (role == NORMALIZATION) & fold_batchnorm, role == NORMALIZATION],
        [EXACT_AC_BINARY, VALUE_AC_INTEGER, MAC_REAL, NEURON_CHARGE, BATCHNORM_FOLDED, BATCHNORM], ARITHMETIC)
    return pd.Series(rules, index=records.index)


def charge_rules(records: pd.DataFrame, accounting: str, *, fold_batchnorm: bool = False) -> pd.Series:
    """Return per record row the rule ``accounting`` (``paper`` or ``strict``) applies to it, in words."""
    _check_op_accounting(accounting)
    return _paper_rules(records) if accounting == "paper" else _strict_rules(records, fold_batchnorm)


def snn_operation_costs(records: pd.DataFrame, accounting: str, *, encoding_policy: str = "per_timestep",
                        fold_batchnorm: bool = False) -> pd.DataFrame:
    """Return per record row the SNN's operation counts under ``accounting`` (``paper`` or ``strict``):
    ``mac_ops``, ``ac_ops``, ``spike_ops`` (emitted spikes), ``neuron_ops`` (neuron updates), and
    ``rate_ac_ops``, the part of ``ac_ops`` driven by the spike input of spike-fed layers (it scales with their
    firing rate)."""
    _check_op_accounting(accounting, encoding_policy)
    synaptic = records["role"] == SYNAPTIC
    neuron = records["role"] == NEURON
    charge = encoding_charge(records, encoding_policy)
    rate_driven = spike_fed(records)
    spikes = records["spikes"].where(neuron, 0.0).astype(float)
    updates = records["neurons"].where(neuron, 0.0).astype(float)
    if accounting == "paper":
        dense = synaptic & (records["is_encoding"] | (records["timestep"] == UNTIMED))
        mac_ops = records["macs"].where(dense, 0.0) * charge
        ac_ops = (input_rate(records).fillna(0.0) * records["macs"]).where(synaptic & ~dense, 0.0)
        rate_ac_ops = ac_ops.where(rate_driven, 0.0)
    else:
        mac_ops = records["real_input_macs"].where(synaptic, 0.0) * charge + _non_synaptic_mults(records,
                                                                                                fold_batchnorm)
        sops = records["sops"].where(synaptic, 0.0) * charge
        ac_ops = sops + records["adds"] * charge
        rate_ac_ops = sops.where(rate_driven, 0.0)
    return pd.DataFrame({"mac_ops": mac_ops.astype(float), "ac_ops": ac_ops.astype(float), "spike_ops": spikes,
                         "neuron_ops": updates, "rate_ac_ops": rate_ac_ops.astype(float)})


def ann_operation_costs(records: pd.DataFrame, accounting: str, *, fold_batchnorm: bool = False) -> pd.DataFrame:
    """Return per record row the ``mac_ops``, ``ac_ops`` (and zero ``spike_ops`` / ``neuron_ops``) of the same
    row run as an ANN (dense MACs), under ``accounting`` (``paper`` or ``strict``)."""
    _check_op_accounting(accounting)
    synaptic = records["role"] == SYNAPTIC
    mac_ops = records["macs"].where(synaptic, 0.0).astype(float)
    zero = 0.0 * mac_ops
    if accounting == "paper":
        return pd.DataFrame({"mac_ops": mac_ops, "ac_ops": zero, "spike_ops": zero, "neuron_ops": zero})
    return pd.DataFrame({
        "mac_ops": mac_ops + _non_synaptic_mults(records, fold_batchnorm),
        "ac_ops": records["adds"].astype(float), "spike_ops": zero, "neuron_ops": zero,
    })


def _non_synaptic_mults(records: pd.DataFrame, fold_batchnorm: bool) -> pd.Series:
    keep = records["role"] != SYNAPTIC
    if fold_batchnorm:
        keep &= records["role"] != NORMALIZATION
    return records["mults"].where(keep, 0.0)


def energy_pJ(mac_ops, ac_ops, constants: EnergyConstants, spike_ops=0.0, neuron_ops=0.0):
    """Return E_MAC x mac_ops + E_AC x ac_ops + E_spike x spike_ops + E_neuron x neuron_ops, in picojoules
    (scalars, arrays or Series)."""
    return (constants.e_mac_pJ * mac_ops + constants.e_ac_pJ * ac_ops + constants.e_spike_pJ * spike_ops
            + constants.e_neuron_pJ * neuron_ops)


def saving(energy_snn, energy_ann):
    """Return 1 - E_SNN / E_ANN (dimensionless; negative when the SNN costs more)."""
    return 1.0 - np.asarray(energy_snn, dtype=float) / np.asarray(energy_ann, dtype=float)


def break_even_rate(snn_macs, ann_macs, constants: EnergyConstants):
    """Return the input firing rate above which a synaptic layer charged E_AC x rate x its SNN MACs costs more
    than its ANN counterpart charged E_MAC x its ANN MACs (dimensionless; > 1 means never)."""
    snn = np.asarray(snn_macs, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(snn > 0, constants.e_mac_pJ * np.asarray(ann_macs, dtype=float) / (constants.e_ac_pJ * snn),
                        np.nan)


def break_even_ratio(snn_mac_ops: float, snn_ac_ops: float, ann_mac_ops: float, ann_ac_ops: float,
                     extra_mac_equivalents: float = 0.0) -> float:
    """Return the E_AC / E_MAC ratio at which the SNN and the ANN cost the same (NaN when no positive ratio does).

    ``extra_mac_equivalents``: the SNN's energy outside MACs and ACs (spike and neuron terms, which do not move
    with E_AC) divided by E_MAC, net of the ANN's. Below the ratio the SNN is cheaper when it charges fewer
    MAC-equivalents, above it the ANN is.
    """
    denominator = snn_ac_ops - ann_ac_ops
    if denominator == 0:
        return math.nan
    ratio = (ann_mac_ops - snn_mac_ops - extra_mac_equivalents) / denominator
    return ratio if ratio > 0 else math.nan


def rate_for_saving(energy_snn: float, rate_driven_pJ: float, energy_ann: float, measured_rate: float,
                    target: float) -> float:
    """Return the mean input firing rate of the spike-fed layers at which the SNN would save ``target`` (a
    fraction) against ``energy_ann`` (pJ), NaN when no rate in [0, 1] does.

    The SNN's energy is ``energy_snn`` at the ``measured_rate``; its ``rate_driven_pJ`` part (the accumulates
    driven by the spike input, the spikes) is taken proportional to the rate, the rest fixed:
    E(r) = energy_snn - rate_driven_pJ + rate_driven_pJ x r / measured_rate.
    """
    if not (rate_driven_pJ > 0 and measured_rate > 0 and energy_ann > 0):
        return math.nan
    rate = measured_rate * ((1.0 - target) * energy_ann - (energy_snn - rate_driven_pJ)) / rate_driven_pJ
    return float(rate) if 0.0 <= rate <= 1.0 else math.nan


def default_sweep_ratios() -> np.ndarray:
    """Return E_AC / E_MAC ratios for the sensitivity sweep: 25 log-spaced from 0.005 to 1, plus every preset's."""
    presets = [c.ac_mac_ratio for c in PRESETS.values()]
    return np.unique(np.concatenate([np.geomspace(0.005, 1.0, 25), presets]))


def sensitivity_sweep(totals: pd.DataFrame, ratios, constants: EnergyConstants) -> pd.DataFrame:
    """Return the saving against each ANN reference as a function of the ratio E_AC / E_MAC.

    ``totals`` has one row per (accounting, reference) with the mean per-image ``snn_mac_ops``, ``snn_ac_ops``,
    ``ann_mac_ops``, ``ann_ac_ops`` and, optionally, ``snn_spike_ops`` and ``snn_neuron_ops``. E_MAC, E_spike and
    E_neuron stay those of ``constants``; E_AC = ratio x E_MAC. Columns: ``accounting``, ``reference``,
    ``ac_mac_ratio``, ``preset`` (the preset with this ratio, or ""), ``e_ac_pJ``, ``energy_snn_pJ``,
    ``energy_ann_pJ``, ``saving``.
    """
    presets = {round(c.ac_mac_ratio, 12): name for name, c in PRESETS.items()}
    rows = []
    for row in totals.to_dict("records"):
        for ratio in np.asarray(ratios, dtype=float):
            swept = dataclasses.replace(constants, e_ac_pJ=constants.e_mac_pJ * ratio)
            e_snn = energy_pJ(row["snn_mac_ops"], row["snn_ac_ops"], swept, row.get("snn_spike_ops", 0.0),
                              row.get("snn_neuron_ops", 0.0))
            e_ann = energy_pJ(row["ann_mac_ops"], row["ann_ac_ops"], swept)
            rows.append({
                "accounting": row["accounting"], "reference": row["reference"], "ac_mac_ratio": ratio,
                "preset": presets.get(round(ratio, 12), ""), "e_ac_pJ": swept.e_ac_pJ,
                "energy_snn_pJ": e_snn, "energy_ann_pJ": e_ann, "saving": float(saving(e_snn, e_ann)),
            })
    return pd.DataFrame(rows)
