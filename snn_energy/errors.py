"""Errors the toolkit raises: for input it cannot profile, ValueErrors (the command line prints them in one line);
for its own failures, ProfilerInternalError (a RuntimeError, reported as a bug with its traceback)."""


class ProfilerError(ValueError):
    """Base class: something about the model, the input or the profiler's use prevents profiling."""


class NoSynapticLayerError(ProfilerError):
    """The model has no synaptic layer (Conv1d/2d/3d, ConvTranspose, Linear): there is nothing to count."""


class ModelInputError(ProfilerError):
    """The model rejected the input (wrong rank or shape); the message names the input shape and the layer."""


class ProfilerStateError(ProfilerError, RuntimeError):
    """A profiler entered while already active, or a second profiler attached to a model already profiled."""


class ProfilerInternalError(RuntimeError):
    """A bug in snn_energy: the profiler's own counting code failed (not the model, not the input). Not a
    ValueError, so that it is never reported as the user's mistake; it chains the original exception."""
