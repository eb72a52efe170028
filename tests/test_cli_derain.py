"""``snn-energy --help`` and ``snn-energy derain`` on the paper preset (random weights), on CPU."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import esdnet
from esdnet.imageio import read_image, write_image
from esdnet.sample_images import sample_paths
from esdnet.tiling import tiled_inference
from snn_energy.cli import main


@pytest.fixture(scope="module")
def paper_ckpt(tmp_path_factory):
    torch.manual_seed(7)
    path = tmp_path_factory.mktemp("ckpt") / "paper.pth"
    torch.save({"state_dict": esdnet.build_model("paper").state_dict()}, path)
    return path


def save_png(path, height, width, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("derain", "evaluate", "data"):
        assert command in out


def test_derain_one_image_whole_matches_api(tmp_path, paper_ckpt):
    image = save_png(tmp_path / "rainy.png", 22, 30)
    out = tmp_path / "clean.png"
    assert main(["derain", "--ckpt", str(paper_ckpt), "--input", str(image), "--output", str(out), "--whole",
                 "--edge-pad", "0", "--device", "cpu"]) == 0  # the network's own forward, no reflected border
    written = read_image(out)
    model = esdnet.load_model(paper_ckpt)
    with torch.no_grad():
        expected = model(read_image(image).unsqueeze(0))[0].clamp(0, 1)
    assert written.shape == (3, 22, 30)
    assert (written - expected).abs().max() <= 0.5 / 255 + 1e-6  # PNG quantisation only


def test_derain_folder_by_tiles(tmp_path, paper_ckpt):
    folder = tmp_path / "in"
    folder.mkdir()
    save_png(folder / "a.png", 90, 86, seed=1)
    save_png(folder / "b.png", 17, 21, seed=2)
    assert main(["derain", "--ckpt", str(paper_ckpt), "--input", str(folder), "--output", str(tmp_path / "out"),
                 "--device", "cpu", "--arch", "ann"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    ann = esdnet.load_model(paper_ckpt, arch="ann")  # the file records no arch (as the authors'): --arch is obeyed
    for name, shape in (("a.png", (3, 90, 86)), ("b.png", (3, 17, 21))):
        rainy = read_image(folder / name)
        pad = min(8, shape[1] - 1, shape[2] - 1)  # 8 reflected pixels around the image (--edge-pad), cropped back
        padded = torch.nn.functional.pad(rainy[None], (pad,) * 4, mode="reflect")[0]
        expected = tiled_inference(ann, padded, tile_size=80, overlap=8)  # the authors' tiles
        expected = expected[:, pad:pad + shape[1], pad:pad + shape[2]].clamp(0, 1)
        written = read_image(tmp_path / "out" / name)
        assert written.shape == shape
        assert (written - expected).abs().max() <= 0.5 / 255 + 1e-6, name  # PNG quantisation only
        assert (written - rainy).abs().max() > 0.05  # really the network's output, not the input copied


def test_derain_bad_image_names_file_and_writes_nothing(tmp_path, paper_ckpt, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    save_png(folder / "a.png", 16, 16)
    (folder / "b.png").write_bytes(b"not a png at all")
    code = main(["derain", "--ckpt", str(paper_ckpt), "--input", str(folder), "--output", str(tmp_path / "out"),
                 "--whole", "--device", "cpu"])
    assert code == 2
    assert "b.png" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_derain_bad_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_text("nope")
    image = save_png(tmp_path / "rainy.png", 16, 16)
    assert main(["derain", "--ckpt", str(bad), "--input", str(image), "--output", str(tmp_path / "o")]) == 2
    assert "bad.pth" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# --- the recorded architecture, interrupts, grayscale, arguments and output paths ----------------------------

@pytest.fixture(scope="module")
def small_twins(tmp_path_factory):
    """Files recording their architecture, as this project's checkpoints do: a small SNN and its ANN twin."""
    folder = tmp_path_factory.mktemp("twins")
    torch.manual_seed(3)
    paths = {}
    for arch in ("snn", "ann"):
        paths[arch] = folder / f"{arch}.pth"
        torch.save({"state_dict": esdnet.build_model("small", arch=arch).state_dict(), "arch": arch}, paths[arch])
    return paths


def test_derain_follows_the_recorded_architecture(tmp_path, capsys):
    demo_ann = Path(esdnet.__file__).parent / "weights" / "demo_ann_small.pth"  # records arch "ann"
    image = tmp_path / "rainy.png"
    write_image(image, read_image(sample_paths()[0])[:, :40, :48])
    out = tmp_path / "clean.png"
    assert main(["derain", "--ckpt", str(demo_ann), "--input", str(image), "--output", str(out), "--whole", "--edge-pad", "0"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"-> {out}")  # the file, not its folder
    state = torch.load(demo_ann, weights_only=True)["state_dict"]
    outputs = {}
    for arch in ("ann", "snn"):
        model = esdnet.ESDNet(esdnet.infer_config(state), arch=arch)
        model.load_state_dict(state)
        with torch.no_grad():
            outputs[arch] = model.eval()(read_image(image)[None])[0].clamp(0, 1)
    written = read_image(out)
    assert (written - outputs["ann"]).abs().max() <= 0.5 / 255 + 1e-6
    assert (written - outputs["snn"]).abs().mean() > 2 / 255  # run as an SNN (the old default) it derains otherwise
    assert esdnet.load_model(demo_ann).arch == "ann"

    out.unlink()
    assert main(["derain", "--ckpt", str(demo_ann), "--arch", "snn", "--input", str(image), "--output",
                 str(out)]) == 2
    err = capsys.readouterr().err
    assert str(demo_ann) in err and "records arch 'ann'" in err and "arch 'snn' was asked" in err
    assert not out.exists()


def test_ctrl_c_keeps_the_finished_images(tmp_path, small_twins, monkeypatch, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(4):
        save_png(folder / f"img-{index}.png", 20, 24, seed=index)
    import esdnet.inference

    real, calls = esdnet.inference.derain_tensor, []

    def interrupted_after_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(esdnet.inference, "derain_tensor", interrupted_after_two)
    out = tmp_path / "out"
    assert main(["derain", "--ckpt", str(small_twins["snn"]), "--input", str(folder), "--output", str(out),
                 "--whole", "--edge-pad", "0"]) == 130
    err = capsys.readouterr().err
    assert err == f"snn-energy derain: interrupted (kept the 2 of 4 images finished in {out})\n"
    assert sorted(p.name for p in out.iterdir()) == ["img-0.png", "img-1.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]  # no staging folder left
    model = esdnet.load_model(small_twins["snn"])
    for name in ("img-0.png", "img-1.png"):
        with torch.no_grad():
            expected = model(read_image(folder / name)[None])[0].clamp(0, 1)
        assert (read_image(out / name) - expected).abs().max() <= 0.5 / 255 + 1e-6


def test_grayscale_input_comes_back_grayscale(tmp_path, small_twins):
    pixels = np.random.default_rng(5).integers(0, 256, (20, 28), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(tmp_path / "gray.png")
    out = tmp_path / "out.png"
    assert main(["derain", "--ckpt", str(small_twins["snn"]), "--input", str(tmp_path / "gray.png"), "--output",
                 str(out), "--whole", "--edge-pad", "0"]) == 0
    with Image.open(out) as written:
        assert written.mode == "L"
        values = torch.from_numpy(np.asarray(written).astype(np.float32) / 255)
    with torch.no_grad():
        colour = esdnet.load_model(small_twins["snn"])(read_image(tmp_path / "gray.png")[None])[0]
    assert (colour[0] - colour[1]).abs().max() > 1 / 255  # the network alone would add a colour cast
    assert (values - colour.mean(0).clamp(0, 1)).abs().max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("options, message", [
    (["--tile", "0"], "--tile must be a positive number of pixels, got 0"),
    (["--tile", "16", "--overlap", "16"], "--overlap must lie between 0 and --tile - 1 = 15 pixels, got 16"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--edge-pad", "-1"], "--edge-pad must be 0 or a positive number of pixels, got -1"),
])
def test_bad_tiling_options_are_named(tmp_path, small_twins, capsys, options, message):
    image = save_png(tmp_path / "rainy.png", 16, 16)
    assert main(["derain", "--ckpt", str(small_twins["snn"]), "--input", str(image), "--output",
                 str(tmp_path / "o.png"), *options]) == 2
    assert capsys.readouterr().err == f"snn-energy derain: error: {message}\n"


def test_folder_input_with_a_png_output_is_refused(tmp_path, small_twins, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    save_png(folder / "a.png", 16, 16)
    assert main(["derain", "--ckpt", str(small_twins["snn"]), "--input", str(folder), "--output",
                 str(tmp_path / "foo.png")]) == 2
    err = capsys.readouterr().err
    assert "foo.png" in err and "must be a folder, not a .png file name" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_output_below_a_file_is_refused_in_words(tmp_path, small_twins, capsys):
    image = save_png(tmp_path / "rainy.png", 16, 16)
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    assert main(["derain", "--ckpt", str(small_twins["snn"]), "--input", str(image), "--output",
                 str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert err == (f"snn-energy derain: error: --output {blocker / 'sub'}: cannot be created, {blocker} is a file, "
                   "not a folder\n")
    assert blocker.read_text() == "a file"
