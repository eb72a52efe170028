"""``snn-energy derain``: derain an image or a folder with an ESDNet checkpoint (SNN or ANN twin)."""
from __future__ import annotations

import argparse
from pathlib import Path

from esdnet import load_model
from esdnet.cli.errors import UserError
from esdnet.cli.options import add_device_option, resolve_device
from esdnet.cli.outputs import FILE, FOLDER, check_output
from esdnet.inference import EDGE_PAD, derain_files, input_images, writes_one_file
from esdnet.model import ARCHS
from esdnet.tiling import TILE_OVERLAP, TILE_SIZE

DESCRIPTION = """\
Derain an image or every image of a folder with an ESDNet checkpoint, by the authors' 80x80 tiles with 8 px
overlap and distance-weighted merge (or whole images with --whole), the image first extended by 8 reflected
pixels on each side (--edge-pad) and the result cropped back. The sizes are inferred from the checkpoint,
and so is the architecture when the file records it (this project's checkpoints do; the authors' run as the
SNN unless --arch ann). Outputs are 8-bit PNGs with values clamped to [0, 1]; a grayscale input gives a
grayscale PNG. The outputs are moved in place when every image succeeded (a bad input leaves nothing written);
on Ctrl-C the images finished so far are kept.
"""


def add_parser(subparsers) -> None:
    """Register the ``derain`` command."""
    parser = subparsers.add_parser("derain", help="derain images with an ESDNet checkpoint", description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, type=Path, help="checkpoint file (the authors' .pth or one of ours)")
    parser.add_argument("--input", required=True, type=Path, help="a rainy image or a folder of them")
    parser.add_argument("--output", required=True, type=Path,
                        help="output folder (one PNG per input, same stem), or a .png path for a single input image")
    parser.add_argument("--arch", choices=ARCHS, default=None,
                        help="run the SNN or its ANN twin (default: the architecture the checkpoint records, else "
                             "snn); one contradicting what the checkpoint records is an error, since an SNN's "
                             "weights in the ANN twin (or the reverse) run but derain badly")
    parser.add_argument("--tile", type=int, default=TILE_SIZE, help="tile size in pixels (default %(default)s)")
    parser.add_argument("--overlap", type=int, default=TILE_OVERLAP,
                        help="tile overlap in pixels, from 0 to the tile size - 1 (default %(default)s)")
    parser.add_argument("--whole", action="store_true", help="run each image whole instead of by tiles")
    parser.add_argument("--batch-size", type=int, default=16, help="tiles per forward (default %(default)s)")
    parser.add_argument("--edge-pad", type=int, default=EDGE_PAD,
                        help="pixels of the image reflected around it before deraining and cropped after, so that "
                             "its outermost pixels are not derained against the network's zero padding (default "
                             "%(default)s; 0: the authors' procedure exactly)")
    add_device_option(parser)
    parser.set_defaults(func=run)


def check_tiling(args: argparse.Namespace) -> None:
    """Raise UserError naming ``--tile``, ``--overlap`` or ``--batch-size`` when one is out of range."""
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.edge_pad < 0:
        raise UserError(f"--edge-pad must be 0 or a positive number of pixels, got {args.edge_pad}")
    if args.whole:
        return
    if args.tile < 1:
        raise UserError(f"--tile must be a positive number of pixels, got {args.tile}")
    if not 0 <= args.overlap < args.tile:
        raise UserError(f"--overlap must lie between 0 and --tile - 1 = {args.tile - 1} pixels, got {args.overlap}")


def run(args: argparse.Namespace) -> int:
    """Check the arguments and the output path, derain, say what was written; returns 0."""
    check_tiling(args)
    input_images(args.input)  # a missing or empty input is named before anything else
    single = writes_one_file(args.input, args.output)
    check_output(args.output, "--output", FILE if single else FOLDER)
    device = resolve_device(args.device)
    model = load_model(args.ckpt, arch=args.arch, device=device)
    written = derain_files(model, args.input, args.output, tile_size=None if args.whole else args.tile,
                           overlap=args.overlap, batch_size=args.batch_size, edge_pad=args.edge_pad)
    where = written[0] if single else f"{len(written)} images in {args.output}"
    print(f"derained {len(written)} image(s) with the {model.arch.upper()} of {args.ckpt} -> {where}")
    return 0
