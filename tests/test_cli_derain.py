"""``snn-energy --help`` and ``snn-energy derain`` on the paper preset (random weights), on CPU."""
import numpy as np
import pytest
import torch
from PIL import Image

import esdnet
from esdnet.imageio import read_image
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
                 "--device", "cpu"]) == 0
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
    assert read_image(tmp_path / "out" / "a.png").shape == (3, 90, 86)


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
    assert main(["derain", "--ckpt", str(bad), "--input", str(tmp_path), "--output", str(tmp_path / "o")]) == 2
    assert "bad.pth" in capsys.readouterr().err
