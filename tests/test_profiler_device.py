"""What the profiler costs the device: a constant number of host transfers per forward, none on CUDA in sync-debug
mode, one shared TorchFunctionMode however many profilers are active."""
import contextlib

import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based import functional, layer, neuron, surrogate

from snn_energy import Profiler
from snn_energy.recorder import _SharedOpCounter

HOST_METHODS = ("item", "__float__", "__int__", "__bool__", "tolist", "numpy", "cpu")


class Deep(nn.Module):
    """``depth`` blocks of conv -> BN -> IF (multi-step), with a residual sum in the model's own code."""

    def __init__(self, depth: int):
        super().__init__()
        self.stem = layer.Conv2d(2, 4, 3, padding=1, step_mode="m")
        self.blocks = nn.ModuleList(nn.Sequential(
            layer.Conv2d(4, 4, 3, padding=1, step_mode="m"), layer.BatchNorm2d(4, step_mode="m"),
            neuron.IFNode(v_threshold=0.2, surrogate_function=surrogate.ATan(), step_mode="m"))
            for _ in range(depth))  # a surrogate of its own: SpikingJelly's default instance is shared

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x) + x * 0.5
        return x


@contextlib.contextmanager
def _counting_host_transfers():
    """Count calls of every Tensor method that moves values to the host (``to`` only towards the CPU)."""
    calls = []
    originals = {name: getattr(torch.Tensor, name) for name in (*HOST_METHODS, "to")}

    def wrap(name, original):
        def counted(self, *args, **kwargs):
            if name != "to" or "cpu" in str(args[:1]) or "cpu" in str(kwargs.get("device", "")):
                calls.append(name)
            return original(self, *args, **kwargs)
        return counted

    for name, original in originals.items():
        setattr(torch.Tensor, name, wrap(name, original))
    try:
        yield calls
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def _transfers_for(depth: int) -> tuple[int, int]:
    torch.manual_seed(0)
    model = Deep(depth).eval()
    x = torch.rand(2, 3, 2, 8, 8)  # T = 2, N = 3
    with Profiler(model) as profiler, torch.no_grad():
        model(x)  # warm-up: shape caches filled
        functional.reset_net(model)
        with _counting_host_transfers() as during:
            model(x)
            functional.reset_net(model)
        with _counting_host_transfers() as reading:
            records = profiler.records()
    assert set(records.loc[records["role"] == "neuron", "layer"]) == {f"blocks.{i}.2" for i in range(depth)}
    return len(during), len(reading)


def test_host_transfers_per_forward_do_not_grow_with_depth():
    shallow, deep = _transfers_for(2), _transfers_for(8)
    assert shallow[0] == deep[0] == 0  # nothing leaves the device during a forward
    assert shallow[1] == deep[1] <= 2  # reading the rows: one transfer of everything measured


def test_one_shared_mode_for_several_profilers():
    models = [Deep(1), Deep(1), Deep(1)]
    with contextlib.ExitStack() as stack:
        for model in models:
            stack.enter_context(Profiler(model))
        assert _SharedOpCounter.users == 3
        modes = torch.overrides._get_current_function_mode_stack()
        assert sum(isinstance(mode, _SharedOpCounter) for mode in modes) == 1
    assert _SharedOpCounter.users == 0
    assert not any(isinstance(m, _SharedOpCounter) for m in torch.overrides._get_current_function_mode_stack())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (checks that a profiled forward never syncs)")
def test_profiled_forward_on_cuda_passes_sync_debug_mode():
    torch.manual_seed(0)
    model = Deep(3).cuda().eval()
    x = torch.rand(2, 3, 2, 8, 8, device="cuda")
    with Profiler(model) as profiler, torch.no_grad():
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(2):
                model(x)
                functional.reset_net(model)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    cpu = Deep(3).eval()
    cpu.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
    with Profiler(cpu) as reference, torch.no_grad():
        for _ in range(2):
            cpu(x.cpu())
            functional.reset_net(cpu)
    columns = ["macs", "sops", "spikes", "input_nonzero"]
    assert profiler.records()[columns].equals(reference.records()[columns])
