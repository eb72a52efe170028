"""esdnet.metrics against scikit-image and hand computations."""
import math

import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from esdnet.metrics import edge_error_ratio, evaluate_pair, image_psnr, image_ssim, psnr, rgb_to_y, ssim, ssim_loss


def _pair(height=40, width=48, noise=0.08, seed=0):
    """A smooth random RGB picture in [0, 1] and a noisy copy, both float64 [3, H, W]."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([0.5 + 0.4 * np.sin(xs / 5 + c) * np.cos(ys / 7 - c) for c in range(3)])
    other = np.clip(base + rng.normal(0, noise, base.shape), 0, 1)
    return torch.from_numpy(base), torch.from_numpy(other)


def _y_numpy(image: torch.Tensor, crop: int) -> np.ndarray:
    """Luma on the 0-255 scale by scikit-image's own BT.601 conversion, borders cropped."""
    y = rgb2ycbcr(image.permute(1, 2, 0).numpy())[..., 0]
    return y[crop:-crop, crop:-crop] if crop else y


def test_rgb_to_y_matches_skimage_and_spans_16_to_235():
    pred, _ = _pair()
    np.testing.assert_allclose(rgb_to_y(pred)[0].numpy(), _y_numpy(pred, 0), rtol=1e-12)
    corners = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]).view(3, 1, 2)
    assert rgb_to_y(corners).flatten().tolist() == pytest.approx([16.0, 235.0])


@pytest.mark.parametrize("crop", [0, 4])
def test_y_psnr_equals_skimage(crop):
    pred, target = _pair()
    expected = peak_signal_noise_ratio(_y_numpy(target, crop), _y_numpy(pred, crop), data_range=255)
    assert image_psnr(pred, target, crop_border=crop) == pytest.approx(expected, rel=1e-6)
    assert 15 < expected < 40  # a real, finite comparison


def test_rgb_psnr_is_the_mean_of_channel_psnrs():
    pred, target = _pair()
    p, t = (x.numpy()[:, 4:-4, 4:-4] * 255 for x in (pred, target))
    expected = np.mean([peak_signal_noise_ratio(t[c], p[c], data_range=255) for c in range(3)])
    assert image_psnr(pred, target, rgb=True) == pytest.approx(expected, rel=1e-6)


def test_y_ssim_equals_skimage_on_valid_positions():
    # skimage filters the whole image with reflection, then averages only positions at least 5 pixels from
    # the border (win_size 11 for sigma 1.5, truncate 3.5): exactly the 'valid' positions of MATLAB's ssim.
    pred, target = _pair()
    expected = structural_similarity(_y_numpy(target, 4), _y_numpy(pred, 4), gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=255)
    assert image_ssim(pred, target) == pytest.approx(expected, rel=1e-9)
    assert 0.2 < expected < 0.99


def test_rgb_ssim_is_the_mean_of_channel_ssims():
    pred, target = _pair(seed=3)
    p, t = (x.numpy()[:, 4:-4, 4:-4] * 255 for x in (pred, target))
    expected = np.mean([structural_similarity(t[c], p[c], gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=255) for c in range(3)])
    assert image_ssim(pred, target, rgb=True) == pytest.approx(expected, rel=1e-9)


def test_ssim_on_a_single_window_by_hand():
    rng = np.random.default_rng(7)
    a, b = rng.uniform(0, 255, (11, 11)), rng.uniform(0, 255, (11, 11))
    offsets = np.arange(11) - 5.0
    g = np.exp(-offsets**2 / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    mu_a, mu_b = (w * a).sum(), (w * b).sum()
    var_a, var_b = (w * (a - mu_a) ** 2).sum(), (w * (b - mu_b) ** 2).sum()
    cov = (w * (a - mu_a) * (b - mu_b)).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    expected = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    got = ssim(torch.from_numpy(a).view(1, 1, 11, 11), torch.from_numpy(b).view(1, 1, 11, 11), data_range=255)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_ssim_of_two_constants_is_the_luminance_term():
    x, y = torch.full((1, 1, 16, 16), 0.2, dtype=torch.float64), torch.full((1, 1, 16, 16), 0.6, dtype=torch.float64)
    c1 = 0.01**2
    assert ssim(x, y).item() == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1), rel=1e-12)


def test_identical_images_score_inf_and_one():
    pred, _ = _pair()
    assert evaluate_pair(pred, pred.clone()) == (math.inf, pytest.approx(1.0, abs=1e-12))
    assert evaluate_pair(pred, pred.clone(), rgb=True) == (math.inf, pytest.approx(1.0, abs=1e-12))
    assert psnr(pred[None], pred[None]).item() == math.inf


def test_batched_ssim_and_psnr_score_each_image():
    p1, t1 = _pair(seed=1)
    p2, t2 = _pair(seed=2, noise=0.2)
    batch_p, batch_t = torch.stack([p1, p2]), torch.stack([t1, t2])
    per_image = [ssim(p[None], t[None]).item() for p, t in ((p1, t1), (p2, t2))]
    np.testing.assert_allclose(ssim(batch_p, batch_t).numpy(), per_image, rtol=1e-12)
    assert ssim(batch_p, batch_t)[1] < ssim(batch_p, batch_t)[0]  # more noise, lower SSIM
    mse = ((p2 - t2) ** 2).mean().item()
    assert psnr(batch_p, batch_t)[1].item() == pytest.approx(10 * math.log10(1 / mse), rel=1e-12)


def test_ssim_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.uniform(0, 1, (2, 3, 12, 13)), requires_grad=True)
    y = torch.tensor(rng.uniform(0, 1, (2, 3, 12, 13)))
    assert torch.autograd.gradcheck(lambda a: ssim_loss(a, y), (x,), fast_mode=True)
    loss = ssim_loss(x.float(), y.float())
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert ssim_loss(y, y).item() == pytest.approx(0.0, abs=1e-12)


def test_bad_inputs_are_refused_with_the_shapes():
    pred, target = _pair()
    with pytest.raises(ValueError, match=r"\(3, 40, 47\)"):
        evaluate_pair(pred[:, :, :47], target)
    with pytest.raises(ValueError, match="crop_border 20"):
        evaluate_pair(pred, target, crop_border=20)
    with pytest.raises(ValueError, match="smaller than the 11x11 window"):
        ssim(pred[None, :, :8, :8], target[None, :, :8, :8])


def _pytorch_ssim_reference(x: torch.Tensor, y: torch.Tensor, window_size: int = 11, sigma: float = 1.5):
    """The authors' loss SSIM (pytorch-ssim's ``_ssim``), written independently: a 2-D Gaussian window built from
    the closed-form density, one grouped conv per statistic with zero padding window_size // 2."""
    channels = x.shape[1]
    offsets = np.arange(window_size) - window_size // 2
    g = np.exp(-(offsets ** 2) / (2 * sigma ** 2))
    g /= g.sum()
    window = torch.from_numpy(np.outer(g, g)).to(x.dtype).expand(channels, 1, window_size, window_size)

    def blur(t):
        return torch.nn.functional.conv2d(t, window, padding=window_size // 2, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    sigma_x, sigma_y, sigma_xy = blur(x * x) - mu_x ** 2, blur(y * y) - mu_y ** 2, blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sigma_x + sigma_y + c2))
    return ssim_map.mean()


def test_loss_ssim_is_the_authors_zero_padded_ssim():
    pred, target = _pair(height=32, width=36)
    loss = ssim_loss(pred.unsqueeze(0), target.unsqueeze(0))
    expected = 1.0 - _pytorch_ssim_reference(pred.unsqueeze(0), target.unsqueeze(0))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    # and it is not the 'valid' metric SSIM (which ignores the outer 5 px as window centres)
    valid = 1.0 - ssim(pred.unsqueeze(0), target.unsqueeze(0)).item()
    assert abs(loss.item() - valid) > 1e-3


def test_loss_gives_border_pixels_a_gradient_like_interior_ones():
    """The cause of the edge frame of models trained on the 'valid' SSIM: a corner pixel's gradient is tiny."""
    torch.manual_seed(0)
    target = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    pred = (target + 0.1 * torch.randn_like(target)).requires_grad_()

    def ring_over_centre(loss):
        """Mean gradient magnitude on the outermost pixel ring over that in the central 8 x 8 pixels."""
        grad, = torch.autograd.grad(loss, pred)
        magnitude = grad.abs().sum(1)[0]
        ring = torch.cat([magnitude[0], magnitude[-1], magnitude[1:-1, 0], magnitude[1:-1, -1]])
        return (ring.mean() / magnitude[28:36, 28:36].mean()).item()

    valid = ring_over_centre((1.0 - ssim(pred, target)).mean())
    padded = ring_over_centre(ssim_loss(pred, target))
    assert valid < 0.01  # only the far Gaussian tails of the valid windows reach the outermost pixels (0.0009)
    assert padded > 0.3  # each outermost pixel is the centre of a window of its own (0.52)


def test_edge_error_ratio_by_hand():
    target = torch.zeros(3, 6, 5, dtype=torch.float64)
    pred = target.clone()
    pred[:, 1:5, 1:4] = 0.1  # interior: 4 x 3 pixels, error 0.1
    pred[:, 0, :], pred[:, 5, :], pred[:, :, 0], pred[:, :, 4] = 0.3, 0.3, 0.3, 0.3  # ring: error 0.3
    assert edge_error_ratio(pred, target) == pytest.approx(3.0)
    assert edge_error_ratio(target + 0.2, target) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="leaves no interior"):
        edge_error_ratio(pred, target, width=3)
