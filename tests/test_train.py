"""Training: the learning-rate schedule against its formula, loss going down on a fixed batch, a really killed
run resumed to the very same weights, two-process DDP on gloo, checkpoints loading safely, and bad input."""
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import esdnet
from esdnet.checkpoint import CheckpointError
from esdnet.data import PairedImageDataset
from esdnet.epoch_sampling import ResumableSampler, SeededItems
from esdnet.schedule import warmup_cosine_lr, warmup_cosine_scheduler
from esdnet.synth import synthesize_dataset
from esdnet.train import TrainOptions, model_config_of, train

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = dict(timesteps=2, batch_size=2, crop=16, warmup_epochs=1, progress=False)  # a few seconds per run


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread, like the subprocess runs (OMP_NUM_THREADS=1): on 2 busy cores, 2 threads per process thrash."""
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """Synthetic rain: 9 training pairs (8 for training, 1 held out for validation) of 32x32 pixels."""
    return synthesize_dataset(tmp_path_factory.mktemp("data") / "synth", n_train=9, n_test=2, size=32)


def tiny_options(data: Path, out: Path, **overrides) -> TrainOptions:
    return TrainOptions(data=str(data), out=str(out), **{**TINY, "epochs": 2, **overrides})


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def same(a, b) -> bool:
    """True when two nested dicts/lists of tensors and numbers are equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, first {different[:3]}"


# --- learning-rate schedule ---------------------------------------------------------------------------------

def test_schedule_warms_up_linearly_then_follows_the_cosine_to_the_floor():
    peak, floor, total, warmup = 1e-3, 1e-7, 21, 6  # cosine part: 15 steps, progress (s - 6) / 14
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=peak)
    scheduler = warmup_cosine_scheduler(optimizer, total, warmup, min_lr=floor)
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    hand = {0: peak / 6, 2: peak * 3 / 6, 5: peak, 6: peak, 13: (peak + floor) / 2, 20: floor}
    for step, expected in hand.items():
        assert seen[step] == pytest.approx(expected, rel=1e-12), step
    for step in range(warmup, total):  # the closed form of the cosine
        expected = floor + (peak - floor) * (1 + math.cos(math.pi * (step - warmup) / 14)) / 2
        assert seen[step] == pytest.approx(expected, rel=1e-12)
        assert seen[step] == pytest.approx(warmup_cosine_lr(step, total, warmup, peak, floor), rel=1e-12)
    assert all(a < b for a, b in zip(seen[:warmup], seen[1:warmup]))
    assert all(a > b for a, b in zip(seen[warmup:], seen[warmup + 1:]))
    # torch's own epoch-wise CosineAnnealingLR over the 14 intervals gives the same decay
    reference = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(reference, T_max=14, eta_min=floor)
    for step in range(warmup, total):
        assert seen[step] == pytest.approx(reference.param_groups[0]["lr"], rel=1e-9)
        reference.step()
        cosine.step()


def test_schedule_rejects_steps_outside_it():
    with pytest.raises(ValueError, match="outside"):
        warmup_cosine_lr(10, 10, 2)
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine_lr(0, 10, 11)


# --- data order and crops ----------------------------------------------------------------------------------

def test_crops_depend_only_on_seed_epoch_and_item(tiny_data):
    items = SeededItems(PairedImageDataset(tiny_data, "train", crop_size=16, flip=True), seed=7)
    before = torch.get_rng_state()
    forward = [items[i][0] for i in range(len(items))]
    backward = [items[i][0] for i in reversed(range(len(items)))][::-1]
    assert all(torch.equal(a, b) for a, b in zip(forward, backward))
    assert torch.equal(torch.get_rng_state(), before)  # the global generator is left alone
    items.set_epoch(1)
    assert sum(not torch.equal(a, items[i][0]) for i, a in enumerate(forward)) >= len(items) - 1
    assert {tuple(a.shape) for a in forward} == {(3, 16, 16)}


def test_sampler_resumes_mid_epoch_and_shards_over_ranks():
    full = ResumableSampler(10, num_replicas=1, rank=0, seed=3)
    full.set_position(epoch=2)
    order = list(full)
    assert sorted(order) == list(range(10)) and order != list(range(10))
    assert order == torch.randperm(10, generator=torch.Generator().manual_seed(3 + 2)).tolist()
    full.set_position(epoch=2, skip=4)
    assert list(full) == order[4:] and len(full) == 6
    shards = [ResumableSampler(10, num_replicas=2, rank=r, seed=3) for r in (0, 1)]
    for shard in shards:
        shard.set_position(epoch=2)
    assert sorted(list(shards[0]) + list(shards[1])) == list(range(10))


# --- the training loop --------------------------------------------------------------------------------------

def test_loss_decreases_on_a_fixed_batch(tmp_path, tiny_data):
    # Crop = whole 32x32 image, one training image, batch 1, no flips: every step sees the very same batch.
    data = synthesize_dataset(tmp_path / "two", n_train=2, n_test=1, size=32)
    result = train(tiny_options(data, tmp_path / "run", epochs=25, batch_size=1, crop=32, val_fraction=0.5))
    losses = [row["train_loss"] for row in result.history]
    assert result.global_step == 25 and len(losses) == 25
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.5 * losses[0], losses
    assert min(losses[-5:]) < min(losses[:5])


def test_checkpoints_load_safely_and_hold_the_whole_state(tmp_path, tiny_data):
    options = tiny_options(tiny_data, tmp_path / "run", arch="ann", epochs=3)
    result = train(options)
    last = torch.load(tmp_path / "run" / "last.pth", map_location="cpu", weights_only=True)
    assert last["arch"] == "ann" and last["epoch"] == 3 and last["step_in_epoch"] == 0
    assert last["global_step"] == 3 * 4 == result.global_step  # 8 training images, batch 2
    assert last["config"] == model_config_of(options).to_dict() and last["config"]["T"] == 2
    assert {"torch", "cuda", "python", "numpy", "loader"} <= last["rng"].keys()
    assert [row["epoch"] for row in last["history"]] == [1, 2, 3]
    # the optimiser's rate is the schedule's after 12 steps of 12 (clamped at the last one): the floor
    assert last["optimizer"]["param_groups"][0]["lr"] == pytest.approx(options.min_lr)
    assert last["history"][0]["lr"] == pytest.approx(warmup_cosine_lr(3, 12, 4))  # the last step of epoch 1
    best = torch.load(tmp_path / "run" / "best.pth", map_location="cpu", weights_only=True)
    assert best["epoch"] == result.best_epoch
    assert best["best_psnr"] == max(row["val_psnr"] for row in result.history)
    curve = (tmp_path / "run" / "curve.csv").read_text().splitlines()
    assert curve[0] == "epoch,train_loss,val_psnr,val_ssim,lr,seconds" and len(curve) == 4

    model = esdnet.load_model(tmp_path / "run" / "last.pth", arch="ann")
    result.model.eval()
    image = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        assert torch.equal(model(image), result.model(image))
    assert_tensorboard_logged(tmp_path / "run" / "tensorboard", result.history, steps_per_epoch=4)


def assert_tensorboard_logged(folder: Path, history: list[dict], steps_per_epoch: int) -> None:
    """The TensorBoard events hold every step's loss and rate and every epoch's scores, as the history has them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    scalars = {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}
    assert set(scalars) == {"train/loss", "train/lr", "epoch/train_loss", "val/psnr", "val/ssim"}
    steps = len(history) * steps_per_epoch
    assert [e.step for e in scalars["train/loss"]] == list(range(1, steps + 1))
    assert [e.value for e in scalars["train/lr"]] == pytest.approx(
        [warmup_cosine_lr(step, steps, steps_per_epoch) for step in range(steps)], rel=1e-6)  # float32 in the file
    for name, tag in (("train_loss", "epoch/train_loss"), ("val_psnr", "val/psnr"), ("val_ssim", "val/ssim")):
        assert [e.step for e in scalars[tag]] == [row["epoch"] for row in history]
        assert [e.value for e in scalars[tag]] == pytest.approx([row[name] for row in history], rel=1e-6), tag
    losses = [e.value for e in scalars["train/loss"]]
    for row in history:  # the epoch's loss is the mean of its steps' losses
        first = (row["epoch"] - 1) * steps_per_epoch
        assert sum(losses[first:first + steps_per_epoch]) / steps_per_epoch == pytest.approx(row["train_loss"],
                                                                                             rel=1e-5)


# --- resumption after a real kill or Ctrl-C ------------------------------------------------------------------

# The command line in a child process that kills itself (SIGKILL, no clean-up) right after writing the last.pth of
# a chosen position: a real kill at a known point, whatever the machine's speed.
KILLED_AFTER_SAVE = """
import os, signal, sys
import esdnet.train
from snn_energy.cli import main

EPOCH, STEP = int(sys.argv[1]), int(sys.argv[2])
real_save = esdnet.train.atomic_save

def save_then_die(obj, path):
    real_save(obj, path)
    if os.path.basename(path) == "last.pth" and (obj["epoch"], obj["step_in_epoch"]) == (EPOCH, STEP):
        os.kill(os.getpid(), signal.SIGKILL)

esdnet.train.atomic_save = save_then_die
sys.exit(main(sys.argv[3:]))
"""


def cli_command(*args) -> list[str]:
    return [sys.executable, "-m", "snn_energy.cli", "train", *args]


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO_ROOT)}


def read_position(path: Path) -> tuple[int, int]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return checkpoint["epoch"], checkpoint["step_in_epoch"]


RESUME_ARGS = ("--epochs", "4", "--batch-size", "2", "--crop", "16", "--timesteps", "2", "--warmup-epochs", "1",
               "--flips", "--no-progress")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_data) -> Path:
    """The last.pth of the same 4-epoch run never stopped, trained in this process (one thread, as the CLI runs)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    torch.set_num_threads(1)
    train(tiny_options(tiny_data, out, epochs=4, flips=True))
    return out / "last.pth"


def assert_resumed_like_uninterrupted(last: Path, uninterrupted: Path) -> None:
    assert read_position(last) == (4, 0)
    assert_identical(weights(last), weights(uninterrupted))
    final, reference = (torch.load(p, weights_only=True) for p in (last, uninterrupted))
    assert same(final["optimizer"], reference["optimizer"]) and same(final["scheduler"], reference["scheduler"])
    assert without_seconds(final["history"]) == without_seconds(reference["history"])


@pytest.mark.slow
@pytest.mark.parametrize("save_every, killed_at", [(0, (1, 0)), (3, (1, 2))], ids=["epoch-end", "mid-epoch"])
def test_killed_run_resumes_to_the_same_weights(tmp_path, tiny_data, uninterrupted, save_every, killed_at):
    # 4 steps per epoch. epoch-end: killed once epoch 1 is saved; mid-epoch (a checkpoint every 3 steps): killed
    # once the checkpoint of step 6, inside epoch 2, is saved.
    out = tmp_path / "run"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_SAVE, *map(str, killed_at), "train", "--data", str(tiny_data), "--out",
         str(out), "--save-every", str(save_every), *RESUME_ARGS],
        env=subprocess_env(), cwd=REPO_ROOT, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert read_position(out / "last.pth") == killed_at
    assert not torch.equal(weights(out / "last.pth")["output.0.weight"], weights(uninterrupted)["output.0.weight"])

    resumed = subprocess.run(cli_command("--resume", str(out / "last.pth"), "--save-every", str(save_every),
                                         "--no-progress"),
                             env=subprocess_env(), cwd=REPO_ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert_resumed_like_uninterrupted(out / "last.pth", uninterrupted)


@pytest.fixture
def sigint_as_on_a_terminal():
    """SIGINT raising KeyboardInterrupt, as on a terminal, whatever the tests run under (a job started in the
    background by a script has SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
def test_ctrl_c_saves_last_pth_where_it_stopped_and_resume_continues(tmp_path, tiny_data, uninterrupted,
                                                                     monkeypatch, capsys, sigint_as_on_a_terminal):
    # Ctrl-C (a real SIGINT to this process) arrives during the 6th step (epoch 2, step 2): training finishes that
    # step, writes last.pth there (no --save-every) and exits with status 130; --resume then ends where an
    # uninterrupted run ends.
    import esdnet.train
    from snn_energy.cli import main as cli_main

    real_loss, calls = esdnet.train.ssim_loss, []

    def loss_then_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            os.kill(os.getpid(), signal.SIGINT)
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(esdnet.train, "ssim_loss", loss_then_ctrl_c)
    out = tmp_path / "run"
    status = cli_main(["train", "--data", str(tiny_data), "--out", str(out), *RESUME_ARGS])
    assert status == 130 and len(calls) == 6
    last = out / "last.pth"
    assert capsys.readouterr().err == (f"snn-energy train: interrupted ({last} saved at epoch 2, step 2 of 4; "
                                       f"--resume {last} continues)\n")
    assert read_position(last) == (1, 2)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    monkeypatch.setattr(esdnet.train, "ssim_loss", real_loss)
    assert cli_main(["train", "--resume", str(last), "--no-progress"]) == 0
    assert_resumed_like_uninterrupted(last, uninterrupted)


# --- two processes ------------------------------------------------------------------------------------------

def _ddp_worker(rank: int, rendezvous: str, data: str, out: str, results: str) -> None:
    # The processes meet through a file (no port to pick beforehand, which another process could take); training
    # finds the group already initialised and uses it.
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", CUDA_VISIBLE_DEVICES="")
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        result = train(tiny_options(Path(data), Path(out), epochs=1))
    finally:
        torch.distributed.destroy_process_group()
    torch.save({"state_dict": result.model.state_dict(), "history": result.history,
                "global_step": result.global_step}, Path(results) / f"rank{rank}.pt")


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_gloo_available(), reason="torch built without the gloo backend")
def test_two_processes_on_gloo_end_with_identical_weights(tmp_path, tiny_data):
    rendezvous = tmp_path / "rendezvous"
    mp.spawn(_ddp_worker, args=(str(rendezvous), str(tiny_data), str(tmp_path / "run"), str(tmp_path)), nprocs=2)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert_identical(rank0["state_dict"], rank1["state_dict"])
    assert rank0["global_step"] == 4  # 8 images, global batch 2 = 1 per process over 2 processes: 4 steps
    # loss and validation scores are combined over both processes
    assert without_seconds(rank0["history"]) == without_seconds(rank1["history"])
    assert math.isfinite(rank0["history"][0]["train_loss"]) and rank0["history"][0]["train_loss"] > 0
    assert_identical(weights(tmp_path / "run" / "last.pth"), rank0["state_dict"])
    torch.manual_seed(1234)
    initial = esdnet.ESDNet(model_config_of(tiny_options(tiny_data, tmp_path))).state_dict()
    assert not torch.equal(initial["output.0.weight"], rank0["state_dict"]["output.0.weight"])
    assert sorted(p.name for p in (tmp_path / "run").glob("*.pth")) == ["best.pth", "last.pth"]


# --- bad input ----------------------------------------------------------------------------------------------

def run_cli(capsys, *args) -> tuple[int, str]:
    from snn_energy.cli import main as cli_main  # here, not at the top: the DDP test's spawned workers skip it

    status = cli_main(["train", "--no-progress", *map(str, args)])
    return status, capsys.readouterr().err


def make_pairs(folder: Path, inputs: int, targets: int, size: int = 32) -> Path:
    data = synthesize_dataset(folder, n_train=max(inputs, targets), n_test=1, size=size)
    for extra in sorted((data / "train" / "input").iterdir())[inputs:]:
        extra.unlink()
    for extra in sorted((data / "train" / "target").iterdir())[targets:]:
        extra.unlink()
    return data


def test_missing_empty_and_unequal_data_are_refused_before_writing(tmp_path, capsys):
    out = tmp_path / "out"
    status, err = run_cli(capsys, "--data", tmp_path / "nowhere", "--out", out)
    assert status == 2 and "nowhere" in err and "does not exist" in err

    empty = tmp_path / "empty"
    (empty / "train" / "input").mkdir(parents=True)
    (empty / "train" / "target").mkdir()
    status, err = run_cli(capsys, "--data", empty, "--out", out)
    assert status == 2 and str(empty / "train" / "input") in err and "no image files" in err

    unequal = make_pairs(tmp_path / "unequal", inputs=4, targets=3)
    status, err = run_cli(capsys, "--data", unequal, "--out", out)
    assert status == 2 and "rain-0004.png" in err and str(unequal / "train" / "input") in err

    small = make_pairs(tmp_path / "small", inputs=3, targets=3, size=16)
    status, err = run_cli(capsys, "--data", small, "--out", out, "--crop", 24)
    assert status == 2 and re.search(r"small/train/input/rain-000\d\.png: crop 24x24 is larger than the image "
                                     r"\(16x16", err), err
    assert not out.exists()


def test_resume_from_another_arch_preset_or_a_weights_file_is_refused(tmp_path, tiny_data, capsys):
    run_dir = tmp_path / "snn"
    train(tiny_options(tiny_data, run_dir, epochs=1))
    last = run_dir / "last.pth"
    before = last.read_bytes()
    out = tmp_path / "elsewhere"
    status, err = run_cli(capsys, "--resume", last, "--arch", "ann", "--out", out)
    assert status == 2 and str(last) in err and "arch 'snn', not 'ann'" in err
    status, err = run_cli(capsys, "--resume", last, "--preset", "paper", "--out", out)
    assert status == 2 and str(last) in err and "preset 'paper'" in err
    status, err = run_cli(capsys, "--resume", last, "--epochs", "5", "--out", out)
    assert status == 2 and "epochs: 1 in the checkpoint, 5 now" in err
    plain = tmp_path / "plain.pth"
    torch.save(weights(last), plain)
    status, err = run_cli(capsys, "--resume", plain, "--out", out)
    assert status == 2 and str(plain) in err and "not a resumable training checkpoint" in err
    status, err = run_cli(capsys, "--data", tiny_data, "--out", run_dir, "--epochs", 1, "--crop", 16)
    assert status == 2 and "already" in err and "--resume" in err
    assert not out.exists() and last.read_bytes() == before

    with pytest.raises(CheckpointError, match="arch 'snn', not 'ann'"):
        train(tiny_options(tiny_data, out, epochs=1, arch="ann", resume=str(last)))
