"""The project's one base exception and its cancellation signal.

Everything a user can cause (a bad file, a bad setting, a missing dependency, a full disk)
raises a subclass of :class:`DiffRenderGANError` whose message names the problem and the fix.
The CLI prints such errors as one line, the widgets show them in their dock; any other exception
is a bug and keeps its traceback. None of these derive from ``RuntimeError``: superqt swallows
those in thread workers.
"""

from __future__ import annotations


class DiffRenderGANError(Exception):
    """Something the user can fix; the message says what and how."""


class InputError(DiffRenderGANError):
    """An argument, setting or input file is unusable; the message names it."""


class OutputError(DiffRenderGANError):
    """A result cannot be written (full disk, no permission); the message names the file."""


class Cancelled(Exception):  # noqa: N818 - a signal, not an error
    """The user cancelled a long operation; what was finished is kept and can be resumed."""
