"""The report of ``snn-energy profile``: console table, figures, report.md/html and data files of an ESDNetProfile."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from snn_energy import plots
from snn_energy.cli.esdnet_profile import ANN_REFERENCE, ESDNetProfile, stage_energy_long
from snn_energy.cli.esdnet_stages import stage_of
from snn_energy.cli.image_inputs import ImageSet, shown_path
from snn_energy.energy import ACCOUNTINGS, HOROWITZ_45NM, PRESETS
from snn_energy.report import FIGURES_DIR, Section, write_report

ACCOUNTING_TEXT = {
    "paper": ("what SNN papers usually count, with identical work priced identically: the encoding convolution in "
              "MACs (rule \"MAC: encoding\"); layers that run once per forward outside the time loop (after the "
              "temporal readout, e.g. ESDNet's refinement block and output convolution) in MACs, in the SNN as in "
              "the twin (\"MAC: outside the time loop (run once per forward)\"; in ESDNet also the attention "
              "gates' small convolutions on time-pooled values); every other synaptic layer "
              "E_AC x (firing rate of its input) x its MACs at every timestep (\"AC x rate: spike input\"), "
              "including the real-valued shortcut convolutions, the convention's blind spot (\"AC x rate: real "
              "input (paper convention)\"); batch norm, attention gates and other element-wise arithmetic free; "
              "E_spike per emitted spike and E_neuron per neuron update (0 with the Horowitz presets). "
              "The ANN: E_MAC x its MACs."),
    "strict": ("what the network computes: a synaptic layer fed binary spikes is charged its exact accumulates "
               "(\"exact AC: binary input\", E_AC each, borders and padding counted), one fed real values (the "
               "encoding convolution, every residual block's shortcut convolution, the refinement block and output "
               "convolution) its MACs (\"MAC: real input\"); batch norm, attention, pooling, up-sampling and "
               "element-wise arithmetic charged (multiplications as MACs, additions as ACs); spikes and neuron "
               "updates as in paper. The ANN: the same rule on its own dense run."),
    "lemaire": ("memory-aware, after Lemaire et al. 2022 (arXiv 2210.13107) as SpikingJelly 2.0's "
                "estimate_lemaire_energy implements it, with its 45 nm costs (32-bit integer add 0.1 pJ, multiply "
                "3.1 pJ, SRAM access cost interpolated on the buffer size, 10 to 100 pJ per 32-bit word from 8 KiB "
                "to 1 MiB): compute, addressing and memory (inputs, weights, membrane potentials, spikes) of every "
                "convolution and linear layer, event-driven for binary input (\"Lemaire: event-driven (binary "
                "input)\"), dense otherwise (\"Lemaire: dense (non-binary input)\"), and of every neuron layer; "
                "other layers not modelled. Its constants are its own (the --constants preset does not apply). "
                "The ANN: dense, without neurons."),
}


@dataclass
class ReportContext:
    """What was profiled, for the report's set-up section."""

    checkpoint: Path
    architecture: dict
    ann_weights: str  # "random (energy only)" or the ANN checkpoint path
    out: Path


def _percent(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f} %"


def headline(profile: ESDNetProfile) -> str:
    """Return the one-line saving of the SNN against its single-pass ANN twin under every accounting."""
    key = f"saving_vs_ann_{ANN_REFERENCE}"
    parts = [f"{_percent(profile.total(a)[key])} under the {a} accounting" for a in ACCOUNTINGS]
    return (f"Energy saving of the SNN against its single-pass ANN twin: {', '.join(parts[:-1])} and {parts[-1]} "
            f"({constants_text(profile)}).")


def constants_text(profile: ESDNetProfile) -> str:
    """Return the constants preset and its E_MAC, E_AC and (when charged) E_spike / E_neuron (pJ) as one phrase."""
    total = profile.total("paper")
    name = total["constants"]
    source = HOROWITZ_45NM[name].source.split(":")[0] if name in HOROWITZ_45NM else (
        PRESETS[name].source if name in PRESETS else "given")
    text = f"{name} constants ({source}): E_MAC = {profile.e_mac_pJ:g} pJ, E_AC = {profile.e_ac_pJ:g} pJ"
    for column, label in (("e_spike_pJ", "E_spike"), ("e_neuron_pJ", "E_neuron")):
        if total[column] > 0:
            text += f", {label} = {total[column]:g} pJ"
    return text


def target_text(total: pd.Series) -> str:
    """Return what mean spike-input rate the SNN would need for the target saving, against the measured one."""
    needed = total["rate_for_target_saving"]
    target = f"{100 * total['target_saving']:g} %"
    measured = f"measured {total['spike_input_rate']:.3f}"
    if not math.isfinite(needed):
        return f"no firing rate in [0, 1] gives {target} ({measured})"
    return f"{target} needs a mean spike-input rate of {needed:.3f} ({measured})"


def stage_display(stages: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Return the per-stage table with readable columns (energies in one unit, counts in G) and that unit:
    per accounting the MACs and ACs it charges the SNN and the SNN's and the ANN twin's energies."""
    energy_columns = [f"energy_{n}_{a}_pJ" for a in ACCOUNTINGS for n in ("snn", "ann")]
    factor, unit = plots.energy_unit(float(stages[energy_columns].to_numpy().max()))
    table = pd.DataFrame({
        "stage": stages["stage"],
        "firing rate": stages["firing_rate"].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}"),
        "dense MACs (G)": stages["macs"] / 1e9,
    })
    for accounting in ACCOUNTINGS:
        table[f"{accounting}: charged MACs (G)"] = stages[f"snn_{accounting}_mac_ops"] / 1e9
        table[f"{accounting}: charged ACs (G)"] = stages[f"snn_{accounting}_ac_ops"] / 1e9
        for network in ("snn", "ann"):
            table[f"{accounting}: {network.upper()} ({unit})"] = stages[f"energy_{network}_{accounting}_pJ"] * factor
    totals = {"stage": "total", "firing rate": "", **table.iloc[:, 2:].sum().to_dict()}
    return pd.concat([table, pd.DataFrame([totals])], ignore_index=True), unit


def savings_table(profile: ESDNetProfile) -> pd.DataFrame:
    """Return one row per accounting: SNN and ANN energies per image (pJ), the MACs and ACs charged to the SNN,
    savings (%) against both ANN references, and the spike-input rate the target saving needs."""
    rows = []
    for accounting in ACCOUNTINGS:
        total = profile.total(accounting)
        rows.append({
            "accounting": accounting, "E_SNN (pJ)": total["energy_pJ"],
            "E_ANN single pass (pJ)": total["energy_ann_T1_pJ"],
            "saving vs single-pass ANN": _percent(total["saving_vs_ann_T1"]),
            "E_ANN same T (pJ)": total["energy_ann_same_T_pJ"],
            "saving vs same-T ANN": _percent(total["saving_vs_ann_same_T"]),
            "SNN charged MACs (G)": total["mac_ops"] / 1e9, "SNN charged ACs (G)": total["ac_ops"] / 1e9,
            f"spike-input rate for {100 * total['target_saving']:g} %": total["rate_for_target_saving"],
            "measured spike-input rate": total["spike_input_rate"],
        })
    return pd.DataFrame(rows)


def latex_headline(profile: ESDNetProfile) -> str:
    """Return the headline table (energies in mJ per image, savings in %, rates) as a LaTeX tabular (booktabs)."""
    rows = []
    for accounting in ACCOUNTINGS:
        total = profile.total(accounting)
        rows.append({
            "Accounting": accounting, "$E_\\mathrm{SNN}$ (mJ)": total["energy_pJ"] * 1e-9,
            "$E_\\mathrm{ANN}$, $T=1$ (mJ)": total["energy_ann_T1_pJ"] * 1e-9,
            "Saving (\\%)": 100 * total["saving_vs_ann_T1"],
            f"Rate for {100 * total['target_saving']:g}\\,\\%": total["rate_for_target_saving"],
            "Measured rate": total["spike_input_rate"],
        })
    table = pd.DataFrame(rows)
    formats = dict(zip(table.columns[1:], ("{:.3f}", "{:.3f}", "{:.1f}", "{:.3f}", "{:.3f}")))
    styler = table.style.hide(axis="index").format(formats, na_rep="--")
    caption = (f"Energy per image of the SNN and its single-pass ANN twin; {constants_text(profile)}; "
               "rates: MAC-weighted mean input firing rate of the spike-fed layers.")
    return styler.to_latex(hrules=True, caption=caption.replace("_", "\\_").replace("%", "\\%"),
                           column_format="l" + "r" * (len(table.columns) - 1), position="htbp")


def print_summary(profile: ESDNetProfile, images: ImageSet, context: ReportContext) -> None:
    """Print the per-stage table, the savings under every accounting, the rates the target saving needs and the
    constants to stdout."""
    table, unit = stage_display(profile.stages)
    size = f"{images.size}x{images.size}" if images.size else "native size"
    print(f"{shown_path(context.checkpoint)} on {len(images.images)} image(s) of {images.source} at {size}; "
          f"energy per image in {unit}, MACs/ACs per image in G (1e9)")
    print(table.to_markdown(index=False, tablefmt="simple", floatfmt=".4g"))
    print()
    for accounting in ACCOUNTINGS:
        total = profile.total(accounting)
        factor, total_unit = plots.energy_unit(float(total["energy_ann_T1_pJ"]))
        print(f"saving ({accounting} accounting): {_percent(total['saving_vs_ann_T1'])} against the single-pass "
              "ANN twin "
              f"(E_SNN {total['energy_pJ'] * factor:.4g} {total_unit}, "
              f"E_ANN {total['energy_ann_T1_pJ'] * factor:.4g} {total_unit}); "
              f"{_percent(total['saving_vs_ann_same_T'])} against the ANN run over the same T; "
              f"{target_text(total)}")
    print(f"constants: {constants_text(profile)}; encoding policy {profile.total('paper')['encoding_policy']}")
    print(f"report: {context.out / 'report.md'}, {context.out / 'report.html'} and {context.out / 'report.tex'}")


def image_table(profile: ESDNetProfile, images: ImageSet, quality: pd.DataFrame | None) -> pd.DataFrame:
    """Return one row per image: file, rain density (a fraction), SNN and ANN energies under every accounting (pJ),
    quality."""
    snn = profile.result.images.set_index("image")
    ann = profile.ann_images.set_index("image")
    table = pd.DataFrame({"image": snn.index, "file": [p.name for p in images.paths],
                          "rain_density": images.rain_density})
    for accounting in ACCOUNTINGS:
        table[f"snn_{accounting}_pJ"] = snn[f"energy_{accounting}_pJ"].to_numpy()
        table[f"ann_{accounting}_pJ"] = ann[f"energy_{accounting}_pJ"].reindex(snn.index).to_numpy()
    if quality is not None:
        table = table.merge(quality, on="image")
    return table


def _draw_figures(profile: ESDNetProfile, images: ImageSet, per_image: pd.DataFrame, figures: Path
                  ) -> dict[str, str]:
    """Draw every figure into ``figures``; returns name -> caption."""
    layers = profile.result.layers
    neurons = layers[layers["role"] == "neuron"].assign(stage=lambda f: f["layer"].map(stage_of))
    steps = profile.result.timesteps
    captions = {}
    plots.save_figure(plots.plot_firing_rates(neurons), figures, "firing_rates")
    captions["firing_rates"] = ("Firing rate of every LIF layer in network order (spikes per neuron per timestep, mean "
                                "over images; whiskers: standard deviation over images), coloured by U-Net stage.")
    plots.save_figure(plots.plot_firing_rate_heatmap(steps[steps["role"] == "neuron"]), figures, "firing_rate_heatmap")
    captions["firing_rate_heatmap"] = "Firing rate of every LIF layer (rows, network order) at each timestep (columns)."
    plots.save_figure(plots.plot_stage_energy(stage_energy_long(profile.stages)), figures, "stage_energy")
    captions["stage_energy"] = ("Energy per image of each U-Net stage, SNN (plain) against its single-pass ANN twin "
                                "(hatched), under each accounting (one panel each, its own unit): the parts charged "
                                "as MACs, as ACs and for spikes (paper, strict), and Lemaire's compute, addressing "
                                "and memory energy.")
    if profile.spike_maps:
        image = images.images[0].permute(1, 2, 0).numpy()
        maps = {layer: m.numpy() for layer, m in profile.spike_maps.items()}
        plots.save_figure(plots.plot_spike_maps(image, maps, title=f"Spike maps of {images.paths[0].name}"),
                          figures, "spike_maps")
        captions["spike_maps"] = ("Spikes of the chosen layers at each timestep beside the rainy input (first image): "
                                  "fraction of the layer's channels firing at each pixel.")
    series = []
    for accounting in ACCOUNTINGS:
        for network in ("snn", "ann"):
            series.append(pd.DataFrame({"rain_density": per_image["rain_density"],
                                        "energy_pJ": per_image[f"{network}_{accounting}_pJ"],
                                        "series": f"{network.upper()}, {accounting} accounting"}))
    plots.save_figure(plots.plot_energy_vs_rain_density(pd.concat(series, ignore_index=True), images.density_kind),
                      figures, "energy_vs_rain_density")
    captions["energy_vs_rain_density"] = (f"Energy per image against rain density, as a fraction of the pixels "
                                          f"({images.density_kind}: {images.density_description()}).")
    return captions


def _readable(table: pd.DataFrame) -> pd.DataFrame:
    """Return ``table`` with pJ columns scaled to one unit named in the header."""
    energy = [c for c in table.columns if c.endswith("_pJ") or c.endswith("(pJ)")]
    if not energy:
        return table
    factor, unit = plots.energy_unit(float(np.nanmax(table[energy].to_numpy(dtype=float))))
    renamed = table.copy()
    for column in energy:
        renamed[column] = renamed[column] * factor
    return renamed.rename(columns={c: c.replace("_pJ", f" ({unit})").replace("(pJ)", f"({unit})") for c in energy})


def write_profile_report(profile: ESDNetProfile, images: ImageSet, context: ReportContext, folder: Path,
                         quality: pd.DataFrame | None = None) -> None:
    """Write the whole report into ``folder`` (a staging folder): tables, figures, report.md and report.html."""
    per_image = image_table(profile, images, quality)
    result = replace(
        profile.result,
        images=profile.result.images.assign(file=[p.name for p in images.paths], rain_density=images.rain_density),
        settings={**profile.result.settings, "checkpoint": shown_path(context.checkpoint),
                  "architecture": context.architecture,
                  "ann_twin": f"single pass (T=1), weights: {context.ann_weights}",
                  "images_source": images.source, "image_files": [shown_path(p) for p in images.paths],
                  "size": images.size,
                  "rain_density": {"kind": images.density_kind, "definition": images.density_description()}},
    )
    result.save(folder, formats=("csv",), spike_maps=False)  # the figure shows them; the raw tensors are large
    (folder / "summary.json").write_text(result.summary.to_json(orient="records", indent=1))
    (folder / "report.tex").write_text(latex_headline(profile))
    profile.stages.to_csv(folder / "stages.csv", index=False)
    profile.ann_layers.to_csv(folder / "ann_layers.csv", index=False)
    per_image.to_csv(folder / "per_image.csv", index=False)
    captions = _draw_figures(profile, images, per_image, folder / FIGURES_DIR)
    if quality is not None:
        quality.to_csv(folder / "quality.csv", index=False)

    table, unit = stage_display(profile.stages)
    size = f"{images.size}x{images.size} (resized)" if images.size else "native size"
    paper = profile.total("paper")
    sections = [
        Section("Headline", [headline(profile)] + [f"`{a}`: {target_text(profile.total(a))}." for a in ACCOUNTINGS]
                + ["The rate is the MAC-weighted mean input firing rate of the spike-fed layers (binary input, "
                   "inside the time loop); the rate needed scales every spike-driven cost with it. `report.tex` "
                   "holds this table for LaTeX."],
                table=_readable(savings_table(profile))),
        Section("Set-up", bullets=[
            f"SNN checkpoint `{shown_path(context.checkpoint)}`: ESDNet with "
            + ", ".join(f"{key} {value}" for key, value in context.architecture.items()) + ".",
            f"ANN twin: the same topology with ReLU in place of LIF, run once (T=1); weights {context.ann_weights}. "
            "Its dense MAC count does not depend on its weights. The same-T ANN reference is derived from the SNN's "
            "own dense counts.",
            f"Images: {len(images.images)} from {images.source}, at {size}.",
            f"Energy: {constants_text(profile)}; encoding policy `{paper['encoding_policy']}` "
            f"(encoding layer `{paper['encoding_layer']}`, input repeated over T: "
            f"{bool(paper['encoding_input_repeated'])}).",
            f"Rain density ({images.density_kind}): {images.density_description()}.",
        ]),
        Section("Per U-Net stage", [f"Per image; energies in {unit}, MACs and ACs in G (1e9). Dense MACs are the "
                                    "multiply-accumulates of the SNN over its T timesteps; each accounting's charged "
                                    "MACs and ACs are what it prices the SNN at E_MAC and E_AC (Lemaire: its compute "
                                    "counts); the firing rate is spikes per neuron per timestep."],
                table=table, figures=[("stage_energy", captions["stage_energy"])]),
        Section("Firing rates", figures=[(n, captions[n]) for n in ("firing_rates", "firing_rate_heatmap")]),
    ]
    if "spike_maps" in captions:
        sections.append(Section("Spike maps", figures=[("spike_maps", captions["spike_maps"])]))
    sections.append(Section("Energy and rain density", table=_readable(per_image),
                            figures=[("energy_vs_rain_density", captions["energy_vs_rain_density"])]))
    if quality is not None:
        means = pd.DataFrame([{"network": n.upper(), "PSNR (dB)": quality[f"{n}_psnr_db"].mean(),
                               "SSIM": quality[f"{n}_ssim"].mean()} for n in ("snn", "ann")])
        sections.append(Section("Quality", [f"Mean over {len(quality)} images of the derained images against "
                                            "the clean targets (Y channel, 4-pixel border cropped, as the ESDNet "
                                            "authors)."], table=means))
    sections.append(Section("The three accountings", bullets=[f"`{a}`: {ACCOUNTING_TEXT[a]}" for a in ACCOUNTINGS]
                            + ["`layers.csv` names the rule applied to each layer in `charge_paper`, `charge_strict` "
                               "and `charge_lemaire`."]))
    sections.append(Section("Files", bullets=[
        "`summary.json` / `summary.csv`: one row per accounting (paper, strict, lemaire): SNN energy per image "
        "(`energy_pJ`, std, 95% CI of the mean over images, Student t, clipped at 0), ANN energies "
        "(`energy_ann_T1_pJ`: single-pass twin, `energy_ann_same_T_pJ`), savings (`saving_vs_ann_T1` = 1 - "
        "energy_pJ / energy_ann_T1_pJ), charged `mac_ops` / `ac_ops`, `spike_input_rate` and "
        "`rate_for_target_saving`, constants.",
        "`report.tex`: the headline table as a LaTeX tabular (booktabs).",
        "`layers.csv`: one row per layer and role: dense `macs`, exact `sops`, `firing_rate`, `energy_paper_pJ`, "
        "`energy_strict_pJ`, `energy_lemaire_pJ` and its parts (they add up to the summary's `energy_pJ`), the rule "
        "each accounting applied (`charge_<accounting>`), dead/saturated neurons, break-even rates.",
        "`timesteps.csv`: the same per timestep (-1: computed once, after the mean over T).",
        "`stages.csv`: the per-stage table above, with SNN and ANN MAC/AC parts in pJ; `ann_layers.csv`: the ANN "
        "twin's operations per layer.",
        "`images.csv`, `per_image.csv`: per image counts, energies, rain density; `sensitivity.csv`: saving against "
        "E_AC/E_MAC; `records.csv`: the raw rows (image, layer, role, timestep) and `neuron_extremes.csv` of the first "
        f"{profile.result.settings['record_images']} images only (the other tables cover every image); "
        "`settings.json`: options and inputs.",
        f"`{FIGURES_DIR}/`: every figure as PNG and SVG.",
    ]))
    write_report(folder, f"Energy report: {context.checkpoint.name}", sections)
