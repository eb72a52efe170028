"""What profiling costs: a plain forward of ESDNet against the same forward under snn_energy's Profiler,
SpikingJelly's SimpleEnergyProfiler and fvcore's FlopCountAnalysis, at several image sizes, on CPU (and on CUDA
when present).

    python benchmarks/profiler_overhead.py [--preset paper] [--sizes 32 64 128 256] [--batch 1] [--repeats 3]
        [--threads 1] [--devices cpu cuda]

Timing: per size, one warm-up round, then ``--repeats`` rounds; each round runs every method once, in turn, so a
change of machine load hits all of them alike. Reported: the median wall-clock and CPU (process) time per
forward, and each method's ratio to the plain forward. All runs are under ``torch.no_grad()``. ``snn_energy``:
our profiler is entered and left around each forward and its rows are read (``records()``: the one transfer of
everything it measured), so attaching and removing its hooks and building the rows are part of its cost.
``snn_energy_attached``: as when profiling a data set, the profiler stays attached (to a copy of the model, so that
the other methods run unprofiled) and each forward's rows are drained (``drain()``).
On CUDA (``--devices cuda``, by default when present) every method is timed again on the GPU (wall clock,
synchronised after each forward; at least 5 rounds).

Memory: in a fresh Python process per method, the model runs one warm-up forward, the kernel's peak-RSS mark
is reset (``/proc/self/clear_refs``), and one more forward runs: reported are the peak resident set size during
that forward (``VmHWM``) and its rise above the resident size just before it (what the forward itself adds).
The children run with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed activations leave the resident set at once
(otherwise glibc's moving threshold makes the peak depend on allocation history). Torch's CPU tensors are not
seen by tracemalloc, hence RSS (Linux only).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import subprocess
import sys
import time
from copy import deepcopy

import torch

import esdnet
from snn_energy import Profiler

METHODS = ("plain", "snn_energy", "snn_energy_attached", "spikingjelly", "fvcore")
# glibc serves allocations above this from mmap and unmaps them when freed, so that the resident size follows
# the live tensors; its default threshold moves with the allocation history, which makes RSS peaks of two runs of
# the same forward differ by tens of MiB.
MMAP_THRESHOLD = 64 * 1024


def _forward(method: str, model: torch.nn.Module, x: torch.Tensor, session: contextlib.ExitStack):
    """Return a callable running one forward of ``model`` on ``x`` the way ``method`` does (``session`` holds what
    stays attached across forwards)."""
    if method == "plain":
        return lambda: model(x)
    if method == "snn_energy":
        def profiled():
            with Profiler(model) as profiler:
                model(x)
            profiler.records()
        return profiled
    if method == "snn_energy_attached":  # as over a data set: attached once (to a copy), each forward's rows drained
        copy = deepcopy(model)
        attached = session.enter_context(Profiler(copy))

        def drained():
            copy(x)
            attached.drain()
        return drained
    if method == "spikingjelly":
        from spikingjelly.activation_based.op_counter import SimpleEnergyProfiler

        def counted():
            profiler = SimpleEnergyProfiler()
            profiler.bind_model(model)
            with profiler:
                model(x)
            profiler.get_report()
        return counted
    from fvcore.nn import FlopCountAnalysis

    def traced():
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.total()
    return traced


def timed(run, cuda: bool = False) -> tuple[float, float]:
    """Return the wall-clock and CPU (process) seconds of one call of ``run`` (synchronised with CUDA)."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_methods(model, x, methods, repeats: int) -> dict[str, tuple[float, float]]:
    """Return the median (wall s, CPU s) per forward of each method, measured in interleaved rounds."""
    session = contextlib.ExitStack()
    runs = {method: _forward(method, model, x, session) for method in methods}
    cuda = x.is_cuda
    samples = {method: [] for method in methods}
    with torch.no_grad(), session:
        for round_index in range(repeats + 1):
            for method, run in runs.items():
                seconds = timed(run, cuda)
                if round_index:  # round 0 warms up
                    samples[method].append(seconds)
                print(f"  round {round_index}{' (warm-up)' if not round_index else ''} {method:13s} "
                      f"wall {seconds[0]:7.2f} s  cpu {seconds[1]:7.2f} s", flush=True)
    return {m: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v)) for m, v in samples.items()}


def _memory_status_mib(field: str) -> float:
    with open("/proc/self/status") as handle:
        line = next(line for line in handle if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024  # kB


def measure_memory_in_this_process(method: str, preset: str, size: int, threads: int, batch: int = 1) -> None:
    """Child process: build the model, run one warm-up forward the way ``method`` does, reset the peak-RSS mark,
    run one more; print the peak resident size during it and its rise above the size before it, in MiB."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = esdnet.build_model(preset).eval()
    x = torch.rand(batch, 3, size, size)
    run = _forward(method, model, x, contextlib.ExitStack())
    with torch.no_grad():
        run()
        gc.collect()
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM, the peak resident set size, to the current size
        before = _memory_status_mib("VmRSS")
        run()
    peak = _memory_status_mib("VmHWM")
    print(f"{peak:.1f} {peak - before:.1f}")


def memory_of(method: str, args) -> tuple[float, float]:
    """Return (peak RSS MiB, its rise above the RSS before the forward, MiB) of one forward by ``method``,
    measured in a fresh process."""
    command = [sys.executable, __file__, "--child-memory", method, "--preset", args.preset, "--size",
               str(args.size), "--threads", str(args.threads), "--batch", str(args.batch)]
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=environment).stdout.split()
    return float(output[-2]), float(output[-1])


def refuse_below_one(parser: argparse.ArgumentParser, args, names) -> None:
    """Exit with a usage error naming the option when a numeric option (or one of its values) is below 1."""
    for name in names:
        values = getattr(args, name)
        if min(values if isinstance(values, list) else [values]) < 1:
            parser.error(f"--{name} must be at least 1, got {values}")


def _table(medians: dict) -> None:
    plain_wall, plain_cpu = medians["plain"]
    print(f"{'method':14s} {'wall s':>8s} {'cpu s':>8s} {'wall x':>8s} {'cpu x':>8s}")
    for method, (wall, cpu) in medians.items():
        print(f"{method:14s} {wall:8.3f} {cpu:8.3f} {wall / plain_wall:8.2f} {cpu / plain_cpu:8.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper", help="ESDNet preset (default: paper)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256],
                        help="image heights and widths (default: 32 64 128 256)")
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)  # the memory child's one size
    parser.add_argument("--batch", type=int, default=1, help="images per forward (default: 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up (default: 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    parser.add_argument("--skip", nargs="*", default=[], choices=METHODS[1:], help="methods to leave out")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"], choices=("cpu", "cuda"),
                        help="where to time (default: cpu, then cuda when present)")
    parser.add_argument("--child-memory", choices=("plain", "snn_energy"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    refuse_below_one(parser, args, ("batch", "repeats", "threads", "sizes"))
    if args.child_memory:
        measure_memory_in_this_process(args.child_memory, args.preset, args.size, args.threads, args.batch)
        return 0

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = esdnet.build_model(args.preset).eval()
    methods = [m for m in METHODS if m not in args.skip]
    if "cpu" in args.devices:
        print(f"ESDNet {args.preset} preset, T={model.T}, CPU, {args.threads} torch thread(s), {os.cpu_count()} cores, "
              f"load average {os.getloadavg()[0]:.2f}")
        for size in args.sizes:
            x = torch.rand(args.batch, 3, size, size)
            print(f"\ninput {args.batch}x3x{size}x{size} (load average {os.getloadavg()[0]:.2f})")
            medians = time_methods(model, x, methods, args.repeats)
            print(f"median of {args.repeats} rounds, CPU (load average now {os.getloadavg()[0]:.2f})")
            _table(medians)
            if not args.no_memory:
                args.size = size
                plain_peak, plain_rise = memory_of("plain", args)
                ours_peak, ours_rise = memory_of("snn_energy", args)
                print(f"peak resident memory during one forward (VmHWM, fresh process per method, "
                      f"MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD}): plain {plain_peak:.1f} MiB (rise {plain_rise:.1f}), "
                      f"snn_energy {ours_peak:.1f} MiB (rise {ours_rise:.1f}), x{ours_peak / plain_peak:.3f}")
    if "cuda" in args.devices and not torch.cuda.is_available():
        print("\nno CUDA device: no GPU rows")
    elif "cuda" in args.devices:
        cuda_model = model.cuda()
        repeats = max(args.repeats, 5)
        print(f"\nCUDA: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
              f"load average {os.getloadavg()[0]:.2f}")
        for size in args.sizes:
            x = torch.rand(args.batch, 3, size, size, device="cuda")
            torch.cuda.reset_peak_memory_stats()
            medians = time_methods(cuda_model, x, methods, repeats)
            print(f"input {args.batch}x3x{size}x{size}, median of {repeats} rounds, GPU "
                  f"(peak {torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MiB allocated)")
            _table(medians)
    return 0


if __name__ == "__main__":
    sys.exit(main())
