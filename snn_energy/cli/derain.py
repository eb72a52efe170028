"""``snn-energy derain``: derain an image or a folder with an ESDNet checkpoint (SNN or ANN twin)."""
from __future__ import annotations

import argparse

from esdnet import load_model
from esdnet.inference import derain_files
from esdnet.tiling import TILE_OVERLAP, TILE_SIZE
from snn_energy.cli.options import add_device_option, resolve_device


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "derain", help="derain images with an ESDNet checkpoint",
        description="Derain an image or every image of a folder with an ESDNet checkpoint, by the authors' "
                    "80x80 tiles with 8 px overlap and distance-weighted merge (or whole images with --whole). "
                    "The architecture is inferred from the checkpoint.",
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint file (the authors' .pth or one of ours)")
    parser.add_argument("--input", required=True, help="a rainy image or a folder of them")
    parser.add_argument("--output", required=True,
                        help="output folder (one PNG per input, same stem), or a .png path for a single input image")
    parser.add_argument("--arch", choices=["snn", "ann"], default="snn", help="run the SNN or its ANN twin")
    parser.add_argument("--tile", type=int, default=TILE_SIZE, help="tile size in pixels (default %(default)s)")
    parser.add_argument("--overlap", type=int, default=TILE_OVERLAP, help="tile overlap in pixels (default %(default)s)")
    parser.add_argument("--whole", action="store_true", help="run each image whole instead of by tiles")
    parser.add_argument("--batch-size", type=int, default=16, help="tiles per forward (default %(default)s)")
    add_device_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = load_model(args.ckpt, arch=args.arch, device=resolve_device(args.device))
    written = derain_files(model, args.input, args.output, tile_size=None if args.whole else args.tile,
                           overlap=args.overlap, batch_size=args.batch_size)
    print(f"derained {len(written)} image(s) with {args.arch.upper()} {args.ckpt} -> {written[0].parent}")
    return 0
