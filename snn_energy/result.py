"""The result of a profile: its DataFrames, the settings that produced them, and writing them as files."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

# Tables written in every format; the raw rows go to CSV only (one row per layer and timestep of each kept image).
SUMMARY_TABLES = ("summary", "layers", "timesteps", "images", "sensitivity", "uncounted")
LONG_TABLES = ("records", "neuron_extremes")
FORMATS = ("csv", "json", "md", "html")


@dataclass
class ProfileResult:
    """Spike, operation and energy tables of one profiled model over the images given.

    - ``summary``: one row per accounting (``paper``, ``strict``), ``layer`` = "total"; energies per image with
      std and 95% CI, savings against the ANN with the same T and the single-pass ANN, break-even E_AC/E_MAC ratios.
    - ``layers``: one row per (layer, role); ``timesteps``: one row per (layer, role, timestep);
      ``images``: one row per image; ``sensitivity``: the saving as a function of E_AC / E_MAC.
    - ``records``: the raw rows (image, layer, role, timestep) with their costs, of the first
      ``settings["record_images"]`` images only (all when None; the tables above cover every image);
      ``neuron_extremes``: dead and saturated neurons per image and neuron layer, of the same images.
    - ``spike_maps``: layer name -> one ``[T, ...]`` tensor per image, for the layers asked for.
    - ``ann_records``: the raw rows of each ANN twin that was profiled alongside (``"same_T"``, ``"T1"``), of the
      same first images; ``ann_layers``: per twin, its operations and energies per layer (per image, every image);
      ``ann_images``: per twin, the same per image.
    - ``uncounted``: one row per (operation or module type, layer) that ran and was not counted, with its calls.
    - ``settings``: the options and constants used (JSON-friendly).
    """

    summary: pd.DataFrame
    layers: pd.DataFrame
    timesteps: pd.DataFrame
    images: pd.DataFrame
    sensitivity: pd.DataFrame
    records: pd.DataFrame
    neuron_extremes: pd.DataFrame
    settings: dict
    spike_maps: dict = field(default_factory=dict)
    ann_records: dict = field(default_factory=dict)
    ann_layers: dict = field(default_factory=dict)
    ann_images: dict = field(default_factory=dict)
    uncounted: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["operation", "layer", "calls"]))

    def selected_summary(self) -> pd.Series:
        """Return the summary row of the accounting selected for ``energy_pJ``."""
        return self.summary[self.summary["selected"]].iloc[0]

    def save(self, directory: str | os.PathLike, formats=FORMATS, spike_maps: bool = True) -> list[Path]:
        """Write the tables (CSV, JSON, Markdown, HTML), ``settings.json`` and, if any and ``spike_maps``, ``spike_maps.pt`` into
        ``directory`` (created if needed); each file is written to a temporary name then renamed, so no file is
        ever left half written. Returns the paths written."""
        unknown = [f for f in formats if f not in FORMATS]
        if unknown:
            raise ValueError(f"formats: unknown {unknown}; choose among {FORMATS}")
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(f"cannot save the profile into {directory}: it is a file")
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name in SUMMARY_TABLES + LONG_TABLES:
            table = getattr(self, name)
            for fmt in formats if name in SUMMARY_TABLES else ("csv",):
                text = _render(table, fmt)
                written.append(_write_atomic(directory / f"{name}.{fmt}", lambda f, text=text: f.write(text)))
        settings = json.dumps(self.settings, indent=2, default=str)
        written.append(_write_atomic(directory / "settings.json", lambda f: f.write(settings)))
        if self.spike_maps and spike_maps:
            written.append(_write_atomic(directory / "spike_maps.pt", lambda f: torch.save(self.spike_maps, f),
                                         binary=True))
        return written


def _render(table: pd.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        return table.to_csv(index=False)
    if fmt == "json":
        return table.to_json(orient="records", indent=1)
    if fmt == "md":
        return table.to_markdown(index=False) + "\n"
    return table.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.6g}")


def _write_atomic(path: Path, write, binary: bool = False) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``; return ``path``."""
    handle = tempfile.NamedTemporaryFile(
        "wb" if binary else "w", dir=path.parent, prefix=f".{path.name}.", delete=False,
        **({} if binary else {"encoding": "utf-8"}),
    )
    try:
        with handle:
            write(handle)
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return path
