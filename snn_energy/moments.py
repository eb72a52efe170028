"""Mergeable moments of groups of values: count, mean and sum of squared deviations (``n``, ``mean``, ``m2``, float64),
merged batch by batch with the parallel update of Chan, Golub and LeVeque (exact up to rounding, and stable where
plain sums of squares would cancel). Means and standard deviations over a data set without keeping its values."""
from __future__ import annotations

import numpy as np
import pandas as pd


def moments(grouped, columns) -> pd.DataFrame:
    """Return per group of ``grouped`` the count of non-NaN values ``n``, their ``mean`` (0 where ``n`` is 0) and
    sum of squared deviations ``m2`` of each of ``columns``; columns are a (moment, column) MultiIndex."""
    values = grouped[list(columns)]
    n = values.count().astype(float)
    return pd.concat({"n": n, "mean": values.mean().fillna(0.0), "m2": (values.var(ddof=0) * n).fillna(0.0)}, axis=1)


def merge_moments(a: pd.DataFrame | None, b: pd.DataFrame) -> pd.DataFrame:
    """Return the moments of the union of the values behind ``a`` and ``b`` (see ``moments``); ``a`` may be None."""
    if a is None:
        return b
    index = a.index.union(b.index, sort=False)
    a, b = a.reindex(index, fill_value=0.0), b.reindex(index, fill_value=0.0)
    n = a["n"] + b["n"]
    delta = b["mean"] - a["mean"]
    share = (b["n"] / n.where(n > 0)).fillna(0.0)
    return pd.concat({"n": n, "mean": a["mean"] + delta * share,
                      "m2": a["m2"] + b["m2"] + delta ** 2 * a["n"] * share}, axis=1)


def mean_of(stats: pd.DataFrame) -> pd.DataFrame:
    """Return the means of ``moments`` (NaN where no value was seen)."""
    return stats["mean"].where(stats["n"] > 0)


def std_of(stats: pd.DataFrame) -> pd.DataFrame:
    """Return the sample standard deviations (ddof 1) of ``moments`` (NaN below two values)."""
    return np.sqrt(stats["m2"].clip(lower=0.0) / (stats["n"] - 1).where(stats["n"] >= 2))
