"""Where training runs: one process or several launched by ``torchrun``, on CUDA when present, else on the CPU.

``torchrun`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with more than one process the group is
initialised with NCCL on CUDA and gloo on the CPU. Rank 0 alone writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Placement:
    """This process's rank, the number of processes, and its device."""

    rank: int
    world_size: int
    device: torch.device
    owns_group: bool  # True when ``start`` initialised the process group (and ``stop`` ends it)

    @property
    def is_main(self) -> bool:
        """True on the process that writes checkpoints and logs (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1


def start(prefer_cuda: bool = True) -> Placement:
    """Return this process's placement, initialising the process group when ``WORLD_SIZE`` > 1.

    The device is ``cuda:LOCAL_RANK`` when CUDA is available (and ``prefer_cuda``), else the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    use_cuda = prefer_cuda and torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank % torch.cuda.device_count()}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    owns_group = False
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world_size)
        owns_group = True
    return Placement(rank=rank, world_size=world_size, device=device, owns_group=owns_group)


def stop(placement: Placement) -> None:
    """End the process group if ``start`` began it."""
    if placement.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: list[float], placement: Placement) -> list[float]:
    """Return the element-wise sum of ``values`` over all processes (the values themselves in one process)."""
    if not placement.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=placement.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


@torch.no_grad()
def average_buffers(module: torch.nn.Module, placement: Placement) -> None:
    """Replace every floating-point buffer (BatchNorm running statistics) by its mean over all processes.

    DistributedDataParallel keeps parameters equal, but each process updates its running statistics from
    its own share of the batch; averaging them makes every process hold (and validate) the same model.
    """
    if not placement.distributed:
        return
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer.div_(placement.world_size)
