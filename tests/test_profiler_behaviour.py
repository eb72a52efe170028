"""The profiler leaves the model alone, cleans up, splits time and images correctly, and refuses bad use."""
import copy

import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based import functional, layer, monitor, neuron, surrogate
from spikingjelly.activation_based.model import sew_resnet

import esdnet
import snn_energy
from snn_energy import ModelInputError, NoSynapticLayerError, Profiler, ProfilerStateError


def _sew_resnet():
    torch.manual_seed(0)
    net = sew_resnet.sew_resnet18(num_classes=10, cnf="ADD", spiking_neuron=neuron.IFNode, v_threshold=0.2,
                                  surrogate_function=surrogate.ATan(), detach_reset=True)
    functional.set_step_mode(net, "m")
    return net, torch.rand(2, 2, 3, 32, 32)  # [T, N, C, H, W]


def _esdnet():
    torch.manual_seed(0)
    return esdnet.build_model("small"), torch.rand(2, 3, 16, 16)


def _no_hooks_left(model):
    from torch.nn.modules import module as torch_module
    return all(not m._forward_hooks and not m._forward_pre_hooks and "reset" not in m.__dict__
               for m in model.modules()) and not torch_module._global_forward_hooks \
        and not torch_module._global_forward_pre_hooks


@pytest.mark.parametrize("build", [_esdnet, _sew_resnet], ids=["esdnet", "sew_resnet18"])
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_outputs_and_gradients_are_bit_identical_under_the_profiler(build, train, grad):
    plain, x = build()
    profiled = copy.deepcopy(plain)
    plain.train(train), profiled.train(train)
    with torch.set_grad_enabled(grad):
        expected = plain(x)
        functional.reset_net(plain)
        with Profiler(profiled) as profiler:
            got = profiled(x)
            functional.reset_net(profiled)
            if grad:
                got.sum().backward()
        if grad:
            expected.sum().backward()
    assert torch.equal(got, expected)
    assert len(profiler.records()) > 0
    for (name, a), (_, b) in zip(plain.named_parameters(), profiled.named_parameters()):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            assert torch.equal(a.grad, b.grad), name
    for (name, a), (_, b) in zip(plain.named_buffers(), profiled.named_buffers()):
        assert torch.equal(a, b), name  # batch-norm running statistics updated identically in train mode
    assert _no_hooks_left(profiled)


def test_hooks_are_removed_when_the_block_raises():
    model, x = _esdnet()
    with pytest.raises(RuntimeError, match="boom"):
        with Profiler(model):
            model(x)
            raise RuntimeError("boom")
    assert _no_hooks_left(model)
    with Profiler(model) as again:  # the model is free for another profiler
        model(x)
    assert again.images == 2


def test_profiler_entered_twice_or_stacked_on_the_same_model_is_refused():
    model, x = _esdnet()
    profiler = Profiler(model)
    with profiler:
        with pytest.raises(ProfilerStateError, match="already active"):
            profiler.__enter__()
        with pytest.raises(ProfilerStateError, match="already profiled by another Profiler"):
            Profiler(model).__enter__()
        with pytest.raises(ProfilerStateError, match="already profiled"):
            Profiler(model.encoder_level1).__enter__()
        model(x)
    assert profiler.images == 2
    assert _no_hooks_left(model)


def test_model_without_synaptic_layer_is_refused():
    model = nn.Sequential(nn.Identity(), neuron.IFNode())
    with pytest.raises(NoSynapticLayerError, match="Sequential has no synaptic layer"):
        Profiler(model).__enter__()
    with pytest.raises(NoSynapticLayerError):
        snn_energy.profile(model, torch.rand(2, 4))
    assert _no_hooks_left(model)


def test_input_of_the_wrong_rank_gets_a_clear_error():
    model, _ = _esdnet()
    with pytest.raises(ModelInputError, match=r"ESDNet failed on a batch of shape \[3, 16, 16\] \(rank 3\)"):
        snn_energy.profile(model, torch.rand(3, 16, 16))
    net = nn.Sequential(layer.Conv2d(3, 4, 3, step_mode="m"), neuron.IFNode(step_mode="m"))
    with pytest.raises(ModelInputError, match=r"rank 4\) in layer '0' \(Conv2d\).*takes rank-5 tensors"):
        snn_energy.profile(net, torch.rand(2, 3, 8, 8))
    assert _no_hooks_left(model) and _no_hooks_left(net)


def test_unknown_layer_names_and_options_are_refused():
    model, x = _esdnet()
    with pytest.raises(ValueError, match="name no module of ESDNet: \\['nope'\\]"):
        Profiler(model, spike_maps=["nope"])
    with pytest.raises(ValueError, match="step_mode must be one of"):
        Profiler(model, step_mode="x")
    with pytest.raises(ValueError, match="accounting must be one of"):
        snn_energy.profile(model, x, accounting="loose")
    with pytest.raises(ValueError, match="timesteps must be a positive integer"):
        snn_energy.profile(model, x, timesteps=0)
    with pytest.raises(ValueError, match="no batch to profile"):
        snn_energy.profile(model, [])


class SmallSNN(nn.Module):
    """Single-step SpikingJelly layers; ``ann=True`` gives its ANN twin (ReLU for the neurons)."""

    def __init__(self, ann: bool = False):
        super().__init__()
        self.conv1 = layer.Conv2d(2, 4, 3, padding=1)
        self.sn1 = nn.ReLU() if ann else neuron.LIFNode(v_threshold=0.1)
        self.pool = layer.MaxPool2d(2)
        self.conv2 = layer.Conv2d(4, 4, 3, padding=1)
        self.sn2 = nn.ReLU() if ann else neuron.IFNode(v_threshold=0.1)

    def forward(self, x):
        return self.sn2(self.conv2(self.pool(self.sn1(self.conv1(x)))))


def test_single_step_and_multi_step_runs_give_the_same_rows():
    torch.manual_seed(0)
    single = SmallSNN().eval()
    multi = copy.deepcopy(single)
    functional.set_step_mode(multi, "m")
    batches = [torch.rand(2, 2, 8, 8), torch.rand(1, 2, 8, 8)]
    by_step = snn_energy.profile(single, batches, timesteps=3)
    by_sequence = snn_energy.profile(multi, batches, timesteps=3)
    assert by_step.settings["step_mode"] == "s" and by_sequence.settings["step_mode"] == "m"
    keys = ["image", "layer", "timestep"]
    columns = ["macs", "sops", "spikes", "neurons", "input_nonzero", "adds"]
    a = by_step.records.set_index(keys).sort_index()[columns]
    b = by_sequence.records.set_index(keys).sort_index()[columns]
    assert a.index.get_level_values("timestep").unique().tolist() == [0, 1, 2]
    assert a.index.get_level_values("image").unique().tolist() == [0, 1, 2]
    assert a["spikes"].sum() > 0
    assert a.equals(b)
    assert by_step.records.loc[by_step.records["layer"] == "conv1", "input_repeated"].all()
    pd_extremes = by_step.neuron_extremes.sort_values(["image", "layer"]).reset_index(drop=True)
    assert pd_extremes.equals(by_sequence.neuron_extremes.sort_values(["image", "layer"]).reset_index(drop=True))


def test_single_step_model_with_its_ann_twins():
    torch.manual_seed(0)
    snn, ann = SmallSNN().eval(), SmallSNN(ann=True).eval()
    ann.load_state_dict(snn.state_dict())
    batches = [torch.rand(2, 2, 8, 8), torch.rand(1, 2, 8, 8)]
    result = snn_energy.profile(snn, batches, timesteps=3, ann_twin=ann, single_pass_ann=copy.deepcopy(ann))
    derived = snn_energy.profile(snn, batches, timesteps=3)
    measured, assumed = (r.summary.set_index("accounting").loc["paper"] for r in (result, derived))
    assert measured["ann_same_T_source"] == "twin" and measured["ann_T1_source"] == "twin"
    # dense MACs of conv1 and conv2 (3x3, padding 1) per image and timestep: 2*4*9*64 + 4*4*9*16
    per_pass = 2 * 4 * 9 * 64 + 4 * 4 * 9 * 16
    assert measured["energy_ann_same_T_pJ"] == pytest.approx(4.6 * 3 * per_pass)
    assert measured["energy_ann_T1_pJ"] == pytest.approx(4.6 * per_pass)
    assert assumed["energy_ann_same_T_pJ"] == pytest.approx(measured["energy_ann_same_T_pJ"])
    assert assumed["energy_ann_T1_pJ"] == pytest.approx(measured["energy_ann_T1_pJ"])
    assert result.images["image"].tolist() == [0, 1, 2]


def test_a_batch_and_its_images_one_by_one_give_the_same_per_image_rows():
    model, _ = _esdnet()
    model.eval()
    images = torch.rand(3, 3, 16, 16)
    together = snn_energy.profile(model, images).records
    apart = snn_energy.profile(model, [images[i:i + 1] for i in range(3)]).records
    keys = ["image", "layer", "role", "timestep"]
    columns = ["macs", "sops", "spikes", "input_nonzero", "mults", "adds"]
    a, b = together.set_index(keys).sort_index()[columns], apart.set_index(keys).sort_index()[columns]
    assert a.index.equals(b.index)
    assert (a - b).abs().max().max() <= 1e-9 * a.abs().max().max()


def test_spike_maps_are_kept_only_when_asked_and_match_spikingjelly_monitor():
    net, x = _sew_resnet()
    net.eval()
    watch = monitor.OutputMonitor(net, neuron.IFNode)
    with torch.no_grad():
        result = snn_energy.profile(net, x[0], timesteps=2, spike_maps=["sn1", "layer1.0.sn2"])
    watched = dict(zip(watch.monitored_layers, watch.records))
    watch.remove_hooks()
    assert sorted(result.spike_maps) == ["layer1.0.sn2", "sn1"]
    for name, maps in result.spike_maps.items():
        assert len(maps) == 2  # one per image
        for image, spikes in enumerate(maps):
            assert spikes.dtype == torch.bool and spikes.shape == watched[name][:, image].shape
            assert torch.equal(spikes, watched[name][:, image].bool())
    assert snn_energy.profile(net, x[0], timesteps=2).spike_maps == {}
    # a cap keeps the first images only, across batches: the same tensors as the uncapped run
    with torch.no_grad():
        capped = snn_energy.profile(net, [x[0][:1], x[0][1:]], timesteps=2, spike_maps=["sn1"], spike_map_images=1)
    assert len(capped.spike_maps["sn1"]) == 1
    assert torch.equal(capped.spike_maps["sn1"][0], result.spike_maps["sn1"][0])


def test_sew_resnet_integer_inputs_are_value_weighted():
    net, x = _sew_resnet()
    result = snn_energy.profile(net.eval(), x[0], timesteps=2)
    kinds = result.layers.set_index("layer")["input_kind"]
    assert kinds["conv1"] == "real"
    assert kinds["layer1.0.conv1"] == "binary"
    # the ADD connection sums spikes: the next block's input holds 0, 1 and 2
    assert kinds["layer1.1.conv1"] == "integer"
    integer = result.records[result.records["input_kind"] == "integer"]
    assert (integer["sops"] > 0).any() and (integer["real_input_macs"] == 0).all()


def test_an_error_inside_the_profiler_is_not_reported_as_the_users_input_error(monkeypatch):
    from snn_energy import ProfilerInternalError, handlers

    def broken(module, inputs, output, time_major, *rest):
        raise IndexError("a bug in a handler")

    monkeypatch.setitem(handlers.MODULE_HANDLERS, nn.Conv2d, broken)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    with pytest.raises(ProfilerInternalError, match=r"counting layer '0' \(Conv2d\): IndexError: a bug") as caught:
        snn_energy.profile(net, torch.rand(2, 3, 8, 8))
    assert not isinstance(caught.value, ValueError)  # the command line reports it as a bug, with its traceback
    assert isinstance(caught.value.__cause__, IndexError)
    assert _no_hooks_left(net)
    # the model's own failure on a bad input is still the user's input error
    with pytest.raises(ModelInputError):
        snn_energy.profile(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.rand(2, 3, 8, 8))
