"""The lemaire accounting: one layer's energy by hand, and the demo SNN and its twin against SpikingJelly."""
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based import functional, layer, neuron
from spikingjelly.activation_based.op_counter import LemaireEnergyConfig, estimate_lemaire_energy

import esdnet
import snn_energy

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_SNN = REPO_ROOT / "esdnet" / "weights" / "demo_snn_small.pth"


def _per_byte(capacity_bytes):
    """Lemaire's SRAM cost per byte, by hand: 10 pJ per 4-byte word at 8 KiB, linear from 0 below it."""
    assert capacity_bytes <= 8 * 1024
    return 10.0 / 4 * capacity_bytes / (8 * 1024)


def test_one_spike_fed_convolution_by_hand():
    """A 3x3 conv (2 -> 3 channels, bias) on binary spikes over T = 2, then a LIF neuron."""
    torch.manual_seed(0)
    model = nn.Sequential(layer.Conv2d(2, 3, 3, padding=1, bias=True, step_mode="m"),
                          neuron.LIFNode(step_mode="m"))
    x = (torch.rand(1, 2, 4, 4) < 0.3).float()
    spikes = 2 * int(x.count_nonzero())  # the same frame at both timesteps
    result = snn_energy.profile(model, x, timesteps=2)
    conv = result.layers.set_index("layer").loc["0"]
    out = 2 * 3 * 4 * 4  # output elements over T
    fan_out = spikes * 3 * 9  # each spike meets 3 output channels x 9 taps (stride 1: ceil(3/1)^2 = 9 too)
    compute = (fan_out + out) * 0.1  # accumulates and the bias additions, 0.1 pJ each
    addressing = fan_out * 0.1 + 2 * spikes * (3.1 + 0.1)  # two multiply-adds locate each spike's first output
    memory = (spikes * 4 * _per_byte(1000 * 4)  # spikes from the 1000-word FIFO
              + (fan_out + out) * 4 * _per_byte((2 * 3 * 9 + 3) * 4)  # weights and biases: 57 words
              + 2 * fan_out * 4 * _per_byte(3 * 4 * 4 * 4))  # membrane potentials of one timestep: read + write
    assert conv["lemaire_compute_pJ"] == pytest.approx(compute, rel=1e-12)
    assert conv["lemaire_addressing_pJ"] == pytest.approx(addressing, rel=1e-12)
    assert conv["lemaire_memory_pJ"] == pytest.approx(memory, rel=1e-12)
    assert conv["energy_lemaire_pJ"] == pytest.approx(compute + addressing + memory, rel=1e-12)
    assert conv["charge_lemaire"] == "Lemaire: event-driven (binary input)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = estimate_lemaire_energy(model, x.unsqueeze(0).repeat(2, 1, 1, 1, 1),
                                            config=LemaireEnergyConfig(strict=False))
    functional.reset_net(model)
    total = result.summary.set_index("accounting").loc["lemaire", "energy_pJ"]
    assert total == pytest.approx(reference.total_pj, rel=1e-9)


@pytest.fixture(scope="module")
def demo():
    if not DEMO_SNN.is_file():
        pytest.skip(f"{DEMO_SNN} is absent")
    snn = esdnet.load_model(DEMO_SNN, arch="snn")
    ann = esdnet.ESDNet(snn.config, arch="ann", single_pass=True).eval()
    torch.manual_seed(1)
    x = torch.rand(1, 3, 32, 32)
    return snn, ann, x, snn_energy.profile(snn, x, single_pass_ann=ann)


@pytest.mark.slow
def test_demo_totals_match_spikingjelly(demo):
    snn, ann, x, result = demo
    summary = result.summary.set_index("accounting").loc["lemaire"]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # SpikingJelly lists the layers its model leaves out
        references = {}
        for name, network in (("snn", snn), ("ann", ann)):
            references[name] = estimate_lemaire_energy(network, x, config=LemaireEnergyConfig(strict=False))
            functional.reset_net(network)
    assert summary["energy_pJ"] == pytest.approx(references["snn"].total_pj, rel=0.01)
    assert summary["energy_ann_T1_pJ"] == pytest.approx(references["ann"].total_pj, rel=0.01)
    breakdown = references["snn"].breakdown_pj
    for ours, theirs in (("lemaire_compute_pJ", "ops_pj"), ("lemaire_addressing_pJ", "addressing_pj"),
                         ("lemaire_memory_pJ", "memory_pj")):
        assert summary[ours] == pytest.approx(breakdown[theirs], rel=0.01)
    # the layer table breaks the same total down per layer, and per timestep
    assert result.layers["energy_lemaire_pJ"].sum() == pytest.approx(summary["energy_pJ"], rel=1e-9)
    assert result.timesteps["energy_lemaire_pJ"].sum() == pytest.approx(summary["energy_pJ"], rel=1e-9)
    assert summary["saving_vs_ann_T1"] < 0  # memory makes the SNN dearer than its single-pass twin here
