"""ESDNet, the spiking deraining network (IJCAI 2024), its ANN twin, and their data, training and metrics.

Three lines to derain with a published checkpoint::

    import esdnet
    model = esdnet.load_model("Rain200H.pth", device="cpu")  # the architecture the file records, else the SNN
    derained = model(rainy).clamp(0, 1)  # [N, 3, H, W]; the network's raw output can stray slightly outside [0, 1]
"""
from esdnet import config as _config
from esdnet.checkpoint import CheckpointError, load_model, load_state_dict
from esdnet.config import PRESETS, ESDNetConfig, infer_config
from esdnet.model import ESDNet


def build_model(preset: str = "small", arch: str = "snn", single_pass: bool = False, **overrides) -> ESDNet:
    """Return a freshly initialised ESDNet of a named preset (``small`` or ``paper``), SNN or ANN twin.

    ``overrides`` replace fields of the preset's ESDNetConfig (e.g. ``T=2``).
    """
    return ESDNet(_config.preset(preset, **overrides), arch=arch, single_pass=single_pass)


__all__ = [
    "CheckpointError", "ESDNet", "ESDNetConfig", "PRESETS", "build_model", "infer_config", "load_model",
    "load_state_dict",
]
