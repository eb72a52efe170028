"""Rows built from a cached plan: the same as built afresh when kinds, probed neurons or shapes change."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from snn_energy import Profiler, row_plan
from snn_energy.tensor_stats import KIND_NAMES, kind_of
from snn_energy.transfer import kind_codes


class Threshold(nn.Module):
    """An unknown leaf module: probed, a neuron only when its output is binary with spikes."""

    def forward(self, x):
        return (x > 0.5).float()


def _model():
    """Linear (each output a quarter of the input's sum) -> Threshold -> Linear: 6 spikes when the sum exceeds 2."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), Threshold(), nn.Linear(6, 3)).eval()
    with torch.no_grad():
        model[0].weight.fill_(0.25)
        model[0].bias.zero_()
    return model


# real input; binary input (the first layer's kind changes); no spike (the probe is no neuron); a batch of two
INPUTS = [torch.tensor([[0.9, 0.8, 0.7, 0.6]]), torch.tensor([[1.0, 0.0, 1.0, 1.0]]),
          torch.tensor([[0.1, 0.2, 0.3, 0.4]]), torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5]])]


def _fresh(model, x):
    row_plan._structures.clear()
    with Profiler(model) as profiler, torch.no_grad():
        model(x)
    return profiler.drain(), profiler.uncounted()


def test_kind_codes_match_kind_of():
    lows = [0.0, 0.0, -1.0, 0.0, math.nan, -math.inf, 0.0]
    highs = [1.0, 0.0, 1.0, 2.0, 1.0, 0.0, 1.0]
    fractions = [0.0, 0.0, 0.0, 0.0, math.nan, math.nan, 0.25]
    values = np.array([v for triple in zip(lows, highs, fractions) for v in triple])
    codes = kind_codes(values, np.arange(len(values)).reshape(-1, 3))
    assert [KIND_NAMES[c] for c in codes] == [kind_of(*triple) for triple in zip(lows, highs, fractions)]
    assert [KIND_NAMES[c] for c in codes] == ["binary", "binary", "integer", "integer", "real", "real", "real"]


def test_rows_from_a_cached_plan_equal_rows_built_afresh():
    model = _model()
    fresh = [_fresh(model, x) for x in INPUTS]
    row_plan._structures.clear()
    cached, images = [], 0
    with Profiler(model) as profiler, torch.no_grad():
        for x in INPUTS:
            model(x)
            records, extremes = profiler.drain()
            records["image"] -= images
            images += len(x)
            cached.append(((records, extremes), profiler.uncounted()))
    assert len(row_plan._structures) == 2  # one structure per batch size; the first three forwards share one
    assert [len(s.plans) for s in row_plan._structures.values()] == [2, 1]  # the probe a neuron or not
    for ((records, extremes), _), ((expected, expected_extremes), _) in zip(cached, fresh):
        pd.testing.assert_frame_equal(records, expected, check_exact=True)
        pd.testing.assert_frame_equal(extremes, expected_extremes, check_exact=True)
    # uncounted accumulates over the profiler's forwards: the probe is named once, by the forward without spikes
    assert cached[-1][1].values.tolist() == [["Threshold", "1", 1]]
    assert fresh[2][1].values.tolist() == [["Threshold", "1", 1]] and fresh[0][1].empty

    real, binary, silent = (by_layer for (by_layer, _), _ in cached[:3])
    fc1 = lambda records: records[records["layer"] == "0"].iloc[0]
    assert fc1(real)["input_kind"] == "real" and fc1(real)["real_input_macs"] == 24 and fc1(real)["sops"] == 0
    assert fc1(binary)["input_kind"] == "binary" and fc1(binary)["real_input_macs"] == 0
    assert fc1(binary)["sops"] == 3 * 6  # three spikes, each meets the 6 weights of its column
    assert real.loc[real["layer"] == "1", "spikes"].item() == 6
    assert real.loc[real["layer"] == "2", "sops"].item() == 6 * 3  # each spike meets the 3 weights of its column
    pair = cached[3][0][0]
    assert pair.loc[pair["layer"] == "1", "spikes"].tolist() == [6, 0]  # sums 4 and 2 (not above 2)
    assert "1" not in set(silent["layer"])  # no spike: the probed module is no neuron and gives no row


@pytest.fixture(autouse=True)
def _forget_plans():
    yield
    row_plan._structures.clear()
