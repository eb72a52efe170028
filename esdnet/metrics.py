"""PSNR and SSIM as the ESDNet authors evaluate them (MATLAB conventions), and the SSIM training loss.

Evaluation (``evaluate_pair``): RGB in [0, 1] -> luma ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` (MATLAB's
``rgb2ycbcr``, Y in [16, 235] on the 0-255 scale), ``crop_border`` pixels cut from every side (4 by default),
then PSNR in dB with peak 255 and SSIM with an 11x11 Gaussian window (sigma 1.5), C1 = (0.01 * 255)^2,
C2 = (0.03 * 255)^2, averaged over the 'valid' positions only (windows that lie wholly inside the image), as
MATLAB's ``ssim_index`` and the ``calculate_ssim`` of deraining repositories. With ``rgb=True`` the three
channels are scored separately and their PSNRs and SSIMs averaged.

``ssim`` and ``ssim_loss`` are plain differentiable torch functions on batches ``[N, C, H, W]``: training uses
the same SSIM as evaluation, with ``data_range=1.0`` for RGB images in [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

Y_WEIGHTS = (65.481, 128.553, 24.966)  # ITU-R BT.601 luma of [0, 1] RGB, on the 0-255 scale
Y_OFFSET = 16.0
PEAK = 255.0  # evaluation works on 0-255 values
DEFAULT_CROP_BORDER = 4


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    """Return the luma ``[..., 1, H, W]`` (0-255 scale, in [16, 235]) of RGB ``[..., 3, H, W]`` in [0, 1]."""
    if image.ndim < 3 or image.shape[-3] != 3:
        raise ValueError(f"rgb_to_y expects RGB on dimension -3 ([..., 3, H, W]), got shape {tuple(image.shape)}")
    weights = torch.tensor(Y_WEIGHTS, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return Y_OFFSET + (image * weights).sum(dim=-3, keepdim=True)


def _check_pair(x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    if x.shape != y.shape:
        raise ValueError(f"{name}: images differ in shape, {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim != 4:
        raise ValueError(f"{name}: expects batches [N, C, H, W], got shape {tuple(x.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Return the PSNR in dB of each image of ``[N, C, H, W]`` batches, shape ``[N]``; identical images give inf.

    ``10 log10(data_range^2 / MSE)`` with the MSE taken over all channels and pixels of an image.
    """
    _check_pair(x, y, "psnr")
    mse = (x - y).pow(2).mean(dim=(1, 2, 3))
    return 10.0 * torch.log10(data_range**2 / mse)


def gaussian_window(window_size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float64,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """Return the 1-D Gaussian ``[window_size]`` (weights sum to 1) whose outer product is the SSIM window."""
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"window_size must be a positive odd number, got {window_size}")
    offsets = torch.arange(window_size, dtype=torch.float64) - (window_size - 1) / 2
    weights = torch.exp(-offsets**2 / (2 * sigma**2))
    return (weights / weights.sum()).to(dtype=dtype, device=device)


SSIM_PADDINGS = ("valid", "zeros")


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window_size: int = 11,
         sigma: float = 1.5, padding: str = "valid") -> torch.Tensor:
    """Return the SSIM of each image of ``[N, C, H, W]`` batches, shape ``[N]`` (1 for identical images).

    Local statistics use a separable Gaussian window. ``padding="valid"`` (the MATLAB-style metric) keeps only
    window positions inside the image; ``padding="zeros"`` (the authors' training loss, ``utils.SSIM`` after
    pytorch-ssim) zero-pads by ``window_size // 2`` so that every pixel, border pixels included, is the centre
    of a window and gets a gradient of its own. The SSIM map is averaged over channels and positions.
    C1 = (0.01 data_range)^2, C2 = (0.03 data_range)^2. Differentiable.
    """
    _check_pair(x, y, "ssim")
    if padding not in SSIM_PADDINGS:
        raise ValueError(f"ssim: padding must be one of {SSIM_PADDINGS}, got {padding!r}")
    n, channels, height, width = x.shape
    if padding == "valid" and (height < window_size or width < window_size):
        raise ValueError(f"ssim: images of {height}x{width} are smaller than the {window_size}x{window_size} window")
    g = gaussian_window(window_size, sigma, dtype=x.dtype, device=x.device)
    stacked = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # [N, 5C, H, W]
    groups = stacked.shape[1]
    pad = window_size // 2 if padding == "zeros" else 0
    filtered = F.conv2d(stacked, g.view(1, 1, window_size, 1).expand(groups, 1, window_size, 1), groups=groups,
                        padding=(pad, 0))
    filtered = F.conv2d(filtered, g.view(1, 1, 1, window_size).expand(groups, 1, 1, window_size), groups=groups,
                        padding=(0, pad))
    mu_x, mu_y, xx, yy, xy = filtered.split(channels, dim=1)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(1, 2, 3))


def ssim_loss(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window_size: int = 11,
              sigma: float = 1.5) -> torch.Tensor:
    """Return the scalar training loss ``mean over the batch of (1 - SSIM)`` (0 for identical images).

    The SSIM is the authors' loss: zero-padded windows (``padding="zeros"``), so that the outermost pixels weigh
    in the loss like the others. The 'valid' SSIM of the metric gives a border pixel only the few windows that
    reach it (a corner pixel one of the (H-10)(W-10) windows of a 64x64 crop), too little gradient to learn it:
    models trained on it leave a visible frame along the image edges.
    """
    return (1.0 - ssim(x, y, data_range=data_range, window_size=window_size, sigma=sigma, padding="zeros")).mean()


def _evaluation_planes(pred: torch.Tensor, target: torch.Tensor, crop_border: int, rgb: bool) -> tuple:
    """Return ``[P, 1, h, w]`` float64 planes on the 0-255 scale (P = 1 for Y, 3 for RGB), borders cropped."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction and target differ in shape, {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim != 3 or pred.shape[0] != 3:
        raise ValueError(f"expected RGB images [3, H, W], got shape {tuple(pred.shape)}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    height, width = pred.shape[1:]
    if min(height, width) <= 2 * crop_border:
        raise ValueError(f"crop_border {crop_border} leaves nothing of a {height}x{width} image")
    planes = []
    for image in (pred, target):
        image = image.detach().to(torch.float64)
        values = rgb_to_y(image) if not rgb else image * PEAK
        values = values[:, crop_border:height - crop_border, crop_border:width - crop_border]
        planes.append(values.unsqueeze(1))  # [P, 1, h, w]: one plane per "image" of the batch
    return planes[0], planes[1]


def image_psnr(pred: torch.Tensor, target: torch.Tensor, crop_border: int = DEFAULT_CROP_BORDER,
               rgb: bool = False) -> float:
    """Return the evaluation PSNR in dB of one RGB image ``[3, H, W]`` in [0, 1] against its target (Y or RGB mean)."""
    pred_planes, target_planes = _evaluation_planes(pred, target, crop_border, rgb)
    return psnr(pred_planes, target_planes, data_range=PEAK).mean().item()


def image_ssim(pred: torch.Tensor, target: torch.Tensor, crop_border: int = DEFAULT_CROP_BORDER,
               rgb: bool = False) -> float:
    """Return the evaluation SSIM (unitless, at most 1) of one RGB image ``[3, H, W]`` in [0, 1] (Y or RGB mean)."""
    pred_planes, target_planes = _evaluation_planes(pred, target, crop_border, rgb)
    return ssim(pred_planes, target_planes, data_range=PEAK).mean().item()


def evaluate_pair(pred: torch.Tensor, target: torch.Tensor, crop_border: int = DEFAULT_CROP_BORDER,
                  rgb: bool = False) -> tuple[float, float]:
    """Return ``(PSNR in dB, SSIM)`` of one RGB image ``[3, H, W]`` in [0, 1] against its target, as the authors do."""
    pred_planes, target_planes = _evaluation_planes(pred, target, crop_border, rgb)
    return (psnr(pred_planes, target_planes, data_range=PEAK).mean().item(),
            ssim(pred_planes, target_planes, data_range=PEAK).mean().item())


def edge_error_ratio(pred: torch.Tensor, target: torch.Tensor, width: int = 1) -> float:
    """Return the mean absolute error (all channels, [0, 1] scale) of the outermost ``width`` pixels of one image
    ``[C, H, W]`` divided by that of the pixels inside them (1: edges as good as the interior; unitless).

    The evaluation crops a 4 px border, so a frame of bad pixels along the edges stays invisible to PSNR/SSIM;
    this ratio shows it.
    """
    if pred.shape != target.shape or pred.ndim != 3:
        raise ValueError(f"edge_error_ratio needs two [C, H, W] images of one shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    height, width_px = pred.shape[1:]
    if width < 1 or min(height, width_px) <= 2 * width:
        raise ValueError(f"edge width {width} leaves no interior in a {height}x{width_px} image")
    error = (pred.detach().double() - target.detach().double()).abs()
    interior = torch.zeros_like(error, dtype=torch.bool)
    interior[:, width:height - width, width:width_px - width] = True
    return (error[~interior].mean() / error[interior].mean()).item()
