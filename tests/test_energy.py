"""The energy model on hand-made records: presets, both accountings, encoding policy, break-even, the sweep."""
import math

import numpy as np
import pandas as pd
import pytest

from snn_energy.energy import (
    HOROWITZ_45NM, EnergyConstants, ann_operation_costs, break_even_rate, break_even_ratio, energy_constants,
    energy_pJ, saving, sensitivity_sweep, snn_operation_costs,
)


def _row(**values):
    row = dict(image=0, layer="x", role="synaptic", module_type="Conv2d", timestep=0, order=0, input_kind="real",
               is_encoding=False, input_repeated=False, macs=0.0, real_input_macs=0.0, sops=0.0,
               input_elements=0.0, input_nonzero=0.0, mults=0.0, adds=0.0, neurons=0.0, spikes=0.0)
    row.update(values)
    return row


@pytest.fixture
def records():
    """A two-timestep network: an encoding conv on a repeated image, a spike-fed conv, a gate, a BN, a neuron."""
    rows = []
    for t in (0, 1):
        rows.append(_row(layer="enc", timestep=t, is_encoding=True, input_repeated=True, macs=1000,
                         real_input_macs=1000, input_elements=100, input_nonzero=100))
        rows.append(_row(layer="conv", timestep=t, input_kind="binary", macs=2000, sops=150 + 50 * t,
                         input_elements=200, input_nonzero=20 + 10 * t, adds=10))
        rows.append(_row(layer="bn", role="normalization", timestep=t, mults=300))
        rows.append(_row(layer="sn", role="neuron", timestep=t, neurons=200, spikes=20 + 10 * t))
    rows.append(_row(layer="gate", role="elementwise", timestep=-1, mults=40, adds=60))
    return pd.DataFrame(rows)


def test_horowitz_presets_and_custom_constants():
    assert {name: (c.e_mac_pJ, c.e_ac_pJ) for name, c in HOROWITZ_45NM.items()} == {
        "fp32": (4.6, 0.9), "fp16": (1.5, 0.4), "int32": (3.2, 0.1), "int8": (0.23, 0.03)}
    assert energy_constants() is HOROWITZ_45NM["fp32"]
    assert energy_constants(e_mac_pJ=2.0, e_ac_pJ=0.5) == EnergyConstants(2.0, 0.5)
    with pytest.raises(ValueError, match="unknown energy constants 'fp64'"):
        energy_constants("fp64")
    with pytest.raises(ValueError, match="both e_mac_pJ and e_ac_pJ"):
        energy_constants(e_mac_pJ=1.0)
    with pytest.raises(ValueError, match="e_ac_pJ must be a positive finite"):
        EnergyConstants(1.0, -0.1)


def test_paper_accounting(records):
    costs = snn_operation_costs(records, "paper")
    fp32 = HOROWITZ_45NM["fp32"]
    # encoding conv in MACs at both timesteps; spike-fed conv: rate x MACs per timestep (0.1 and 0.15 of 2000)
    assert costs["mac_ops"].sum() == 2000
    assert costs["ac_ops"].sum() == pytest.approx(0.1 * 2000 + 0.15 * 2000)
    assert energy_pJ(costs["mac_ops"].sum(), costs["ac_ops"].sum(), fp32) == pytest.approx(4.6 * 2000 + 0.9 * 500)


def test_strict_accounting(records):
    costs = snn_operation_costs(records, "strict")
    # MACs: encoding conv 2 x 1000, BN 2 x 300 (one MAC per element), gate multiplications 40
    assert costs["mac_ops"].sum() == 2000 + 600 + 40
    # ACs: exact synaptic operations 150 + 200, bias additions 2 x 10, gate additions 60
    assert costs["ac_ops"].sum() == 350 + 20 + 60
    folded = snn_operation_costs(records, "strict", fold_batchnorm=True)
    assert folded["mac_ops"].sum() == 2000 + 40


def test_encoding_layer_charged_once_on_a_repeated_image(records):
    for accounting in ("paper", "strict"):
        once = snn_operation_costs(records, accounting, encoding_policy="once")["mac_ops"].sum()
        every = snn_operation_costs(records, accounting, encoding_policy="per_timestep")["mac_ops"].sum()
        assert every - once == 1000
    not_repeated = records.assign(input_repeated=False)
    assert snn_operation_costs(not_repeated, "paper", encoding_policy="once")["mac_ops"].sum() == 2000
    with pytest.raises(ValueError, match="encoding_policy must be one of"):
        snn_operation_costs(records, "paper", encoding_policy="twice")
    with pytest.raises(ValueError, match="accounting must be one of"):
        snn_operation_costs(records, "loose")


def test_ann_side_counts_dense_macs(records):
    paper = ann_operation_costs(records, "paper")
    assert (paper["mac_ops"].sum(), paper["ac_ops"].sum()) == (2 * 1000 + 2 * 2000, 0)
    strict = ann_operation_costs(records, "strict")
    assert (strict["mac_ops"].sum(), strict["ac_ops"].sum()) == (6000 + 600 + 40, 20 + 60)


def test_break_even_rate_and_ratio():
    fp32 = HOROWITZ_45NM["fp32"]
    # a layer run at 4 timesteps against the same layer run once: E_MAC x M >= E_AC x rate x 4 M
    assert break_even_rate([4000.0], [1000.0], fp32)[0] == pytest.approx(4.6 / (0.9 * 4))
    assert math.isnan(break_even_rate([0.0], [1000.0], fp32)[0])
    # SNN: 100 MAC-charged + 1000 AC-charged ops; ANN: 500 MACs. Equal cost at E_AC / E_MAC = 0.4.
    ratio = break_even_ratio(100, 1000, 500, 0)
    assert ratio == pytest.approx(0.4)
    assert energy_pJ(100, 1000, EnergyConstants(1.0, ratio)) == pytest.approx(energy_pJ(500, 0, EnergyConstants(1.0, 1)))
    assert math.isnan(break_even_ratio(600, 1000, 500, 0))  # the SNN costs more at every ratio


def test_sensitivity_sweep_has_the_closed_form():
    totals = pd.DataFrame([dict(accounting="paper", reference="T1", snn_mac_ops=100.0, snn_ac_ops=1000.0,
                                ann_mac_ops=500.0, ann_ac_ops=0.0)])
    sweep = sensitivity_sweep(totals, [0.1, 0.4, 0.9 / 4.6], HOROWITZ_45NM["fp32"])
    expected = [1 - (100 + r * 1000) / 500 for r in (0.1, 0.4, 0.9 / 4.6)]
    assert sweep["saving"].tolist() == pytest.approx(expected)
    assert sweep["saving"].iloc[1] == pytest.approx(0.0, abs=1e-12)
    assert sweep["preset"].tolist() == ["", "", "fp32"]
    assert sweep["e_ac_pJ"].tolist() == pytest.approx([0.46, 1.84, 0.9])
    assert saving(50.0, 200.0) == pytest.approx(0.75)
    assert np.all(saving([300.0], [200.0]) < 0)
