"""Data order and random crops that depend only on (seed, epoch, item): what makes a resumed run exact.

``SeededItems`` draws each item's random crop (and flips) from a generator seeded with ``(seed, epoch,
index)``, so a crop does not depend on which items came before it, on the number of loader workers, or on
the process. ``ResumableSampler`` is a DistributedSampler (shuffle order seeded with ``seed + epoch``, one
shard per rank) that can start part-way through an epoch, skipping the batches already trained on.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


def item_seed(seed: int, epoch: int, index: int) -> int:
    """Return the 63-bit torch seed of item ``index`` in ``epoch`` of a run seeded with ``seed``."""
    low, high = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return (int(high) << 32 | int(low)) & (2**63 - 1)


class SeededItems(Dataset):
    """Wrap a data set whose items draw from torch's global generator; each item draws from its own seed.

    ``set_epoch(epoch)`` before iterating an epoch. The global generator is left as it was.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Make the following items draw from the seeds of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed(self.seed, self.epoch, index))
            return self.dataset[index]


class ResumableSampler(DistributedSampler):
    """The indices of one rank for one epoch (DistributedSampler order), optionally without the first ``skip``.

    Works without an initialised process group (``num_replicas`` and ``rank`` are given explicitly).
    """

    def __init__(self, length: int, num_replicas: int, rank: int, seed: int, shuffle: bool = True):
        super().__init__(range(length), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.skip = 0

    def set_position(self, epoch: int, skip: int = 0) -> None:
        """Start ``epoch`` after its first ``skip`` indices of this rank."""
        if not 0 <= skip <= self.num_samples:
            raise ValueError(f"cannot skip {skip} of the {self.num_samples} indices of an epoch")
        self.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        indices = list(super().__iter__())
        return iter(indices[self.skip:])

    def __len__(self) -> int:
        return self.num_samples - self.skip
