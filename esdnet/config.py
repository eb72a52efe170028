"""ESDNet architecture hyper-parameters, the named presets, and inference of them from a state_dict."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Mapping

import torch


@dataclass(frozen=True)
class ESDNetConfig:
    """Everything that fixes the shapes of an ESDNet.

    ``encoder_blocks`` / ``decoder_blocks`` count spiking residual blocks at levels 1, 2, 3 (the authors'
    constructor takes four entries and ignores the fourth). ``T`` is the number of timesteps.
    """

    dim: int = 48
    encoder_blocks: tuple[int, int, int] = (4, 4, 8)
    decoder_blocks: tuple[int, int, int] = (2, 2, 2)
    T: int = 4
    in_channels: int = 3
    out_channels: int = 3
    reduction_t: int = 4
    reduction_c: int = 16

    def __post_init__(self) -> None:
        if len(self.encoder_blocks) != 3 or len(self.decoder_blocks) != 3:
            raise ValueError("encoder_blocks and decoder_blocks need one count per level (3 levels)")
        if self.dim < self.reduction_c:
            raise ValueError(f"dim {self.dim} is below the channel-attention reduction {self.reduction_c}")
        if self.T < 1:
            raise ValueError(f"T must be at least 1, got {self.T}")

    def to_dict(self) -> dict:
        """Return the configuration as a JSON-friendly dict."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


PRESETS: dict[str, ESDNetConfig] = {
    # The paper's network (dim 48, encoder 4/4/8, decoder 2/2/2, T=4): the published checkpoints.
    "paper": ESDNetConfig(),
    # Small enough to train on a CPU in minutes; same topology.
    "small": ESDNetConfig(dim=16, encoder_blocks=(1, 1, 2), decoder_blocks=(1, 1, 1)),
}


def preset(name: str, **overrides) -> ESDNetConfig:
    """Return the named preset (``paper`` or ``small``), with any field overridden."""
    if name not in PRESETS:
        raise ValueError(f"unknown ESDNet preset {name!r}; choose one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **overrides)


def _block_count(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}\.(\d+)\.")
    indices = {int(m.group(1)) for name in state_dict if (m := pattern.match(name))}
    if indices != set(range(len(indices))):
        raise ValueError(f"blocks of {prefix} are not numbered 0..n-1: {sorted(indices)}")
    return len(indices)


def infer_config(state_dict: Mapping[str, torch.Tensor]) -> ESDNetConfig:
    """Return the ESDNetConfig whose parameters have the names and shapes of ``state_dict``.

    Reads the channel width from ``patch_embed.proj.weight``, block counts from the block indices, and T and the
    attention reductions from the first block's attention weights. Raises ValueError naming the missing key.
    """
    def need(name: str) -> torch.Tensor:
        if name not in state_dict:
            raise ValueError(f"not an ESDNet state_dict: key {name!r} is missing")
        return state_dict[name]

    embed = need("patch_embed.proj.weight")
    output = need("output.0.weight")
    temporal = need("encoder_level1.0.attn.ta.sharedMLP.0.weight")  # [T // reduction_t, T, 1, 1, 1]
    channel = need("encoder_level1.0.attn.ca.sharedMLP.0.weight")  # [dim // reduction_c, dim, 1, 1, 1]
    dim, T = embed.shape[0], temporal.shape[1]
    return ESDNetConfig(
        dim=dim,
        encoder_blocks=tuple(_block_count(state_dict, f"encoder_level{i}") for i in (1, 2, 3)),
        decoder_blocks=tuple(_block_count(state_dict, f"decoder_level{i}") for i in (1, 2, 3)),
        T=T,
        in_channels=embed.shape[1],
        out_channels=output.shape[0],
        reduction_t=T // temporal.shape[0],
        reduction_c=dim // channel.shape[0],
    )
