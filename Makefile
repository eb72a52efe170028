# Set-up and the two jobs a new user runs. Everything lives in .venv beside this file.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test reports benchmarks clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job on the bundled default: profile the bundled demo SNN on the bundled sample rainy images.
demo: $(STAMP)
	$(BIN)/snn-energy profile

# The test suite (what .ci/run calls).
test: $(STAMP)
	$(BIN)/python -m pytest -q

# Regenerate the committed reports of the bundled demo SNN (reports/demo_snn_small/) and re-execute the notebooks
# in place, so that they are committed with their outputs.
reports: $(STAMP)
	$(BIN)/snn-energy profile --out reports/demo_snn_small
	$(BIN)/python notebooks/execute.py

clean:
	rm -rf $(VENV) build *.egg-info
