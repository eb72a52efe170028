"""The notebooks run top to bottom on the bundled demo model, through the public API, with the venv's kernel."""
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"
DEMO_SNN = REPO_ROOT / "esdnet" / "weights" / "demo_snn_small.pth"
TIMEOUT_S = 300  # per cell; each notebook takes well under two minutes on a laptop CPU
FIGURES = {"spike_maps": 5, "energy_analysis": 3}  # figures each notebook draws


def _prepended(folder: Path, variable: str) -> str:
    """Return the search path in environment ``variable`` with ``folder`` in front."""
    return os.pathsep.join([str(folder)] + ([os.environ[variable]] if os.environ.get(variable) else []))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_runs(name, monkeypatch):
    if not DEMO_SNN.is_file():
        pytest.skip(f"{DEMO_SNN} is absent: the notebooks profile the bundled demo model")
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert all(not cell.get("outputs") and cell.get("execution_count") is None
               for cell in notebook.cells if cell.cell_type == "code"), "commit notebooks without outputs"
    # Kernel "python3" from this interpreter's prefix first (before any user-level spec of that name); jupyter_client
    # starts a spec whose command is "python" with sys.executable, i.e. the venv's python. PYTHONPATH puts this
    # checkout first, as pytest does.
    monkeypatch.setenv("JUPYTER_PATH", _prepended(Path(sys.prefix) / "share" / "jupyter", "JUPYTER_PATH"))
    env = {**os.environ, "PYTHONPATH": _prepended(REPO_ROOT, "PYTHONPATH"),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    notebook.cells.append(nbformat.v4.new_code_cell("import sys, snn_energy; print(sys.prefix, snn_energy.__file__)"))
    client = NotebookClient(notebook, timeout=TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=env)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == FIGURES[name], f"{name} drew {len(images)} figures"
    prefix, package = notebook.cells[-1].outputs[0]["text"].split()
    assert prefix == sys.prefix and Path(package).resolve() == REPO_ROOT / "snn_energy" / "__init__.py"
