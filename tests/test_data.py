"""esdnet.imageio and esdnet.data: reading/writing images, pairing rules, crops, splits."""
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from esdnet.data import PairedImageDataset, pair_files, split_indices
from esdnet.imageio import ImageReadError, image_size, list_images, read_image, write_image


def _png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _rgb(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _touch_images(folder: Path, names, size=(6, 5)):
    for i, name in enumerate(names):
        _png(folder / name, _rgb(*size, seed=i))


# --- imageio -----------------------------------------------------------------------------------------

def test_rgb_png_reads_as_float_and_writes_back_bit_exact(tmp_path):
    pixels = _rgb(7, 9)
    image = read_image(_png(tmp_path / "a.png", pixels))
    assert image.dtype == torch.float32 and image.shape == (3, 7, 9)
    np.testing.assert_allclose(image.numpy(), pixels.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    write_image(tmp_path / "b.png", image)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")), pixels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no temporary file left
    with pytest.raises(ValueError, match="b.jpg"):
        write_image(tmp_path / "b.jpg", image)


def test_grayscale_palette_and_opaque_rgba_become_rgb(tmp_path):
    pixels = _rgb(5, 6)
    gray = read_image(_png(tmp_path / "gray.png", pixels[..., 0]))
    for channel in gray:
        np.testing.assert_allclose(channel.numpy(), pixels[..., 0] / 255.0, rtol=1e-6)
    palette = Image.fromarray(pixels).quantize(16)
    palette.save(tmp_path / "palette.png")
    expected = np.asarray(palette.convert("RGB")).transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(read_image(tmp_path / "palette.png").numpy(), expected, rtol=1e-6)
    opaque = np.dstack([pixels, np.full((5, 6), 255, np.uint8)])
    np.testing.assert_allclose(read_image(_png(tmp_path / "rgba.png", opaque)).numpy(),
                               pixels.transpose(2, 0, 1) / 255.0, rtol=1e-6)


def test_palette_transparency_and_several_frames(tmp_path):
    palette = Image.fromarray(np.array([[0, 1], [1, 1]], np.uint8), mode="P")
    palette.putpalette([10, 20, 30, 200, 100, 50])
    palette.save(tmp_path / "holes.png", transparency=0)  # entry 0 fully transparent -> white
    image = read_image(tmp_path / "holes.png")
    np.testing.assert_allclose(image[:, 0, 0].numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(image[:, 1, 1].numpy(), [200 / 255, 100 / 255, 50 / 255], rtol=1e-6)
    frames = [Image.fromarray(_rgb(4, 4, seed=s)) for s in range(2)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageReadError, match="anim.gif.*2 frames"):
        read_image(tmp_path / "anim.gif")


def test_translucent_rgba_is_composited_on_white(tmp_path):
    pixels = np.zeros((2, 2, 4), np.uint8)
    pixels[..., 0] = 200
    pixels[..., 3] = [[255, 0], [51, 102]]  # alpha 1, 0, 0.2, 0.4
    image = read_image(_png(tmp_path / "t.png", pixels))
    alpha = pixels[..., 3] / 255.0
    np.testing.assert_allclose(image[0].numpy(), 200 / 255 * alpha + (1 - alpha), rtol=1e-6)
    np.testing.assert_allclose(image[1].numpy(), 1 - alpha, rtol=1e-6, atol=1e-7)


def test_16_bit_images_scale_by_65535(tmp_path):
    values = np.array([[0, 1000, 65535], [32768, 12345, 54321]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    gray = read_image(tmp_path / "g16.png")
    np.testing.assert_allclose(gray[2].numpy(), values / 65535.0, rtol=1e-6)
    colour = np.stack([values, values[::-1], 65535 - values], axis=-1)
    tifffile.imwrite(tmp_path / "c16.tif", colour)
    np.testing.assert_allclose(read_image(tmp_path / "c16.tif").numpy(), colour.transpose(2, 0, 1) / 65535.0,
                               rtol=1e-6)


def test_image_size_reads_headers_of_png_jpeg_and_tiff(tmp_path):
    _png(tmp_path / "a.png", _rgb(7, 9))
    Image.fromarray(_rgb(5, 11)).save(tmp_path / "b.jpg")
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((6, 4, 3), np.uint16), photometric="rgb")
    for name in ("a.png", "b.jpg", "c.tif"):
        assert image_size(tmp_path / name) == tuple(read_image(tmp_path / name).shape[1:])
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(ImageReadError, match="junk.png"):
        image_size(tmp_path / "junk.png")


def test_corrupt_and_missing_files_are_named(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"this is not a picture")
    with pytest.raises(ImageReadError, match="broken.png"):
        read_image(tmp_path / "broken.png")
    good = _png(tmp_path / "good.png", _rgb(20, 20)).read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(FileNotFoundError, match="absent.png"):
        read_image(tmp_path / "absent.png")
    tifffile.imwrite(tmp_path / "hot.tif", np.full((3, 3, 3), 2.5, np.float32), photometric="rgb")
    with pytest.raises(ImageReadError, match="hot.tif.*\\[0, 1\\]"):
        read_image(tmp_path / "hot.tif")


def test_list_images_filters_sorts_naturally_and_names_bad_folders(tmp_path):
    _touch_images(tmp_path, ["b10.PNG", "b2.jpg", "a.TIF", "c.bmp"])
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images(tmp_path)] == ["a.TIF", "b2.jpg", "b10.PNG", "c.bmp"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty.*no image"):
        list_images(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_images(tmp_path / "nowhere")


# --- pairing -----------------------------------------------------------------------------------------

def _names(pairs):
    return [(a.name, b.name) for a, b in pairs]


def test_rain200h_names_pair_by_stem_in_numeric_order(tmp_path):
    # Plain string sorting would put norain-10x2 before norain-1x2 but norain-1 before norain-10.
    _touch_images(tmp_path / "input", ["norain-1x2.png", "norain-10x2.png", "norain-2x2.png"])
    _touch_images(tmp_path / "target", ["norain-10.png", "norain-2.png", "norain-1.png"])
    assert _names(pair_files(tmp_path / "input", tmp_path / "target")) == [
        ("norain-1x2.png", "norain-1.png"), ("norain-2x2.png", "norain-2.png"), ("norain-10x2.png", "norain-10.png")]


def test_rain100l_and_identical_names_pair_by_stem(tmp_path):
    _touch_images(tmp_path / "in", ["rain-002.png", "rain-001.png"])
    _touch_images(tmp_path / "gt", ["norain-001.png", "norain-002.png", "norain-003.png"])  # extra target ignored
    assert _names(pair_files(tmp_path / "in", tmp_path / "gt")) == [
        ("rain-001.png", "norain-001.png"), ("rain-002.png", "norain-002.png")]
    _touch_images(tmp_path / "pred", ["x.png", "y.jpg"])
    _touch_images(tmp_path / "ref", ["y.png", "x.png"])
    assert _names(pair_files(tmp_path / "pred", tmp_path / "ref")) == [("x.png", "x.png"), ("y.jpg", "y.png")]


def test_unrelated_names_pair_in_sorted_order_and_counts_must_match(tmp_path):
    _touch_images(tmp_path / "input", ["img2.png", "img10.png"])
    _touch_images(tmp_path / "target", ["gt_a.png", "gt_b.png"])
    assert _names(pair_files(tmp_path / "input", tmp_path / "target")) == [
        ("img2.png", "gt_a.png"), ("img10.png", "gt_b.png")]
    _touch_images(tmp_path / "target", ["gt_c.png"])
    with pytest.raises(ValueError) as err:
        pair_files(tmp_path / "input", tmp_path / "target")
    message = str(err.value)
    assert "2 images in" in message and "3 in" in message
    assert str(tmp_path / "input") in message and str(tmp_path / "target") in message


def test_partial_name_match_is_an_error(tmp_path):
    _touch_images(tmp_path / "input", ["rain-001.png", "rain-002.png"])
    _touch_images(tmp_path / "target", ["norain-001.png", "other.png"])
    with pytest.raises(ValueError, match="rain-002.png"):
        pair_files(tmp_path / "input", tmp_path / "target")


def test_missing_and_empty_data_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        PairedImageDataset(tmp_path / "nope", "train")
    (tmp_path / "ds" / "train" / "input").mkdir(parents=True)
    _touch_images(tmp_path / "ds" / "train" / "target", ["a.png"])
    with pytest.raises(ValueError, match="input.*no image"):
        PairedImageDataset(tmp_path / "ds", "train")
    with pytest.raises(FileNotFoundError, match="test"):
        PairedImageDataset(tmp_path / "ds", "test")


# --- data set ----------------------------------------------------------------------------------------

def _make_split(root: Path, split: str, count: int, size=(20, 24), start=0):
    """Pairs whose rainy image is the clean one inverted, so a shared crop is recognisable."""
    for i in range(start, start + count):
        clean = _rgb(*size, seed=100 + i)
        _png(root / split / "target" / f"norain-{i + 1}.png", clean)
        _png(root / split / "input" / f"norain-{i + 1}x2.png", 255 - clean)


def _locate(window: np.ndarray, image: np.ndarray):
    size = window.shape[1]
    hits = [(top, left) for top in range(image.shape[1] - size + 1) for left in range(image.shape[2] - size + 1)
            if np.array_equal(image[:, top:top + size, left:left + size], window)]
    return hits


def test_random_crops_take_the_same_window_of_both_images(tmp_path):
    _make_split(tmp_path, "train", 2)
    dataset = PairedImageDataset(tmp_path, "train", crop_size=8)
    torch.manual_seed(0)
    full_rainy, full_clean = read_image(dataset.pairs[1][0]).numpy(), read_image(dataset.pairs[1][1]).numpy()
    places = set()
    for _ in range(12):
        rainy, clean = dataset[1]
        assert rainy.shape == clean.shape == (3, 8, 8)
        np.testing.assert_allclose(rainy.numpy(), 1 - clean.numpy(), atol=1e-6)
        hits = _locate(clean.numpy(), full_clean)
        assert len(hits) == 1 and hits == _locate(rainy.numpy(), full_rainy)
        places.add(hits[0])
    assert len(places) > 3  # really random


def test_flips_keep_the_pair_aligned_and_happen(tmp_path):
    _make_split(tmp_path, "train", 1, size=(8, 8))
    dataset = PairedImageDataset(tmp_path, "train", crop_size=8, flip=True)
    full = read_image(dataset.pairs[0][1])
    seen = set()
    torch.manual_seed(1)
    for _ in range(40):
        rainy, clean = dataset[0]
        np.testing.assert_allclose(rainy.numpy(), 1 - clean.numpy(), atol=1e-6)
        variants = {dims: full.flip(dims) if dims else full for dims in [(), (1,), (2,), (1, 2)]}
        seen.update(dims for dims, v in variants.items() if torch.equal(v, clean))
    assert seen == {(), (1,), (2,), (1, 2)}


def test_whole_images_cache_and_crop_too_large(tmp_path):
    _make_split(tmp_path, "test", 3, size=(20, 24))
    whole = PairedImageDataset(tmp_path, "test")
    cached = PairedImageDataset(tmp_path, "test", cache=True)
    assert len(whole) == 3
    for i in range(3):
        assert all(torch.equal(a, b) for a, b in zip(whole[i], cached[i]))
        assert whole[i][0].shape == (3, 20, 24)
    assert PairedImageDataset(tmp_path, "test", crop_size=20)[2][0].shape == (3, 20, 20)
    with pytest.raises(ValueError, match=r"norain-1x2.png: crop 21x21 is larger than the image \(20x24"):
        PairedImageDataset(tmp_path, "test", crop_size=21)


def test_size_mismatch_between_input_and_target_names_both(tmp_path):
    _png(tmp_path / "train" / "input" / "rain-1.png", _rgb(10, 12))
    _png(tmp_path / "train" / "target" / "norain-1.png", _rgb(10, 11))
    with pytest.raises(ValueError, match="rain-1.png.*norain-1.png"):
        PairedImageDataset(tmp_path, "train")[0]


def test_seeded_split_comes_from_train_only(tmp_path):
    _make_split(tmp_path, "train", 10, size=(16, 16))
    _make_split(tmp_path, "test", 2, size=(16, 16), start=50)
    train_idx, val_idx = split_indices(10, 0.3, seed=5)
    assert (train_idx, val_idx) == split_indices(10, 0.3, seed=5)
    assert len(val_idx) == 3 and sorted(train_idx + val_idx) == list(range(10))
    assert any(split_indices(10, 0.3, seed=s)[1] != val_idx for s in range(6, 10))
    train = PairedImageDataset(tmp_path, "train", crop_size=8, indices=train_idx)
    val = PairedImageDataset(tmp_path, "train", indices=val_idx)
    assert len(train) == 7 and len(val) == 3
    everything = PairedImageDataset(tmp_path, "train").pairs
    assert val.pairs == [everything[i] for i in val_idx]
    assert {p for p, _ in train.pairs}.isdisjoint(p for p, _ in val.pairs)
    assert all(p.parent == tmp_path / "train" / "input" for p, _ in train.pairs + val.pairs)
    assert train[0][0].shape == (3, 8, 8) and val[0][0].shape == (3, 16, 16)
    with pytest.raises(ValueError, match="val_fraction"):
        split_indices(10, 1.0, seed=0)


def test_real_rain100l_pairs_load(shared_dir):
    sample = shared_dir / "data" / "rain100l-sample"
    if not sample.is_dir():
        pytest.skip(f"{sample} is absent")
    dataset = PairedImageDataset(sample, split=None)
    assert len(dataset) == 10
    assert [(a.name, b.name) for a, b in dataset.pairs[:2]] == [
        ("rain-001.png", "norain-001.png"), ("rain-002.png", "norain-002.png")]
    rainy, clean = dataset[0]
    assert rainy.shape == clean.shape and rainy.shape[0] == 3 and min(rainy.shape[1:]) >= 300
    assert 0.0 <= float(clean.min()) and float(clean.max()) <= 1.0
    assert (rainy - clean).mean() > 0  # rain streaks brighten the picture
