"""``snn-energy data``: data set tools; ``data synth`` writes a seeded synthetic-rain data set."""
from __future__ import annotations

import argparse
from pathlib import Path

from esdnet.cli.outputs import check_output
from esdnet.synth import PRESETS, synthesize_dataset

SYNTH_DESCRIPTION = """\
Write rainy/clean PNG pairs in the authors' layout OUT/{train,test}/{input,target}/ (rain-NNNN.png /
norain-NNNN.png) plus OUT/synth.json. Clean pictures are scikit-image's bundled colour photographs (or the
images of --clean); photographs, not crops, are split between train and test. Each pair is a random crop
resized to SIZE x SIZE with motion-blurred rain streaks screen-blended on: 'light' is one sparse layer
(like Rain200L/Rain100L), 'heavy' three denser, longer, brighter layers (like Rain200H). The same seed writes
byte-identical files. OUT is built beside itself and renamed into place; an existing non-empty OUT is refused
unless --overwrite.
"""


def add_parser(subparsers) -> None:
    """Register the ``data`` command and its ``synth`` sub-command."""
    parser = subparsers.add_parser("data", help="data set tools (synthetic rain)",
                                   description="Data set tools for the rainy/clean pair layout of the ESDNet authors.")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    synth = actions.add_parser("synth", help="write a seeded synthetic-rain data set", description=SYNTH_DESCRIPTION,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    synth.add_argument("--out", required=True, type=Path, help="folder to create")
    synth.add_argument("--preset", choices=sorted(PRESETS), default="light", help="rain strength (default light)")
    synth.add_argument("--seed", type=int, default=1234, help="random seed (default 1234)")
    synth.add_argument("--train", type=int, default=200, help="training pairs (default 200)")
    synth.add_argument("--test", type=int, default=20, help="test pairs (default 20)")
    synth.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    synth.add_argument("--clean", type=Path, default=None,
                       help="folder of clean pictures to use instead of scikit-image's photographs (at least 2)")
    synth.add_argument("--overwrite", action="store_true", help="replace an existing non-empty OUT")
    synth.set_defaults(func=run_synth, command_name="data synth")


def run_synth(args: argparse.Namespace) -> int:
    """Write the synthetic data set and say where; returns 0."""
    check_output(args.out, "--out")
    out = synthesize_dataset(args.out, preset=args.preset, seed=args.seed, n_train=args.train, n_test=args.test,
                             size=args.size, clean_dir=args.clean, overwrite=args.overwrite)
    print(f"wrote {args.train} train and {args.test} test pairs of {args.size}x{args.size} "
          f"({args.preset} rain, seed {args.seed}) to {out}")
    return 0
