"""esdnet.tiling: tile placement, weighted merge, odd sizes, batching."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from esdnet.tiling import tile_starts, tiled_inference

ODD_SIZES = [(37, 53), (75, 61), (163, 97), (80, 80), (81, 160)]


def _image(height, width, n=None, seed=0):
    generator = torch.Generator().manual_seed(seed)
    shape = (3, height, width) if n is None else (n, 3, height, width)
    return torch.rand(shape, generator=generator)


def _box_blur(tiles):
    """A constant-preserving model: 3x3 mean with edge replication."""
    return F.avg_pool2d(F.pad(tiles, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def test_tile_starts_follow_the_authors_rule():
    # range(0, H, 72) minus the starts whose tile reaches the edge, then one tile flush with the edge.
    assert tile_starts(320) == [0, 72, 144, 216, 240]
    assert tile_starts(480) == [0, 72, 144, 216, 288, 360, 400]
    assert tile_starts(80) == [0]
    assert tile_starts(152) == [0, 72]
    for length in range(80, 400, 7):
        starts = tile_starts(length)
        assert starts[0] == 0 and starts[-1] == length - 80
        assert all(0 < b - a <= 72 for a, b in zip(starts, starts[1:]))  # overlap of at least 8 pixels


@pytest.mark.parametrize("size", ODD_SIZES)
def test_identity_model_returns_the_input_bit_identical(size):
    # Merge in float64: sum(w_i x) / sum(w_i) lies within ~1e-16 of x and rounds back to the same float32.
    image = _image(*size)
    out = tiled_inference(lambda t: t, image, batch_size=5)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert torch.equal(out, image)


@pytest.mark.parametrize("size", ODD_SIZES)
def test_weights_at_every_pixel_sum_to_one(size):
    ones = tiled_inference(lambda t: torch.ones_like(t), torch.zeros(3, *size))
    assert torch.allclose(ones, torch.ones_like(ones), rtol=0, atol=1e-12)


def test_constant_image_stays_constant_through_a_constant_preserving_model():
    image = torch.full((2, 3, 163, 97), 0.3)
    image[1] = 0.7
    out = tiled_inference(_box_blur, image, batch_size=4)
    assert torch.allclose(out[0], torch.full_like(out[0], 0.3), atol=1e-6)
    assert torch.allclose(out[1], torch.full_like(out[1], 0.7), atol=1e-6)


def _authors_merge_by_hand(image: np.ndarray, model, tile: int, overlap: int) -> np.ndarray:
    """The merge written out pixel by pixel from the authors' description (pop-based starts, score map loop)."""
    _, height, width = image.shape

    def starts(length):
        s = list(range(0, length, tile - overlap))
        while s and s[-1] + tile >= length:
            s.pop()
        return s + [length - tile]

    score = np.empty((tile, tile))
    for h in range(tile):
        for w in range(tile):
            score[h, w] = 1.0 / math.sqrt((h - tile / 2) ** 2 + (w - tile / 2) ** 2 + 1e-3)
    total, weight = np.zeros(image.shape), np.zeros(image.shape)
    for hs in starts(height):
        for ws in starts(width):
            out = model(image[:, hs:hs + tile, ws:ws + tile])
            total[:, hs:hs + tile, ws:ws + tile] += score * out
            weight[:, hs:hs + tile, ws:ws + tile] += score
    return total / weight


def test_position_dependent_model_matches_the_authors_merge():
    # Each tile output depends on where the tile is (its mean), so the merge weights really matter.
    image = _image(70, 93, seed=4).double()
    tile_model = lambda t: t * 0.5 + t.mean(axis=(-2, -1), keepdims=True) ** 2  # noqa: E731
    expected = _authors_merge_by_hand(image.numpy(), tile_model, tile=40, overlap=8)
    got = tiled_inference(lambda b: tile_model(b), image, tile_size=40, overlap=8, batch_size=3)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    assert not np.allclose(expected, tile_model(image.numpy()))  # tiling changes this model's output


def test_batches_of_images_and_batch_sizes_agree():
    images = _image(75, 61, n=3, seed=2)
    calls = []

    def model(tiles):
        calls.append(tiles.shape[0])
        return _box_blur(tiles) ** 2

    together = tiled_inference(model, images, batch_size=7)
    assert sum(calls) == 3 * 1 * 1 and calls == [3]  # one tile per 80x80-padded image, all in one call
    calls.clear()
    large = _image(163, 97, n=2, seed=3)
    tiled_inference(model, large, batch_size=5)
    assert calls == [5, 5, 2]  # 3 x 2 tiles per image, two images
    for i in range(3):
        alone = tiled_inference(model, images[i], batch_size=1)
        assert torch.allclose(alone, together[i], rtol=0, atol=1e-7)


def test_model_returning_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"model returned shape \(1, 3, 40, 40\)"):
        tiled_inference(lambda t: t[:, :, ::2, ::2], _image(50, 50))
    with pytest.raises(ValueError, match="overlap"):
        tiled_inference(lambda t: t, _image(90, 90), overlap=80)


def test_a_tile_of_zero_pixels_is_named_not_the_overlap():
    with pytest.raises(ValueError, match=r"^tile size must be a positive number of pixels, got 0$"):
        tile_starts(100, tile_size=0, overlap=8)


def _zero_padded_blur(tiles):
    """A model whose zero padding darkens its outermost pixels, like a network's convolutions at image edges."""
    return F.avg_pool2d(tiles, 3, stride=1, padding=1, count_include_pad=True)


def test_edge_pad_reflects_the_image_and_crops_back():
    from esdnet.inference import derain_tensor

    image = _image(90, 86).mul(0.5).add(0.25)
    authors = derain_tensor(_zero_padded_blur, image, edge_pad=0)
    assert torch.equal(authors, tiled_inference(_zero_padded_blur, image).clamp(0, 1))  # 0: the authors' procedure
    padded = derain_tensor(_zero_padded_blur, image, edge_pad=8)
    by_hand = F.pad(image[None], (8, 8, 8, 8), mode="reflect")[0]
    assert torch.equal(padded, tiled_inference(_zero_padded_blur, by_hand)[:, 8:98, 8:94].clamp(0, 1))
    # the frame the zero padding left is gone: the outermost pixels equal a reflected-border blur
    reference = F.avg_pool2d(F.pad(image[None], (1, 1, 1, 1), mode="reflect"), 3, stride=1)[0]
    for edge in (lambda t: t[:, 0], lambda t: t[:, -1], lambda t: t[:, :, 0], lambda t: t[:, :, -1]):
        assert (edge(authors) - edge(reference)).abs().mean() > 0.1
        assert (edge(padded) - edge(reference)).abs().mean() < 0.01  # only tile seams crossing the edge remain
    tiny = derain_tensor(_zero_padded_blur, _image(5, 6), edge_pad=8)  # padding limited to the image's size - 1
    assert tiny.shape == (3, 5, 6)
