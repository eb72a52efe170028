"""The ``snn-energy`` command line: a thin shell composing ``esdnet`` (the model) and ``snn_energy`` (the toolkit).

Each sub-command lives in its own module exposing ``add_parser(subparsers)``, which registers the command and
sets ``func`` to a callable ``run(args) -> int``. Errors that a user can fix (a missing file, a bad checkpoint,
an image that cannot be read) are raised as ``UserError`` or ``ValueError``/``OSError`` subclasses by the
library and printed here as one line, with exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from snn_energy.cli.errors import UserError

# Sub-command modules, in the order ``--help`` lists them.
COMMANDS = ["profile", "compare", "derain", "evaluate", "data", "train"]


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="snn-energy",
        description="Spike, operation and energy analysis of spiking networks (ESDNet and its ANN twin).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"snn_energy.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit status (0 on success, 2 on a user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UserError, ValueError, OSError) as err:
        print(f"snn-energy {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
