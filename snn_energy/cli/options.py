"""Options shared by the profiling and the ESDNet commands; defined with ESDNet's commands."""
from esdnet.cli.options import add_device_option, resolve_device

__all__ = ["add_device_option", "resolve_device"]
