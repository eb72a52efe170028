"""Every operation counted or named, on the SNN families people use, against independent counts."""
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
from fvcore.nn import FlopCountAnalysis
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from spikingjelly.activation_based.op_counter import DispatchCounterMode, MACCounter, SynOpCounter

import snn_energy
from snn_energy import Profiler
from snn_energy.handlers import CallCounts, ELEMENTWISE

T, N, TOKENS, DIM, HEADS = 2, 2, 6, 8, 2


class SpikingSelfAttention(nn.Module):
    """Spikformer's SSA: q, k, v linears + LIF, ``q @ k^T * scale``, ``@ v``, a projection linear + LIF."""

    def __init__(self):
        super().__init__()
        lif = lambda: neuron.LIFNode(tau=2.0, v_threshold=0.5, surrogate_function=surrogate.ATan(), step_mode="m")
        self.q_linear, self.k_linear, self.v_linear, self.proj = (
            layer.Linear(DIM, DIM, bias=False, step_mode="m") for _ in range(4))
        self.q_lif, self.k_lif, self.v_lif, self.attn_lif = lif(), lif(), lif(), lif()

    def heads(self, x):  # [T, N, L, D] -> [T, N, H, L, D / H]
        return x.reshape(T, N, TOKENS, HEADS, DIM // HEADS).transpose(2, 3)

    def forward(self, x):  # x: [T, N, L, D]
        q, k, v = (self.heads(lif(linear(x))) for linear, lif in (
            (self.q_linear, self.q_lif), (self.k_linear, self.k_lif), (self.v_linear, self.v_lif)))
        attn = q @ k.transpose(-2, -1) * 0.125
        out = (attn @ v).transpose(2, 3).reshape(T, N, TOKENS, DIM)
        return self.attn_lif(self.proj(out))


def test_spiking_self_attention_matches_hand_counts():
    torch.manual_seed(0)
    block = SpikingSelfAttention().eval()
    x = torch.randn(T, N, TOKENS, DIM)
    spikes = {}
    for name in ("q_lif", "k_lif", "v_lif"):
        getattr(block, name).register_forward_hook(lambda m, a, out, name=name: spikes.__setitem__(name, out.clone()))
    with torch.no_grad():
        result = snn_energy.profile(block, x)
    layers = result.layers.set_index(["layer", "role"])
    linear_macs = T * N * TOKENS * DIM * DIM
    for name in ("q_linear", "k_linear", "v_linear", "proj"):
        assert layers.loc[(name, "synaptic"), "macs"] == linear_macs / N
    # the two products, counted under the block's own row: dense MACs of q k^T and attn v
    product_macs = 2 * T * N * HEADS * TOKENS * TOKENS * (DIM // HEADS)
    own = result.records[(result.records["layer"] == "(model)") & (result.records["role"] == "synaptic")]
    assert own["macs"].sum() == product_macs
    # q is binary: each spike meets the L keys; attn is real (scaled), v is binary: each spike meets L queries
    assert own["sops"].sum() == (spikes["q_lif"].sum() + spikes["v_lif"].sum()).item() * TOKENS
    total_macs = result.records.loc[result.records["role"] == "synaptic", "macs"].sum()
    assert total_macs == 4 * linear_macs + product_macs  # without the products it was 20 % short
    assert result.uncounted.empty


def test_matrix_product_family_macs_match_fvcore():
    class Products(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(6, 5))
            self.conv_w = nn.Parameter(torch.randn(4, 3, 3, 3))
            self.fc = nn.Linear(4, 4)  # a synaptic module, so that the profiler accepts the model

        def forward(self, x):  # x: [N, 3, 8, 8]
            y = nn.functional.conv2d(x, self.conv_w, padding=1)  # [N, 4, 8, 8]
            z = y.flatten(2).transpose(1, 2)  # [N, 64, 4]
            z = self.fc(z)
            a = torch.bmm(z, z.transpose(1, 2))  # [N, 64, 64]
            b = torch.einsum("nij,njk->nik", a, z)  # [N, 64, 4]
            return torch.matmul(b, torch.ones(4, 6)) @ self.w

    model = Products()
    x = torch.rand(2, 3, 8, 8)
    result = snn_energy.profile(model, x)
    ours = result.records.loc[result.records["role"] == "synaptic", "macs"].sum()
    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False)
    by_operator = analysis.by_operator()  # one flop per multiply-add of every product
    einsum = 2 * 64 * 64 * 4  # by hand: fvcore's einsum estimate (numpy's einsum_path) adds 2 here
    assert by_operator["einsum"] == einsum + 2
    assert ours == sum(by_operator[op] for op in ("conv", "linear", "bmm", "matmul")) + einsum
    assert set(result.records["input_kind"]) - {""} == {"real"}


def test_uncounted_operations_are_named_and_extra_handlers_count_them():
    class Gated(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.norm = nn.LayerNorm(4)

        def forward(self, x):
            return torch.softmax(self.norm(self.fc(x)), -1) * x

    model, x = Gated(), torch.rand(3, 4)
    with pytest.warns(UserWarning, match=r"not counted.*LayerNorm \(1 calls in 1 layer\).*softmax"):
        result = snn_energy.profile(model, x)
    assert result.uncounted.values.tolist() == [["LayerNorm", "norm", 1], ["softmax", "(model)", 1]]  # as they ran

    def layer_norm(module, inputs, output, time_major, measure):
        return CallCounts(ELEMENTWISE, samples=output.shape[0], mults=2 * output.numel(), adds=3 * output.numel())

    def softmax(args, kwargs, out, measure):
        return CallCounts(ELEMENTWISE, samples=out.shape[0], mults=out.numel(), adds=out.numel())

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        counted = snn_energy.profile(model, x, extra_handlers={nn.LayerNorm: layer_norm, "softmax": softmax})
    assert not [w for w in caught if "not counted" in str(w.message)]  # nothing left uncounted
    assert counted.uncounted.empty
    rows = counted.records.groupby("layer")[["mults", "adds"]].sum()  # over the 3 images
    assert rows.loc["norm"].tolist() == [24, 36]
    assert rows.loc["(model)"].tolist() == [12 + 12, 12]  # softmax, then the gate's multiplication


def test_a_plain_ann_gets_its_macs_and_no_savings():
    torchvision = pytest.importorskip("torchvision")
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.rand(1, 3, 32, 32)
    with pytest.warns(UserWarning, match="not spiking: .* not applicable"):
        result = snn_energy.profile(model, x)
    assert result.settings["spiking"] is False
    savings = [c for c in result.summary.columns if "saving" in c and c != "target_saving"]
    assert "saving_vs_ann_T1" in savings and "rate_for_target_saving" in savings
    assert result.summary[savings].isna().all().all()
    assert (result.summary["target_saving"] == 0.54).all()  # the asked-for target stays as given
    ours = result.records.loc[result.records["role"] == "synaptic", "macs"].sum()
    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False)
    by_operator = analysis.by_operator()
    assert ours == by_operator["conv"] + by_operator["linear"]


# ---- SpikingJelly's model zoo against its own op_counter ------------------------------------------------------

def _spikingjelly_counts(model, x):
    counters = [MACCounter(), SynOpCounter()]
    with torch.no_grad(), DispatchCounterMode(counters):
        model(x)
    functional.reset_net(model)
    return [counter.get_total() for counter in counters]


@pytest.mark.parametrize("name", ["sew_resnet18", "spiking_vgg11_bn"])
def test_spikingjelly_models_match_op_counter(name):
    from spikingjelly.activation_based.model import sew_resnet, spiking_vgg
    torch.manual_seed(0)
    build = {"sew_resnet18": lambda: sew_resnet.sew_resnet18(num_classes=10, cnf="ADD", spiking_neuron=neuron.IFNode,
                                                               v_threshold=0.3, surrogate_function=surrogate.ATan()),
             "spiking_vgg11_bn": lambda: spiking_vgg.spiking_vgg11_bn(num_classes=10, spiking_neuron=neuron.IFNode,
                                                                       v_threshold=0.3,
                                                                       surrogate_function=surrogate.ATan())}[name]
    model = build().eval()
    functional.set_step_mode(model, "m")
    x = torch.rand(T, 1, 3, 32, 32)
    sj_macs, sj_synops = _spikingjelly_counts(model, x)
    with Profiler(model) as profiler, torch.no_grad():
        model(x)
    functional.reset_net(model)
    records = profiler.records()
    synaptic = records[records["role"] == "synaptic"]
    binary = synaptic[synaptic["input_kind"] == "binary"]
    assert binary["sops"].sum() > 0
    # SynOpCounter: the exact spike x weight products of every synaptic op whose whole input is binary
    assert binary["sops"].sum() == sj_synops
    # MACCounter: the dense MACs of the others (real- or integer-valued input) plus one per affine BN element
    normalization = records.loc[records["role"] == "normalization", "mults"].sum()
    assert synaptic.loc[synaptic["input_kind"] != "binary", "macs"].sum() + normalization == sj_macs


# ---- snnTorch and Norse, time loop outside the model ----------------------------------------------------------

def _hand_spikes(model, x, steps, neurons, reset):
    """Spikes per neuron layer and timestep, counted by hooks on a plain run with the loop written out."""
    counted = {name: [] for name in neurons}
    handles = [getattr(model, name).register_forward_hook(
        lambda m, a, out, name=name: counted[name].append(float((out[0] if isinstance(out, tuple) else out).sum())))
        for name in neurons]
    with torch.no_grad():
        for _ in range(steps):
            model(x)
    reset(model)
    for handle in handles:
        handle.remove()
    return counted


def _check_rates(result, counted, sizes, images):
    steps = result.timesteps.set_index(["layer", "timestep"])
    for name, per_step in counted.items():
        for t, spikes in enumerate(per_step):
            assert steps.loc[(name, t), "firing_rate"] == pytest.approx(spikes / (sizes[name] * images), abs=1e-12)
        assert sum(per_step) > 0


def test_snntorch_network_with_the_time_loop_outside():
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), snn.Leaky(beta=0.8, threshold=0.3, init_hidden=True),
                          nn.Linear(16, 4), snn.Leaky(beta=0.8, threshold=0.3, init_hidden=True)).eval()
    x = torch.rand(3, 10)
    reset = snn_energy.api.reset_states
    counted = _hand_spikes(model, x, 4, ["1", "3"], reset)
    result = snn_energy.profile(model, x, timesteps=4)
    assert result.settings["step_mode"] == "s" and result.settings["timesteps"] == 4
    _check_rates(result, counted, {"1": 16, "3": 4}, 3)
    layers = result.layers.set_index("layer")
    assert layers.loc["2", "input_kind"] == "binary" and layers.loc["0", "input_kind"] == "real"
    assert layers.loc["2", "sops"] * 3 == pytest.approx(sum(counted["1"]) * 4)  # each spike meets 4 weights
    assert result.uncounted.empty


class NorseNet(nn.Module):
    """Linear -> Norse LIFCell -> Linear -> LIFCell, the states kept between calls and reset by ``reset()``."""

    def __init__(self):
        super().__init__()
        from norse.torch import LIFCell, LIFParameters
        parameters = LIFParameters(v_th=torch.tensor(0.2))
        self.fc1, self.lif1 = nn.Linear(10, 16), LIFCell(parameters)
        self.fc2, self.lif2 = nn.Linear(16, 4), LIFCell(parameters)
        self.states = [None, None]

    def reset(self):
        self.states = [None, None]

    def forward(self, x):
        z, self.states[0] = self.lif1(self.fc1(x), self.states[0])
        z, self.states[1] = self.lif2(self.fc2(z), self.states[1])
        return z


def test_norse_network_with_the_time_loop_outside():
    pytest.importorskip("norse")
    torch.manual_seed(0)
    model = NorseNet().eval()
    x = torch.rand(3, 10) * 4
    counted = _hand_spikes(model, x, 4, ["lif1", "lif2"], lambda m: m.reset())
    result = snn_energy.profile(model, x, timesteps=4, step_mode="s")
    _check_rates(result, counted, {"lif1": 16, "lif2": 4}, 3)
    assert set(result.layers.loc[result.layers["role"] == "neuron", "layer"]) == {"lif1", "lif2"}
    assert math.isfinite(result.summary["saving_vs_ann_T1"].iloc[0])
    assert np.isclose(result.layers.set_index("layer").loc["fc2", "sops"] * 3, sum(counted["lif1"]) * 4)
