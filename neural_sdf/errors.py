"""Exception types that mean "the user's input is bad" (as opposed to a bug).

The CLI turns these into one line on stderr and a non-zero exit; everything else is a bug and
keeps its traceback.
"""

__all__ = ["InputError"]


class InputError(ValueError):
    """A file or value supplied by the user cannot be used; the message names it and says why."""
