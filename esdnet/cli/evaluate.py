"""``snn-energy evaluate``: PSNR/SSIM of derained images against their clean targets, as the ESDNet authors score."""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from pathlib import Path

from esdnet.cli.errors import UserError
from esdnet.cli.outputs import check_output
from esdnet.data import pair_files, paired_by_name
from esdnet.imageio import atomic_write_bytes, read_image
from esdnet.metrics import DEFAULT_CROP_BORDER, evaluate_pair
from esdnet.progress import progress_bar

DESCRIPTION = """\
Score every image of --pred against its clean image in --target: PSNR (dB) and SSIM on the luma Y of
MATLAB's rgb2ycbcr (or on R, G and B averaged with --rgb), CROP_BORDER pixels cut from each side, SSIM
with an 11x11 Gaussian window (sigma 1.5) over valid positions. Files pair by name (same stem,
norain-1x2 -> norain-1, rain-001 -> norain-001) or else, with a warning, by sorted order. Prints a table and the means and
writes metrics.csv and metrics.json to --out (default: a folder PRED-metrics beside --pred). Identical
images score PSNR inf (written inf in the CSV, Infinity in the JSON) and SSIM 1.
"""


def add_parser(subparsers) -> None:
    """Register the ``evaluate`` command."""
    parser = subparsers.add_parser("evaluate", help="PSNR/SSIM of derained images against clean targets",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pred", required=True, type=Path, help="folder of derained (predicted) images")
    parser.add_argument("--target", required=True, type=Path, help="folder of clean (ground-truth) images")
    parser.add_argument("--crop-border", type=int, default=DEFAULT_CROP_BORDER,
                        help=f"pixels cut from each side before scoring (default {DEFAULT_CROP_BORDER}, "
                             "as the authors)")
    parser.add_argument("--rgb", action="store_true", help="score R, G and B and average them instead of the luma Y")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for metrics.csv and metrics.json (default: PRED-metrics beside --pred)")
    parser.set_defaults(func=run)


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def run(args: argparse.Namespace) -> int:
    """Score the pairs, print the table, write the CSV and JSON files; returns 0."""
    if args.crop_border < 0:
        raise UserError(f"--crop-border must be >= 0, got {args.crop_border}")
    pred_dir = args.pred
    out_dir = args.out if args.out is not None else pred_dir.resolve().parent / f"{pred_dir.resolve().name}-metrics"
    check_output(out_dir, "--out")
    pairs = pair_files(pred_dir, target_dir=args.target)
    if not paired_by_name(pairs):
        print(f"snn-energy evaluate: warning: no file name of {pred_dir} matches one of {args.target}; pairing the "
              f"{len(pairs)} files by sorted order ({pairs[0][0].name} with {pairs[0][1].name}, ...)",
              file=sys.stderr)
    rows = []
    for pred_path, target_path in progress_bar(pairs, desc="evaluate", unit="img"):
        pred, target = read_image(pred_path), read_image(target_path)
        if pred.shape != target.shape:
            raise UserError(f"{pred_path} is {pred.shape[1]}x{pred.shape[2]} but its target {target_path} is "
                            f"{target.shape[1]}x{target.shape[2]} (height x width)")
        try:
            psnr_db, ssim = evaluate_pair(pred, target, crop_border=args.crop_border, rgb=args.rgb)
        except ValueError as err:  # e.g. an image too small for the crop border and the SSIM window
            raise UserError(f"{pred_path}: {err}") from err
        rows.append({"pred": pred_path.name, "target": target_path.name, "psnr_db": psnr_db, "ssim": ssim})
    mean_psnr, mean_ssim = _mean([r["psnr_db"] for r in rows]), _mean([r["ssim"] for r in rows])

    pred_width = max(len("image"), *(len(r["pred"]) for r in rows))
    target_width = max(len("target"), *(len(r["target"]) for r in rows))
    print(f"{'image':<{pred_width}}  {'target':<{target_width}}  {'PSNR (dB)':>9}  {'SSIM':>6}")
    for r in rows:
        print(f"{r['pred']:<{pred_width}}  {r['target']:<{target_width}}  {r['psnr_db']:>9.4f}  {r['ssim']:>6.4f}")
    channels = "RGB" if args.rgb else "Y"
    print(f"mean of {len(rows)} images ({channels}, crop border {args.crop_border}): "
          f"PSNR {mean_psnr:.4f} dB, SSIM {mean_ssim:.4f}")

    out_dir.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=["pred", "target", "psnr_db", "ssim"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out_dir / "metrics.csv", table.getvalue().encode())
    summary = {"pred_dir": str(pred_dir), "target_dir": str(args.target), "channels": channels,
               "crop_border": args.crop_border, "count": len(rows), "mean_psnr_db": mean_psnr,
               "mean_ssim": mean_ssim, "images": rows}
    atomic_write_bytes(out_dir / "metrics.json", (json.dumps(summary, indent=2) + "\n").encode())
    print(f"wrote {out_dir / 'metrics.csv'} and {out_dir / 'metrics.json'}")
    return 0
