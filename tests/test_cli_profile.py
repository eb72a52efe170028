"""``snn-energy profile`` on a small random-weight ESDNet and two tiny images: files, totals, savings, bad input."""
import contextlib
import io
import json
import math
import re

import pandas as pd
import pytest
import torch
from fvcore.nn import FlopCountAnalysis

import esdnet
from esdnet.imageio import read_image, write_image
from esdnet.sample_images import sample_paths, sample_targets_dir
from snn_energy.cli import main
from snn_energy.cli.esdnet_profile import batches
from snn_energy.cli.esdnet_stages import STAGES
from snn_energy.cli.image_inputs import resize
from esdnet.progress import progress_bar
from test_plots import assert_real_png, assert_real_svg

HEIGHT, WIDTH = 32, 40
ACCOUNTINGS = ("paper", "strict", "lemaire")


def _tiny_pairs(folder):
    """Two rainy/clean pairs of HEIGHT x WIDTH made from the bundled samples."""
    (folder / "input").mkdir(parents=True)
    (folder / "target").mkdir()
    for path in sample_paths()[:2]:
        for source, sub in ((path, "input"), (sample_targets_dir() / f"no{path.name}", "target")):
            image = torch.nn.functional.interpolate(read_image(source)[None], size=(HEIGHT, WIDTH), mode="area")[0]
            write_image(folder / sub / source.name, image)
    return folder / "input", folder / "target"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("profile")
    torch.manual_seed(0)
    snn = esdnet.build_model("small")
    torch.save(snn.state_dict(), root / "tiny_snn.pth")
    images, targets = _tiny_pairs(root / "data")
    return {"root": root, "ckpt": root / "tiny_snn.pth", "images": images, "targets": targets, "config": snn.config}


@pytest.fixture(scope="module")
def report(workspace):
    """Run the command once; return its output folder and printed text."""
    out = workspace["root"] / "report"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["profile", "--ckpt", str(workspace["ckpt"]), "--images", str(workspace["images"]),
                       "--targets", str(workspace["targets"]), "--out", str(out), "--device", "cpu"])
    assert status == 0
    return out, printed.getvalue()


def test_batch_size_does_not_change_the_layer_table(workspace, tmp_path):
    """Three generated noise images profiled in batches of 2 and one by one (streamed, each read as it comes)
    give the same layers.csv in every column that does not depend on a call's input kind. (The kind is decided per
    call over the batch: the attention ``sharedMLP.2`` convolutions get an all-zero, binary, input for some images
    and a real one for others, so their strict and lemaire charges differ with batching; see the README.)"""
    folder = tmp_path / "noise"
    folder.mkdir()
    generator = torch.Generator().manual_seed(3)
    for index in range(3):
        write_image(folder / f"{index}.png", torch.rand(3, 24, 32, generator=generator))
    tables = {}
    for size in ("2", "1"):
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["profile", "--ckpt", str(workspace["ckpt"]), "--images", str(folder), "--device", "cpu",
                         "--out", str(tmp_path / size), "--batch-size", size]) == 0
        tables[size] = pd.read_csv(tmp_path / size / "layers.csv")
    columns = ["layer", "role", "timesteps", "macs", "sops", "mults", "adds", "spikes", "neurons", "firing_rate",
               "firing_rate_std", "firing_rate_ci95_low", "firing_rate_ci95_high", "energy_paper_pJ",
               "dead_neurons", "saturated_neurons"]
    pd.testing.assert_frame_equal(tables["2"][columns], tables["1"][columns], check_exact=False, rtol=1e-9)
    assert tables["2"]["firing_rate_std"].gt(0).any()
    assert json.loads((tmp_path / "2" / "settings.json").read_text())["images"] == 3


def test_batches_group_consecutive_images_of_equal_size():
    small, large = torch.zeros(3, 16, 16), torch.ones(3, 16, 24)
    shapes = [tuple(b.shape) for b in batches([small, small, small, large, small], 2, torch.device("cpu"))]
    assert shapes == [(2, 3, 16, 16), (1, 3, 16, 16), (1, 3, 16, 24), (1, 3, 16, 16)]


@pytest.mark.parametrize("value", ["0", "two"])
def test_bad_batch_size(workspace, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["profile", "--ckpt", str(workspace["ckpt"]), "--batch-size", value])
    assert exit_info.value.code == 2 and "--batch-size" in capsys.readouterr().err


def test_writes_the_report_files(report):
    out, _ = report
    for name in ("layers.csv", "timesteps.csv", "summary.json", "report.md", "report.html", "stages.csv",
                 "report.tex"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for figure in ("firing_rates", "firing_rate_heatmap", "stage_energy", "spike_maps", "energy_vs_rain_density"):
        assert_real_png(out / "figures" / f"{figure}.png")
        assert_real_svg(out / "figures" / f"{figure}.svg")
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5 and "src=\"figures/" not in html  # self-contained
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".report.")]  # no staging left
    assert not (out / "spike_maps.pt").exists()  # drawn in the figure; the raw tensors are not kept


def test_layer_energies_add_up_and_saving_is_consistent(report):
    out, _ = report
    layers = pd.read_csv(out / "layers.csv")
    summary = {row["accounting"]: row for row in json.loads((out / "summary.json").read_text())}
    assert set(summary) == set(ACCOUNTINGS)
    for accounting in ACCOUNTINGS:
        total = summary[accounting]
        assert layers[f"energy_{accounting}_pJ"].sum() == pytest.approx(total["energy_pJ"], rel=1e-9)
        for reference in ("T1", "same_T"):
            expected = 1.0 - total["energy_pJ"] / total[f"energy_ann_{reference}_pJ"]
            assert total[f"saving_vs_ann_{reference}"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # stage table: the per-stage energies add up to the same totals, for the SNN and for the ANN twin
    stages = pd.read_csv(out / "stages.csv")
    assert list(stages["stage"][:len(STAGES)]) == list(STAGES)
    for accounting in ACCOUNTINGS:
        assert stages[f"energy_snn_{accounting}_pJ"].sum() == pytest.approx(summary[accounting]["energy_pJ"], rel=1e-9)
        assert stages[f"energy_ann_{accounting}_pJ"].sum() == pytest.approx(
            summary[accounting]["energy_ann_T1_pJ"], rel=1e-9)


def test_ann_and_snn_dense_macs_match_fvcore(report, workspace):
    """Independent check: fvcore's convolution count of the ANN twins at the same size."""
    out, _ = report
    summary = {row["accounting"]: row for row in json.loads((out / "summary.json").read_text())}
    layers = pd.read_csv(out / "layers.csv")
    x = torch.rand(1, 3, HEIGHT, WIDTH)
    counts = {}
    for single_pass in (True, False):
        ann = esdnet.ESDNet(workspace["config"], arch="ann", single_pass=single_pass).eval()
        analysis = FlopCountAnalysis(ann, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        counts[single_pass] = analysis.by_operator()["conv"]  # fvcore: one per multiply-accumulate
    paper = summary["paper"]
    assert paper["energy_ann_T1_pJ"] / paper["e_mac_pJ"] == pytest.approx(counts[True], rel=1e-12)
    assert layers.loc[layers["role"] == "synaptic", "macs"].sum() == pytest.approx(counts[False], rel=1e-12)


def test_printed_table_has_stages_savings_and_constants(report):
    out, printed = report
    summary = {row["accounting"]: row for row in json.loads((out / "summary.json").read_text())}
    for stage in STAGES:
        assert stage in printed
    for accounting in ACCOUNTINGS:
        saving = 100 * summary[accounting]["saving_vs_ann_T1"]
        assert f"saving ({accounting} accounting): {saving:.1f} %" in printed
    assert "fp32" in printed and "E_MAC = 4.6 pJ" in printed and "E_AC = 0.9 pJ" in printed
    markdown = (out / "report.md").read_text()
    for accounting in ACCOUNTINGS:
        assert f"{100 * summary[accounting]['saving_vs_ann_T1']:.1f} % under the {accounting} accounting" in markdown
    header = re.split(r"\s{2,}", printed.splitlines()[1].strip())
    # counts: the dense MACs, and per accounting the MACs and ACs it charges, labelled as such
    assert [c for c in header if "(G)" in c] == ["dense MACs (G)"] + [
        f"{a}: charged {kind}s (G)" for a in ACCOUNTINGS for kind in ("MAC", "AC")]


def test_target_saving_rate_is_printed_and_saved(report):
    out, printed = report
    summary = {row["accounting"]: row for row in json.loads((out / "summary.json").read_text())}
    for accounting in ACCOUNTINGS:
        row = summary[accounting]
        assert row["target_saving"] == 0.54
        assert 0.0 <= row["spike_input_rate"] <= 1.0
        rate = row["rate_for_target_saving"]
        line = next(l for l in printed.splitlines() if l.startswith(f"saving ({accounting} accounting)"))
        if rate is None or math.isnan(rate):
            assert f"no firing rate in [0, 1] gives 54 % (measured {row['spike_input_rate']:.3f})" in line
        else:
            assert f"54 % needs a mean spike-input rate of {rate:.3f}" in line
    tex = (out / "report.tex").read_text()
    assert tex.startswith("\\begin{table}") and "\\toprule" in tex and "\\bottomrule" in tex
    for accounting in ACCOUNTINGS:
        assert f"{accounting} & " in tex
    assert f"{100 * summary['paper']['saving_vs_ann_T1']:.1f}" in tex


@pytest.mark.parametrize("value", ["0", "1.2", "54%", "x"])
def test_bad_target_saving(workspace, tmp_path, capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["profile", "--ckpt", str(workspace["ckpt"]), "--target-saving", value, "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--target-saving" in err and value in err and "fraction between 0 and 1" in err
    assert not (tmp_path / "o").exists()


def test_rain_density_is_measured_against_targets(report, workspace):
    out, _ = report
    images = pd.read_csv(out / "images.csv")
    rainy = [read_image(p) for p in sorted(workspace["images"].iterdir())]
    clean = [read_image(p) for p in sorted(workspace["targets"].iterdir())]
    expected = [float((((r.mean(0) - c.mean(0)) > 0.05).double().mean())) for r, c in zip(rainy, clean)]
    assert images["rain_density"].tolist() == pytest.approx(expected)
    assert "measured against the clean targets" in (out / "report.md").read_text()


def _run_failing(argv, capsys):
    status = main(argv)
    return status, capsys.readouterr().err


def _no_leftovers(folder):
    return not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_checkpoint_of_another_architecture(workspace, tmp_path, capsys):
    other = tmp_path / "resnet_like.pth"
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    torch.save(network.state_dict(), other)
    out = tmp_path / "out"
    status, err = _run_failing(["profile", "--ckpt", str(other), "--images", str(workspace["images"]),
                                "--out", str(out)], capsys)
    assert status == 2 and str(other) in err and "not an ESDNet state_dict" in err
    assert not out.exists() and _no_leftovers(tmp_path)


def test_empty_image_folder(workspace, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    status, err = _run_failing(["profile", "--ckpt", str(workspace["ckpt"]), "--images", str(empty),
                                "--out", str(out)], capsys)
    assert status == 2 and str(empty) in err and "no image files" in err
    assert not out.exists() and _no_leftovers(tmp_path)


def test_output_folder_that_is_a_file(workspace, tmp_path, capsys):
    out = tmp_path / "report.txt"
    out.write_text("keep me")
    status, err = _run_failing(["profile", "--ckpt", str(workspace["ckpt"]), "--images", str(workspace["images"]),
                                "--out", str(out)], capsys)
    assert status == 2 and "--out" in err and str(out) in err and "is a file" in err
    assert out.read_text() == "keep me" and _no_leftovers(tmp_path)


def test_output_folder_with_other_content_is_refused(workspace, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("not a report")
    status, err = _run_failing(["profile", "--ckpt", str(workspace["ckpt"]), "--images", str(workspace["images"]),
                                "--out", str(out)], capsys)
    assert status == 2 and "--out" in err and "holds no previous report" in err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("size", ["8", "15", "big"])
def test_size_below_16(workspace, tmp_path, capsys, size):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["profile", "--ckpt", str(workspace["ckpt"]), "--size", size, "--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--size" in err and size in err
    assert not out.exists()


def test_unknown_spike_layer(workspace, tmp_path, capsys):
    out = tmp_path / "out"
    status, err = _run_failing(["profile", "--ckpt", str(workspace["ckpt"]), "--images", str(workspace["images"]),
                                "--spike-layers", "encoder_level9.0", "--out", str(out)], capsys)
    assert status == 2 and "--spike-layers" in err and "encoder_level9.0" in err
    assert not out.exists()


def test_resize_keeps_range_and_size():
    image = torch.rand(3, 50, 70)
    resized = resize(image, 24)
    assert resized.shape == (3, 24, 24) and 0.0 <= float(resized.min()) and float(resized.max()) <= 1.0
    assert math.isclose(float(resized.mean()), float(image.mean()), abs_tol=0.02)


def test_progress_bar_is_quiet_off_a_terminal(capsys):
    """Under pytest stderr is no terminal (as in pipes and CI logs): the bar is disabled and prints nothing."""
    with progress_bar(total=3, desc="profile") as bar:
        bar.update(2)
    assert bar.disable and capsys.readouterr().err == ""
