"""The energy model: constants per operation, two accountings, ANN references, break-even points, a sweep.

Every accounting turns a record row into two operation counts, ``mac_ops`` (charged E_MAC each) and ``ac_ops``
(charged E_AC each), so that energy = E_MAC x mac_ops + E_AC x ac_ops in picojoules, and so that the saving as a
function of the ratio E_AC / E_MAC has a closed form (the sensitivity sweep, the break-even ratio).

- ``paper``: the usual SNN-paper accounting. The encoding layer in MACs; every other synaptic layer charged
  E_AC x (firing rate of its input) x its MACs, per timestep (so rate x T x MACs per layer); nothing else.
  The "firing rate" of an input is its fraction of nonzero elements (the spike rate for spikes).
- ``strict``: every synaptic layer call whose input is binary at run time is charged its exact accumulates
  (``sops``), integer inputs their value-weighted accumulates (also ``sops``), real-valued inputs their MACs
  (``real_input_macs``);
  bias additions, pooling, resampling and element-wise arithmetic in the modules' own code are charged
  (multiplications as MACs, additions as ACs); batch norm as one MAC per element unless ``fold_batchnorm``
  (folded into the preceding convolution for inference). Neuron updates are not charged in either accounting.
- The ANN side (``ann_operation_costs``): the same rows run as an ANN, every synaptic MAC charged E_MAC
  (plus, under ``strict``, the same non-synaptic arithmetic).

Encoding policy: a static image repeated over T gives the encoding layer the same input at every timestep;
``per_timestep`` charges it T times (what the network computes), ``once`` charges its first timestep only
(what hardware caching the result would do). ``once`` applies only when the input was verified identical.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from snn_energy.handlers import NORMALIZATION, SYNAPTIC

ACCOUNTINGS = ("paper", "strict")
ENCODING_POLICIES = ("per_timestep", "once")


@dataclass(frozen=True)
class EnergyConstants:
    """Energy of one multiply-accumulate (``e_mac_pJ``) and one accumulate (``e_ac_pJ``), in picojoules."""

    e_mac_pJ: float
    e_ac_pJ: float
    name: str = "custom"

    def __post_init__(self) -> None:
        for field_name in ("e_mac_pJ", "e_ac_pJ"):
            value = getattr(self, field_name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"energy constant {field_name} must be a positive finite number of pJ, got {value!r}")

    @property
    def ac_mac_ratio(self) -> float:
        """E_AC / E_MAC (dimensionless)."""
        return self.e_ac_pJ / self.e_mac_pJ


# Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm: E_MAC = multiply + add, E_AC = add.
HOROWITZ_45NM: dict[str, EnergyConstants] = {
    "fp32": EnergyConstants(4.6, 0.9, "fp32"),
    "fp16": EnergyConstants(1.5, 0.4, "fp16"),
    "int32": EnergyConstants(3.2, 0.1, "int32"),
    "int8": EnergyConstants(0.23, 0.03, "int8"),
}
DEFAULT_CONSTANTS = "fp32"


def energy_constants(constants: str | EnergyConstants = DEFAULT_CONSTANTS, *, e_mac_pJ: float | None = None,
                     e_ac_pJ: float | None = None) -> EnergyConstants:
    """Return the constants named by a Horowitz preset (``fp32``, ``fp16``, ``int32``, ``int8``), as given, or
    custom ones when both ``e_mac_pJ`` and ``e_ac_pJ`` (pJ) are given."""
    if e_mac_pJ is not None or e_ac_pJ is not None:
        if e_mac_pJ is None or e_ac_pJ is None:
            raise ValueError("custom energy constants need both e_mac_pJ and e_ac_pJ")
        return EnergyConstants(float(e_mac_pJ), float(e_ac_pJ))
    if isinstance(constants, EnergyConstants):
        return constants
    if constants not in HOROWITZ_45NM:
        raise ValueError(f"unknown energy constants {constants!r}; choose one of {sorted(HOROWITZ_45NM)}")
    return HOROWITZ_45NM[constants]


def check_accounting(accounting: str, encoding_policy: str = "per_timestep") -> None:
    """Raise ValueError naming the option when ``accounting`` or ``encoding_policy`` is unknown."""
    if accounting not in ACCOUNTINGS:
        raise ValueError(f"accounting must be one of {ACCOUNTINGS}, got {accounting!r}")
    if encoding_policy not in ENCODING_POLICIES:
        raise ValueError(f"encoding_policy must be one of {ENCODING_POLICIES}, got {encoding_policy!r}")


def input_rate(records: pd.DataFrame) -> pd.Series:
    """Return each row's input firing rate: nonzero input elements / input elements (NaN without input)."""
    return records["input_nonzero"] / records["input_elements"].where(records["input_elements"] > 0)


def encoding_charge(records: pd.DataFrame, encoding_policy: str) -> pd.Series:
    """Return per row 1, or 0 for the encoding layer's later timesteps when charged ``once`` on a repeated input."""
    skipped = (
        (encoding_policy == "once") & records["is_encoding"] & records["input_repeated"] & (records["timestep"] > 0)
    )
    return (~skipped).astype(float)


def snn_operation_costs(records: pd.DataFrame, accounting: str, *, encoding_policy: str = "per_timestep",
                        fold_batchnorm: bool = False) -> pd.DataFrame:
    """Return per record row the SNN's ``mac_ops`` and ``ac_ops`` (operation counts) under ``accounting``."""
    check_accounting(accounting, encoding_policy)
    synaptic = records["role"] == SYNAPTIC
    charge = encoding_charge(records, encoding_policy)
    if accounting == "paper":
        encoding = synaptic & records["is_encoding"]
        mac_ops = records["macs"].where(encoding, 0.0) * charge
        ac_ops = (input_rate(records).fillna(0.0) * records["macs"]).where(synaptic & ~encoding, 0.0)
        return pd.DataFrame({"mac_ops": mac_ops, "ac_ops": ac_ops})
    mac_ops = records["real_input_macs"].where(synaptic, 0.0) * charge
    ac_ops = records["sops"].where(synaptic, 0.0) * charge
    mac_ops = mac_ops + _non_synaptic_mults(records, fold_batchnorm)
    ac_ops = ac_ops + records["adds"] * charge
    return pd.DataFrame({"mac_ops": mac_ops, "ac_ops": ac_ops})


def ann_operation_costs(records: pd.DataFrame, accounting: str, *, fold_batchnorm: bool = False) -> pd.DataFrame:
    """Return per record row the ``mac_ops`` and ``ac_ops`` of the same row run as an ANN (dense MACs)."""
    check_accounting(accounting)
    synaptic = records["role"] == SYNAPTIC
    mac_ops = records["macs"].where(synaptic, 0.0)
    if accounting == "paper":
        return pd.DataFrame({"mac_ops": mac_ops, "ac_ops": 0.0 * mac_ops})
    return pd.DataFrame({
        "mac_ops": mac_ops + _non_synaptic_mults(records, fold_batchnorm),
        "ac_ops": records["adds"].astype(float),
    })


def _non_synaptic_mults(records: pd.DataFrame, fold_batchnorm: bool) -> pd.Series:
    keep = records["role"] != SYNAPTIC
    if fold_batchnorm:
        keep &= records["role"] != NORMALIZATION
    return records["mults"].where(keep, 0.0)


def energy_pJ(mac_ops, ac_ops, constants: EnergyConstants):
    """Return E_MAC x mac_ops + E_AC x ac_ops, in picojoules (scalars, arrays or Series)."""
    return constants.e_mac_pJ * mac_ops + constants.e_ac_pJ * ac_ops


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


def break_even_ratio(snn_mac_ops: float, snn_ac_ops: float, ann_mac_ops: float, ann_ac_ops: float) -> float:
    """Return the E_AC / E_MAC ratio at which the SNN and the ANN cost the same (NaN when no positive ratio does).

    Below it the SNN is cheaper when it charges fewer MAC-equivalents, above it the ANN is.
    """
    denominator = snn_ac_ops - ann_ac_ops
    if denominator == 0:
        return math.nan
    ratio = (ann_mac_ops - snn_mac_ops) / denominator
    return ratio if ratio > 0 else math.nan


def default_sweep_ratios() -> np.ndarray:
    """Return E_AC / E_MAC ratios for the sensitivity sweep: 25 log-spaced from 0.005 to 1, plus every preset's."""
    presets = [c.ac_mac_ratio for c in HOROWITZ_45NM.values()]
    return np.unique(np.concatenate([np.geomspace(0.005, 1.0, 25), presets]))


def sensitivity_sweep(totals: pd.DataFrame, ratios, constants: EnergyConstants) -> pd.DataFrame:
    """Return the saving against each ANN reference as a function of the ratio E_AC / E_MAC.

    ``totals`` has one row per (accounting, reference) with the mean per-image ``snn_mac_ops``, ``snn_ac_ops``,
    ``ann_mac_ops``, ``ann_ac_ops``. E_MAC stays ``constants.e_mac_pJ``; E_AC = ratio x E_MAC. Columns:
    ``accounting``, ``reference``, ``ac_mac_ratio``, ``preset`` (the Horowitz preset with this ratio, or ""),
    ``e_ac_pJ``, ``energy_snn_pJ``, ``energy_ann_pJ``, ``saving``.
    """
    presets = {round(c.ac_mac_ratio, 12): name for name, c in HOROWITZ_45NM.items()}
    rows = []
    for row in totals.itertuples(index=False):
        for ratio in np.asarray(ratios, dtype=float):
            swept = EnergyConstants(constants.e_mac_pJ, constants.e_mac_pJ * ratio)
            e_snn = energy_pJ(row.snn_mac_ops, row.snn_ac_ops, swept)
            e_ann = energy_pJ(row.ann_mac_ops, row.ann_ac_ops, swept)
            rows.append({
                "accounting": row.accounting, "reference": row.reference, "ac_mac_ratio": ratio,
                "preset": presets.get(round(ratio, 12), ""), "e_ac_pJ": swept.e_ac_pJ,
                "energy_snn_pJ": e_snn, "energy_ann_pJ": e_ann, "saving": float(saving(e_snn, e_ann)),
            })
    return pd.DataFrame(rows)
