"""Records -> DataFrames: per (layer, timestep), per layer, per image, a summary and a sensitivity sweep.

All counts and energies in these tables are per image (means over the images profiled); data-set statistics are
the standard deviation over images and the 95% confidence interval of the mean over images: mean +- t(0.975,
n - 1) x std / sqrt(n) (Student t, n images; NaN below two images), clipped to the quantity's range ([0, 1] for
firing rates, >= 0 for energies), so a bound sitting on 0 or 1 says the interval reached it. Units are in the
column names: ``macs``, ``sops``, ``mults``, ``adds`` and ``*_ops`` are operation counts, ``*_pJ`` picojoules,
rates and fractions are dimensionless. ``firing_rate`` is a neuron layer's output spike rate, and for a synaptic
layer the rate of its input (nonzero fraction); NaN for other rows. Every accounting (``paper``, ``strict``,
``lemaire``) has its ``energy_<accounting>_pJ``, ``<accounting>_mac_ops`` / ``<accounting>_ac_ops`` (what it
charges as multiply-accumulates and accumulates) and ``charge_<accounting>`` (the rule applied, in words).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from spikingjelly.activation_based.op_counter import LemaireEnergyConfig

from snn_energy import lemaire
from snn_energy.energy import (
    ACCOUNTINGS, DEFAULT_TARGET_SAVING, LEMAIRE, OP_ACCOUNTINGS, EnergyConstants, ann_operation_costs,
    break_even_rate, break_even_ratio, charge_rules, check_accounting, energy_pJ, input_rate, rate_for_saving,
    saving, snn_operation_costs, spike_fed,
)
from snn_energy.handlers import NEURON, SYNAPTIC
from snn_energy.tensor_stats import most_general_kind

COUNT_COLUMNS = ("macs", "real_input_macs", "sops", "mults", "adds", "input_elements", "input_nonzero", "neurons",
                 "spikes")
TOTAL_LAYER = "total"
ANN_REFERENCES = ("same_T", "T1")
ENERGY_COLUMNS = tuple(f"energy_{a}_pJ" for a in ACCOUNTINGS) + ("energy_pJ",)
OPS_COLUMNS = tuple(f"{a}_{kind}_ops" for a in ACCOUNTINGS for kind in ("mac", "ac"))
LEMAIRE_PARTS = tuple(f"lemaire_{part}_pJ" for part in lemaire.PARTS)
_RATE_COLUMNS = tuple(f"{a}_rate_pJ" for a in ACCOUNTINGS)
_CHARGE_COLUMNS = tuple(f"charge_{a}" for a in ACCOUNTINGS)


@dataclass(frozen=True)
class EnergyOptions:
    """How counts become joules: constants, the accounting behind ``energy_pJ``, the encoding policy, BN folding,
    the saving whose firing rate is sought (``target_saving``, a fraction) and Lemaire's configuration."""

    constants: EnergyConstants
    accounting: str = "strict"
    encoding_policy: str = "per_timestep"
    fold_batchnorm: bool = False
    target_saving: float = DEFAULT_TARGET_SAVING
    lemaire: LemaireEnergyConfig = field(default_factory=lambda: LemaireEnergyConfig(strict=False))

    def __post_init__(self) -> None:
        check_accounting(self.accounting, self.encoding_policy)
        if not (isinstance(self.target_saving, (int, float)) and 0.0 < self.target_saving < 1.0):
            raise ValueError(f"target_saving must be a fraction between 0 and 1 (0.54 for 54%), "
                             f"got {self.target_saving!r}")


def ci95(std, count):
    """Return the half-width of the 95% confidence interval of a mean (Student t; NaN below two samples)."""
    count = np.asarray(count, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(0.975, count - 1) * np.asarray(std, dtype=float) / np.sqrt(count)
    return np.where(count >= 2, half, np.nan)


def ci95_bounds(mean, std, count, low=-np.inf, high=np.inf):
    """Return the (low, high) bounds of the 95% confidence interval of a mean, clipped to [``low``, ``high``]."""
    half = ci95(std, count)
    mean = np.asarray(mean, dtype=float)
    return np.clip(mean - half, low, high), np.clip(mean + half, low, high)


def _rate(numerator, denominator):
    numerator, denominator = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def _firing_rate(frame: pd.DataFrame) -> np.ndarray:
    """Return the firing rate of each row (neuron: spikes / neurons; synaptic: input nonzero / input elements)."""
    neuron = _rate(frame["spikes"], frame["neurons"])
    synaptic = _rate(frame["input_nonzero"], frame["input_elements"])
    return np.where(frame["role"] == NEURON, neuron, np.where(frame["role"] == SYNAPTIC, synaptic, np.nan))


def _neuron_terms(records: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Return per row the emitted spikes and neuron updates (0 outside neuron layers)."""
    neuron = records["role"] == NEURON
    return records["spikes"].where(neuron, 0.0).astype(float), records["neurons"].where(neuron, 0.0).astype(float)


def annotate(records: pd.DataFrame, options: EnergyOptions, geometry: pd.DataFrame) -> pd.DataFrame:
    """Return ``records`` with, per row, ``firing_rate``, each accounting's ``<accounting>_mac_ops`` /
    ``<accounting>_ac_ops``, ``energy_<accounting>_pJ``, ``<accounting>_rate_pJ`` (the part that scales with the
    firing rate of the spike-fed layers) and ``charge_<accounting>``, Lemaire's parts (``lemaire_compute_pJ``,
    ``lemaire_addressing_pJ``, ``lemaire_memory_pJ``), and ``energy_pJ`` (the selected accounting).
    ``geometry``: ``lemaire.layer_geometry`` of the profiled model."""
    frame = records.copy()
    frame["firing_rate"] = _firing_rate(frame)
    spikes, updates = _neuron_terms(frame)
    constants = options.constants
    for accounting in OP_ACCOUNTINGS:
        costs = snn_operation_costs(frame, accounting, encoding_policy=options.encoding_policy,
                                    fold_batchnorm=options.fold_batchnorm)
        frame[f"{accounting}_mac_ops"] = costs["mac_ops"]
        frame[f"{accounting}_ac_ops"] = costs["ac_ops"]
        frame[f"energy_{accounting}_pJ"] = energy_pJ(costs["mac_ops"], costs["ac_ops"], constants, spikes, updates)
        frame[f"{accounting}_rate_pJ"] = constants.e_ac_pJ * costs["rate_ac_ops"] + constants.e_spike_pJ * spikes
        frame[f"charge_{accounting}"] = charge_rules(frame, accounting, fold_batchnorm=options.fold_batchnorm)
    costs = lemaire.lemaire_costs(frame, geometry, network="snn", config=options.lemaire)
    for column in costs.columns:
        frame[column] = costs[column]
    frame[f"charge_{LEMAIRE}"] = lemaire.charge_rules(frame, geometry)
    frame["energy_pJ"] = frame[f"energy_{options.accounting}_pJ"]
    return frame


def timestep_table(annotated: pd.DataFrame) -> pd.DataFrame:
    """Return one row per (layer, role, timestep): mean per-image counts and energies, firing rate and its std."""
    keys = ["layer", "role", "module_type", "timestep"]
    grouped = annotated.groupby(keys, sort=False)
    table = grouped[list(COUNT_COLUMNS) + list(ENERGY_COLUMNS) + list(LEMAIRE_PARTS)].mean()
    table["firing_rate_std"] = grouped["firing_rate"].std()
    table["input_kind"] = grouped["input_kind"].first()
    table["is_encoding"] = grouped["is_encoding"].first()
    table["order"] = grouped["order"].first()
    table = table.reset_index()
    table["firing_rate"] = _firing_rate(table)
    table = table.sort_values(["order", "timestep"], kind="stable").drop(columns="order")
    return _front(table, keys + ["input_kind", "is_encoding", "macs", "sops", "firing_rate", "energy_pJ"])


def _rules(values: pd.Series) -> str:
    return " + ".join(dict.fromkeys(values))


def layer_table(annotated: pd.DataFrame, extremes: pd.DataFrame, options: EnergyOptions,
                ann_T1_macs: pd.Series, ann_same_T_macs: pd.Series) -> pd.DataFrame:
    """Return one row per (layer, role) with per-image means over the data set and their statistics.

    Adds: ``timesteps`` (rows the layer has), ``charge_<accounting>`` (the rules applied, joined by " + " when
    calls differ), ``dead_neurons`` / ``saturated_neurons`` (per image, and as fractions), ``energy_share`` (of
    the total ``energy_pJ``), the 95% CI of ``firing_rate`` and ``energy_pJ`` (clipped, see the module), and for
    synaptic layers the ``break_even_rate`` against the single-pass ANN (T=1) and ``break_even_rate_same_T``
    against the ANN twin with the same T, with ``above_break_even`` (the input firing rate exceeds
    ``break_even_rate``). ``ann_T1_macs`` and ``ann_same_T_macs`` give each synaptic layer's MACs per image in
    those ANNs, indexed by layer name.
    """
    keys = ["layer", "role"]
    columns = list(COUNT_COLUMNS) + list(ENERGY_COLUMNS) + list(OPS_COLUMNS) + list(LEMAIRE_PARTS)
    per_image = annotated.groupby(keys + ["image"], sort=False)[columns].sum().reset_index()
    per_image["firing_rate"] = _firing_rate(per_image)
    grouped = per_image.groupby(keys, sort=False)
    table = grouped[columns + ["firing_rate"]].mean()
    counts = grouped.size()
    for column, stem, suffix, high in (("firing_rate", "firing_rate", "", 1.0), ("energy_pJ", "energy", "_pJ", np.inf)):
        std = grouped[column].std()
        table[f"{stem}_std{suffix}"] = std
        table[f"{stem}_ci95_low{suffix}"], table[f"{stem}_ci95_high{suffix}"] = ci95_bounds(
            table[column], std, counts, 0.0, high)
    meta = annotated.groupby(keys, sort=False).agg(
        module_type=("module_type", "first"), order=("order", "first"), is_encoding=("is_encoding", "any"),
        timesteps=("timestep", "nunique"), input_kind=("input_kind", most_general_kind),
        neurons_per_step=("neurons", "mean"), **{column: (column, _rules) for column in _CHARGE_COLUMNS},
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
                          "firing_rate", "energy_pJ", *ENERGY_COLUMNS[:-1], *_CHARGE_COLUMNS])


def _front(table: pd.DataFrame, first: list[str]) -> pd.DataFrame:
    first = list(dict.fromkeys(first))
    return table[first + [c for c in table.columns if c not in first]]


def ann_operation_table(records: pd.DataFrame, options: EnergyOptions, geometry: pd.DataFrame) -> pd.DataFrame:
    """Return per record row of ``records`` run as an ANN (dense, no neurons) each accounting's
    ``<accounting>_mac_ops``, ``<accounting>_ac_ops`` and ``energy_<accounting>_pJ`` (pJ), with Lemaire's parts;
    columns ``image`` and ``layer`` carried over. ``geometry``: ``lemaire.layer_geometry`` of the ANN."""
    columns = {"image": records["image"], "layer": records["layer"]}
    for accounting in OP_ACCOUNTINGS:
        costs = ann_operation_costs(records, accounting, fold_batchnorm=options.fold_batchnorm)
        columns[f"{accounting}_mac_ops"], columns[f"{accounting}_ac_ops"] = costs["mac_ops"], costs["ac_ops"]
        columns[f"energy_{accounting}_pJ"] = energy_pJ(costs["mac_ops"], costs["ac_ops"], options.constants)
    costs = lemaire.lemaire_costs(records, geometry, network="ann", config=options.lemaire)
    for column in ("lemaire_mac_ops", "lemaire_ac_ops", *LEMAIRE_PARTS, "energy_lemaire_pJ"):
        columns[column] = costs[column]
    return pd.DataFrame(columns)


def ann_costs_per_image(records: pd.DataFrame, options: EnergyOptions, geometry: pd.DataFrame) -> pd.DataFrame:
    """Return per image and accounting the ``mac_ops``, ``ac_ops`` and ``energy_pJ`` (pJ) of ``records`` run as an
    ANN (dense MACs); columns ``image``, ``accounting``, ``mac_ops``, ``ac_ops``, ``energy_pJ``."""
    per_row = ann_operation_table(records, options, geometry).drop(columns="layer")
    totals = per_row.groupby("image").sum()
    frames = [pd.DataFrame({"image": totals.index, "accounting": accounting,
                            "mac_ops": totals[f"{accounting}_mac_ops"].to_numpy(),
                            "ac_ops": totals[f"{accounting}_ac_ops"].to_numpy(),
                            "energy_pJ": totals[f"energy_{accounting}_pJ"].to_numpy()}) for accounting in ACCOUNTINGS]
    return pd.concat(frames, ignore_index=True)


def image_table(annotated: pd.DataFrame, ann_costs: dict[str, pd.DataFrame], options: EnergyOptions) -> pd.DataFrame:
    """Return one row per image: counts, overall firing rate, energies under every accounting, and the savings
    against both ANNs (selected accounting). ``ann_costs`` maps a reference (``same_T``, ``T1``) to its
    ``ann_costs_per_image``."""
    grouped = annotated.groupby("image")
    table = grouped[["macs", "sops", "mults", "adds", "spikes"] + list(ENERGY_COLUMNS) + list(_RATE_COLUMNS)].sum()
    neurons = annotated["neurons"].where(annotated["role"] == NEURON, 0.0).groupby(annotated["image"]).sum()
    table.insert(table.columns.get_loc("spikes") + 1, "neuron_steps", neurons)
    table["firing_rate"] = _rate(table["spikes"], table["neuron_steps"])
    for reference, costs in ann_costs.items():
        selected = costs[costs["accounting"] == options.accounting].set_index("image")
        e_ann = selected["energy_pJ"].reindex(table.index)
        table[f"energy_ann_{reference}_pJ"] = e_ann
        table[f"saving_vs_ann_{reference}"] = saving(table["energy_pJ"], e_ann)
    return _front(table.reset_index(), ["image", "macs", "sops", "firing_rate", "energy_pJ"])


def spike_input_rate(annotated: pd.DataFrame) -> float:
    """Return the MAC-weighted mean input firing rate of the spike-fed layers (binary input, inside the time loop,
    not the encoding layer) over every image: sum(rate x MACs) / sum(MACs); NaN without such a layer."""
    rows = annotated[spike_fed(annotated)]
    macs = rows["macs"].sum()
    return float((input_rate(rows).fillna(0.0) * rows["macs"]).sum() / macs) if macs > 0 else np.nan


def summary_table(annotated: pd.DataFrame, images: pd.DataFrame, ann_costs: dict[str, pd.DataFrame],
                  ann_sources: dict[str, str], options: EnergyOptions, encoding_layer: str | None,
                  timesteps: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the summary (one row per accounting, ``layer`` = "total") and, per per-operation accounting and ANN
    reference, the mean per-image operation counts of both networks (what ``energy.sensitivity_sweep`` takes).

    Energies are per-image means with std and 95% CI over images; savings are 1 - mean E_SNN / mean E_ANN.
    ``mac_ops`` / ``ac_ops``: what the accounting charges as multiply-accumulates and accumulates (Lemaire: its
    compute counts). ``break_even_ac_mac_ratio_*``: the E_AC / E_MAC ratio at which SNN and ANN would cost the
    same (NaN for ``lemaire``, which has no such ratio). ``spike_input_rate``: the measured MAC-weighted mean input
    firing rate of the spike-fed layers; ``rate_for_target_saving``: the rate at which the SNN would save
    ``target_saving`` against the single-pass twin, every spike-driven cost scaled with it (NaN when no rate in
    [0, 1] does).
    """
    encoding_rows = annotated[annotated["is_encoding"]]
    repeated = bool(encoding_rows["input_repeated"].any()) if not encoding_rows.empty else False
    measured_rate = spike_input_rate(annotated)
    spikes, updates = (term.groupby(annotated["image"]).sum().mean() for term in _neuron_terms(annotated))
    constants = options.constants
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
        if accounting == LEMAIRE:
            row.update({part: annotated.groupby("image")[part].sum().mean() for part in LEMAIRE_PARTS})
        row["energy_ci95_low_pJ"], row["energy_ci95_high_pJ"] = (
            float(v) for v in ci95_bounds(row["energy_pJ"], energy.std(), len(energy), 0.0))
        row["firing_rate_ci95_low"], row["firing_rate_ci95_high"] = (
            float(v) for v in ci95_bounds(row["firing_rate"], row["firing_rate_std"], len(images), 0.0, 1.0))
        extra = (constants.e_spike_pJ * spikes + constants.e_neuron_pJ * updates) / constants.e_mac_pJ
        for reference in ANN_REFERENCES:
            costs = ann_costs[reference]
            ann = costs[costs["accounting"] == accounting][["mac_ops", "ac_ops", "energy_pJ"]].mean()
            row[f"energy_ann_{reference}_pJ"] = float(ann["energy_pJ"])
            row[f"saving_vs_ann_{reference}"] = float(saving(row["energy_pJ"], ann["energy_pJ"]))
            row[f"break_even_ac_mac_ratio_{reference}"] = np.nan if accounting == LEMAIRE else break_even_ratio(
                snn["mac_ops"], snn["ac_ops"], ann["mac_ops"], ann["ac_ops"], extra)
            row[f"ann_{reference}_source"] = ann_sources[reference]
            if accounting != LEMAIRE:
                sweep_totals.append({"accounting": accounting, "reference": reference, "snn_mac_ops": snn["mac_ops"],
                                     "snn_ac_ops": snn["ac_ops"], "snn_spike_ops": spikes, "snn_neuron_ops": updates,
                                     "ann_mac_ops": ann["mac_ops"], "ann_ac_ops": ann["ac_ops"]})
        row.update(
            target_saving=options.target_saving, spike_input_rate=measured_rate,
            rate_for_target_saving=rate_for_saving(row["energy_pJ"], images[f"{accounting}_rate_pJ"].mean(),
                                                   row["energy_ann_T1_pJ"], measured_rate, options.target_saving),
            constants=constants.name, e_mac_pJ=constants.e_mac_pJ, e_ac_pJ=constants.e_ac_pJ,
            e_spike_pJ=constants.e_spike_pJ, e_neuron_pJ=constants.e_neuron_pJ,
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
