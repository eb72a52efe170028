"""snn_energy: per-layer spike, operation and energy analysis of spiking networks (model-agnostic).

One entry point::

    import snn_energy
    result = snn_energy.profile(model, images)          # images: [N, ...] tensor or iterable of batches
    result.summary, result.layers, result.timesteps     # pandas DataFrames, energies in pJ
    result.save("runs/profile")                         # CSV, JSON, Markdown and HTML tables

``Profiler`` (forward hooks, a context manager) records the counts; ``energy`` turns them into joules under the
``paper`` and ``strict`` accountings; ``tables`` builds the DataFrames.
"""
from snn_energy.api import profile
from snn_energy.energy import (
    ACCOUNTINGS, ENCODING_POLICIES, HOROWITZ_45NM, EnergyConstants, energy_constants,
)
from snn_energy.errors import (
    ModelInputError, NoSynapticLayerError, ProfilerError, ProfilerInternalError, ProfilerStateError,
)
from snn_energy.recorder import Profiler
from snn_energy.result import ProfileResult

__all__ = [
    "ACCOUNTINGS", "ENCODING_POLICIES", "HOROWITZ_45NM", "EnergyConstants", "ModelInputError",
    "NoSynapticLayerError", "ProfileResult", "Profiler", "ProfilerError", "ProfilerInternalError", "ProfilerStateError",
    "energy_constants",
    "profile",
]
