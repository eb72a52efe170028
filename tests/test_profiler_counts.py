"""Counts against hand computations and brute-force loops: spikes, dense MACs, exact synaptic operations."""
import copy
import itertools
import math

import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based import functional, layer, neuron

from snn_energy import Profiler
from snn_energy.handlers import conv_counts, conv_transpose_counts, linear_counts
from snn_energy import tensor_stats
from snn_energy.deferred import DeferredMeasurements
from snn_energy.tensor_stats import BINARY, INTEGER, REAL, describe


def _rows(records, layer_name):
    return records[records["layer"] == layer_name].sort_values(["image", "timestep"])


# ---- a tiny network with known spikes, counted by hand -----------------------------------------------------

class SpikesThenConv(nn.Module):
    """IF neurons (threshold 1, multi-step) fed a fixed current, then a 3x3 conv (padding 1) and a linear layer."""

    def __init__(self):
        super().__init__()
        self.sn = neuron.IFNode(v_threshold=1.0, v_reset=0.0, step_mode="m")
        self.conv = layer.Conv2d(1, 2, 3, padding=1, bias=False, step_mode="m")
        self.flat = layer.Flatten(step_mode="m")
        self.fc = layer.Linear(2 * 4 * 4, 3, bias=True, step_mode="m")

    def forward(self, x):
        return self.fc(self.flat(self.conv(self.sn(x))))


def test_hand_counted_spikes_macs_and_synaptic_operations():
    # One image, 1 x 4 x 4 neurons, T = 2. Current 1.0 fires at both steps, 0.5 at the second step only.
    current = torch.zeros(1, 1, 4, 4)
    current[0, 0, 0, 0] = 1.0  # corner: fires at t=0 and t=1
    current[0, 0, 0, 2] = 1.0  # top edge: fires at t=0 and t=1
    current[0, 0, 2, 1] = 0.5  # interior: fires at t=1 only
    x = current.unsqueeze(0).repeat(2, 1, 1, 1, 1)
    model = SpikesThenConv().eval()
    with Profiler(model) as profiler, torch.no_grad():
        model(x)
        functional.reset_net(model)
    records = profiler.records()

    sn = _rows(records, "sn")
    assert sn["neurons"].tolist() == [16, 16]
    assert sn["spikes"].tolist() == [2, 3]
    # A 3x3 kernel with padding 1 on 4x4: a corner input is read by 4 output positions, an edge one by 6,
    # an interior one by 9; each product meets C_out = 2 weights.
    conv = _rows(records, "conv")
    assert conv["input_kind"].tolist() == ["binary", "binary"]
    assert conv["sops"].tolist() == [(4 + 6) * 2, (4 + 6 + 9) * 2]
    assert conv["macs"].tolist() == [3 * 3 * 1 * 2 * 4 * 4] * 2
    assert conv["input_nonzero"].tolist() == [2, 3]
    assert conv["input_elements"].tolist() == [16, 16]
    # The linear layer sees the conv's real-valued output: dense MACs, no exact accumulates, bias additions.
    fc = _rows(records, "fc")
    assert fc["input_kind"].tolist() == ["real", "real"]
    assert fc["macs"].tolist() == [32 * 3] * 2
    assert fc["sops"].tolist() == [0, 0]
    assert fc["adds"].tolist() == [3, 3]
    extremes = profiler.neuron_extremes()
    # over the 2 timesteps: 13 neurons never fire, the two fed 1.0 fire at every timestep
    assert extremes[["layer", "neurons", "dead_neurons", "saturated_neurons"]].values.tolist() == [["sn", 16, 13, 2]]


def test_linear_counts_nonzero_inputs_times_outputs():
    fc = nn.Linear(5, 4)
    x = torch.tensor([[1.0, 0, 0, 1, 1], [0, 0, 0, 0, 1]])
    counts = linear_counts(fc, (x,), fc(x), False).resolved()
    assert counts.input_kind == BINARY
    assert counts.sops.tolist() == [12, 4]
    assert counts.macs == 2 * 5 * 4 and counts.adds == 2 * 4
    integer = torch.tensor([[2.0, 0, -1, 0, 0]])
    counts = linear_counts(fc, (integer,), fc(integer), False).resolved()
    assert counts.input_kind == INTEGER and counts.sops.tolist() == [(2 + 1) * 4]


# ---- the exact count against a brute-force loop over every output position and kernel tap ----------------

def _padded_source(j, length, mode):
    if 0 <= j < length:
        return j
    if mode == "zeros":
        return None
    if mode == "reflect":
        return -j if j < 0 else 2 * (length - 1) - j
    if mode == "replicate":
        return min(max(j, 0), length - 1)
    return j % length


def _brute_force_conv_operations(conv, x):
    """Loop over outputs, kernel taps and input channels; count |input| x (C_out / groups) per product."""
    batch, channels, *size = x.shape
    out_size = conv(x).shape[2:]
    per_group_in, per_group_out = channels // conv.groups, conv.out_channels // conv.groups
    total = [0.0] * batch
    for b, group in itertools.product(range(batch), range(conv.groups)):
        for out in itertools.product(*map(range, out_size)):
            for tap in itertools.product(*map(range, conv.kernel_size)):
                index = []
                for d in range(len(size)):
                    j = out[d] * conv.stride[d] - conv.padding[d] + tap[d] * conv.dilation[d]
                    index.append(_padded_source(j, size[d], conv.padding_mode))
                if None in index:
                    continue
                for c in range(group * per_group_in, (group + 1) * per_group_in):
                    total[b] += abs(float(x[(b, c, *index)])) * per_group_out
    return total


CONVS = [
    nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2, bias=False),
    nn.Conv2d(2, 3, (3, 2), stride=(1, 2), padding=(2, 1), padding_mode="reflect"),
    nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular"),
    nn.Conv2d(2, 2, 3, padding=2, padding_mode="replicate"),
    nn.Conv1d(3, 5, 4, stride=3, padding=2),
    nn.Conv3d(2, 3, 3, stride=(1, 2, 2), padding=1),
]


@pytest.mark.parametrize("conv", CONVS, ids=lambda c: f"{type(c).__name__}-{c.padding_mode}-{c.stride}")
@pytest.mark.parametrize("values", ["binary", "integer"])
def test_exact_synaptic_operations_match_brute_force(conv, values):
    torch.manual_seed(0)
    shape = (2, conv.in_channels, *([6] * len(conv.kernel_size)))
    x = (torch.rand(shape) < 0.3).float() if values == "binary" else torch.randint(-2, 3, shape).float()
    counts = conv_counts(conv, (x,), conv(x), False).resolved()
    assert counts.input_kind == values
    assert counts.sops.tolist() == _brute_force_conv_operations(conv, x)
    assert counts.macs == conv(x).numel() * (conv.in_channels // conv.groups) * math.prod(conv.kernel_size)


def test_exact_operations_with_same_padding_equal_an_all_ones_convolution():
    # Independent of the fan-out code: the conv itself with all-ones weights sums the inputs under every window.
    conv = nn.Conv2d(4, 6, (4, 3), padding="same", dilation=(1, 2), groups=2, bias=False).double()
    x = (torch.rand(3, 4, 9, 8, dtype=torch.float64) < 0.4).double()
    ones = copy.deepcopy(conv)
    nn.init.ones_(ones.weight)
    with torch.no_grad():
        expected = ones(x).sum((1, 2, 3))  # each output channel sums its group's inputs under the window
    counts = conv_counts(conv, (x,), conv(x), False).resolved()
    assert counts.sops.tolist() == expected.tolist()


def _brute_force_transposed(conv, x):
    batch, channels, *size = x.shape
    out_size = conv(x).shape[2:]
    total = [0.0] * batch
    for b, c in itertools.product(range(batch), range(channels)):
        for position in itertools.product(*map(range, size)):
            for tap in itertools.product(*map(range, conv.kernel_size)):
                inside = all(
                    0 <= position[d] * conv.stride[d] - conv.padding[d] + tap[d] * conv.dilation[d] < out_size[d]
                    for d in range(len(size)))
                if inside:
                    total[b] += float(x[(b, c, *position)]) * (conv.out_channels // conv.groups)
    return total


@pytest.mark.parametrize("conv", [
    nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
    nn.ConvTranspose1d(3, 2, 4, stride=3, padding=2, dilation=2),
])
def test_transposed_convolution_counts_only_products_inside_the_output(conv):
    torch.manual_seed(1)
    x = (torch.rand(2, conv.in_channels, *([5] * len(conv.kernel_size))) < 0.4).float()
    counts = conv_transpose_counts(conv, (x,), conv(x), False).resolved()
    assert counts.sops.tolist() == _brute_force_transposed(conv, x)
    assert counts.macs == x.numel() * (conv.out_channels // conv.groups) * math.prod(conv.kernel_size)


# ---- kinds of values ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("steps", [None, 4], ids=["rows", "timesteps"])
def test_chunked_measurement_equals_the_whole_tensor_and_hand_counts(monkeypatch, steps):
    torch.manual_seed(0)
    x = (torch.rand(4, 3, 5000) < 0.3).float() * torch.randint(1, 3, (4, 3, 5000)).float()  # whole, 0 to 2
    x[1, 2, 7] = -0.5
    weights = torch.randint(1, 9, (5000,)).float()
    whole = tensor_stats.measure(x, 12, weights, 5000, accumulates=True, steps=steps)
    monkeypatch.setattr(tensor_stats, "_CHUNK_ELEMENTS", 1000)  # 2 rows or 83 columns per chunk
    monkeypatch.setattr(tensor_stats, "_SMALL_ELEMENTS", 10)
    chunked = tensor_stats.measure(x, 12, weights, 5000, accumulates=True, steps=steps)
    rows = x.reshape(12, -1)
    assert chunked[0].bounds.tolist() == whole[0].bounds.tolist() == [-0.5, 2.0, 0.5]
    assert chunked[0].nonzero.tolist() == whole[0].nonzero.tolist() == (rows != 0).sum(1).tolist()
    assert chunked[1].tolist() == whole[1].tolist() == (rows.abs() @ weights).tolist()
    if steps:
        fired = (x != 0).sum(0)  # [images, neurons]: timesteps each neuron fired
        assert chunked[0].ever.tolist() == whole[0].ever.tolist() == (fired > 0).sum(1).tolist()
        assert chunked[0].always.tolist() == whole[0].always.tolist() == (fired == 4).sum(1).tolist()


def test_small_tensors_measured_together_equal_one_by_one():
    torch.manual_seed(0)
    weights = torch.randint(1, 9, (6,)).float()
    cases = [  # (tensor, rows, weights, width, scale)
        ((torch.rand(4, 12) < 0.3).float(), 4, weights, 6, 16),
        (torch.randint(-3, 4, (2, 30)).float(), 2, None, None, 1),
        (torch.randn(3, 6), 3, weights, 6, 0.5),
        (torch.tensor([[float("nan"), 1.0], [0.0, 2.0]]), 2, None, None, 1),
        (torch.tensor([[True, False, True]]), 1, None, None, 3),
        (torch.full((2, 3), 0.25), 1, None, None, 1),
    ]
    deferred = DeferredMeasurements()
    kept = [deferred.measure(x, rows, w, width, scale) for x, rows, w, width, scale in cases]
    deferred.fill()
    for (x, rows, w, width, scale), (stats, sums) in zip(cases, kept):
        expected, expected_sums = tensor_stats.measure(x, rows, w, width, accumulates=True, scale=scale)
        torch.testing.assert_close(stats.bounds, expected.bounds.double(), rtol=0, atol=0, equal_nan=True)
        assert stats.nonzero.tolist() == expected.nonzero.tolist()
        if expected.bounds[2] == 0:  # whole numbers: exact sums (real inputs' are not used, and float32 there)
            assert sums.tolist() == expected_sums.tolist()
        else:
            torch.testing.assert_close(sums, expected_sums, rtol=1e-6, atol=0, equal_nan=True)
    by_hand = (cases[0][0].reshape(4, 2, 6) * weights).sum((1, 2)) * 16
    assert kept[0][1].tolist() == by_hand.tolist()


@pytest.mark.parametrize("tensor, kind", [
    (torch.tensor([0.0, 1.0, 1.0]), BINARY),
    (torch.zeros(5000), BINARY),
    (torch.tensor([True, False]), BINARY),
    (torch.tensor([0.0, 2.0, 1.0]), INTEGER),
    (torch.tensor([-1.0, 0.0, 1.0]), INTEGER),  # ternary spikes are not binary
    (torch.tensor([0.0, 0.5]), REAL),  # graded spikes are not binary
    (torch.tensor([0.0, 1.0 - 2 ** -24]), REAL),
    (torch.tensor([1e-40, 0.0]), REAL),
    (torch.tensor([float("nan"), 1.0]), REAL),
    (torch.cat([torch.zeros(8192), torch.tensor([0.25])]), REAL),  # beyond the first-elements sample
    (torch.full((6,), 0.0021), REAL),  # every fractional part equal (a pooled attention value)
    (torch.full((6,), -2.5), REAL),
    (torch.tensor([inf := float("inf"), 0.0]), REAL),
    (torch.tensor([3.0, -inf]), REAL),
])
def test_value_kind_is_exact(tensor, kind):
    found, nonzero = describe(tensor.reshape(1, -1))
    assert found == kind
    if kind != REAL or not torch.isnan(tensor).any():
        assert nonzero.tolist() == [float((tensor != 0).sum())]


# ---- layers inside SeqToANNContainer, split by timestep --------------------------------------------------------

def test_plain_layers_in_seq_to_ann_container_are_split_by_timestep():
    conv = nn.Conv2d(1, 1, 1, bias=False)
    model = nn.Sequential(neuron.IFNode(v_threshold=1.0, step_mode="m"), layer.SeqToANNContainer(conv))
    x = torch.zeros(3, 2, 1, 2, 2)  # T = 3, N = 2
    x[0, 0, 0, 0, 0] = 1.0  # image 0 fires one spike at t=0
    x[2, 1] = 1.0  # image 1 fires 4 spikes at t=2
    with Profiler(model) as profiler, torch.no_grad():
        model(x)
        functional.reset_net(model)
    rows = profiler.records()
    rows = rows[rows["layer"] == "1.0"].set_index(["image", "timestep"])["sops"]
    assert rows.to_dict() == {(0, 0): 1, (0, 1): 0, (0, 2): 0, (1, 0): 0, (1, 1): 0, (1, 2): 4}
