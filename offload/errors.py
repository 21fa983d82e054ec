"""Errors a user can act on.

Every error raised for bad input carries a one-line cause and a fix, so the CLI, the kernel magic
and the REST API can all show it without a traceback. ``exit_code`` is what the CLI returns,
``http_status`` what the server answers, and ``field`` names the input the error is about (a
request field, a CLI option), so no caller ever has to parse a message to find it.
"""

from __future__ import annotations

from typing import Any


class OffloadError(Exception):
    """Base class: ``str(err)`` is the cause, ``err.hint`` says how to fix it."""

    exit_code = 1
    http_status = 400  # an OffloadError is about what the user asked; subclasses say otherwise

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field if field is not None else type(self).default_field

    default_field: str | None = None

    def __str__(self) -> str:  # one line for humans: cause, then the fix
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "field": self.field, "hint": self.hint, "status": self.http_status}


class UsageError(OffloadError):
    """The command or its arguments are wrong (unknown parameter, bad value, bad path)."""

    exit_code = 2
    http_status = 400


class NotebookError(UsageError):
    """The notebook is missing, unreadable, or not a notebook."""

    default_field = "path"


class ParameterError(UsageError):
    """A parameter name is unknown or its value cannot be used."""

    default_field = "parameters"


class JobNotFound(OffloadError):
    """No job (or sweep) by that id in the store."""

    exit_code = 3
    http_status = 404
    default_field = "job_id"


class MachineNotFound(OffloadError):
    """No machine by that name in the store(s) (``offload machines stop NAME``)."""

    exit_code = 3
    http_status = 404
    default_field = "name"


class StoreError(OffloadError):
    """The store cannot be read or written; ``reason`` is the store's own words (for a write that
    failed every retry: what the runner records as "store not writable: <reason>")."""

    exit_code = 4
    http_status = 503

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None,
                 reason: str | None = None):
        super().__init__(message, hint=hint, field=field)
        self.reason = reason or message


class BackendError(OffloadError):
    """The backend refused or failed to launch, inspect or cancel a job."""

    exit_code = 5
    http_status = 502


class JobFailed(OffloadError):
    """Raised by ``Job.wait(raise_on_error=True)`` when a job ends in another state than success."""

    exit_code = 6
    http_status = 409


class ConflictError(OffloadError):
    """The request is valid but the job's state does not allow it (already ended, bundle gone)."""

    exit_code = 7
    http_status = 409


class BudgetExceeded(OffloadError):
    """A launch refused before any cloud call: its estimate would go over a budget. ``budget``,
    ``estimate`` and ``month_spend`` are dollars; ``setting`` is what to change (also ``field``)."""

    exit_code = 8
    http_status = 402  # Payment Required: the request is fine, the money is not there

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None,
                 budget: float | None = None, estimate: float | None = None,
                 month_spend: float | None = None, setting: str | None = None):
        super().__init__(message, hint=hint, field=field or setting)
        self.budget, self.estimate, self.month_spend, self.setting = budget, estimate, month_spend, setting

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "budget": self.budget, "estimate": self.estimate,
                "month_spend": self.month_spend, "setting": self.setting}
