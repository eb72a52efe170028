"""The paper preset's state_dict against the authors' layout, the three checkpoint layouts, architecture
inference, and refusal of bad files (missing, truncated, not a checkpoint, pickled code, wrong keys)."""
import json
from pathlib import Path

import pytest
import torch

import esdnet
from esdnet.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def paper_state_dict():
    torch.manual_seed(1234)
    return esdnet.build_model("paper").state_dict()


def test_paper_state_dict_matches_authors_layout(shared_dir, paper_state_dict):
    entries = json.loads((shared_dir / "esdnet_paper_state_dict.json").read_text())["entries"]
    assert [e["name"] for e in entries] == list(paper_state_dict)
    for entry in entries:
        tensor = paper_state_dict[entry["name"]]
        assert list(tensor.shape) == entry["shape"], entry["name"]
        assert str(tensor.dtype).removeprefix("torch.") == entry["dtype"], entry["name"]
    params = sum(t.numel() for k, t in paper_state_dict.items() if "running" not in k and "num_batches" not in k)
    assert params == sum(p.numel() for p in esdnet.build_model("paper").parameters())
    assert round(params / 1e6, 1) == 12.8  # the paper's parameter count


def test_infer_config_of_each_preset():
    for name, config in esdnet.PRESETS.items():
        assert esdnet.infer_config(esdnet.ESDNet(config).state_dict()) == config
    odd = esdnet.config.preset("small", encoder_blocks=(2, 1, 3), decoder_blocks=(1, 2, 1), T=8, dim=32)
    assert esdnet.infer_config(esdnet.ESDNet(odd).state_dict()) == odd


@pytest.mark.parametrize("layout", ["plain", "wrapped", "data_parallel"])
def test_three_layouts_load_bit_identically(tmp_path, paper_state_dict, layout):
    reference = esdnet.build_model("paper")
    reference.load_state_dict(paper_state_dict)
    reference.eval()
    payload = {
        "plain": paper_state_dict,
        "wrapped": {"state_dict": paper_state_dict},
        "data_parallel": {f"module.{k}": v for k, v in paper_state_dict.items()},
    }[layout]
    path = tmp_path / f"{layout}.pth"
    torch.save(payload, path)
    loaded = esdnet.load_model(path, arch="snn", device="cpu")
    assert loaded.config == esdnet.PRESETS["paper"]
    assert not loaded.training
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(image), reference(image))
    ann = esdnet.load_model(path, arch="ann")
    assert ann.arch == "ann" and ann.config == loaded.config


def test_load_model_leaves_no_state(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "small.pth"
    torch.save(esdnet.build_model("small").state_dict(), path)
    model = esdnet.load_model(path)
    image = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        first, second = model(image), model(image)
    assert torch.equal(first, second)
    for module in model.modules():
        if hasattr(module, "v"):
            assert isinstance(module.v, float) and module.v == 0.0


class _CreatesFile:
    """A pickle payload that creates a file when unpickled: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_refuses_pickled_code(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": esdnet.build_model("small").state_dict(), "payload": _CreatesFile(marker)}, path)
    # The payload is real: an unsafe load would run it.
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError, match="evil.pth.*refused"):
        esdnet.load_model(path)
    assert not marker.exists()


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pth: no such checkpoint"):
        esdnet.load_model(tmp_path / "nope.pth")


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.pth"
    torch.save(esdnet.build_model("small").state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pth: not a readable PyTorch checkpoint"):
        esdnet.load_model(path)


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("hello, I am not a checkpoint\n")
    with pytest.raises(CheckpointError, match="notes.pth"):
        esdnet.load_model(text)
    numbers = tmp_path / "list.pth"
    torch.save([1, 2, 3], numbers)
    with pytest.raises(CheckpointError, match="list.pth: not a checkpoint"):
        esdnet.load_model(numbers)


def test_wrong_and_missing_keys_are_named(tmp_path):
    state = esdnet.build_model("small").state_dict()
    state["encoder_level1.0.shortcut.0.weight"] = torch.zeros(16, 16, 5, 5)
    del state["refinement.sa.0.bias"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        esdnet.load_model(path)
    message = str(info.value)
    assert "odd.pth" in message
    assert "refinement.sa.0.bias" in message and "extra.weight" in message
    assert "encoder_level1.0.shortcut.0.weight: checkpoint [16, 16, 5, 5]" in message


def test_other_network_is_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(torch.nn.Linear(3, 4).state_dict(), path)
    with pytest.raises(CheckpointError, match="resnet.pth: not an ESDNet state_dict: key 'patch_embed.proj.weight'"):
        esdnet.load_model(path)


def test_empty_file_is_named_in_words(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError) as info:
        esdnet.load_model(empty)
    assert str(info.value) == f"{empty}: the file is empty (0 bytes), not a PyTorch checkpoint"


def test_the_recorded_architecture_is_loaded_and_a_contradiction_refused(tmp_path):
    torch.manual_seed(2)
    state = esdnet.build_model("small", arch="ann").state_dict()
    recorded, bare = tmp_path / "ann.pth", tmp_path / "bare.pth"
    torch.save({"state_dict": state, "arch": "ann"}, recorded)
    torch.save(state, bare)  # as the authors' files: no architecture recorded
    assert esdnet.load_model(recorded).arch == "ann"
    assert esdnet.load_model(recorded, arch="ann").arch == "ann"
    assert esdnet.load_model(recorded, single_pass=True).single_pass
    assert esdnet.checkpoint.checkpoint_arch(recorded) == "ann" and esdnet.checkpoint.checkpoint_arch(bare) is None
    with pytest.raises(CheckpointError) as info:
        esdnet.load_model(recorded, arch="snn")
    assert str(info.value).startswith(f"{recorded}: records arch 'ann' (it was trained as the ANN), but arch 'snn' "
                                      "was asked for")
    assert esdnet.load_model(bare).arch == "snn"  # nothing recorded: the SNN, as before
    assert esdnet.load_model(bare, arch="ann").arch == "ann"
    odd = tmp_path / "odd.pth"
    torch.save({"state_dict": state, "arch": "cnn"}, odd)
    with pytest.raises(CheckpointError, match="odd.pth: records an unknown architecture 'cnn'"):
        esdnet.load_model(odd)


def test_bundled_demo_models_load_as_what_they_are():
    weights = Path(esdnet.__file__).parent / "weights"
    assert esdnet.load_model(weights / "demo_snn_small.pth").arch == "snn"
    assert esdnet.load_model(weights / "demo_ann_small.pth").arch == "ann"
