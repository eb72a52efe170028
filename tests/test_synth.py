"""esdnet.synth: reproducible synthetic rain in the authors' layout."""
import json

import numpy as np
import pytest
from PIL import Image

from esdnet.data import PairedImageDataset
from esdnet.metrics import evaluate_pair
from esdnet.synth import PHOTOGRAPHS, line_kernel, synthesize_dataset


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def light_set(tmp_path_factory):
    return synthesize_dataset(tmp_path_factory.mktemp("synth") / "light", seed=7, n_train=6, n_test=4, size=48)


def test_layout_names_sizes_and_record(light_set):
    assert sorted(p.name for p in light_set.iterdir()) == ["synth.json", "test", "train"]
    for split, count in (("train", 6), ("test", 4)):
        inputs = sorted(p.name for p in (light_set / split / "input").iterdir())
        targets = sorted(p.name for p in (light_set / split / "target").iterdir())
        assert inputs == [f"rain-{i:04d}.png" for i in range(1, count + 1)]
        assert targets == [f"norain-{i:04d}.png" for i in range(1, count + 1)]
        dataset = PairedImageDataset(light_set, split)
        assert len(dataset) == count and dataset[0][0].shape == (3, 48, 48)
    with Image.open(light_set / "train" / "input" / "rain-0001.png") as picture:
        assert picture.mode == "RGB" and picture.size == (48, 48)
    record = json.loads((light_set / "synth.json").read_text())
    assert record["seed"] == 7 and record["preset"] == "light" and (record["train"], record["test"]) == (6, 4)
    # photographs, not crops, are split: no test picture comes from a training photograph
    assert set(record["train_photographs"]).isdisjoint(record["test_photographs"])
    assert sorted(record["train_photographs"] + record["test_photographs"]) == sorted(PHOTOGRAPHS)
    assert not [p for p in light_set.parent.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, light_set):
    again = synthesize_dataset(tmp_path / "again", seed=7, n_train=6, n_test=4, size=48)
    assert _files(again) == _files(light_set)
    other = _files(synthesize_dataset(tmp_path / "other", seed=8, n_train=6, n_test=4, size=48))
    assert other.keys() == _files(light_set).keys()
    differing = [name for name, data in other.items() if name.endswith(".png") and data != _files(light_set)[name]]
    assert len(differing) == 20  # every picture changes


def _input_psnrs(root, split):
    dataset = PairedImageDataset(root, split)
    return np.array([evaluate_pair(*dataset[i])[0] for i in range(len(dataset))])


def test_rain_is_present_and_heavy_is_heavier(tmp_path, light_set):
    heavy = synthesize_dataset(tmp_path / "heavy", preset="heavy", seed=7, n_train=6, n_test=4, size=48)
    light_psnr = np.concatenate([_input_psnrs(light_set, "train"), _input_psnrs(light_set, "test")])
    heavy_psnr = np.concatenate([_input_psnrs(heavy, "train"), _input_psnrs(heavy, "test")])
    assert np.isfinite(light_psnr).all() and np.isfinite(heavy_psnr).all()
    # Rain100L inputs score about 25-35 dB (Y channel), Rain200H about 12-18 dB.
    assert 20 < light_psnr.min() and light_psnr.max() < 40
    assert 9 < heavy_psnr.min() and heavy_psnr.max() < 22
    assert heavy_psnr.max() < light_psnr.min()
    rainy, clean = PairedImageDataset(heavy, "train")[0]
    assert float((rainy - clean).min()) >= -1 / 255  # screen blending only brightens (up to rounding)


def test_line_kernel_is_a_normalised_line_at_the_angle():
    vertical = line_kernel(9, 0.0)
    assert vertical.shape == (9, 9) and vertical.sum() == pytest.approx(1.0)
    assert np.count_nonzero(vertical[:, 4]) == 9 and np.count_nonzero(vertical) == 9
    diagonal = line_kernel(9, 45.0)
    rows, cols = np.nonzero(diagonal > diagonal.max() / 2)
    assert np.corrcoef(rows, cols)[0, 1] == pytest.approx(1.0)  # on the main diagonal: a 45 degree line


def test_existing_output_is_refused_then_overwritten(tmp_path):
    out = tmp_path / "set"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=str(out)):
        synthesize_dataset(out, n_train=1, n_test=1, size=16)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    synthesize_dataset(out, n_train=1, n_test=1, size=16, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["synth.json", "test", "train"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # the replaced folder is gone


def test_user_folder_of_clean_pictures(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "clean").mkdir()
    for name in ("a.png", "b.png", "c.jpg"):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "clean" / name)
    out = synthesize_dataset(tmp_path / "out", n_train=2, n_test=1, size=24, clean_dir=tmp_path / "clean")
    record = json.loads((out / "synth.json").read_text())
    assert sorted(record["train_photographs"] + record["test_photographs"]) == ["a.png", "b.png", "c.jpg"]
    assert len(record["test_photographs"]) == 1
    (tmp_path / "one").mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "one" / "a.png")
    with pytest.raises(ValueError, match="at least 2 clean pictures"):
        synthesize_dataset(tmp_path / "out2", n_train=2, n_test=1, size=24, clean_dir=tmp_path / "one")
    assert not (tmp_path / "out2").exists()
