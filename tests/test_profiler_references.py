"""Counts against independent tools: fvcore's FlopCountAnalysis and SpikingJelly's op_counter."""
import torch
import torch.nn as nn
from fvcore.nn import FlopCountAnalysis
from spikingjelly.activation_based import functional, layer, neuron
from spikingjelly.activation_based.op_counter import ACCounter, DispatchCounterMode, MACCounter, SynOpCounter

import esdnet
from snn_energy import Profiler


def _records(model, x):
    with Profiler(model) as profiler, torch.no_grad():
        model(x)
        functional.reset_net(model)
    return profiler.records()


def _fvcore_by_operator(model, x):
    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with torch.no_grad():
        return analysis.by_operator()


def test_dense_macs_of_the_ann_twin_match_fvcore():
    torch.manual_seed(0)
    ann = esdnet.build_model("small", arch="ann").eval()
    x = torch.rand(2, 3, 16, 16)
    records = _records(ann, x)
    ours = records.loc[records["role"] == "synaptic", "macs"].sum()  # per-image rows, summed over the 2 images
    # fvcore counts one flop per multiply-add of every convolution (bias ignored), for the whole batch
    fvcore_conv = _fvcore_by_operator(ann, x)["conv"]
    assert ours == fvcore_conv


def test_linear_and_transposed_conv_macs_match_fvcore():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.ReLU(), nn.ConvTranspose2d(4, 2, 3, stride=2),
                          nn.Flatten(), nn.Linear(2 * 17 * 17, 5))
    x = torch.rand(3, 3, 16, 16)
    records = _records(model, x)
    by_layer = records.groupby("layer")["macs"].sum()
    fvcore = _fvcore_by_operator(model, x)
    assert by_layer["0"] + by_layer["2"] == fvcore["conv"]
    assert by_layer["4"] == fvcore["linear"]


def _spikingjelly_counts(model, x, ignore=()):
    counters = MACCounter(), ACCounter(extra_ignore_modules=list(ignore)), SynOpCounter()
    with torch.no_grad(), DispatchCounterMode(list(counters)):
        model(x)
        functional.reset_net(model)
    return [counter.get_total() for counter in counters]


def test_esdnet_synaptic_operations_and_macs_match_spikingjelly_op_counter():
    torch.manual_seed(0)
    snn = esdnet.build_model("small").eval()
    x = torch.rand(1, 3, 16, 16)
    records = _records(snn, x)
    sj_macs, _, sj_synops = _spikingjelly_counts(snn, x)
    synaptic = records[records["role"] == "synaptic"]
    assert synaptic["sops"].sum() > 0
    # SynOpCounter counts a convolution's spike x weight products when its whole input is binary, with the
    # all-ones-kernel rule (padding included): the same definition as our exact count.
    assert synaptic["sops"].sum() == sj_synops
    # MACCounter counts convolutions whose input is not binary, plus one MAC per element of each affine batch
    # norm (as we do in ``mults`` of normalization rows). ESDNet has no integer-valued synaptic input, so its
    # non-binary inputs are exactly our real-valued ones.
    assert set(synaptic["input_kind"]) == {"binary", "real"}
    normalization = records.loc[records["role"] == "normalization", "mults"].sum()
    assert synaptic["real_input_macs"].sum() + normalization == sj_macs


class TinySNN(nn.Module):
    """conv (real input) -> BN -> IF -> conv stride 2 (spikes) -> IF -> flatten -> linear (spikes), multi-step."""

    def __init__(self):
        super().__init__()
        self.conv1 = layer.Conv2d(3, 4, 3, padding=1, bias=False, step_mode="m")
        self.bn = layer.BatchNorm2d(4, step_mode="m")
        self.sn1 = neuron.IFNode(v_threshold=0.3, step_mode="m")
        self.conv2 = layer.Conv2d(4, 4, 3, stride=2, padding=1, bias=False, step_mode="m")
        self.sn2 = neuron.IFNode(v_threshold=0.3, step_mode="m")
        self.flat = layer.Flatten(step_mode="m")
        self.fc = layer.Linear(4 * 4 * 4, 10, step_mode="m")

    def forward(self, x):
        return self.fc(self.flat(self.sn2(self.conv2(self.sn1(self.bn(self.conv1(x)))))))


def test_tiny_snn_accumulates_and_macs_match_spikingjelly_op_counter():
    torch.manual_seed(3)
    model = TinySNN().eval()
    x = torch.rand(4, 2, 3, 8, 8)  # T = 4, N = 2
    records = _records(model, x)
    sj_macs, sj_acs, sj_synops = _spikingjelly_counts(model, x, ignore=[neuron.IFNode])
    by_layer = records.groupby("layer")[["macs", "real_input_macs", "sops", "mults", "adds"]].sum()
    assert by_layer.loc["conv2", "sops"] > 0 and by_layer.loc["fc", "sops"] > 0
    assert by_layer["sops"].sum() == sj_synops
    # MACs: the encoding conv sees the real-valued image; the BN's affine transform is one MAC per element.
    assert by_layer.loc["conv1", "real_input_macs"] + by_layer.loc["bn", "mults"] == sj_macs
    # ACCounter (neuron internals ignored) = spike-driven products + batch norm's additions in eval mode:
    # x - mean for every element and var + eps for every channel, per call (one call on T * N samples).
    # We fold those into the BN's one MAC per element instead, and count the linear layer's bias additions
    # (fc adds), which ACCounter leaves out.
    bn_additions = by_layer.loc["bn", "mults"] + 4
    assert sj_acs == sj_synops + bn_additions
    assert by_layer.loc["fc", "adds"] == 4 * 2 * 10
