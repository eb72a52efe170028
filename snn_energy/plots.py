"""Figures of a profile, drawn from its DataFrames only (any model), each saved as PNG and SVG.

Every ``plot_*`` function returns a matplotlib ``Figure`` built without pyplot (no global figure state, no GUI:
files are rendered by the Agg backend whatever backend a session uses; in a notebook, ``display(fig)``).
``save_figure`` writes it as ``NAME.png`` and ``NAME.svg``. Layers appear in the order of the tables (network
order). An optional ``stage`` column (the group a layer belongs to, e.g. a U-Net level) colours the bars.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch

PNG_DPI = 110
NETWORK_HATCH = {"SNN": "", "ANN": "//"}
# Fixed SVG ids and no date: the same figure gives the same bytes.
_SVG_RC = {"svg.hashsalt": "snn-energy", "svg.fonttype": "path"}


def energy_unit(largest_pJ: float) -> tuple[float, str]:
    """Return ``(factor, unit)`` so that ``largest_pJ * factor`` lies in [1, 1000) units (pJ up to J)."""
    for factor, unit in ((1e-12, "J"), (1e-9, "mJ"), (1e-6, "uJ"), (1e-3, "nJ")):
        if abs(largest_pJ) * factor >= 1.0:
            return factor, unit
    return 1.0, "pJ"


def save_figure(fig: Figure, directory: str | os.PathLike, name: str) -> list[Path]:
    """Write ``fig`` as ``directory/name.png`` and ``directory/name.svg`` (Agg renders the PNG); returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    png, svg = directory / f"{name}.png", directory / f"{name}.svg"
    with matplotlib.rc_context(_SVG_RC):
        fig.savefig(png, dpi=PNG_DPI, bbox_inches="tight", metadata={"Software": None})
        fig.savefig(svg, bbox_inches="tight", metadata={"Date": None, "Creator": None})
    return [png, svg]


def _stage_palette(stages: pd.Series) -> dict[str, tuple]:
    names = list(dict.fromkeys(stages))
    return dict(zip(names, sns.color_palette("tab20", len(names))))


def plot_firing_rates(layers: pd.DataFrame, title: str = "Firing rate per layer") -> Figure:
    """Bars of ``firing_rate`` per layer (rows in network order) with whiskers of +-``firing_rate_std`` over images.

    ``layers`` needs ``layer`` and ``firing_rate``; ``firing_rate_std`` and ``stage`` are used when present (the
    stage legend sits to the right of the axes, clear of the bars).
    """
    frame = layers.dropna(subset=["firing_rate"]).reset_index(drop=True)
    if frame.empty:
        raise ValueError("no layer has a firing rate to plot")
    x = np.arange(len(frame))
    colours = ([_stage_palette(frame["stage"])[s] for s in frame["stage"]] if "stage" in frame
               else [sns.color_palette()[0]] * len(frame))
    spread = frame["firing_rate_std"].fillna(0.0).to_numpy() if "firing_rate_std" in frame else None
    fig = Figure(figsize=(max(6.0, 0.22 * len(frame) + 2.0), 4.2))
    ax = fig.subplots()
    ax.bar(x, frame["firing_rate"], color=colours, yerr=spread, capsize=2, error_kw={"elinewidth": 0.8})
    top = float((frame["firing_rate"] + (spread if spread is not None else 0.0)).max())
    ax.set_ylim(0.0, min(1.0, 1.1 * top) if top > 0 else 1.0)
    ax.set_xticks(x, frame["layer"], rotation=90, fontsize=6)
    ax.set_xlim(-0.6, len(frame) - 0.4)
    ax.set_ylabel("firing rate (spikes per neuron per timestep)")
    ax.set_title(title + ("  (whiskers: std over images)" if spread is not None else ""))
    if "stage" in frame:
        palette = _stage_palette(frame["stage"])
        handles = [Patch(color=c, label=s) for s, c in palette.items()]
        ax.legend(handles=handles, fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def plot_firing_rate_heatmap(timesteps: pd.DataFrame, title: str = "Firing rate per layer and timestep"
                             ) -> Figure:
    """Heat map of ``firing_rate``: one row per layer (network order), one column per ``timestep`` (>= 0)."""
    frame = timesteps[(timesteps["timestep"] >= 0)].dropna(subset=["firing_rate"])
    if frame.empty:
        raise ValueError("no layer has a per-timestep firing rate to plot")
    order = list(dict.fromkeys(frame["layer"]))
    grid = frame.pivot_table(index="layer", columns="timestep", values="firing_rate", aggfunc="mean").loc[order]
    fig = Figure(figsize=(2.5 + 0.7 * grid.shape[1], max(3.0, 0.16 * len(grid) + 1.5)))
    ax = fig.subplots()
    sns.heatmap(grid, ax=ax, cmap="viridis", vmin=0.0, cbar_kws={"label": "firing rate"},
                yticklabels=True, linewidths=0.0)
    ax.tick_params(axis="y", labelsize=6)
    ax.set_xlabel("timestep")
    ax.set_ylabel("")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_stage_energy(stage_energy: pd.DataFrame, title: str = "Energy per stage") -> Figure:
    """Stacked bars of energy per stage for each network, one panel per accounting, each in its own unit.

    ``stage_energy`` has one row per (accounting, stage, network, part) with ``energy_pJ``; the parts of a bar
    (e.g. MAC, AC, spikes; Lemaire's compute, addressing, memory) are stacked in their order of first appearance,
    stages drawn in theirs. The legend sits beside the panels and every panel leaves room above its tallest bar.
    """
    accountings = list(dict.fromkeys(stage_energy["accounting"]))
    stages = list(dict.fromkeys(stage_energy["stage"]))
    networks = list(dict.fromkeys(stage_energy["network"]))
    parts = list(dict.fromkeys(stage_energy["part"]))
    colours = dict(zip(parts, sns.color_palette("deep", len(parts))))
    width = 0.8 / len(networks)
    fig = Figure(figsize=(max(8.0, 0.75 * len(stages) + 3.5), 3.0 * len(accountings) + 0.6))
    axes = fig.subplots(len(accountings), 1, squeeze=False, sharex=True)
    x = np.arange(len(stages))
    for ax, accounting in zip(axes[:, 0], accountings):
        part_rows = stage_energy[stage_energy["accounting"] == accounting]
        grid = part_rows.pivot_table(index=["network", "stage"], columns="part", values="energy_pJ", aggfunc="sum",
                                     sort=False)
        grid = grid.loc[:, grid.sum() > 0] if (grid.sum() > 0).any() else grid  # no empty part in the legend
        factor, unit = energy_unit(float(grid.sum(axis=1).max()))
        tallest = 0.0
        for i, network in enumerate(networks):
            rows = grid.loc[network].reindex(stages).fillna(0.0) * factor
            offset = x + (i - (len(networks) - 1) / 2) * width
            bottom = np.zeros(len(stages))
            for part in (p for p in parts if p in rows.columns):
                ax.bar(offset, rows[part].to_numpy(), width, bottom=bottom, color=colours[part],
                       hatch=NETWORK_HATCH.get(network, ".."), edgecolor="white", linewidth=0.4)
                bottom = bottom + rows[part].to_numpy()
            tallest = max(tallest, float(bottom.max()))
        ax.set_ylim(0, 1.15 * tallest if tallest > 0 else 1.0)
        ax.set_ylabel(f"energy per image ({unit})")
        ax.set_title(f"{title}: {accounting} accounting", fontsize=10)
        shown = [p for p in parts if p in grid.columns]
        handles = [Patch(color=colours[p], label=f"{p} part") for p in shown]
        handles += [Patch(facecolor="lightgray", hatch=NETWORK_HATCH.get(n, ".."), label=n) for n in networks]
        ax.legend(handles=handles, fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1, 0].set_xticks(x, stages, rotation=45, ha="right", fontsize=7)
    fig.tight_layout()
    return fig


def plot_spike_maps(image: np.ndarray, spike_maps: dict[str, np.ndarray], title: str = "Spike maps"
                    ) -> Figure:
    """The input ``image`` ([H, W, 3] in [0, 1]) beside, per layer, each timestep's spike map.

    ``spike_maps`` maps a layer name to ``[T, C, H', W']`` spikes of one image; each panel shows the fraction
    of the C channels firing at each pixel at that timestep (0-1) and its mean firing rate.
    """
    if not spike_maps:
        raise ValueError("no spike maps to plot")
    steps = max(m.shape[0] for m in spike_maps.values())
    fig = Figure(figsize=(2.2 * (steps + 1) + 0.6, 2.3 * len(spike_maps)))
    axes = fig.subplots(len(spike_maps), steps + 1, squeeze=False)
    for row, (layer, maps) in enumerate(spike_maps.items()):
        axes[row, 0].imshow(np.clip(image, 0.0, 1.0))
        axes[row, 0].set_title("rainy input", fontsize=8)
        axes[row, 0].set_ylabel(layer, fontsize=7)
        maps = np.asarray(maps, dtype=np.float32)
        fraction = maps.reshape(maps.shape[0], -1, *maps.shape[-2:]).mean(1)
        for t in range(steps):
            ax = axes[row, t + 1]
            if t < fraction.shape[0]:
                shown = ax.imshow(fraction[t], cmap="magma", vmin=0.0, vmax=1.0)
                ax.set_title(f"t = {t}: rate {fraction[t].mean():.3f}", fontsize=8)
            else:
                ax.set_visible(False)
        fig.colorbar(shown, ax=axes[row, 1:].tolist(), fraction=0.02, pad=0.01, label="channels firing")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    return fig


def plot_energy_vs_rain_density(images: pd.DataFrame, density_label: str,
                                title: str = "Energy per image against rain density") -> Figure:
    """Scatter of energy per image against rain density, one series per ``series`` value, sorted by density.

    ``images`` has one row per (image, series) with ``rain_density`` (a fraction of pixels, 0-1, drawn as it is,
    the unit of the tables) and ``energy_pJ``; ``density_label`` says how the density was obtained.
    """
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    factor, unit = energy_unit(float(images["energy_pJ"].max()))
    for series, part in images.groupby("series", sort=False):
        part = part.sort_values("rain_density")
        ax.plot(part["rain_density"], part["energy_pJ"] * factor, marker="o", label=series)
    ax.set_xlabel(f"rain density (fraction of pixels, {density_label})")
    ax.set_ylabel(f"energy per image ({unit})")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def plot_quality_vs_energy(networks: pd.DataFrame, title: str = "Quality against energy"
                           ) -> Figure:
    """Mean PSNR against energy per image: one point per row (``label``, ``energy_pJ``, ``psnr_db``), labelled."""
    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.subplots()
    factor, unit = energy_unit(float(networks["energy_pJ"].max()))
    markers = dict(zip(dict.fromkeys(networks["label"]), "osD^v<>"))
    for row in networks.itertuples(index=False):
        ax.scatter(row.energy_pJ * factor, row.psnr_db, s=60, marker=markers[row.label], label=row.label)
    ax.set_xlabel(f"energy per image ({unit})")
    ax.set_ylabel("PSNR (dB)")
    ax.set_xlim(left=0)
    ax.set_title(title)
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig
