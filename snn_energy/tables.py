"""Records -> DataFrames: per (layer, timestep), per layer, per image, a summary and a sensitivity sweep.

All counts and energies in these tables are per image (means over the images profiled); data-set statistics are
the standard deviation over images and the 95% confidence interval of the mean (Student t). Units are in the
column names: ``macs``, ``sops``, ``mults``, ``adds`` are operation counts, ``*_pJ`` picojoules, rates and
fractions are dimensionless. ``firing_rate`` is a neuron layer's output spike rate, and for a synaptic layer the
rate of its input (nonzero fraction); NaN for other rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from snn_energy.energy import (
    ACCOUNTINGS, EnergyConstants, ann_operation_costs, break_even_rate, break_even_ratio, check_accounting, energy_pJ,
    saving, snn_operation_costs,
)
from snn_energy.handlers import NEURON, SYNAPTIC
from snn_energy.tensor_stats import most_general_kind

COUNT_COLUMNS = ("macs", "real_input_macs", "sops", "mults", "adds", "input_elements", "input_nonzero", "neurons",
                 "spikes")
TOTAL_LAYER = "total"
ANN_REFERENCES = ("same_T", "T1")


@dataclass(frozen=True)
class EnergyOptions:
    """How counts become joules: constants, the accounting behind ``energy_pJ``, the encoding policy, BN folding."""

    constants: EnergyConstants
    accounting: str = "strict"
    encoding_policy: str = "per_timestep"
    fold_batchnorm: bool = False

    def __post_init__(self) -> None:
        check_accounting(self.accounting, self.encoding_policy)


def ci95(std, count):
    """Return the half-width of the 95% confidence interval of a mean (Student t; NaN below two samples)."""
    count = np.asarray(count, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(0.975, count - 1) * np.asarray(std, dtype=float) / np.sqrt(count)
    return np.where(count >= 2, half, np.nan)


def _rate(numerator, denominator):
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def _firing_rate(frame: pd.DataFrame) -> np.ndarray:
    """Return the firing rate of each row (neuron: spikes / neurons; synaptic: input nonzero / input elements)."""
    neuron = _rate(frame["spikes"], frame["neurons"])
    synaptic = _rate(frame["input_nonzero"], frame["input_elements"])
    return np.where(frame["role"] == NEURON, neuron, np.where(frame["role"] == SYNAPTIC, synaptic, np.nan))


def annotate(records: pd.DataFrame, options: EnergyOptions) -> pd.DataFrame:
    """Return ``records`` with, per row, ``firing_rate``, each accounting's ``<accounting>_mac_ops`` /
    ``<accounting>_ac_ops`` and ``energy_<accounting>_pJ``, and ``energy_pJ`` (the selected accounting)."""
    frame = records.copy()
    frame["firing_rate"] = _firing_rate(frame)
    for accounting in ACCOUNTINGS:
        costs = snn_operation_costs(frame, accounting, encoding_policy=options.encoding_policy,
                                    fold_batchnorm=options.fold_batchnorm)
        frame[f"{accounting}_mac_ops"] = costs["mac_ops"]
        frame[f"{accounting}_ac_ops"] = costs["ac_ops"]
        frame[f"energy_{accounting}_pJ"] = energy_pJ(costs["mac_ops"], costs["ac_ops"], options.constants)
    frame["energy_pJ"] = frame[f"energy_{options.accounting}_pJ"]
    return frame


_ENERGY_COLUMNS = ("energy_paper_pJ", "energy_strict_pJ", "energy_pJ")
_OPS_COLUMNS = tuple(f"{a}_{kind}_ops" for a in ACCOUNTINGS for kind in ("mac", "ac"))


def timestep_table(annotated: pd.DataFrame) -> pd.DataFrame:
    """Return one row per (layer, role, timestep): mean per-image counts and energies, firing rate and its std."""
    keys = ["layer", "role", "module_type", "timestep"]
    grouped = annotated.groupby(keys, sort=False)
    table = grouped[list(COUNT_COLUMNS) + list(_ENERGY_COLUMNS)].mean()
    table["firing_rate_std"] = grouped["firing_rate"].std()
    table["input_kind"] = grouped["input_kind"].first()
    table["is_encoding"] = grouped["is_encoding"].first()
    table["order"] = grouped["order"].first()
    table = table.reset_index()
    table["firing_rate"] = _firing_rate(table)
    table = table.sort_values(["order", "timestep"], kind="stable").drop(columns="order")
    return _front(table, keys + ["input_kind", "is_encoding", "macs", "sops", "firing_rate", "energy_pJ"])


def layer_table(annotated: pd.DataFrame, extremes: pd.DataFrame, options: EnergyOptions,
                ann_T1_macs: pd.Series, ann_same_T_macs: pd.Series) -> pd.DataFrame:
    """Return one row per (layer, role) with per-image means over the data set and their statistics.

    Adds: ``timesteps`` (rows the layer has), ``dead_neurons`` / ``saturated_neurons`` (per image, and as
    fractions), ``energy_share`` (of the total ``energy_pJ``), and for synaptic layers the ``break_even_rate``
    against the single-pass ANN (T=1) and ``break_even_rate_same_T`` against the ANN twin with the same T, with
    ``above_break_even`` (the input firing rate exceeds ``break_even_rate``). ``ann_T1_macs`` and
    ``ann_same_T_macs`` give each synaptic layer's MACs per image in those ANNs, indexed by layer name.
    """
    keys = ["layer", "role"]
    columns = list(COUNT_COLUMNS) + list(_ENERGY_COLUMNS) + list(_OPS_COLUMNS)
    per_image = annotated.groupby(keys + ["image"], sort=False)[columns].sum().reset_index()
    per_image["firing_rate"] = _firing_rate(per_image)
    grouped = per_image.groupby(keys, sort=False)
    table = grouped[columns + ["firing_rate"]].mean()
    counts = grouped.size()
    for column, stem, suffix in (("firing_rate", "firing_rate", ""), ("energy_pJ", "energy", "_pJ")):
        std = grouped[column].std()
        half = ci95(std, counts)
        table[f"{stem}_std{suffix}"] = std
        table[f"{stem}_ci95_low{suffix}"] = table[column] - half
        table[f"{stem}_ci95_high{suffix}"] = table[column] + half
    meta = annotated.groupby(keys, sort=False).agg(
        module_type=("module_type", "first"), order=("order", "first"), is_encoding=("is_encoding", "any"),
        timesteps=("timestep", "nunique"), input_kind=("input_kind", most_general_kind),
        neurons_per_step=("neurons", "mean"),
    )
    table = table.join(meta).reset_index()
    table["neurons"] = table.pop("neurons_per_step")
    if not extremes.empty:
        per_layer = extremes.groupby("layer", sort=False)[["dead_neurons", "saturated_neurons", "neurons"]].mean()
        table = table.merge(per_layer.rename(columns={"neurons": "neurons_"}), left_on="layer", right_index=True,
                            how="left")
        table["dead_fraction"] = _rate(table["dead_neurons"], table["neurons_"])
        table["saturated_fraction"] = _rate(table["saturated_neurons"], table["neurons_"])
        table = table.drop(columns="neurons_")
        extreme_columns = ["dead_neurons", "saturated_neurons", "dead_fraction", "saturated_fraction"]
        table.loc[table["role"] != NEURON, extreme_columns] = np.nan
    else:
        for column in ("dead_neurons", "saturated_neurons", "dead_fraction", "saturated_fraction"):
            table[column] = np.nan
    total = table["energy_pJ"].sum()
    table["energy_share"] = table["energy_pJ"] / total if total > 0 else np.nan
    synaptic = table["role"] == SYNAPTIC
    for column, reference in (("break_even_rate", ann_T1_macs), ("break_even_rate_same_T", ann_same_T_macs)):
        ann = table["layer"].map(reference).to_numpy(dtype=float)
        table[column] = np.where(synaptic, break_even_rate(table["macs"], ann, options.constants), np.nan)
    table["above_break_even"] = synaptic & (table["firing_rate"] > table["break_even_rate"])
    table = table.sort_values("order", kind="stable").drop(columns="order").reset_index(drop=True)
    return _front(table, ["layer", "role", "module_type", "input_kind", "is_encoding", "timesteps", "macs", "sops",
                          "firing_rate", "energy_pJ"])


def _front(table: pd.DataFrame, first: list[str]) -> pd.DataFrame:
    return table[first + [c for c in table.columns if c not in first]]


def ann_costs_per_image(records: pd.DataFrame, options: EnergyOptions) -> pd.DataFrame:
    """Return per image and accounting the ``mac_ops`` / ``ac_ops`` of ``records`` run as an ANN (dense MACs);
    columns ``image``, ``accounting``, ``mac_ops``, ``ac_ops``."""
    frames = []
    for accounting in ACCOUNTINGS:
        costs = ann_operation_costs(records, accounting, fold_batchnorm=options.fold_batchnorm)
        totals = costs.groupby(records["image"].to_numpy()).sum()
        frames.append(totals.rename_axis("image").reset_index().assign(accounting=accounting))
    return pd.concat(frames, ignore_index=True)


def image_table(annotated: pd.DataFrame, ann_costs: dict[str, pd.DataFrame], options: EnergyOptions) -> pd.DataFrame:
    """Return one row per image: counts, overall firing rate, energies, and the savings against both ANNs
    (selected accounting). ``ann_costs`` maps a reference (``same_T``, ``T1``) to its ``ann_costs_per_image``."""
    grouped = annotated.groupby("image")
    table = grouped[["macs", "sops", "mults", "adds", "spikes"] + list(_ENERGY_COLUMNS)].sum()
    neurons = annotated["neurons"].where(annotated["role"] == NEURON, 0.0).groupby(annotated["image"]).sum()
    table.insert(table.columns.get_loc("spikes") + 1, "neuron_steps", neurons)
    table["firing_rate"] = _rate(table["spikes"], table["neuron_steps"])
    for reference, costs in ann_costs.items():
        selected = costs[costs["accounting"] == options.accounting].set_index("image")
        e_ann = energy_pJ(selected["mac_ops"], selected["ac_ops"], options.constants).reindex(table.index)
        table[f"energy_ann_{reference}_pJ"] = e_ann
        table[f"saving_vs_ann_{reference}"] = saving(table["energy_pJ"], e_ann)
    return _front(table.reset_index(), ["image", "macs", "sops", "firing_rate", "energy_pJ"])


def summary_table(annotated: pd.DataFrame, images: pd.DataFrame, ann_costs: dict[str, pd.DataFrame],
                  ann_sources: dict[str, str], options: EnergyOptions, encoding_layer: str | None,
                  timesteps: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the summary (one row per accounting, ``layer`` = "total") and, per accounting and ANN reference,
    the mean per-image operation counts of both networks (what ``energy.sensitivity_sweep`` takes).

    Energies are per-image means with std and 95% CI over images; savings are 1 - mean E_SNN / mean E_ANN.
    ``break_even_ac_mac_ratio_*`` is the E_AC / E_MAC ratio at which SNN and ANN would cost the same.
    """
    encoding_rows = annotated[annotated["is_encoding"]]
    repeated = bool(encoding_rows["input_repeated"].any()) if not encoding_rows.empty else False
    rows, sweep_totals = [], []
    for accounting in ACCOUNTINGS:
        energy = images[f"energy_{accounting}_pJ"]
        snn = annotated.groupby("image")[[f"{accounting}_mac_ops", f"{accounting}_ac_ops"]].sum().mean()
        snn.index = ["mac_ops", "ac_ops"]
        row = {
            "layer": TOTAL_LAYER, "accounting": accounting, "selected": accounting == options.accounting,
            "images": len(images), "timesteps": timesteps,
            **{column: images[column].mean() for column in ("macs", "sops", "mults", "adds", "spikes", "neuron_steps")},
            "firing_rate": images["firing_rate"].mean(), "firing_rate_std": images["firing_rate"].std(),
            "mac_ops": snn["mac_ops"], "ac_ops": snn["ac_ops"],
            "energy_pJ": energy.mean(), "energy_std_pJ": energy.std(),
        }
        half = float(ci95(energy.std(), len(energy)))
        row["energy_ci95_low_pJ"], row["energy_ci95_high_pJ"] = row["energy_pJ"] - half, row["energy_pJ"] + half
        half = float(ci95(row["firing_rate_std"], len(images)))
        row["firing_rate_ci95_low"], row["firing_rate_ci95_high"] = row["firing_rate"] - half, row["firing_rate"] + half
        for reference in ANN_REFERENCES:
            costs = ann_costs[reference]
            ann = costs[costs["accounting"] == accounting][["mac_ops", "ac_ops"]].mean()
            e_ann = float(energy_pJ(ann["mac_ops"], ann["ac_ops"], options.constants))
            row[f"energy_ann_{reference}_pJ"] = e_ann
            row[f"saving_vs_ann_{reference}"] = float(saving(row["energy_pJ"], e_ann))
            row[f"break_even_ac_mac_ratio_{reference}"] = break_even_ratio(
                snn["mac_ops"], snn["ac_ops"], ann["mac_ops"], ann["ac_ops"])
            row[f"ann_{reference}_source"] = ann_sources[reference]
            sweep_totals.append({"accounting": accounting, "reference": reference, "snn_mac_ops": snn["mac_ops"],
                                 "snn_ac_ops": snn["ac_ops"], "ann_mac_ops": ann["mac_ops"],
                                 "ann_ac_ops": ann["ac_ops"]})
        row.update(
            constants=options.constants.name, e_mac_pJ=options.constants.e_mac_pJ, e_ac_pJ=options.constants.e_ac_pJ,
            encoding_layer=encoding_layer, encoding_policy=options.encoding_policy,
            encoding_input_repeated=repeated, fold_batchnorm=options.fold_batchnorm,
        )
        rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(sweep_totals)


def synaptic_macs_per_layer(records: pd.DataFrame) -> pd.Series:
    """Return each synaptic layer's MACs per image (mean over images), indexed by layer name."""
    synaptic = records[records["role"] == SYNAPTIC]
    per_image = synaptic.groupby(["layer", "image"], sort=False)["macs"].sum()
    return per_image.groupby(level="layer", sort=False).mean()


def single_pass_rows(records: pd.DataFrame) -> pd.DataFrame:
    """Return the rows a single-pass (T=1) run of the same network would have: timestep 0 and untimed rows."""
    return records[records["timestep"] <= 0]
