"""The authors' learning-rate recipe: linear warm-up, then cosine annealing down to a floor, stepped per batch.

The authors step a warm-up scheduler and ``CosineAnnealingLR`` once per epoch; here the same curve is
evaluated at every optimiser step, so short runs (a few epochs) still see a smooth warm-up and decay.
"""
from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

PEAK_LR = 1e-3  # the authors' AdamW learning rate
MIN_LR = 1e-7  # the floor the cosine reaches on the last step
WARMUP_EPOCHS = 3


def warmup_cosine_lr(step: int, total_steps: int, warmup_steps: int, peak_lr: float = PEAK_LR,
                     min_lr: float = MIN_LR) -> float:
    """Return the learning rate of optimiser step ``step`` (0-based) of ``total_steps``.

    Steps ``0 .. warmup_steps-1`` rise linearly, ``peak_lr * (step + 1) / warmup_steps``; the remaining steps
    follow ``min_lr + (peak_lr - min_lr) * (1 + cos(pi * p)) / 2`` with ``p`` going from 0 on the first step
    after the warm-up to 1 on the last step, which therefore runs at ``min_lr``.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must lie in [0, total_steps={total_steps}], got {warmup_steps}")
    if not 0 <= step < total_steps:
        raise ValueError(f"step {step} outside the schedule's {total_steps} steps")
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    cosine_steps = total_steps - warmup_steps
    progress = (step - warmup_steps) / (cosine_steps - 1) if cosine_steps > 1 else 1.0
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int,
                            min_lr: float = MIN_LR) -> LambdaLR:
    """Return a per-step LambdaLR that sets each group's rate to ``warmup_cosine_lr`` of its initial rate.

    Call ``scheduler.step()`` after every ``optimizer.step()``; the rate in effect for step ``s`` is then
    ``warmup_cosine_lr(s, ...)``. Its ``state_dict()`` holds only numbers and lists (safe to save).
    """
    peaks = [group["lr"] for group in optimizer.param_groups]
    if len(set(peaks)) != 1:
        raise ValueError(f"all parameter groups must start at the same learning rate, got {peaks}")
    peak = peaks[0]

    def factor(step: int) -> float:  # LambdaLR multiplies the initial rate by this
        return warmup_cosine_lr(min(step, total_steps - 1), total_steps, warmup_steps, peak, min_lr) / peak

    return LambdaLR(optimizer, factor)
