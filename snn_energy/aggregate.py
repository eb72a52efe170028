"""Running statistics of a profile over a data set, fed one batch of records at a time.

Memory does not grow with the number of rows a data set produces: per (layer, role, timestep) and per (layer,
role) it keeps the moments (``snn_energy.moments``) of every count and energy, merged batch by batch. What it
keeps per image is one row of totals (``images``); the raw records are kept for the first ``record_images``
images only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from snn_energy import tables
from snn_energy.moments import merge_moments


def _merge_meta(kept: dict, new: dict, merge) -> None:
    for key, value in new.items():
        kept[key] = merge(kept[key], value) if key in kept else value


class Aggregate:
    """The running state of one profile: fed ``add(records, extremes, ann_records)`` per batch (the records of
    ``Profiler.drain``), read by ``snn_energy.api`` into the result tables."""

    def __init__(self, options: tables.EnergyOptions, geometry: dict[str, pd.DataFrame], ann_sources: dict,
                 record_images: int | None):
        self.options, self.geometry, self.ann_sources = options, geometry, ann_sources
        self.record_images = record_images
        self.timestep_stats, self.timestep_meta = None, {}
        self.layer_stats, self.layer_meta = None, {}
        self.extreme_stats = None
        self.image_rows, self.image_totals = [], []
        self.summary_scalars = tables.SummaryScalars()
        self.ann_layer_stats = dict.fromkeys(ann_sources)
        self.ann_image_rows = {reference: [] for reference in ann_sources}
        self.ann_macs = dict.fromkeys(ann_sources)
        self.spiking = False
        self.kept_records, self.kept_extremes = [], []
        self.kept_ann_records = {reference: [] for reference in ann_sources}

    def add(self, records: pd.DataFrame, extremes: pd.DataFrame, ann_records: dict[str, pd.DataFrame]) -> None:
        """Fold one batch in: ``records`` and ``extremes`` of the model, ``ann_records`` of each ANN twin
        profiled alongside (the references without a twin are derived from ``records``). Whole images only."""
        if records.empty:
            return
        annotated = tables.annotate(records, self.options, self.geometry["snn"])
        stats, meta = tables.timestep_moments(annotated)
        self.timestep_stats = merge_moments(self.timestep_stats, stats)
        _merge_meta(self.timestep_meta, meta, lambda kept, new: kept)
        stats, meta = tables.layer_moments(annotated)
        self.layer_stats = merge_moments(self.layer_stats, stats)
        _merge_meta(self.layer_meta, meta, tables.merge_layer_meta)
        if not extremes.empty:
            self.extreme_stats = merge_moments(self.extreme_stats, tables.extreme_moments(extremes))
        ann_costs = {}
        for reference in self.ann_sources:
            rows = ann_records.get(reference)
            if rows is None:
                rows = records if reference == "same_T" else tables.single_pass_rows(records)
            per_layer, per_image = tables.ann_layer_image_costs(rows, self.options, self.geometry[reference])
            self.ann_layer_stats[reference] = merge_moments(self.ann_layer_stats[reference], per_layer)
            self.ann_image_rows[reference].append(per_image)
            self.ann_macs[reference] = merge_moments(self.ann_macs[reference], tables.synaptic_macs_moments(rows))
            ann_costs[reference] = tables.ann_costs_long(per_image)
            if reference in ann_records:
                self.kept_ann_records[reference].append(self._first_images(rows))
        self.image_rows.append(tables.image_table(annotated, ann_costs, self.options))
        totals, scalars = tables.summary_parts(annotated)
        self.image_totals.append(totals)
        self.summary_scalars = self.summary_scalars.merge(scalars)
        self.spiking = self.spiking or tables.is_spiking(records)
        self.kept_records.append(self._first_images(annotated))
        self.kept_extremes.append(self._first_images(extremes))

    def _first_images(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.record_images is None:
            return frame
        return frame[frame["image"] < self.record_images]

    def images(self) -> pd.DataFrame:
        """Return one row per image (``tables.image_table``)."""
        return pd.concat(self.image_rows, ignore_index=True)

    def ann_images(self, reference: str) -> pd.DataFrame:
        """Return per image the costs of ``reference`` run as an ANN (``tables.ann_layer_image_costs``)."""
        return pd.concat(self.ann_image_rows[reference], ignore_index=True)

    def records(self) -> pd.DataFrame:
        """Return the annotated records of the first ``record_images`` images, ``order`` made dense."""
        frame = pd.concat(self.kept_records, ignore_index=True)
        frame["order"] = (frame["order"].rank(method="dense") - 1).astype(np.int64) if len(frame) else frame["order"]
        return frame

    def extremes(self) -> pd.DataFrame:
        """Return the neuron extremes of the first ``record_images`` images."""
        return pd.concat(self.kept_extremes, ignore_index=True)

    def ann_records(self, reference: str) -> pd.DataFrame:
        """Return the raw records of the ANN twin ``reference`` for the first ``record_images`` images."""
        return pd.concat(self.kept_ann_records[reference], ignore_index=True)

    def state_rows(self) -> int:
        """Return the number of table rows this state holds besides the per-image rows and the kept records (what
        stays constant however many images are fed)."""
        frames = [self.timestep_stats, self.layer_stats, self.extreme_stats, *self.ann_layer_stats.values(),
                  *self.ann_macs.values()]
        return sum(len(frame) for frame in frames if frame is not None) + len(self.timestep_meta) + len(
            self.layer_meta)
