"""``snn-energy train``: train ESDNet or its ANN twin with the authors' recipe (resumable, multi-GPU via torchrun)."""
from __future__ import annotations

import argparse
from pathlib import Path

from esdnet.cli.errors import UserError
from esdnet.cli.outputs import check_output
from esdnet.config import PRESETS
from esdnet.model import ARCHS
from esdnet.train import TrainOptions, train
from esdnet.train_state import read_training_checkpoint

DESCRIPTION = """\
Train on DATA/train/{input,target} (a --val-fraction of it is held out for validation; DATA/test is never
read) with the ESDNet authors' recipe: AdamW, linear warm-up then cosine annealing to 1e-7 (stepped per
batch), loss 1 - SSIM, random crops. Writes OUT/last.pth (every epoch), OUT/best.pth (best validation
PSNR), OUT/curve.csv and TensorBoard logs in OUT/tensorboard. --resume OUT/last.pth continues a stopped
run exactly (same weights as an uninterrupted run on the CPU); options not given are taken from the
checkpoint, options given must match it. Ctrl-C stops after the step under way and writes OUT/last.pth at
that point, so that --resume continues from there (a second Ctrl-C stops at once, keeping the last.pth of
the previous save). Several GPUs: torchrun --nproc_per_node N -m snn_energy.cli train ...
"""

# Command-line defaults (the authors' recipe); None in the parser so that a resumed run can tell what was given.
DEFAULTS = TrainOptions(data="", out="")


def add_parser(subparsers) -> None:
    """Register the ``train`` command."""
    parser = subparsers.add_parser("train", help="train ESDNet (SNN) or its ANN twin", description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=ARCHS, help=f"spiking network or its ANN twin (default {DEFAULTS.arch})")
    parser.add_argument("--preset", choices=sorted(PRESETS), help=f"model size (default {DEFAULTS.preset})")
    parser.add_argument("--timesteps", type=int, help="override the preset's number of timesteps T")
    parser.add_argument("--data", type=Path, help="data set folder holding train/input and train/target")
    parser.add_argument("--epochs", type=int, help=f"epochs (default {DEFAULTS.epochs}, the authors')")
    parser.add_argument("--batch-size", type=int, help=f"images per step over all processes (default {DEFAULTS.batch_size})")
    parser.add_argument("--crop", type=int, help=f"side of the random training crops in pixels (default {DEFAULTS.crop})")
    parser.add_argument("--lr", type=float, help=f"peak learning rate (default {DEFAULTS.lr:g})")
    parser.add_argument("--min-lr", type=float, help=f"learning rate at the last step (default {DEFAULTS.min_lr:g})")
    parser.add_argument("--warmup-epochs", type=int, help=f"linear warm-up epochs (default {DEFAULTS.warmup_epochs})")
    parser.add_argument("--seed", type=int, help=f"random seed (default {DEFAULTS.seed})")
    parser.add_argument("--val-fraction", type=float,
                        help=f"part of the training pairs held out for validation (default {DEFAULTS.val_fraction})")
    parser.add_argument("--clip-grad", type=float, help="clip the gradient norm to this value (default: no clipping)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction,
                        help="mixed precision on CUDA (default on; the CPU always trains in fp32)")
    parser.add_argument("--flips", action=argparse.BooleanOptionalAction, help="random flips of the crops (default off)")
    parser.add_argument("--out", type=Path, help="output folder (default: runs/ARCH-PRESET, or the resumed file's folder)")
    parser.add_argument("--resume", type=Path, help="continue the run of this last.pth/best.pth")
    parser.add_argument("--save-every", type=int, default=0,
                        help="also write last.pth every N steps within an epoch (default 0: at epoch ends)")
    parser.add_argument("--workers", type=int, default=0, help="data loader processes (default 0)")
    parser.add_argument("--cache", action="store_true", help="keep the decoded training images in memory")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar (there is none either when stderr is not a terminal)")
    parser.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    """Return the TrainOptions of the command line: given values, else the resumed run's, else the defaults."""
    given = {name: getattr(args, name) for name in DEFAULTS.run_defining() if getattr(args, name, None) is not None}
    if args.resume is not None:
        checkpoint = read_training_checkpoint(args.resume)
        settings = {**checkpoint["options"], **given}
        data = args.data if args.data is not None else checkpoint.get("data")
        out = args.out if args.out is not None else args.resume.parent
    else:
        settings = {**DEFAULTS.run_defining(), **given}
        data = args.data
        out = args.out if args.out is not None else Path("runs") / f"{settings['arch']}-{settings['preset']}"
    if data is None:
        raise UserError("--data is required: the data set folder holding train/input and train/target")
    return TrainOptions(data=str(data), out=str(out), save_every=args.save_every, workers=args.workers,
                        cache=args.cache, progress=args.progress,
                        resume=str(args.resume) if args.resume is not None else None, **settings)


def run(args: argparse.Namespace) -> int:
    """Train, print where the checkpoints are and the best validation PSNR; returns 0."""
    options = options_from_args(args)
    check_output(options.out, "--out")
    result = train(options)
    if not result.is_main:
        return 0
    last = result.history[-1] if result.history else {}
    print(f"trained {options.arch} {options.preset} for {len(result.history)} epochs ({result.global_step} steps, "
          f"{result.seconds:.0f} s): last val PSNR {last.get('val_psnr', float('nan')):.3f} dB, best "
          f"{result.best_psnr:.3f} dB at epoch {result.best_epoch}; checkpoints in {options.out}")
    return 0
