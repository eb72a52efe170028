"""ESDNet's layer names -> the stages of its U-Net, in network order, and its default spike-map layers."""
from __future__ import annotations

# Stage name -> the top-level modules of ESDNet in it, in the order the forward runs them.
STAGES: dict[str, tuple[str, ...]] = {
    "encoding": ("patch_embed",),
    "encoder_level1": ("encoder_level1",),
    "down1_2": ("down1_2",),
    "encoder_level2": ("encoder_level2",),
    "down2_3": ("down2_3",),
    "encoder_level3": ("encoder_level3",),
    "decoder_level3": ("decoder_level3",),
    "up3_2": ("up3_2",),
    "reduce_chan_level2": ("reduce_chan_level2",),
    "decoder_level2": ("decoder_level2",),
    "up2_1": ("up2_1",),
    "decoder_level1": ("decoder_level1",),
    "refinement + output": ("refinement", "output"),
}
# Arithmetic of ESDNet's own forward (mean over T, global skip): the profiler names it after the whole model.
MODEL_STAGE = "model (mean over T, global skip)"
STAGE_ORDER = (*STAGES, MODEL_STAGE)
_STAGE_OF_MODULE = {module: stage for stage, modules in STAGES.items() for module in modules}

# First LIF of the first residual block of encoder level 1 and of decoder level 1: the spikes of the finest scale.
DEFAULT_SPIKE_LAYERS = ("encoder_level1.0.residual.0", "decoder_level1.0.residual.0")


def stage_of(layer: str) -> str:
    """Return the U-Net stage of an ESDNet layer (qualified module name); the model's own arithmetic is MODEL_STAGE.

    Raises ValueError for a name outside ESDNet's top-level modules.
    """
    top = layer.split(".", 1)[0]
    if top in _STAGE_OF_MODULE:
        return _STAGE_OF_MODULE[top]
    if top.startswith("("):  # the profiler's name of the top-level model, e.g. "(model)"
        return MODEL_STAGE
    raise ValueError(f"layer {layer!r} belongs to no ESDNet stage (top-level module {top!r} unknown)")
