"""``snn-energy profile``: spikes, operations and energy of an ESDNet checkpoint and its ANN twin, as a report."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from esdnet import load_model
from esdnet.cli.errors import UserError
from esdnet.cli.options import add_device_option, resolve_device
from esdnet.cli.outputs import check_output
from esdnet.metrics import evaluate_pair
from esdnet.model import ESDNet
from snn_energy.cli.bundled import DEMO_SNN, checkpoint_or_demo
from snn_energy.cli.esdnet_profile import ESDNetProfile, profile_esdnet
from snn_energy.cli.esdnet_stages import DEFAULT_SPIKE_LAYERS
from snn_energy.cli.image_inputs import ImageSet, image_side, load_image_set, shown_path
from snn_energy.cli.profile_report import ReportContext, print_summary, write_profile_report
from snn_energy.energy import DEFAULT_TARGET_SAVING, ENCODING_POLICIES, HOROWITZ_45NM, PRESETS, SNN_DERAINING
from snn_energy.report import check_destination, staged_folder

DESCRIPTION = """\
Profile an ESDNet checkpoint (architecture inferred from it) on rainy images: spikes, dense MACs and exact
accumulates of every layer at every timestep, and the same for its ANN twin (same topology, ReLU for LIF, one
pass; its dense MAC count does not depend on weights, so no ANN checkpoint is needed for energy). Prints a table
per U-Net stage and the SNN's energy saving under the 'paper', 'strict' and 'lemaire' accountings, with the
spike-input firing rate each would need for --target-saving, and writes layers.csv, timesteps.csv,
summary.json, report.md, a self-contained report.html, report.tex and figures to --out (default
reports/<checkpoint name>/). The report folder is built beside --out and renamed into place: an error leaves
nothing behind; an existing --out is replaced only if it holds a previous report.
With no --ckpt it profiles the bundled demo SNN on the bundled sample rainy images.
"""


def add_parser(subparsers) -> None:
    """Register the ``profile`` command."""
    parser = subparsers.add_parser("profile", help="energy report of an ESDNet checkpoint against its ANN twin",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=None,
                        help=f"SNN checkpoint (default: the bundled demo SNN, {DEMO_SNN.name})")
    parser.add_argument("--images", type=Path, default=None,
                        help="folder of rainy images (default: the bundled sample rainy images)")
    parser.add_argument("--targets", type=Path, default=None,
                        help="folder of their clean targets: measured rain density (and quality with --ann-ckpt); "
                             "the bundled samples have theirs")
    parser.add_argument("--size", type=image_side, default=None,
                        help="resize every image to SIZE x SIZE before profiling (default: native size; SNN papers "
                             "usually quote 256)")
    parser.add_argument("--ann-ckpt", type=Path, default=None,
                        help="ANN twin checkpoint: adds a PSNR/SSIM comparison of the SNN and the ANN (needs targets)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: reports/<checkpoint name>/)")
    parser.add_argument("--constants", choices=sorted(PRESETS), default="fp32",
                        help="energy constants of the paper and strict accountings: a Horowitz 45 nm precision "
                             "preset (E_MAC, E_AC; no spike term; default fp32: "
                             f"{HOROWITZ_45NM['fp32'].e_mac_pJ:g} pJ and {HOROWITZ_45NM['fp32'].e_ac_pJ:g} pJ) or "
                             f"{SNN_DERAINING.name}, the SNN-deraining papers' {SNN_DERAINING.e_mac_pJ:g} pJ per MAC, "
                             f"{SNN_DERAINING.e_ac_pJ:g} pJ per AC and {SNN_DERAINING.e_spike_pJ:g} pJ per spike "
                             "(the lemaire accounting keeps its own costs)")
    parser.add_argument("--target-saving", type=saving_fraction, default=DEFAULT_TARGET_SAVING, metavar="FRACTION",
                        help="report, per accounting, the mean spike-input firing rate at which the SNN would save "
                             "this fraction against its single-pass twin (default %(default)s, ESDNet's published "
                             "54%%)")
    parser.add_argument("--encoding-policy", choices=ENCODING_POLICIES, default="per_timestep",
                        help="charge the encoding convolution of the repeated image at every timestep (default) "
                             "or once")
    parser.add_argument("--spike-layers", nargs="+", default=list(DEFAULT_SPIKE_LAYERS), metavar="NAME",
                        help="layers whose spike maps are drawn for the first image (default: the first LIF of "
                             "encoder_level1 and of decoder_level1)")
    parser.add_argument("--batch-size", type=batch_size, default=1, metavar="N",
                        help="profile up to N consecutive images of equal size together (default %(default)s; more "
                             "is faster on a GPU and takes N times the activation memory); the images are read and "
                             "profiled as they come, so memory does not grow with their number")
    add_device_option(parser)
    parser.set_defaults(func=run)


def batch_size(text: str) -> int:
    """Parse ``--batch-size``: a positive whole number."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number of images, got {text!r}")
    return value


def saving_fraction(text: str) -> float:
    """Parse ``--target-saving``: a fraction strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction between 0 and 1 (0.54 for 54%)")
    return value


def load_twins(ckpt: Path, ann_ckpt: Path | None, device) -> tuple[ESDNet, ESDNet, str]:
    """Return the SNN of ``ckpt``, its single-pass ANN twin (weights of ``ann_ckpt`` or random) and a weights note."""
    snn = load_model(ckpt, arch="snn", device=device)
    if ann_ckpt is None:
        return snn, ESDNet(snn.config, arch="ann", single_pass=True).to(device).eval(), "random (energy only)"
    ann = load_model(ann_ckpt, arch="ann", device=device, single_pass=True)
    if ann.config != snn.config:
        raise UserError(f"--ann-ckpt {ann_ckpt}: architecture {ann.config.to_dict()} differs from --ckpt {ckpt}: "
                        f"{snn.config.to_dict()}; twins share the topology")
    return snn, ann, shown_path(ann_ckpt)


def check_spike_layers(model: ESDNet, names: list[str]) -> None:
    """Raise UserError naming ``--spike-layers`` entries that are no module of the model."""
    modules = dict(model.named_modules())
    unknown = [name for name in names if name not in modules]
    if unknown:
        neurons = [n for n, m in modules.items() if type(m).__name__ == "LIFNode"]
        raise UserError(f"--spike-layers: no layer named {unknown} in this ESDNet; LIF layers are e.g. {neurons[:4]}")


def quality_table(profile: ESDNetProfile, images: ImageSet) -> pd.DataFrame:
    """Return PSNR (dB) and SSIM of the SNN's and the ANN's derained images per image (authors' Y-channel metric)."""
    rows = []
    for index, (target, snn_out, ann_out) in enumerate(zip(images.targets, profile.snn_outputs, profile.ann_outputs)):
        snn_psnr, snn_ssim = evaluate_pair(snn_out, target)
        ann_psnr, ann_ssim = evaluate_pair(ann_out, target)
        rows.append({"image": index, "snn_psnr_db": snn_psnr, "snn_ssim": snn_ssim,
                     "ann_psnr_db": ann_psnr, "ann_ssim": ann_ssim})
    return pd.DataFrame(rows)


def run(args: argparse.Namespace) -> int:
    """Profile, print the stage table and savings, write the report folder; returns 0."""
    ckpt = checkpoint_or_demo(args.ckpt, DEMO_SNN, "--ckpt")
    out = check_destination(check_output(args.out if args.out is not None else Path("reports") / ckpt.stem, "--out"))
    device = resolve_device(args.device)
    images = load_image_set(args.images, args.targets, args.size)
    if args.ann_ckpt is not None and images.targets is None:
        raise UserError("--ann-ckpt compares quality against clean targets: give --targets "
                        "(or use the bundled samples)")
    snn, ann, ann_weights = load_twins(ckpt, args.ann_ckpt, device)
    check_spike_layers(snn, args.spike_layers)
    profile = profile_esdnet(snn, ann, images, constants=args.constants, encoding_policy=args.encoding_policy,
                             spike_layers=args.spike_layers, keep_outputs=args.ann_ckpt is not None,
                             target_saving=args.target_saving, batch_size=args.batch_size)
    quality = quality_table(profile, images) if args.ann_ckpt is not None else None
    context = ReportContext(checkpoint=ckpt, architecture=snn.config.to_dict(), ann_weights=ann_weights, out=out)
    with staged_folder(out) as folder:
        write_profile_report(profile, images, context, folder, quality)
    print_summary(profile, images, context)
    return 0
