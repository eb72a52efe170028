"""Errors the toolkit raises for input it cannot profile; all are ValueErrors, so the command line prints them."""


class ProfilerError(ValueError):
    """Base class: something about the model, the input or the profiler's use prevents profiling."""


class NoSynapticLayerError(ProfilerError):
    """The model has no synaptic layer (Conv1d/2d/3d, ConvTranspose, Linear): there is nothing to count."""


class ModelInputError(ProfilerError):
    """The model rejected the input (wrong rank or shape); the message names the input shape and the layer."""


class ProfilerStateError(ProfilerError, RuntimeError):
    """A profiler entered while already active, or a second profiler attached to a model already profiled."""
