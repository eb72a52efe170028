"""The energy model on hand-made records: presets, the accountings and their rules, the spike term, the encoding
policy, break-even points, the sweep and the firing rate a target saving needs."""
import math

import numpy as np
import pandas as pd
import pytest

from snn_energy.energy import (
    HOROWITZ_45NM, PRESETS, EnergyConstants, ann_operation_costs, break_even_rate, break_even_ratio, charge_rules,
    energy_constants, energy_pJ, rate_for_saving, saving, sensitivity_sweep, snn_operation_costs,
)


def _row(**values):
    row = dict(image=0, layer="x", role="synaptic", module_type="Conv2d", timestep=0, order=0, input_kind="real",
               is_encoding=False, input_repeated=False, macs=0.0, real_input_macs=0.0, sops=0.0,
               input_elements=0.0, input_nonzero=0.0, mults=0.0, adds=0.0, neurons=0.0, spikes=0.0)
    row.update(values)
    return row


@pytest.fixture
def records():
    """Two timesteps: an encoding conv on a repeated image, a spike-fed conv, a real-fed shortcut conv, a BN, a
    neuron; once after the loop: a gate and an output conv (timestep -1)."""
    rows = []
    for t in (0, 1):
        rows.append(_row(layer="enc", timestep=t, is_encoding=True, input_repeated=True, macs=1000,
                         real_input_macs=1000, input_elements=100, input_nonzero=100))
        rows.append(_row(layer="conv", timestep=t, input_kind="binary", macs=2000, sops=150 + 50 * t,
                         input_elements=200, input_nonzero=20 + 10 * t, adds=10))
        rows.append(_row(layer="short", timestep=t, macs=400, real_input_macs=400, input_elements=50,
                         input_nonzero=25))
        rows.append(_row(layer="bn", role="normalization", timestep=t, mults=300))
        rows.append(_row(layer="sn", role="neuron", timestep=t, neurons=200, spikes=20 + 10 * t))
    rows.append(_row(layer="gate", role="elementwise", timestep=-1, mults=40, adds=60))
    rows.append(_row(layer="out", timestep=-1, macs=700, real_input_macs=700, input_elements=70, input_nonzero=35))
    return pd.DataFrame(rows)


def test_presets_and_custom_constants():
    assert {name: (c.e_mac_pJ, c.e_ac_pJ, c.e_spike_pJ) for name, c in PRESETS.items()} == {
        "fp32": (4.6, 0.9, 0.0), "fp16": (1.5, 0.4, 0.0), "int32": (3.2, 0.1, 0.0), "int8": (0.23, 0.03, 0.0),
        "snn-deraining": (12.5, 0.077, 3.7)}
    assert energy_constants() is HOROWITZ_45NM["fp32"]
    assert energy_constants(e_mac_pJ=2.0, e_ac_pJ=0.5) == EnergyConstants(2.0, 0.5)
    with_spikes = energy_constants("fp32", e_spike_pJ=1.5)
    assert (with_spikes.e_mac_pJ, with_spikes.e_ac_pJ, with_spikes.e_spike_pJ, with_spikes.name) == (
        4.6, 0.9, 1.5, "custom")
    assert energy_constants("snn-deraining", e_mac_pJ=1.0, e_ac_pJ=0.1).e_spike_pJ == 0.0
    with pytest.raises(ValueError, match="unknown energy constants 'fp64'"):
        energy_constants("fp64")
    with pytest.raises(ValueError, match="both e_mac_pJ and e_ac_pJ"):
        energy_constants(e_mac_pJ=1.0)
    with pytest.raises(ValueError, match="e_ac_pJ must be a positive finite"):
        EnergyConstants(1.0, -0.1)
    with pytest.raises(ValueError, match="e_spike_pJ must be a nonnegative finite"):
        EnergyConstants(1.0, 0.1, e_spike_pJ=-1.0)


def test_paper_accounting(records):
    costs = snn_operation_costs(records, "paper")
    fp32 = HOROWITZ_45NM["fp32"]
    # MACs: the encoding conv at both timesteps, the output conv run once after the loop (as in the ANN)
    assert costs["mac_ops"].sum() == 2000 + 700
    # ACs: rate x MACs per timestep for the spike-fed conv (0.1, 0.15 of 2000) and the real-fed shortcut (0.5 of 400)
    assert costs["ac_ops"].sum() == pytest.approx(0.1 * 2000 + 0.15 * 2000 + 2 * 0.5 * 400)
    assert costs["rate_ac_ops"].sum() == pytest.approx(0.1 * 2000 + 0.15 * 2000)  # spike input only
    assert (costs["spike_ops"].sum(), costs["neuron_ops"].sum()) == (50, 400)
    energy = energy_pJ(costs["mac_ops"].sum(), costs["ac_ops"].sum(), fp32)
    assert energy == pytest.approx(4.6 * 2700 + 0.9 * 900)


def test_charge_rules_name_what_each_row_pays(records):
    paper = dict(zip(records["layer"], charge_rules(records, "paper")))
    assert paper == {"enc": "MAC: encoding", "conv": "AC x rate: spike input",
                     "short": "AC x rate: real input (paper convention)", "bn": "free",
                     "sn": "neuron: E_spike x spikes + E_neuron x updates", "gate": "free",
                     "out": "MAC: outside the time loop (run once per forward)"}
    strict = dict(zip(records["layer"], charge_rules(records, "strict")))
    assert (strict["enc"], strict["conv"], strict["short"], strict["out"], strict["bn"]) == (
        "MAC: real input", "exact AC: binary input", "MAC: real input", "MAC: real input",
        "MAC: batch norm (one per element)")
    assert dict(zip(records["layer"], charge_rules(records, "strict", fold_batchnorm=True)))["bn"] == (
        "free: batch norm folded")
    with pytest.raises(ValueError, match="not priced per operation"):
        charge_rules(records, "lemaire")


def test_strict_accounting(records):
    costs = snn_operation_costs(records, "strict")
    # MACs: encoding conv 2 x 1000, shortcut 2 x 400, output 700, BN 2 x 300 (one MAC per element), gate mults 40
    assert costs["mac_ops"].sum() == 2000 + 800 + 700 + 600 + 40
    # ACs: exact synaptic operations 150 + 200, bias additions 2 x 10, gate additions 60
    assert costs["ac_ops"].sum() == 350 + 20 + 60
    assert costs["rate_ac_ops"].sum() == 350
    folded = snn_operation_costs(records, "strict", fold_batchnorm=True)
    assert folded["mac_ops"].sum() == 2000 + 800 + 700 + 40


def test_spike_and_neuron_terms(records):
    deraining = PRESETS["snn-deraining"]
    costs = snn_operation_costs(records, "paper")
    energy = energy_pJ(costs["mac_ops"], costs["ac_ops"], deraining, costs["spike_ops"], costs["neuron_ops"]).sum()
    assert energy == pytest.approx(12.5 * 2700 + 0.077 * 900 + 3.7 * (20 + 30))
    custom = EnergyConstants(1.0, 0.5, e_spike_pJ=2.0, e_neuron_pJ=0.25)
    assert energy_pJ(10, 4, custom, 3, 8) == pytest.approx(10 + 2 + 6 + 2)
    ann = ann_operation_costs(records, "paper")
    assert ann["spike_ops"].sum() == 0 and ann["neuron_ops"].sum() == 0


def test_encoding_layer_charged_once_on_a_repeated_image(records):
    for accounting in ("paper", "strict"):
        once = snn_operation_costs(records, accounting, encoding_policy="once")["mac_ops"].sum()
        every = snn_operation_costs(records, accounting, encoding_policy="per_timestep")["mac_ops"].sum()
        assert every - once == 1000
    not_repeated = records.assign(input_repeated=False)
    assert snn_operation_costs(not_repeated, "paper", encoding_policy="once")["mac_ops"].sum() == 2700
    with pytest.raises(ValueError, match="encoding_policy must be one of"):
        snn_operation_costs(records, "paper", encoding_policy="twice")
    with pytest.raises(ValueError, match="accounting must be one of"):
        snn_operation_costs(records, "loose")


def test_ann_side_counts_dense_macs(records):
    paper = ann_operation_costs(records, "paper")
    assert (paper["mac_ops"].sum(), paper["ac_ops"].sum()) == (2 * 1000 + 2 * 2000 + 2 * 400 + 700, 0)
    strict = ann_operation_costs(records, "strict")
    assert (strict["mac_ops"].sum(), strict["ac_ops"].sum()) == (7500 + 600 + 40, 20 + 60)


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
    # spikes worth 200 MACs leave 200 MAC-equivalents for the ACs: ratio 0.2
    assert break_even_ratio(100, 1000, 500, 0, extra_mac_equivalents=200) == pytest.approx(0.2)


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


def test_sweep_and_break_even_keep_the_spike_term():
    """E_SNN = E_MAC (m + r a) + E_spike s against E_ANN = E_MAC M: the saving at every ratio and the ratio where
    it is zero both carry the spike term, which does not move with E_AC."""
    deraining = PRESETS["snn-deraining"]
    m, a, s, M = 100.0, 1000.0, 50.0, 500.0
    totals = pd.DataFrame([dict(accounting="paper", reference="T1", snn_mac_ops=m, snn_ac_ops=a, snn_spike_ops=s,
                                snn_neuron_ops=0.0, ann_mac_ops=M, ann_ac_ops=0.0)])
    ratios = [0.05, deraining.ac_mac_ratio]
    sweep = sensitivity_sweep(totals, ratios, deraining)
    expected = [1 - (12.5 * (m + r * a) + 3.7 * s) / (12.5 * M) for r in ratios]
    assert sweep["saving"].tolist() == pytest.approx(expected)
    assert sweep["preset"].tolist() == ["", "snn-deraining"]
    ratio = break_even_ratio(m, a, M, 0.0, 3.7 * s / 12.5)
    at_ratio = sensitivity_sweep(totals, [ratio], deraining)
    assert at_ratio["saving"].iloc[0] == pytest.approx(0.0, abs=1e-12)


def test_rate_for_a_target_saving():
    # E_SNN = 60 at the measured rate 0.2, of which 40 scale with the rate; E_ANN = 100.
    # 54% saving: 46 = 20 + 40 r / 0.2 -> r = 0.13
    assert rate_for_saving(60.0, 40.0, 100.0, 0.2, 0.54) == pytest.approx(0.13)
    assert rate_for_saving(60.0, 40.0, 100.0, 0.2, 0.40) == pytest.approx(0.2)  # the measured saving itself
    assert math.isnan(rate_for_saving(60.0, 40.0, 100.0, 0.2, 0.9))  # the fixed 20 alone exceed 10
    assert math.isnan(rate_for_saving(60.0, 1.0, 100.0, 0.2, 0.1))  # would need a rate above 1
    assert math.isnan(rate_for_saving(60.0, 0.0, 100.0, 0.2, 0.54))  # nothing scales with the rate
