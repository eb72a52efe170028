"""``snn-energy compare``: quality (PSNR/SSIM) and energy of an SNN checkpoint and its ANN twin, side by side."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from esdnet.checkpoint import checkpoint_arch
from esdnet.cli.errors import UserError
from esdnet.cli.options import add_device_option, resolve_device
from esdnet.cli.outputs import check_output
from esdnet.sample_images import SAMPLES_DIR
from snn_energy import plots
from snn_energy.cli.bundled import DEMO_ANN, DEMO_SNN, checkpoint_or_demo
from snn_energy.cli.esdnet_profile import ESDNetProfile, profile_esdnet
from snn_energy.cli.image_inputs import image_side, load_image_set
from snn_energy.cli.profile import load_twins, quality_table
from snn_energy.cli.profile_report import ACCOUNTING_TEXT, constants_text
from snn_energy.energy import ACCOUNTINGS, HOROWITZ_45NM
from snn_energy.report import FIGURES_DIR, Section, check_destination, staged_folder, write_report

DESCRIPTION = """\
Derain the rainy/clean pairs of --data (DATA/input and DATA/target, or DATA/test/input and DATA/test/target)
with an SNN checkpoint and its ANN twin's checkpoint, score both (PSNR in dB and SSIM on the luma Y, 4-pixel
border cropped, as the ESDNet authors), profile both (the ANN run once, T=1) and put quality and energy per
image side by side: compare.csv, per_image.csv, summary.json, report.md, report.html and the figure
figures/quality_vs_energy.{png,svg} in --out. With no checkpoints and no --data it compares the bundled demo
SNN and ANN on the bundled sample images. A checkpoint recording the other architecture than its option says
(an ANN given as --snn-ckpt, an SNN as --ann-ckpt) is refused.
"""


def add_parser(subparsers) -> None:
    """Register the ``compare`` command."""
    parser = subparsers.add_parser("compare", help="PSNR/SSIM and energy of an SNN and its ANN twin side by side",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snn-ckpt", type=Path, default=None,
                        help=f"SNN checkpoint (default: bundled {DEMO_SNN.name})")
    parser.add_argument("--ann-ckpt", type=Path, default=None,
                        help=f"ANN checkpoint (default: bundled {DEMO_ANN.name})")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder with input/ and target/ (or test/input and test/target); default: bundled samples")
    parser.add_argument("--size", type=image_side, default=None, help="resize images to SIZE x SIZE (default: native)")
    parser.add_argument("--constants", choices=sorted(HOROWITZ_45NM), default="fp32",
                        help="Horowitz 45 nm precision preset (default fp32)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: reports/compare-<snn name>-vs-<ann name>/)")
    add_device_option(parser)
    parser.set_defaults(func=run)


def pair_folders(data: Path) -> tuple[Path, Path]:
    """Return the input and target folders of a data set folder; raise UserError naming --data if there are none."""
    for base in (data, data / "test"):
        if (base / "input").is_dir() and (base / "target").is_dir():
            return base / "input", base / "target"
    if not data.is_dir():
        raise UserError(f"--data {data}: no such folder")
    raise UserError(f"--data {data}: expected the folders input/ and target/ (or test/input and test/target) in it")


def check_roles(snn_ckpt: Path, ann_ckpt: Path) -> None:
    """Raise UserError naming both files when a checkpoint records the other architecture than its option says
    (files recording none, as the authors', pass)."""
    snn_arch, ann_arch = checkpoint_arch(snn_ckpt), checkpoint_arch(ann_ckpt)
    if snn_arch == "ann" and ann_arch == "snn":
        raise UserError(f"--snn-ckpt {snn_ckpt} holds an ANN and --ann-ckpt {ann_ckpt} an SNN (as their files "
                        f"record): swapped? give --snn-ckpt {ann_ckpt} --ann-ckpt {snn_ckpt}")
    if snn_arch == "ann":
        raise UserError(f"--snn-ckpt {snn_ckpt} holds an ANN (its file records arch 'ann'), not the SNN to compare "
                        f"with the ANN of --ann-ckpt {ann_ckpt}")
    if ann_arch == "snn":
        raise UserError(f"--ann-ckpt {ann_ckpt} holds an SNN (its file records arch 'snn'), not the ANN twin of "
                        f"the SNN of --snn-ckpt {snn_ckpt}")


def comparison_table(profile: ESDNetProfile, quality: pd.DataFrame) -> pd.DataFrame:
    """Return one row per network: mean PSNR (dB), SSIM, energy per image (pJ) and saving against the ANN, both
    accountings."""
    summary = profile.result.summary.set_index("accounting")
    rows = []
    for network in ("snn", "ann"):
        row = {"network": network.upper(), "psnr_db": quality[f"{network}_psnr_db"].mean(),
               "ssim": quality[f"{network}_ssim"].mean()}
        for accounting in ACCOUNTINGS:
            total = summary.loc[accounting]
            row[f"energy_{accounting}_pJ"] = total["energy_pJ"] if network == "snn" else total["energy_ann_T1_pJ"]
            row[f"saving_{accounting}"] = total["saving_vs_ann_T1"] if network == "snn" else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def _display(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    energies = [f"energy_{a}_pJ" for a in ACCOUNTINGS]
    factor, unit = plots.energy_unit(float(table[energies].to_numpy().max()))
    shown = pd.DataFrame({"network": table["network"], "PSNR (dB)": table["psnr_db"].round(3),
                          "SSIM": table["ssim"].round(4)})
    for accounting in ACCOUNTINGS:
        shown[f"energy {accounting} ({unit})"] = (table[f"energy_{accounting}_pJ"] * factor).round(4)
        shown[f"saving {accounting}"] = table[f"saving_{accounting}"].map(lambda v: f"{100 * v:.1f} %")
    return shown, unit


def run(args: argparse.Namespace) -> int:
    """Score and profile both networks, print the table, write the folder; returns 0."""
    snn_ckpt = checkpoint_or_demo(args.snn_ckpt, DEMO_SNN, "--snn-ckpt")
    ann_ckpt = checkpoint_or_demo(args.ann_ckpt, DEMO_ANN, "--ann-ckpt")
    check_roles(snn_ckpt, ann_ckpt)
    out = check_destination(check_output(args.out if args.out is not None
                                         else Path("reports") / f"compare-{snn_ckpt.stem}-vs-{ann_ckpt.stem}",
                                         "--out"))
    inputs, targets = pair_folders(args.data if args.data is not None else SAMPLES_DIR)
    images = load_image_set(inputs, targets, args.size)
    snn, ann, _ = load_twins(snn_ckpt, ann_ckpt, resolve_device(args.device))
    profile = profile_esdnet(snn, ann, images, constants=args.constants, keep_outputs=True)
    quality = quality_table(profile, images)
    table = comparison_table(profile, quality)
    shown, unit = _display(table)
    per_image = quality.assign(file=[p.name for p in images.paths], rain_density=images.rain_density)
    points = pd.DataFrame([{"label": f"{row.network}, {a} accounting", "energy_pJ": getattr(row, f"energy_{a}_pJ"),
                            "psnr_db": row.psnr_db} for row in table.itertuples() for a in ACCOUNTINGS])
    with staged_folder(out) as folder:
        table.to_csv(folder / "compare.csv", index=False)
        per_image.to_csv(folder / "per_image.csv", index=False)
        (folder / "summary.json").write_text(profile.result.summary.to_json(orient="records", indent=1))
        plots.save_figure(plots.plot_quality_vs_energy(points, title="Quality against energy per image"),
                          folder / FIGURES_DIR, "quality_vs_energy")
        write_report(folder, f"SNN against ANN: {snn_ckpt.name} vs {ann_ckpt.name}", [
            Section("Quality and energy", [
                f"{len(images.images)} rainy/clean pairs of {images.source}"
                f"{f', resized to {args.size}x{args.size}' if args.size else ''}; PSNR/SSIM on the luma Y with a "
                f"4-pixel border cropped; energy per image, {constants_text(profile)}; the ANN twin runs once (T=1)."],
                table=shown, figures=[("quality_vs_energy", "Mean PSNR against energy per image of the SNN and its "
                                                            "ANN twin, under both accountings.")]),
            Section("The accountings", bullets=[f"`{a}`: {ACCOUNTING_TEXT[a]}" for a in ACCOUNTINGS]),
        ])
    print(f"{snn_ckpt} (SNN) against {ann_ckpt} (ANN twin) on {len(images.images)} pairs of {images.source}; "
          f"energy per image in {unit}")
    print(shown.to_markdown(index=False, tablefmt="simple"))
    print(f"constants: {constants_text(profile)}")
    print(f"wrote {out / 'compare.csv'}, {out / 'report.md'} and {out / FIGURES_DIR / 'quality_vs_energy.png'}")
    return 0
