"""Execute the notebooks in place with this interpreter's kernel, this checkout first on the path:
``python notebooks/execute.py [NOTEBOOK ...]`` (default: every notebook here). ``make reports`` runs it."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent
REPO_ROOT = NOTEBOOKS.parent
TIMEOUT_S = 600  # per cell


def _prepended(folder: Path, variable: str) -> str:
    """Return the search path in environment ``variable`` with ``folder`` in front."""
    return os.pathsep.join([str(folder)] + ([os.environ[variable]] if os.environ.get(variable) else []))


def execute(path: Path, extra_cells=()) -> nbformat.NotebookNode:
    """Run the notebook at ``path`` top to bottom (plus ``extra_cells``, source strings) and return it executed.

    The kernel is "python3" from this interpreter's prefix (its own kernel spec first, so a user-level spec of that
    name does not replace it); the kernel's PYTHONPATH starts with this checkout; no timing metadata is kept."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in extra_cells]
    os.environ["JUPYTER_PATH"] = _prepended(Path(sys.prefix) / "share" / "jupyter", "JUPYTER_PATH")
    env = {**os.environ, "PYTHONPATH": _prepended(REPO_ROOT, "PYTHONPATH"),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    client = NotebookClient(notebook, timeout=TIMEOUT_S, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)
    return notebook


def main(paths: list[str]) -> int:
    """Execute each notebook (default: all of ``notebooks/``) and write it back with its outputs."""
    for path in [Path(p) for p in paths] or sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = execute(path)
        nbformat.write(notebook, path)
        print(f"executed {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
