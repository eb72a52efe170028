"""The energy tables on a small spiking network: the spike term of the snn-deraining preset, clipped confidence
intervals, and the rate for a target saving meeting its definition."""
import numpy as np
import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based import layer, neuron

import snn_energy
from snn_energy.tables import ci95_bounds


def test_confidence_bounds_are_clipped_to_the_range():
    # mean 0.02, std 0.05 over 3 images: t(0.975, 2) = 4.303 -> half-width 0.124, the low bound would be -0.104
    low, high = ci95_bounds([0.02, 0.9], [0.05, 0.05], [3, 3], 0.0, 1.0)
    assert low[0] == 0.0 and high[0] == pytest.approx(0.02 + 4.302653 * 0.05 / np.sqrt(3), rel=1e-6)
    assert high[1] == 1.0 and low[1] == pytest.approx(0.9 - 4.302653 * 0.05 / np.sqrt(3), rel=1e-6)
    assert np.isnan(ci95_bounds([0.5], [0.1], [1], 0.0, 1.0)[0][0])  # one image: no interval


@pytest.fixture(scope="module")
def network():
    torch.manual_seed(0)
    model = nn.Sequential(layer.Conv2d(3, 8, 3, padding=1, step_mode="m"), neuron.LIFNode(step_mode="m"),
                          layer.Conv2d(8, 8, 3, padding=1, step_mode="m"), neuron.LIFNode(step_mode="m"),
                          layer.Conv2d(8, 3, 3, padding=1, step_mode="m"))
    images = [torch.rand(1, 3, 12, 12) * scale for scale in (0.2, 1.0, 3.0)]  # very different firing rates
    return model, images


def test_snn_deraining_constants_charge_every_spike(network):
    model, images = network
    result = snn_energy.profile(model, images, timesteps=4, constants="snn-deraining", accounting="paper")
    layers = result.layers
    spikes = layers.loc[layers["role"] == "neuron", "spikes"].sum()
    paper = result.summary.set_index("accounting").loc["paper"]
    expected = 12.5 * paper["mac_ops"] + 0.077 * paper["ac_ops"] + 3.7 * spikes
    assert spikes > 0 and paper["energy_pJ"] == pytest.approx(expected, rel=1e-12)
    assert layers["energy_paper_pJ"].sum() == pytest.approx(expected, rel=1e-12)
    fp32 = snn_energy.profile(model, images, timesteps=4).summary.set_index("accounting").loc["paper"]
    assert fp32["energy_pJ"] == pytest.approx(4.6 * fp32["mac_ops"] + 0.9 * fp32["ac_ops"], rel=1e-12)


def test_intervals_stay_in_range_and_the_target_rate_gives_the_target(network):
    model, images = network
    result = snn_energy.profile(model, images, timesteps=4, target_saving=0.3)
    layers = result.layers
    rates = layers.dropna(subset=["firing_rate_ci95_low"])
    assert len(rates) > 0 and (rates["firing_rate_ci95_low"] >= 0).all() and (rates["firing_rate_ci95_high"] <= 1).all()
    assert (layers["energy_ci95_low_pJ"].dropna() >= 0).all()
    summary = result.summary.set_index("accounting")
    assert ((summary["firing_rate_ci95_low"] >= 0) & (summary["firing_rate_ci95_high"] <= 1)).all()
    assert (summary["energy_ci95_low_pJ"] >= 0).all()
    assert (summary["target_saving"] == 0.3).all()
    # paper: the spike-fed layers' accumulates are E_AC x rate x MACs, so at the rate found E_SNN = 0.7 E_ANN
    paper = summary.loc["paper"]
    rows = result.records[(result.records["role"] == "synaptic") & (result.records["input_kind"] == "binary")]
    variable = 0.9 * (rows["input_nonzero"] / rows["input_elements"] * rows["macs"]).sum() / len(images)
    rate, measured = paper["rate_for_target_saving"], paper["spike_input_rate"]
    if np.isfinite(rate):
        at_rate = paper["energy_pJ"] - variable + variable * rate / measured
        assert at_rate == pytest.approx(0.7 * paper["energy_ann_T1_pJ"], rel=1e-9)
    else:
        lowest, highest = paper["energy_pJ"] - variable, paper["energy_pJ"] - variable + variable / measured
        assert not lowest <= 0.7 * paper["energy_ann_T1_pJ"] <= highest
    assert measured == pytest.approx(
        (rows["input_nonzero"] / rows["input_elements"] * rows["macs"]).sum() / rows["macs"].sum())
