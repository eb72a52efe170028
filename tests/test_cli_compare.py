"""``snn-energy compare`` on small random-weight twins and two tiny pairs: quality and energy side by side."""
import json

import pandas as pd
import pytest
import torch
from fvcore.nn import FlopCountAnalysis

import esdnet
from esdnet.imageio import read_image, write_image
from esdnet.metrics import evaluate_pair
from esdnet.sample_images import sample_paths, sample_targets_dir
from snn_energy.cli import main
from test_plots import assert_real_png

SIDE = 36


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    torch.manual_seed(1)
    snn, ann = esdnet.build_model("small"), esdnet.build_model("small", arch="ann")
    torch.save(snn.state_dict(), root / "snn.pth")
    torch.save({"state_dict": ann.state_dict()}, root / "ann.pth")  # a wrapped checkpoint loads too
    data = root / "data" / "test"
    for sub in ("input", "target"):
        (data / sub).mkdir(parents=True)
    for path in sample_paths()[1:3]:
        for source, sub in ((path, "input"), (sample_targets_dir() / f"no{path.name}", "target")):
            image = torch.nn.functional.interpolate(read_image(source)[None], size=(SIDE, SIDE), mode="area")[0]
            write_image(data / sub / source.name, image)
    return {"root": root, "snn": snn.eval(), "ann": ann.eval(), "data": root / "data"}


@pytest.fixture(scope="module")
def compared(workspace):
    out = workspace["root"] / "cmp"
    status = main(["compare", "--snn-ckpt", str(workspace["root"] / "snn.pth"), "--ann-ckpt",
                   str(workspace["root"] / "ann.pth"), "--data", str(workspace["data"]), "--out", str(out),
                   "--device", "cpu"])
    assert status == 0
    return out


def test_quality_is_that_of_plain_forwards(compared, workspace):
    table = pd.read_csv(compared / "compare.csv").set_index("network")
    per_image = pd.read_csv(compared / "per_image.csv")
    inputs = sorted((workspace["data"] / "test" / "input").iterdir())
    scores = {"snn": [], "ann": []}
    with torch.no_grad():
        for path in inputs:
            rainy, clean = read_image(path), read_image(workspace["data"] / "test" / "target" / f"no{path.name}")
            for network in ("snn", "ann"):
                derained = workspace[network](rainy[None])[0].clamp(0, 1)
                scores[network].append(evaluate_pair(derained, clean))
    # the command runs the ANN once (single pass); the T-step ANN here gives the same images up to float rounding
    # (about 3e-6), hence 1e-3 dB
    for network in ("snn", "ann"):
        psnr = [s[0] for s in scores[network]]
        ssim = [s[1] for s in scores[network]]
        assert per_image[f"{network}_psnr_db"].tolist() == pytest.approx(psnr, abs=1e-3)
        assert table.loc[network.upper(), "psnr_db"] == pytest.approx(sum(psnr) / len(psnr), abs=1e-3)
        assert table.loc[network.upper(), "ssim"] == pytest.approx(sum(ssim) / len(ssim), abs=1e-5)
    assert per_image["file"].tolist() == [p.name for p in inputs]


def test_energy_columns_come_from_the_profile(compared, workspace):
    table = pd.read_csv(compared / "compare.csv").set_index("network")
    summary = {row["accounting"]: row for row in json.loads((compared / "summary.json").read_text())}
    for accounting in ("paper", "strict"):
        total = summary[accounting]
        assert table.loc["SNN", f"energy_{accounting}_pJ"] == pytest.approx(total["energy_pJ"], rel=1e-12)
        assert table.loc["ANN", f"energy_{accounting}_pJ"] == pytest.approx(total["energy_ann_T1_pJ"], rel=1e-12)
        assert table.loc["SNN", f"saving_{accounting}"] == pytest.approx(
            1 - total["energy_pJ"] / total["energy_ann_T1_pJ"], rel=1e-9)
    single_pass = esdnet.ESDNet(workspace["snn"].config, arch="ann", single_pass=True).eval()
    analysis = FlopCountAnalysis(single_pass, torch.rand(1, 3, SIDE, SIDE))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    expected = summary["paper"]["e_mac_pJ"] * analysis.by_operator()["conv"]
    assert table.loc["ANN", "energy_paper_pJ"] == pytest.approx(expected)


def test_figure_and_report(compared):
    assert_real_png(compared / "figures" / "quality_vs_energy.png")
    assert (compared / "figures" / "quality_vs_energy.svg").is_file()
    page = (compared / "report.html").read_text()
    assert "data:image/png;base64," in page and "PSNR (dB)" in page


def test_data_folder_without_pairs(workspace, tmp_path, capsys):
    (tmp_path / "flat").mkdir()
    out = tmp_path / "out"
    status = main(["compare", "--snn-ckpt", str(workspace["root"] / "snn.pth"), "--ann-ckpt",
                   str(workspace["root"] / "ann.pth"), "--data", str(tmp_path / "flat"), "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and "--data" in err and "input/ and target/" in err and not out.exists()


def test_swapped_checkpoints_are_refused_naming_both(workspace, tmp_path, capsys):
    recorded = {}
    for arch in ("snn", "ann"):
        recorded[arch] = tmp_path / f"recorded_{arch}.pth"
        torch.save({"state_dict": workspace[arch].state_dict(), "arch": arch}, recorded[arch])
    out = tmp_path / "out"
    status = main(["compare", "--snn-ckpt", str(recorded["ann"]), "--ann-ckpt", str(recorded["snn"]),
                   "--data", str(workspace["data"]), "--out", str(out)])
    assert status == 2 and capsys.readouterr().err == (
        f"snn-energy compare: error: --snn-ckpt {recorded['ann']} holds an ANN and --ann-ckpt {recorded['snn']} an "
        f"SNN (as their files record): swapped? give --snn-ckpt {recorded['snn']} --ann-ckpt {recorded['ann']}\n")
    status = main(["compare", "--snn-ckpt", str(recorded["snn"]), "--ann-ckpt", str(recorded["snn"]),
                   "--data", str(workspace["data"]), "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and f"--ann-ckpt {recorded['snn']} holds an SNN" in err and str(recorded["snn"]) in err
    assert not out.exists()


def test_twins_of_different_architectures(workspace, tmp_path, capsys):
    wider = tmp_path / "wider_ann.pth"
    torch.save(esdnet.build_model("small", arch="ann", dim=32).state_dict(), wider)
    out = tmp_path / "out"
    status = main(["compare", "--snn-ckpt", str(workspace["root"] / "snn.pth"), "--ann-ckpt", str(wider),
                   "--data", str(workspace["data"]), "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and "--ann-ckpt" in err and str(wider) in err and "twins share the topology" in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["wider_ann.pth"]
