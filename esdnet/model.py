"""ESDNet, the spiking deraining U-Net of "Learning A Spiking Neural Network for Efficient Image Deraining"
(IJCAI 2024), and its ANN twin, built from SpikingJelly 2.x layers (the attention's global max pools are computed
by ``GlobalMaxPool3d``, an ``nn.AdaptiveMaxPool3d`` subclass, for CUDA speed).

Module and parameter names follow the authors' released code, so their checkpoints load unchanged. The ANN
twin is the same network with every LIF neuron replaced by ReLU: same modules, same parameter names, same
state_dict. All spiking parts run in SpikingJelly's multi-step mode on ``[T, N, C, H, W]`` tensors.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer, neuron
from spikingjelly.activation_based.layer.attention import _AxisAttention

from esdnet.config import ESDNetConfig

V_THRESHOLD = 0.15  # LIF firing threshold of every neuron in ESDNet
TDBN_ALPHA = 1 / math.sqrt(2)  # tdBN alpha: two branches (residual and shortcut) are summed
SIZE_MULTIPLE = 4  # two stride-2 down-samplings: inputs are padded to a multiple of 4
ARCHS = ("snn", "ann")


def _lif() -> nn.Module:
    return neuron.LIFNode(tau=2.0, v_threshold=V_THRESHOLD, decay_input=False, v_reset=0.0, step_mode="m")


def _neuron_factory(arch: str) -> Callable[[], nn.Module]:
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    return _lif if arch == "snn" else nn.ReLU


def _tdbn(channels: int, v_th: float = V_THRESHOLD) -> nn.Module:
    return layer.ThresholdDependentBatchNorm2d(num_features=channels, alpha=TDBN_ALPHA, v_th=v_th, affine=True)


def _conv(c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, bias: bool = False) -> nn.Module:
    return layer.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias, step_mode="m")


class GlobalMaxPool3d(nn.AdaptiveMaxPool3d):
    """``nn.AdaptiveMaxPool3d(1)`` computed as one reduction (``amax`` over the last three dimensions).

    The values are identical (a maximum is exact); the gradient of a tie is shared among the tied entries instead
    of going to the first. CUDA's adaptive max-pooling kernel has one thread reduce each output's whole input:
    in the paper ESDNet's attention it took 99% of the GPU forward at 256x256 (1.7 s on an H100).
    """

    def __init__(self):
        super().__init__(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(-3, -2, -1), keepdim=True)


def use_global_max_pools(module: nn.Module) -> None:
    """Replace, in place, every ``nn.AdaptiveMaxPool3d(1)`` under ``module`` by a ``GlobalMaxPool3d``."""
    for parent in list(module.modules()):
        for name, child in parent.named_children():
            if (type(child) is nn.AdaptiveMaxPool3d and child.output_size in (1, (1, 1, 1))
                    and not child.return_indices):
                setattr(parent, name, GlobalMaxPool3d())


class RepeatedInputTemporalAttention(_AxisAttention):
    """Temporal attention of a single pass standing for ``T`` identical timesteps (the single-pass ANN).

    With a static image repeated T times, every timestep of the ANN twin is the same, so the T-step temporal
    attention sees T equal pooled values. This module keeps the T-step weights (same names and shapes) and
    computes that score from one timestep: pooled values are broadcast over T before the shared MLP.
    """

    def __init__(self, T: int, reduction: int):
        super().__init__(T, reduction)
        self.T = T

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [N, 1, C, H, W]
        repeat = (-1, self.T, -1, -1, -1)
        avg, peak = self.avg_pool(x).expand(*repeat), self.max_pool(x).expand(*repeat)
        score = torch.sigmoid(self.sharedMLP(avg) + self.sharedMLP(peak))
        return score[:, :1]


class OverlapPatchEmbed(nn.Module):
    """The encoding layer: a 3x3 convolution of the image (repeated over T) to ``dim`` channels."""

    def __init__(self, in_channels: int, dim: int):
        super().__init__()
        self.proj = _conv(in_channels, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class SpikingResidualBlock(nn.Module):
    """out = attn(residual(x) + shortcut(x)) + x; the shortcut convolves the real-valued x itself."""

    def __init__(self, dim: int, config: ESDNetConfig, make_neuron: Callable[[], nn.Module], attention_T: int):
        super().__init__()
        self.residual = nn.Sequential(
            make_neuron(), _conv(dim, dim), _tdbn(dim),
            make_neuron(), _conv(dim, dim), _tdbn(dim, V_THRESHOLD * 0.2),
        )
        self.shortcut = nn.Sequential(_conv(dim, dim), _tdbn(dim))
        self.attn = layer.MultiDimensionalAttention(
            T=config.T, C=dim, reduction_t=config.reduction_t, reduction_c=config.reduction_c, kernel_size=3
        )
        if attention_T != config.T:
            self.attn.ta = RepeatedInputTemporalAttention(config.T, config.reduction_t)
        use_global_max_pools(self.attn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(self.residual(x) + self.shortcut(x)) + x


class DownSampling(nn.Module):
    """Neuron, stride-2 3x3 convolution doubling the channels, tdBN."""

    def __init__(self, dim: int, make_neuron: Callable[[], nn.Module]):
        super().__init__()
        self.maxpool_conv = nn.Sequential(make_neuron(), _conv(dim, dim * 2, stride=2), _tdbn(dim * 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class UpSampling(nn.Module):
    """Bilinear x2 per timestep, then neuron, 3x3 convolution halving the channels, tdBN."""

    def __init__(self, dim: int, make_neuron: Callable[[], nn.Module]):
        super().__init__()
        self.upsample = layer.Upsample(scale_factor=2, mode="bilinear", align_corners=False, step_mode="m")
        self.up = nn.Sequential(make_neuron(), _conv(dim, dim // 2), _tdbn(dim // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.upsample(x))


class FeatureRefinementBlock(nn.Module):
    """s = (1 - t) * a + t * x with channel attention a = ca(x) and spatial attention t = sa(x)."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = channels // reduction
        self.ca = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1, bias=True), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=True), nn.Sigmoid(),
        )
        self.sa = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=True),
            nn.Conv2d(channels, hidden, 3, padding=1, bias=True), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 3, padding=1, bias=True), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.ca(x)
        t = self.sa(x)
        return (1 - t) * a + t * x


class ESDNet(nn.Module):
    """The spiking U-Net (``arch="snn"``) or its ANN twin (``arch="ann"``).

    ``single_pass=True`` (ANN only) runs one timestep instead of T: the stricter ANN baseline, whose temporal
    attention is adapted to a repeated input (``RepeatedInputTemporalAttention``); its state_dict is unchanged.

    Calling the network on ``[N, in_channels, H, W]`` images in [0, 1] returns ``[N, out_channels, H, W]``; any
    H and W (padded to a multiple of 4 by edge replication, then cropped back). Neuron states are reset after
    every forward, so two calls on the same input give the same output.
    """

    def __init__(self, config: ESDNetConfig = ESDNetConfig(), arch: str = "snn", single_pass: bool = False):
        super().__init__()
        make_neuron = _neuron_factory(arch)
        if single_pass and arch != "ann":
            raise ValueError("single_pass runs one timestep without neuron dynamics: it needs arch='ann'")
        self.config, self.arch, self.single_pass = config, arch, single_pass
        self.T = 1 if single_pass else config.T
        dim = config.dim

        def blocks(width: int, count: int) -> nn.Sequential:
            return nn.Sequential(*[SpikingResidualBlock(width, config, make_neuron, self.T) for _ in range(count)])

        self.patch_embed = OverlapPatchEmbed(config.in_channels, dim)
        self.encoder_level1 = blocks(dim, config.encoder_blocks[0])
        self.down1_2 = DownSampling(dim, make_neuron)
        self.encoder_level2 = blocks(dim * 2, config.encoder_blocks[1])
        self.down2_3 = DownSampling(dim * 2, make_neuron)
        self.encoder_level3 = blocks(dim * 4, config.encoder_blocks[2])
        self.decoder_level3 = blocks(dim * 4, config.decoder_blocks[2])
        self.up3_2 = UpSampling(dim * 4, make_neuron)
        self.reduce_chan_level2 = nn.Sequential(make_neuron(), _conv(dim * 4, dim * 2, kernel_size=1), _tdbn(dim * 2))
        self.decoder_level2 = blocks(dim * 2, config.decoder_blocks[1])
        self.up2_1 = UpSampling(dim * 2, make_neuron)
        self.decoder_level1 = blocks(dim * 2, config.decoder_blocks[0])
        self.refinement = FeatureRefinementBlock(dim * 2, reduction=8)
        self.output = nn.Sequential(nn.Conv2d(dim * 2, config.out_channels, 3, padding=1, bias=True))
        functional.set_step_mode(self, "m")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[1] != self.config.in_channels:
            raise ValueError(
                f"ESDNet expects images of shape [N, {self.config.in_channels}, H, W], got {list(image.shape)}"
            )
        try:
            return self._forward_padded(image)
        finally:
            functional.reset_net(self)

    def _forward_padded(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        pad_h, pad_w = (-height) % SIZE_MULTIPLE, (-width) % SIZE_MULTIPLE
        x = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else image
        x = self.forward_features(x) + x
        return x[..., :height, :width]

    def forward_features(self, image: torch.Tensor) -> torch.Tensor:
        """Return the predicted residual (output convolution, before the global skip) for a padded image."""
        x = image.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)  # [T, N, C, H, W]
        enc1 = self.encoder_level1(self.patch_embed(x))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        dec3 = self.decoder_level3(enc3)
        dec2 = self.reduce_chan_level2(torch.cat([self.up3_2(dec3), enc2], dim=2))
        dec2 = self.decoder_level2(dec2)
        dec1 = self.decoder_level1(torch.cat([self.up2_1(dec2), enc1], dim=2))
        return self.output(self.refinement(dec1.mean(0)))
