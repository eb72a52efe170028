"""Training ESDNet or its ANN twin with the authors' recipe, resumable bit for bit, on one or several devices.

The recipe (``MingTian99/ESDNet`` ``train.py``): AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8), 3 warm-up
epochs then cosine annealing to 1e-7, loss ``1 - SSIM``, random 64x64 crops, batch 12, seed 1234. Here the
schedule is stepped per batch (``esdnet.schedule``), validation PSNR/SSIM (the project's Y-channel metrics)
runs every epoch on a part of the TRAIN folder held out by ``esdnet.data.split_indices`` (the test split is
never read), and ``OUT/last.pth`` / ``OUT/best.pth`` (best validation PSNR) hold everything needed to resume:
weights, optimiser, scheduler, AMP scaler, position, history and every random state.

Exact resumption: the shuffle order depends only on ``(seed, epoch)`` and each crop only on ``(seed, epoch,
item)`` (``esdnet.epoch_sampling``), so a run resumed from any checkpoint (end of an epoch, or every
``save_every`` steps) reaches the same weights as one never stopped (bit-identical on the CPU).

Several processes: launch with ``torchrun --nproc_per_node N``; each process gets ``batch_size / N`` items of
every batch (DistributedDataParallel averages the gradients), rank 0 writes checkpoints, curves and logs.
"""
from __future__ import annotations

import csv
import io
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from esdnet import config as model_config
from esdnet.checkpoint import CheckpointError
from esdnet.data import PairedImageDataset, pair_files, split_indices
from esdnet.distributed import Placement, all_sum, average_buffers, start, stop
from esdnet.epoch_sampling import ResumableSampler, SeededItems
from esdnet.imageio import atomic_write_bytes
from esdnet.interrupt import DeferredInterrupt
from esdnet.metrics import evaluate_pair, ssim_loss
from esdnet.model import ESDNet
from esdnet.progress import progress_bar
from esdnet.schedule import MIN_LR, PEAK_LR, WARMUP_EPOCHS, warmup_cosine_scheduler
from esdnet.train_state import atomic_save, capture_rng_state, read_training_checkpoint, restore_rng_state

LAST, BEST, CURVE, LOG_DIR = "last.pth", "best.pth", "curve.csv", "tensorboard"
CURVE_COLUMNS = ("epoch", "train_loss", "val_psnr", "val_ssim", "lr", "seconds")
ADAMW_BETAS, ADAMW_EPS = (0.9, 0.999), 1e-8


@dataclass
class TrainOptions:
    """Everything that defines a training run (defaults: the authors' recipe); paths are strings."""

    data: str  # DATASET folder holding train/{input,target}
    out: str  # folder for last.pth, best.pth, curve.csv and tensorboard/
    arch: str = "snn"
    preset: str = "small"
    timesteps: int | None = None  # override the preset's T (the temporal-attention reduction is capped at T)
    epochs: int = 1000
    batch_size: int = 12  # over all processes
    crop: int = 64
    lr: float = PEAK_LR
    min_lr: float = MIN_LR
    warmup_epochs: int = WARMUP_EPOCHS
    weight_decay: float = 0.01  # AdamW's default, as the authors
    seed: int = 1234
    val_fraction: float = 0.1
    clip_grad: float | None = None  # max gradient norm; None: no clipping (the authors' clipping is off)
    amp: bool = True  # mixed precision on CUDA (bf16, or fp16 with loss scaling); the CPU always runs fp32
    flips: bool = False  # random horizontal/vertical flips of the crops (the authors use none)
    save_every: int = 0  # also write last.pth every N optimiser steps within an epoch (0: at epoch ends only)
    workers: int = 0
    cache: bool = False  # keep the decoded training images in memory
    progress: bool = True
    resume: str | None = None  # a last.pth/best.pth to continue from

    # Options that may differ between a run and its resumption without changing the result.
    RUNTIME_FIELDS = ("data", "out", "save_every", "workers", "cache", "progress", "resume")

    def run_defining(self) -> dict[str, Any]:
        """Return the options that fix the trained weights (all but paths and runtime choices)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.RUNTIME_FIELDS}


@dataclass
class TrainResult:
    """What a finished ``train`` returns: the model (on its device), per-epoch history and the best epoch."""

    model: ESDNet
    history: list[dict[str, float]] = field(default_factory=list)
    best_psnr: float = -math.inf
    best_epoch: int = 0
    global_step: int = 0
    seconds: float = 0.0  # training wall time summed over all sessions of the run (s)
    is_main: bool = True  # False on the processes other than rank 0 of a multi-process run


def model_config_of(options: TrainOptions) -> model_config.ESDNetConfig:
    """Return the ESDNetConfig of the run: the preset, with T (and a temporal reduction of at most T) overridden."""
    base = model_config.preset(options.preset)
    if options.timesteps is None:
        return base
    return model_config.preset(options.preset, T=options.timesteps,
                               reduction_t=min(base.reduction_t, options.timesteps))


def _check_options(options: TrainOptions, world_size: int) -> None:
    problems = []
    if options.epochs < 1:
        problems.append(f"epochs must be >= 1, got {options.epochs}")
    if options.batch_size < 1 or options.batch_size % world_size:
        problems.append(f"batch size {options.batch_size} must be a positive multiple of the {world_size} processes")
    if options.crop < 16:
        problems.append(f"crop must be at least 16 pixels (the SSIM loss uses an 11x11 window), got {options.crop}")
    if not options.lr > options.min_lr >= 0:
        problems.append(f"need lr > min_lr >= 0, got lr {options.lr} and min_lr {options.min_lr}")
    if options.warmup_epochs < 0:
        problems.append(f"warmup epochs must be >= 0, got {options.warmup_epochs}")
    if options.clip_grad is not None and not options.clip_grad > 0:
        problems.append(f"clip_grad must be positive, got {options.clip_grad}")
    if options.save_every < 0 or options.workers < 0:
        problems.append("save_every and workers must be >= 0")
    if problems:
        raise ValueError("; ".join(problems))


def _check_crop_fits(dataset: PairedImageDataset, crop: int) -> None:
    """Raise ValueError naming the first training image smaller than the crop (reads image headers only)."""
    for input_path, _ in dataset.pairs:
        with Image.open(input_path) as image:
            width, height = image.size
        if crop > min(width, height):
            raise ValueError(f"{input_path}: crop {crop}x{crop} is larger than the image ({height}x{width}, "
                             "height x width); use a smaller --crop")


def build_datasets(options: TrainOptions) -> tuple[PairedImageDataset, PairedImageDataset]:
    """Return the (training crops, whole validation images) data sets, both from ``DATA/train``.

    Raises FileNotFoundError/ValueError naming the folder or file for a missing or empty folder, unequal or
    unpairable files, or a crop larger than an image.
    """
    train_dir = Path(options.data) / "train"
    count = len(pair_files(train_dir / "input", train_dir / "target"))
    train_idx, val_idx = split_indices(count, options.val_fraction, options.seed)
    train_set = PairedImageDataset(options.data, "train", crop_size=options.crop, flip=options.flips,
                                   cache=options.cache, indices=train_idx)
    _check_crop_fits(train_set, options.crop)
    val_set = PairedImageDataset(options.data, "train", crop_size=None, indices=val_idx)
    return train_set, val_set


def _check_resume(checkpoint: dict, options: TrainOptions, model: ESDNet, world_size: int,
                  steps_per_epoch: int) -> None:
    path = options.resume
    if checkpoint["arch"] != options.arch:
        raise CheckpointError(f"{path}: was trained as arch {checkpoint['arch']!r}, not {options.arch!r}")
    if checkpoint["config"] != model.config.to_dict():
        raise CheckpointError(f"{path}: holds a model of configuration {checkpoint['config']}, but this run builds "
                              f"preset {options.preset!r} with {model.config.to_dict()}")
    saved = checkpoint["options"]
    differing = [f"{key}: {saved.get(key)!r} in the checkpoint, {value!r} now"
                 for key, value in options.run_defining().items() if saved.get(key) != value]
    if differing:
        raise CheckpointError(f"{path}: was written by a run with other settings; resuming would not continue it "
                              f"({'; '.join(differing)})")
    if (checkpoint["world_size"], checkpoint["steps_per_epoch"]) != (world_size, steps_per_epoch):
        raise CheckpointError(f"{path}: was written by {checkpoint['world_size']} process(es) taking "
                              f"{checkpoint['steps_per_epoch']} steps per epoch; this run has {world_size} taking "
                              f"{steps_per_epoch} (different process count or training data)")


def _autocast_dtype(options: TrainOptions, device: torch.device) -> torch.dtype | None:
    if not options.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@torch.no_grad()
def validate(model: ESDNet, dataset: PairedImageDataset, placement: Placement) -> tuple[float, float]:
    """Return the mean (PSNR in dB, SSIM) of whole validation images (Y channel, border 4), over all processes.

    Each process scores every ``world_size``-th image; sums are combined across processes.
    """
    was_training = model.training
    model.eval()
    totals = [0.0, 0.0, 0.0]
    for index in range(placement.rank, len(dataset), placement.world_size):
        rainy, clean = dataset[index]
        derained = model(rainy.unsqueeze(0).to(placement.device))[0].clamp(0.0, 1.0).float().cpu()
        psnr_db, ssim_value = evaluate_pair(derained, clean)
        totals = [totals[0] + psnr_db, totals[1] + ssim_value, totals[2] + 1]
    model.train(was_training)
    psnr_sum, ssim_sum, count = all_sum(totals, placement)
    return psnr_sum / count, ssim_sum / count


def _curve_bytes(history: list[dict[str, float]]) -> bytes:
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=CURVE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return table.getvalue().encode()


class _Run:
    """The state of one training session (one process), from set-up to the last epoch."""

    def __init__(self, options: TrainOptions, placement: Placement):
        self.options, self.placement = options, placement
        self.out = Path(options.out)
        _check_options(options, placement.world_size)
        train_set, self.val_set = build_datasets(options)
        checkpoint = read_training_checkpoint(options.resume) if options.resume else None
        if checkpoint is None and (self.out / LAST).exists():
            raise FileExistsError(f"{self.out / LAST}: a run already lives in {self.out}; pass --resume "
                                  f"{self.out / LAST} to continue it or choose another --out")

        random.seed(options.seed)  # as the authors; training itself draws only from seeded generators
        np.random.seed(options.seed)
        torch.manual_seed(options.seed)
        self.model = ESDNet(model_config_of(options), arch=options.arch).to(placement.device)
        self.items = SeededItems(train_set, options.seed)
        self.sampler = ResumableSampler(len(train_set), placement.world_size, placement.rank, options.seed)
        self.per_rank_batch = options.batch_size // placement.world_size
        self.loader_generator = torch.Generator()
        self.loader = DataLoader(self.items, batch_size=self.per_rank_batch, sampler=self.sampler,
                                 num_workers=options.workers, generator=self.loader_generator, drop_last=False,
                                 pin_memory=placement.device.type == "cuda")
        self.steps_per_epoch = math.ceil(self.sampler.num_samples / self.per_rank_batch)
        total_steps = options.epochs * self.steps_per_epoch
        warmup_steps = min(options.warmup_epochs * self.steps_per_epoch, total_steps)

        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=options.lr, betas=ADAMW_BETAS, eps=ADAMW_EPS,
                                           weight_decay=options.weight_decay)
        self.scheduler = warmup_cosine_scheduler(self.optimizer, total_steps, warmup_steps, options.min_lr)
        self.autocast_dtype = _autocast_dtype(options, placement.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)

        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.loss_sum, self.seconds = 0.0, 0.0
        self.history: list[dict[str, float]] = []
        self.best_psnr, self.best_epoch = -math.inf, 0
        if checkpoint is not None:
            _check_resume(checkpoint, options, self.model, placement.world_size, self.steps_per_epoch)
            self._restore(checkpoint)
        self.network = (DistributedDataParallel(self.model, device_ids=[placement.device.index]
                                                if placement.device.type == "cuda" else None)
                        if placement.distributed else self.model)

    def _restore(self, checkpoint: dict) -> None:
        self.model.load_state_dict(checkpoint["state_dict"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.epoch, self.step_in_epoch = checkpoint["epoch"], checkpoint["step_in_epoch"]
        self.global_step, self.loss_sum = checkpoint["global_step"], checkpoint["epoch_loss_sum"]
        self.seconds = checkpoint["seconds"]
        self.history = [dict(row) for row in checkpoint["history"]]
        self.best_psnr, self.best_epoch = checkpoint["best_psnr"], checkpoint["best_epoch"]
        restore_rng_state(checkpoint["rng"])
        self.loader_generator.set_state(checkpoint["rng"]["loader"])

    def _checkpoint(self, loss_share: float) -> dict[str, Any]:
        rng = capture_rng_state()
        rng["loader"] = self.loader_generator.get_state()
        return {
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "config": self.model.config.to_dict(),
            "arch": self.options.arch,
            "preset": self.options.preset,
            "data": self.options.data,
            "options": self.options.run_defining(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "epoch": self.epoch,  # completed epochs
            "step_in_epoch": self.step_in_epoch,  # optimiser steps done in the epoch under way
            "global_step": self.global_step,
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.placement.world_size,
            "epoch_loss_sum": loss_share,  # this epoch's loss sum so far over all processes / process count
            "seconds": self.seconds,
            "history": [dict(row) for row in self.history],
            "best_psnr": self.best_psnr,
            "best_epoch": self.best_epoch,
            "rng": rng,
        }

    def _save(self, names: tuple[str, ...], loss_share: float = 0.0) -> None:
        if not self.placement.is_main:
            return
        payload = self._checkpoint(loss_share)
        for name in names:
            atomic_save(payload, self.out / name)

    def _train_step(self, rainy: torch.Tensor, clean: torch.Tensor) -> float:
        device = self.placement.device
        rainy, clean = rainy.to(device, non_blocking=True), clean.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            derained = self.network(rainy)
        loss = ssim_loss(derained.float(), clean)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.options.clip_grad is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.options.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.item()

    def _stop_requested(self, interrupt: DeferredInterrupt) -> bool:
        """True when Ctrl-C was pressed in any process (all processes agree, so they stop at the same step)."""
        if not self.placement.distributed:
            return interrupt.requested
        return all_sum([float(interrupt.requested)], self.placement)[0] > 0

    def _interrupted(self) -> KeyboardInterrupt:
        """Return the KeyboardInterrupt saying where last.pth stands and how to resume."""
        position = (f"epoch {self.epoch + 1}, step {self.step_in_epoch} of {self.steps_per_epoch}"
                    if self.step_in_epoch else f"the end of epoch {self.epoch}")
        return KeyboardInterrupt(f"{self.out / LAST} saved at {position}; --resume {self.out / LAST} continues")

    def run(self, writer) -> TrainResult:
        """Train to the last epoch; on Ctrl-C stop after the step under way with last.pth written there."""
        with DeferredInterrupt() as interrupt:
            return self._run(writer, interrupt)

    def _run(self, writer, interrupt: DeferredInterrupt) -> TrainResult:
        options = self.options
        while self.epoch < options.epochs:
            started = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            self.items.set_epoch(self.epoch)
            self.sampler.set_position(self.epoch, self.step_in_epoch * self.per_rank_batch)
            if self.step_in_epoch == 0:
                self.loader_generator.manual_seed(options.seed + self.epoch)
            self.network.train()
            bar = progress_bar(self.loader, enabled=options.progress and self.placement.is_main,
                               desc=f"epoch {self.epoch + 1}/{options.epochs}", unit="batch",
                               initial=self.step_in_epoch, total=self.steps_per_epoch, leave=False)
            for rainy, clean in bar:
                lr = self.optimizer.param_groups[0]["lr"]
                loss = self._train_step(rainy, clean)
                self.loss_sum += loss
                self.step_in_epoch += 1
                self.global_step += 1
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
                if writer is not None:
                    writer.add_scalar("train/loss", loss, self.global_step)
                    writer.add_scalar("train/lr", lr, self.global_step)
                if self.step_in_epoch == self.steps_per_epoch:
                    continue  # the epoch's end saves (and stops, if asked to) after validation
                stop = self._stop_requested(interrupt)
                if stop or (options.save_every and self.global_step % options.save_every == 0):
                    self.seconds += time.perf_counter() - started
                    started = time.perf_counter()
                    loss_share = all_sum([self.loss_sum], self.placement)[0] / self.placement.world_size
                    self._save((LAST,), loss_share)
                    if stop:
                        bar.close()
                        raise self._interrupted()
            bar.close()
            self._end_epoch(lr, started, writer)
            if self._stop_requested(interrupt) and self.epoch < options.epochs:
                raise self._interrupted()
        return TrainResult(model=self.model, history=self.history, best_psnr=self.best_psnr,
                           best_epoch=self.best_epoch, global_step=self.global_step, seconds=self.seconds,
                           is_main=self.placement.is_main)

    def _end_epoch(self, lr: float, started: float, writer) -> None:
        loss_sum, steps = all_sum([self.loss_sum, float(self.steps_per_epoch)], self.placement)
        average_buffers(self.model, self.placement)
        val_psnr, val_ssim = validate(self.model, self.val_set, self.placement)
        self.seconds += time.perf_counter() - started
        self.epoch += 1
        row = {"epoch": self.epoch, "train_loss": loss_sum / steps, "val_psnr": val_psnr, "val_ssim": val_ssim,
               "lr": lr, "seconds": round(self.seconds, 3)}
        self.history.append(row)
        self.step_in_epoch, self.loss_sum = 0, 0.0
        improved = val_psnr > self.best_psnr
        if improved:
            self.best_psnr, self.best_epoch = val_psnr, self.epoch
        self._save((LAST, BEST) if improved else (LAST,))
        if self.placement.is_main:
            atomic_write_bytes(self.out / CURVE, _curve_bytes(self.history))
            if writer is not None:
                writer.add_scalar("epoch/train_loss", row["train_loss"], self.epoch)
                writer.add_scalar("val/psnr", val_psnr, self.epoch)
                writer.add_scalar("val/ssim", val_ssim, self.epoch)
                writer.flush()
            tqdm.write(f"epoch {self.epoch}/{self.options.epochs}: loss {row['train_loss']:.4f}, "
                       f"val PSNR {val_psnr:.3f} dB, SSIM {val_ssim:.4f}, lr {lr:.3e}, {self.seconds:.0f} s"
                       f"{' (best)' if improved else ''}")


def train(options: TrainOptions) -> TrainResult:
    """Train (or resume, ``options.resume``) and return the trained model and its per-epoch history.

    Validates every input before writing anything: raises FileNotFoundError/ValueError (CheckpointError for
    a resume file of another architecture, preset or recipe) naming the file or option. Works in one
    process or under ``torchrun`` (see the module docstring).
    """
    placement = start()
    try:
        run = _Run(options, placement)
        writer = None
        if placement.is_main:
            run.out.mkdir(parents=True, exist_ok=True)
            from torch.utils.tensorboard import SummaryWriter  # imported late: slow, and only rank 0 needs it

            writer = SummaryWriter(str(run.out / LOG_DIR))
            atomic_write_bytes(run.out / "options.json", (json.dumps(asdict(options), indent=2) + "\n").encode())
        try:
            return run.run(writer)
        finally:
            if writer is not None:
                writer.close()
    finally:
        stop(placement)
