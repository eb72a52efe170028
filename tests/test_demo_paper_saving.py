"""The demo SNN's paper saving, recounted independently with a few hooks on its convolutions (not the profiler)."""
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based import functional

import esdnet
import snn_energy

DEMO_SNN = Path(__file__).resolve().parents[1] / "esdnet" / "weights" / "demo_snn_small.pth"
E_MAC, E_AC = 4.6, 0.9


def paper_energy(model: nn.Module, x: torch.Tensor, spiking: bool) -> float:
    """E_MAC x MACs of the first convolution (encoding) and of every convolution outside the time loop (no
    multi-step mode: it runs once); E_AC x (nonzero fraction of its input) x MACs for the others; the ANN: all MACs."""
    energy, handles = [], []

    def hook(module, args, output):
        macs = output.numel() * module.weight[0].numel()  # output elements x (C_in / groups x kernel taps)
        in_loop = getattr(module, "step_mode", "s") == "m"
        if spiking and energy and in_loop:
            rate = int(torch.count_nonzero(args[0])) / args[0].numel()  # exact: a float32 mean rounds
            energy.append(E_AC * rate * macs)
        else:
            energy.append(E_MAC * macs)

    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    functional.reset_net(model)
    for handle in handles:
        handle.remove()
    return sum(energy)


@pytest.mark.slow
def test_paper_saving_equals_an_independent_count():
    if not DEMO_SNN.is_file():
        pytest.skip(f"{DEMO_SNN} is absent")
    snn = esdnet.load_model(DEMO_SNN, arch="snn")
    ann = esdnet.ESDNet(snn.config, arch="ann", single_pass=True).eval()
    torch.manual_seed(2)
    x = torch.rand(1, 3, 48, 32)
    expected = 1.0 - paper_energy(snn, x, spiking=True) / paper_energy(ann, x, spiking=False)
    result = snn_energy.profile(snn, x, single_pass_ann=ann)
    paper = result.summary.set_index("accounting").loc["paper"]
    assert paper["saving_vs_ann_T1"] == pytest.approx(expected, rel=1e-9)
    # the refinement block and output convolution: MACs in the SNN as in the twin
    layers = result.layers.set_index("layer")
    for name in ("refinement.sa.0", "output.0"):
        assert layers.loc[name, "charge_paper"] == "MAC: outside the time loop (run once per forward)"
        assert layers.loc[name, "energy_paper_pJ"] == pytest.approx(E_MAC * layers.loc[name, "macs"])
