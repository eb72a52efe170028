"""The notebooks are committed executed (a reader sees their figures) and still run top to bottom on the bundled
demo model, through the public API, with the venv's kernel."""
import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"
DEMO_SNN = REPO_ROOT / "esdnet" / "weights" / "demo_snn_small.pth"
FIGURES = {"spike_maps": 5, "energy_analysis": 3}  # figures each notebook draws
ACCOUNTINGS = ("paper", "strict", "lemaire")


def _executor():
    spec = importlib.util.spec_from_file_location("notebook_execute", NOTEBOOKS / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outputs(notebook):
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def _images(notebook):
    return [o for o in _outputs(notebook) if "image/png" in o.get("data", {})]


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_is_committed_with_its_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), "run top to bottom, once"
    assert all(cell.outputs for cell in code[1:]), "every cell after the imports shows something"
    assert not [o for o in _outputs(notebook) if o.output_type == "error"]
    assert len(_images(notebook)) == FIGURES[name]
    text = "".join(str(o.get("data", {}).get("text/plain", "")) for o in _outputs(notebook))
    assert all(accounting in text for accounting in ACCOUNTINGS), "the three accountings are shown"
    assert (NOTEBOOKS / f"{name}.ipynb").stat().st_size < 3_000_000  # small enough to review


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_runs(name):
    if not DEMO_SNN.is_file():
        pytest.skip(f"{DEMO_SNN} is absent: the notebooks profile the bundled demo model")
    notebook = _executor().execute(
        NOTEBOOKS / f"{name}.ipynb", ["import sys, snn_energy; print(sys.prefix, snn_energy.__file__)"])
    assert not [o for o in _outputs(notebook) if o.output_type == "error"]
    assert len(_images(notebook)) == FIGURES[name], f"{name} drew {len(_images(notebook))} figures"
    prefix, package = notebook.cells[-1].outputs[0]["text"].split()
    assert prefix == sys.prefix and Path(package).resolve() == REPO_ROOT / "snn_energy" / "__init__.py"
