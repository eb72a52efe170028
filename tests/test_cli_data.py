"""``snn-energy data synth`` and ``snn-energy evaluate``, run in-process."""
import csv
import json
import math

import pytest

from esdnet.data import PairedImageDataset
from esdnet.metrics import evaluate_pair
from snn_energy.cli import main


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "rain"
    assert main(["data", "synth", "--out", str(out), "--train", "3", "--test", "2", "--size", "32",
                 "--seed", "11"]) == 0
    return out


def test_synth_writes_the_layout(synth_dir):
    assert len(list((synth_dir / "train" / "input").iterdir())) == 3
    assert len(list((synth_dir / "test" / "target").iterdir())) == 2
    assert json.loads((synth_dir / "synth.json").read_text())["seed"] == 11


def test_evaluate_target_against_itself_scores_inf_and_one(synth_dir, tmp_path, capsys):
    target = synth_dir / "test" / "target"
    assert main(["evaluate", "--pred", str(target), "--target", str(target), "--out", str(tmp_path / "m")]) == 0
    summary = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert summary["count"] == 2 and summary["mean_psnr_db"] == math.inf and summary["mean_ssim"] == 1.0
    rows = list(csv.DictReader((tmp_path / "m" / "metrics.csv").open()))
    assert [(r["pred"], float(r["psnr_db"]), float(r["ssim"])) for r in rows] == [
        ("norain-0001.png", math.inf, 1.0), ("norain-0002.png", math.inf, 1.0)]
    printed = capsys.readouterr().out
    assert "norain-0002.png" in printed and "PSNR inf dB, SSIM 1.0000" in printed


def test_evaluate_rainy_inputs_matches_the_library_and_default_out(synth_dir, capsys):
    test_dir = synth_dir / "test"
    assert main(["evaluate", "--pred", str(test_dir / "input"), "--target", str(test_dir / "target"),
                 "--crop-border", "2", "--rgb"]) == 0
    summary = json.loads((test_dir / "input-metrics" / "metrics.json").read_text())  # beside --pred
    dataset = PairedImageDataset(synth_dir, "test")
    expected = [evaluate_pair(*dataset[i], crop_border=2, rgb=True) for i in range(len(dataset))]
    assert [(r["pred"], r["target"]) for r in summary["images"]] == [("rain-0001.png", "norain-0001.png"),
                                                                     ("rain-0002.png", "norain-0002.png")]
    assert [r["psnr_db"] for r in summary["images"]] == pytest.approx([e[0] for e in expected], rel=1e-12)
    assert [r["ssim"] for r in summary["images"]] == pytest.approx([e[1] for e in expected], rel=1e-12)
    assert summary["channels"] == "RGB" and summary["crop_border"] == 2
    assert 10 < summary["mean_psnr_db"] < 45 and 0 < summary["mean_ssim"] < 1


def test_evaluate_missing_folder_exits_2_naming_it(synth_dir, tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    assert main(["evaluate", "--pred", str(missing), "--target", str(synth_dir / "test" / "target")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snn-energy evaluate: error:") and str(missing) in err
    assert not (tmp_path / "no-such-folder-metrics").exists()


def test_synth_into_non_empty_folder_is_refused(synth_dir, capsys):
    before = sorted(p.relative_to(synth_dir) for p in synth_dir.rglob("*"))
    assert main(["data", "synth", "--out", str(synth_dir), "--train", "1", "--test", "1", "--size", "16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snn-energy data synth: error:") and str(synth_dir) in err and "--overwrite" in err
    assert sorted(p.relative_to(synth_dir) for p in synth_dir.rglob("*")) == before


def test_evaluate_warns_when_it_pairs_by_sorted_order(synth_dir, tmp_path, capsys):
    renamed = tmp_path / "pred"
    renamed.mkdir()
    for index, path in enumerate(sorted((synth_dir / "test" / "input").iterdir())):
        (renamed / f"derained_{index}.png").write_bytes(path.read_bytes())
    target = synth_dir / "test" / "target"
    assert main(["evaluate", "--pred", str(renamed), "--target", str(target), "--out", str(tmp_path / "m")]) == 0
    err = capsys.readouterr().err
    assert err == (f"snn-energy evaluate: warning: no file name of {renamed} matches one of {target}; pairing the 2 "
                   "files by sorted order (derained_0.png with norain-0001.png, ...)\n")
    summary = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert [(r["pred"], r["target"]) for r in summary["images"]] == [("derained_0.png", "norain-0001.png"),
                                                                     ("derained_1.png", "norain-0002.png")]
    # pairs matched by name say nothing
    assert main(["evaluate", "--pred", str(target), "--target", str(target), "--out", str(tmp_path / "m2")]) == 0
    assert capsys.readouterr().err == ""
