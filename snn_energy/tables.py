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
from snn_energy.moments import mean_of, moments, std_of
from snn_energy.tensor_stats import BINARY, most_general_kind

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


_TIMESTEP_KEYS = ["layer", "role", "module_type", "timestep"]
_LAYER_KEYS = ["layer", "role"]


def timestep_moments(annotated: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Return, per (layer, role, module_type, timestep) of ``annotated``, the moments (``moments.moments``) of its
    counts, energies and firing rate over rows, and its labels (input kind, encoding flag, call order) by key."""
    grouped = annotated.groupby(_TIMESTEP_KEYS, sort=False)
    stats = moments(grouped, list(COUNT_COLUMNS) + list(ENERGY_COLUMNS) + list(LEMAIRE_PARTS) + ["firing_rate"])
    labels = grouped[["input_kind", "is_encoding", "order"]].first()
    return stats, dict(zip(labels.index, labels.itertuples(index=False, name=None)))


def timestep_table(stats: pd.DataFrame, labels: dict) -> pd.DataFrame:
    """Return one row per (layer, role, timestep): mean per-image counts and energies, firing rate and its std.
    ``stats`` and ``labels``: ``timestep_moments`` merged over the data set."""
    table = mean_of(stats).drop(columns="firing_rate")
    table["firing_rate_std"] = std_of(stats)["firing_rate"]
    for i, name in enumerate(("input_kind", "is_encoding", "order")):
        table[name] = [labels[key][i] for key in table.index]
    table = table.rename_axis(_TIMESTEP_KEYS).reset_index()
    table["firing_rate"] = _firing_rate(table)
    table = table.sort_values(["order", "timestep"], kind="stable").drop(columns="order")
    return _front(table, _TIMESTEP_KEYS + ["input_kind", "is_encoding", "macs", "sops", "firing_rate", "energy_pJ"])


_LAYER_COLUMNS = list(COUNT_COLUMNS) + list(ENERGY_COLUMNS) + list(OPS_COLUMNS) + list(LEMAIRE_PARTS)


def layer_moments(annotated: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Return, per (layer, role) of ``annotated``, the moments over images of each image's totals (counts, energies,
    charged operations, firing rate), and its labels by key (see ``merge_layer_meta``)."""
    per_image = annotated.groupby(_LAYER_KEYS + ["image"], sort=False)[_LAYER_COLUMNS].sum().reset_index()
    per_image["firing_rate"] = _firing_rate(per_image)
    stats = moments(per_image.groupby(_LAYER_KEYS, sort=False), _LAYER_COLUMNS + ["firing_rate"])
    grouped = annotated.groupby(_LAYER_KEYS, sort=False)
    meta = grouped.agg(
        module_type=("module_type", "first"), order=("order", "first"), is_encoding=("is_encoding", "any"),
        timesteps=("timestep", frozenset), input_kind=("input_kind", most_general_kind),
        neurons_sum=("neurons", "sum"), rows=("neurons", "size"),
        **{column: (column, lambda values: tuple(dict.fromkeys(values))) for column in _CHARGE_COLUMNS},
    )
    return stats, {key: row._asdict() for key, row in zip(meta.index, meta.itertuples(index=False))}


def merge_layer_meta(kept: dict, new: dict) -> dict:
    """Return the labels of one (layer, role) over two sets of rows: first type and call order, encoding if any
    row was, the timesteps seen, the most general input kind, the charge rules in order of appearance."""
    merged = dict(kept, is_encoding=kept["is_encoding"] or new["is_encoding"],
                  timesteps=kept["timesteps"] | new["timesteps"],
                  input_kind=most_general_kind((kept["input_kind"], new["input_kind"])),
                  neurons_sum=kept["neurons_sum"] + new["neurons_sum"], rows=kept["rows"] + new["rows"])
    for column in _CHARGE_COLUMNS:
        merged[column] = tuple(dict.fromkeys(kept[column] + new[column]))
    return merged


def extreme_moments(extremes: pd.DataFrame) -> pd.DataFrame:
    """Return per neuron layer the moments over images of its dead and saturated neurons and its size."""
    return moments(extremes.groupby("layer", sort=False), ["dead_neurons", "saturated_neurons", "neurons"])


def layer_table(stats: pd.DataFrame, meta: dict, extreme_stats: pd.DataFrame | None, options: EnergyOptions,
                ann_T1_macs: pd.Series, ann_same_T_macs: pd.Series) -> pd.DataFrame:
    """Return one row per (layer, role) with per-image means over the data set and their statistics.

    ``stats`` and ``meta``: ``layer_moments`` merged over the data set; ``extreme_stats``: ``extreme_moments``
    merged (None without neuron layers). Adds: ``timesteps`` (rows the layer has), ``charge_<accounting>`` (the
    rules applied, joined by " + " when calls differ), ``dead_neurons`` / ``saturated_neurons`` (per image, and as
    fractions), ``energy_share`` (of the total ``energy_pJ``), the 95% CI of ``firing_rate`` and ``energy_pJ``
    (clipped, see the module), and for synaptic layers the ``break_even_rate`` against the single-pass ANN (T=1)
    and ``break_even_rate_same_T`` against the ANN twin with the same T, with ``above_break_even`` (the input
    firing rate exceeds ``break_even_rate``). ``ann_T1_macs`` and ``ann_same_T_macs`` give each synaptic layer's
    MACs per image in those ANNs, indexed by layer name.
    """
    table = mean_of(stats)
    std, counts = std_of(stats), stats["n"]["macs"]
    for column, stem, suffix, high in (("firing_rate", "firing_rate", "", 1.0), ("energy_pJ", "energy", "_pJ", np.inf)):
        table[f"{stem}_std{suffix}"] = std[column]
        table[f"{stem}_ci95_low{suffix}"], table[f"{stem}_ci95_high{suffix}"] = ci95_bounds(
            table[column], std[column], counts, 0.0, high)
    labels = pd.DataFrame([meta[key] for key in table.index], index=table.index)
    labels["timesteps"] = labels["timesteps"].map(len)
    labels["neurons_per_step"] = labels.pop("neurons_sum") / labels.pop("rows")
    for column in _CHARGE_COLUMNS:
        labels[column] = labels[column].map(" + ".join)
    table = table.join(labels).rename_axis(_LAYER_KEYS).reset_index()
    table["neurons"] = table.pop("neurons_per_step")
    extreme_columns = ["dead_neurons", "saturated_neurons", "dead_fraction", "saturated_fraction"]
    if extreme_stats is not None:
        per_layer = mean_of(extreme_stats)
        table = table.merge(per_layer.rename(columns={"neurons": "neurons_"}), left_on="layer", right_index=True,
                            how="left")
        table["dead_fraction"] = _rate(table["dead_neurons"], table["neurons_"])
        table["saturated_fraction"] = _rate(table["saturated_neurons"], table["neurons_"])
        table = table.drop(columns="neurons_")
        table.loc[table["role"] != NEURON, extreme_columns] = np.nan
    else:
        for column in extreme_columns:
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


def ann_layer_image_costs(records: pd.DataFrame, options: EnergyOptions, geometry: pd.DataFrame
                          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the costs of ``records`` run as an ANN (``ann_operation_table``): per layer their moments over images
    of each image's totals, and per image (column ``image``) their totals."""
    costs = ann_operation_table(records, options, geometry)
    per_layer_image = costs.groupby(["layer", "image"], sort=False).sum()
    per_layer = moments(per_layer_image.groupby(level="layer", sort=False), per_layer_image.columns)
    return per_layer, costs.drop(columns="layer").groupby("image").sum().reset_index()


def ann_layer_table(stats: pd.DataFrame, images: int) -> pd.DataFrame:
    """Return per ANN layer (network order) its operations and energies per image (pJ): the totals over the data
    set of ``ann_layer_image_costs``'s moments ``stats``, divided by ``images``."""
    return (stats["mean"] * stats["n"] / images).rename_axis("layer").reset_index()


def ann_costs_long(per_image: pd.DataFrame) -> pd.DataFrame:
    """Return per image and accounting the ``mac_ops``, ``ac_ops`` and ``energy_pJ`` (pJ) of an ANN from its
    per-image costs (``ann_layer_image_costs``); columns ``image``, ``accounting``, ``mac_ops``, ``ac_ops``,
    ``energy_pJ``."""
    frames = [pd.DataFrame({"image": per_image["image"].to_numpy(), "accounting": accounting,
                            "mac_ops": per_image[f"{accounting}_mac_ops"].to_numpy(),
                            "ac_ops": per_image[f"{accounting}_ac_ops"].to_numpy(),
                            "energy_pJ": per_image[f"energy_{accounting}_pJ"].to_numpy()}) for accounting in ACCOUNTINGS]
    return pd.concat(frames, ignore_index=True)


def image_table(annotated: pd.DataFrame, ann_costs: dict[str, pd.DataFrame], options: EnergyOptions) -> pd.DataFrame:
    """Return one row per image: counts, overall firing rate, energies under every accounting, and the savings
    against both ANNs (selected accounting). ``ann_costs`` maps a reference (``same_T``, ``T1``) to its
    ``ann_costs_long``."""
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


@dataclass(frozen=True)
class SummaryScalars:
    """What the summary needs of the rows beyond per-image totals, additive over batches: whether an encoding
    layer's input was repeated over time, and the MAC-weighted input rate of the spike-fed layers as its two sums."""

    repeated: bool = False
    rate_macs: float = 0.0  # sum over spike-fed rows of input rate x MACs
    spike_fed_macs: float = 0.0

    def merge(self, other: "SummaryScalars") -> "SummaryScalars":
        """Return the scalars of both sets of rows."""
        return SummaryScalars(self.repeated or other.repeated, self.rate_macs + other.rate_macs, self.spike_fed_macs + other.spike_fed_macs)

    @property
    def spike_input_rate(self) -> float:
        """The MAC-weighted mean input firing rate of the spike-fed layers (binary input, inside the time loop, not
        the encoding layer) over every image: sum(rate x MACs) / sum(MACs); NaN without such a layer."""
        return self.rate_macs / self.spike_fed_macs if self.spike_fed_macs > 0 else np.nan


def summary_parts(annotated: pd.DataFrame) -> tuple[pd.DataFrame, SummaryScalars]:
    """Return what ``summary_table`` needs of ``annotated``: per image (index) the totals of each accounting's
    charged operations, Lemaire's parts, spikes and neuron updates; and the ``SummaryScalars``."""
    columns = [f"{a}_{kind}_ops" for a in ACCOUNTINGS for kind in ("mac", "ac")] + list(LEMAIRE_PARTS)
    spikes, updates = _neuron_terms(annotated)
    totals = annotated[columns].assign(spike_terms=spikes, update_terms=updates).groupby(annotated["image"]).sum()
    encoding = annotated.loc[annotated["is_encoding"], "input_repeated"]
    rows = annotated[spike_fed(annotated)]
    return totals, SummaryScalars(bool(encoding.any()),
                                  float((input_rate(rows).fillna(0.0) * rows["macs"]).sum()), float(rows["macs"].sum()))


def summary_table(totals: pd.DataFrame, scalars: SummaryScalars, images: pd.DataFrame,
                  ann_costs: dict[str, pd.DataFrame], ann_sources: dict[str, str], options: EnergyOptions,
                  encoding_layer: str | None, timesteps: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the summary (one row per accounting, ``layer`` = "total") and, per per-operation accounting and ANN
    reference, the mean per-image operation counts of both networks (what ``energy.sensitivity_sweep`` takes).
    ``totals`` and ``scalars``: ``summary_parts`` over the data set (per image, and merged); ``images``: the
    ``image_table``; ``ann_costs``: per reference its ``ann_costs_long``.

    Energies are per-image means with std and 95% CI over images; savings are 1 - mean E_SNN / mean E_ANN.
    ``mac_ops`` / ``ac_ops``: what the accounting charges as multiply-accumulates and accumulates (Lemaire: its
    compute counts). ``break_even_ac_mac_ratio_*``: the E_AC / E_MAC ratio at which SNN and ANN would cost the
    same (NaN for ``lemaire``, which has no such ratio). ``spike_input_rate``: the measured MAC-weighted mean input
    firing rate of the spike-fed layers; ``rate_for_target_saving``: the rate at which the SNN would save
    ``target_saving`` against the single-pass twin, every spike-driven cost scaled with it (NaN when no rate in
    [0, 1] does).
    """
    repeated = scalars.repeated
    measured_rate = scalars.spike_input_rate
    spikes, updates = totals["spike_terms"].mean(), totals["update_terms"].mean()
    constants = options.constants
    rows, sweep_totals = [], []
    for accounting in ACCOUNTINGS:
        energy = images[f"energy_{accounting}_pJ"]
        snn = totals[[f"{accounting}_mac_ops", f"{accounting}_ac_ops"]].mean()
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
            row.update({part: totals[part].mean() for part in LEMAIRE_PARTS})
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


def synaptic_macs_moments(records: pd.DataFrame) -> pd.DataFrame:
    """Return per synaptic layer of ``records`` the moments over images of its MACs per image."""
    synaptic = records[records["role"] == SYNAPTIC]
    per_image = synaptic.groupby(["layer", "image"], sort=False)["macs"].sum().to_frame()
    return moments(per_image.groupby(level="layer", sort=False), ["macs"])


def synaptic_macs_per_layer(stats: pd.DataFrame) -> pd.Series:
    """Return each synaptic layer's MACs per image (mean over images), indexed by layer name, from the merged
    ``synaptic_macs_moments``."""
    return mean_of(stats)["macs"]


def is_spiking(records: pd.DataFrame) -> bool:
    """Whether a spiking neuron ran or a synaptic input was binary in ``records`` (else the model is an ANN)."""
    synaptic = records["role"] == SYNAPTIC
    return bool((records["role"] == NEURON).any() or (records.loc[synaptic, "input_kind"] == BINARY).any())


def single_pass_rows(records: pd.DataFrame) -> pd.DataFrame:
    """Return the rows a single-pass (T=1) run of the same network would have: timestep 0 and untimed rows."""
    return records[records["timestep"] <= 0]
