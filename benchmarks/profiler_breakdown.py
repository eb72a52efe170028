"""Where the profiler's added time goes, on the CPU: host-side work against the passes over measured tensors.

    python benchmarks/profiler_breakdown.py [--preset paper] [--sizes 32 64 128 256] [--repeats 3] [--threads 1]

Per image size, in interleaved rounds (one warm-up, then ``--repeats``; medians reported), three forwards of ESDNet
under ``torch.no_grad()``:

- ``plain``: the model alone;
- ``profiled``: under an attached ``snn_energy.Profiler``, each forward's rows drained (as over a data set);
- ``host only``: the same, with ``tensor_stats.measure`` (the exact checks over every element of the tensors the
  profiler measures one by one) replaced by a stub that returns zeros of the right shapes. What remains is the
  host-side work: hooks, handlers, the small tensors measured together at the end of a sequence, packing, the one
  transfer and the rows.

Then, on copies of the tensors that ``measure`` received during one profiled forward:

- ``measure replay``: ``measure`` called again on each, with the same arguments (the checks alone);
- ``one read``: one ``torch.sum`` over each distinct measured tensor (tensors measured twice, as a neuron's
  output and as the next layer's input, are read once): the least any counter that reads every measured element
  can cost, with PyTorch's fastest reduction.

The exact checks read each element of a spike tensor about eight times (minimum and maximum; fractional part and
its extremes; nonzero indicator and its row sums; per-neuron extremes over the timesteps; magnitude and one
matrix-vector product for the accumulates), each a separate PyTorch kernel: ``measure replay / one read`` says how
many read passes' worth they cost.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import weakref
from copy import deepcopy

import torch

import esdnet
import snn_energy.recorder as recorder
from snn_energy import Profiler
from snn_energy.tensor_stats import TensorStats
from profiler_overhead import refuse_below_one, timed  # this folder is on the path when run as a script


def _stub(x: torch.Tensor, rows: int, weights=None, width=None, stats: bool = True, accumulates: bool = False,
          steps=None, scale: float = 1):
    """``measure``'s results, zeros of the right shapes, without looking at ``x``."""
    per_image = (torch.zeros(rows // steps), torch.zeros(rows // steps)) if steps else ()
    measured = TensorStats(torch.zeros(3), torch.zeros(rows), *per_image) if stats else None
    return measured, (torch.zeros(rows, dtype=torch.float64) if accumulates else None)


class _Capture:
    """Wraps ``recorder.measure`` to keep a copy of every tensor it receives, with the arguments, and whether its
    elements were not measured before (no live tensor measured earlier has its data: freed memory is reused)."""

    def __init__(self, measure):
        self.measure = measure
        self.calls = []  # (copy, distinct, args, kwargs)
        self.live = {}  # (data pointer, elements, dtype) -> weak reference to the tensor first measured there

    def __call__(self, x, *args, **kwargs):
        key = (x.data_ptr(), x.numel(), x.dtype)
        earlier = self.live.get(key)
        distinct = earlier is None or earlier() is None
        self.calls.append((x.detach().clone(), distinct, args, kwargs))
        if distinct:  # remember the tensor that owns the memory: a view may die before its base
            self.live[key] = weakref.ref(x if x._base is None else x._base)
        return self.measure(x, *args, **kwargs)


def breakdown(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> dict:
    """Return the median seconds per forward of ``plain``, ``profiled`` and ``host only``, and the seconds of
    ``measure replay`` and ``one read``, with the elements measured (all calls, distinct tensors)."""
    measure = recorder.measure
    profiled_model, stubbed_model = deepcopy(model), deepcopy(model)
    profiled, stubbed = Profiler(profiled_model), Profiler(stubbed_model)

    def run_profiled():
        profiled_model(x)
        profiled.drain()

    def run_stubbed():
        recorder.measure = _stub
        try:
            stubbed_model(x)
            stubbed.drain()
        finally:
            recorder.measure = measure

    runs = {"plain": lambda: model(x), "profiled": run_profiled, "host only": run_stubbed}
    samples = {name: [] for name in runs}
    with torch.no_grad(), profiled, stubbed:
        for round_index in range(repeats + 1):
            for name, run in runs.items():
                seconds = timed(run)[0]
                if round_index:
                    samples[name].append(seconds)
        capture = _Capture(measure)
        recorder.measure = capture
        try:
            profiled_model(x)
            profiled.drain()
        finally:
            recorder.measure = measure
    calls = capture.calls
    replay = lambda: [measure(copy, *args, **kwargs) for copy, _, args, kwargs in calls]
    read = lambda: [copy.sum() for copy, distinct, _, _ in calls if distinct]
    with torch.no_grad():
        replay(), read()  # warm the scratch buffers
        result = {name: statistics.median(values) for name, values in samples.items()}
        result["measure replay"] = statistics.median(timed(replay)[0] for _ in range(repeats))
        result["one read"] = statistics.median(timed(read)[0] for _ in range(repeats))
    result["elements"] = sum(copy.numel() for copy, _, _, _ in calls)
    result["distinct elements"] = sum(copy.numel() for copy, distinct, _, _ in calls if distinct)
    result["calls"] = len(calls)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", help="ESDNet preset (default: paper)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256],
                        help="image heights and widths (default: 32 64 128 256)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    args = parser.parse_args(argv)
    refuse_below_one(parser, args, ("repeats", "threads", "sizes"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = esdnet.build_model(args.preset).eval()
    print(f"ESDNet {args.preset} preset, T={model.T}, CPU, {args.threads} torch thread(s), {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'size':>5s} {'plain s':>8s} {'profiled':>15s} {'host only':>15s} {'measure replay':>15s} "
          f"{'one read':>15s} {'replay/read':>11s} {'measured M':>11s} {'calls':>6s} {'load':>5s}")
    for size in args.sizes:
        x = torch.rand(1, 3, size, size)
        r = breakdown(model, x, args.repeats)
        plain = r["plain"]
        ratio = lambda seconds: f"{seconds:7.3f} {1 + seconds / plain:5.2f}x"
        print(f"{size:5d} {plain:8.3f} {r['profiled']:7.3f} {r['profiled'] / plain:5.2f}x "
              f"{r['host only']:7.3f} {r['host only'] / plain:5.2f}x {ratio(r['measure replay'])} "
              f"{ratio(r['one read'])} {r['measure replay'] / r['one read']:11.1f} "
              f"{r['elements'] / 1e6:5.0f}/{r['distinct elements'] / 1e6:<5.0f} {r['calls']:6d} "
              f"{os.getloadavg()[0]:5.2f}", flush=True)
    print("profiled, host only: time per forward and its ratio to plain; measure replay, one read: seconds per "
          "forward and 1 + seconds / plain; measured M: million elements measured (all calls / distinct tensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
