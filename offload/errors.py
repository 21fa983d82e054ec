"""Errors a user can act on.

Every error raised for bad input carries a one-line cause and a fix, so the CLI, the kernel magic
and the REST API can all show it without a traceback. ``exit_code`` is what the CLI returns.
"""

from __future__ import annotations


class OffloadError(Exception):
    """Base class: ``str(err)`` is the cause, ``err.hint`` says how to fix it."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # one line for humans: cause, then the fix
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(OffloadError):
    """The command or its arguments are wrong (unknown parameter, bad value, bad path)."""

    exit_code = 2


class NotebookError(UsageError):
    """The notebook is missing, unreadable, or not a notebook."""


class ParameterError(UsageError):
    """A parameter name is unknown or its value cannot be used."""


class JobNotFound(OffloadError):
    exit_code = 3


class StoreError(OffloadError):
    """The store cannot be read or written."""

    exit_code = 4


class BackendError(OffloadError):
    """The backend refused or failed to launch, inspect or cancel a job."""

    exit_code = 5


class JobFailed(OffloadError):
    """Raised by ``Job.wait(raise_on_error=True)`` when a job ends in another state than success."""

    exit_code = 6
