"""``UserError``, the command line's error for input a user can fix; defined with ESDNet's commands."""
from esdnet.cli.errors import UserError

__all__ = ["UserError"]
