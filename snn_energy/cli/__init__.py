"""The ``snn-energy`` command line: a thin shell composing ESDNet's commands (``esdnet.cli``: derain, evaluate,
data, train) and the profiling ones (``snn_energy.cli``: profile, compare).

Each sub-command lives in its own module exposing ``add_parser(subparsers)``, which registers the command and
sets ``func`` to a callable ``run(args) -> int``. ``main`` turns what a command raises into one line on stderr
and an exit status:

- 0: success;
- 2: an error the user can fix (``UserError``, or a ``ValueError``/``OSError`` subclass such as a bad
  checkpoint, an unreadable image or a profiler's ``ModelInputError``), its message naming the file or option;
- 130: Ctrl-C (``interrupted``); finished outputs are kept, ``train`` writes ``last.pth`` to resume from;
- 1: any other exception, a bug in snn-energy: one line naming it and a log file holding the traceback (the
  full traceback on stderr instead with ``snn-energy --debug COMMAND ...``).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import os
import sys
import tempfile
import traceback
from pathlib import Path

from esdnet.cli.errors import UserError
from esdnet.imageio import atomic_write_bytes

# Sub-command -> module, in the order ``--help`` lists them.
COMMANDS = {
    "profile": "snn_energy.cli.profile",
    "compare": "snn_energy.cli.compare",
    "derain": "esdnet.cli.derain",
    "evaluate": "esdnet.cli.evaluate",
    "data": "esdnet.cli.data",
    "train": "esdnet.cli.train",
}
USER_ERRORS = (UserError, ValueError, OSError)
EXIT_BUG, EXIT_USER_ERROR, EXIT_INTERRUPTED = 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="snn-energy",
        description="Spike, operation and energy analysis of spiking networks (ESDNet and its ANN twin). "
                    "Exit status: 0 done, 2 bad input (one line naming the file or option), 130 interrupted "
                    "(Ctrl-C), 1 a bug in snn-energy (one line naming a log file with the traceback).",
    )
    parser.add_argument("--debug", action="store_true",
                        help="on an internal error (a bug), print the full traceback instead of writing it to a "
                             "log file (give it before the command: snn-energy --debug profile ...)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(subparsers)
    return parser


def write_traceback_log(command: str) -> Path:
    """Write the traceback of the exception being handled to a new file in the system's temporary folder
    (atomically); returns its path."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(tempfile.gettempdir()) / f"snn-energy-{command.replace(' ', '-')}-{stamp}-{os.getpid()}.log"
    text = f"snn-energy {command}: internal error; command line: {sys.argv}\n\n{traceback.format_exc()}"
    return atomic_write_bytes(path, text.encode())


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the process exit status (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USER_ERROR
    name = getattr(args, "command_name", args.command)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as err:
        detail = f" ({err})" if str(err) else ""
        print(f"snn-energy {name}: interrupted{detail}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as err:
        print(f"snn-energy {name}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as err:
        bug = f"snn-energy {name}: internal error (a bug in snn-energy): {type(err).__name__}: {err}"
        if args.debug:
            traceback.print_exc()
            print(bug, file=sys.stderr)
            return EXIT_BUG
        try:
            where = f"traceback written to {write_traceback_log(name)}"
        except OSError as log_err:
            traceback.print_exc()
            where = f"traceback above (no log file: {log_err})"
        print(f"{bug}; {where}", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
