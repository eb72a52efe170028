"""The one exception type the command line turns into a clean message and exit status 2."""


class UserError(Exception):
    """A problem with the user's input (arguments, files); its message names the file or argument."""
