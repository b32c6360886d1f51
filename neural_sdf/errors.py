"""Exception types that mean "the user's input is bad" (as opposed to a bug).

The CLI turns these into one line on stderr and a non-zero exit; everything else is a bug and
keeps its traceback.

Messages (errors and log lines) name a parameter, never a CLI flag, in single backquotes:
`max_points`, `normals='given'`, `cleanup=False`. The CLI says those as its flags (--max-points,
--normals given, --no-cleanup; ``cli.flag_text``), so one message serves both.
"""

__all__ = ["InputError"]


class InputError(ValueError):
    """A file or value supplied by the user cannot be used; the message names it and says why."""
