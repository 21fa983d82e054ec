"""The REST layer's own errors: an :class:`~offload.errors.OffloadError` with its HTTP status.

Errors from the core already carry ``http_status`` and ``field``; the handlers answer every
``OffloadError`` alike, with the JSON body the lab extension reads: ``{message, field, hint,
status}``. :class:`ApiError` is for what only the server can say: a path outside its root (400),
a notebook it cannot find (404), a request that conflicts with a job's state (409).
"""

from __future__ import annotations

from offload.errors import OffloadError


class ApiError(OffloadError):
    """An error with its HTTP status and, for bad input, the request field it is about."""

    def __init__(self, status: int, message: str, *, field: str | None = None, hint: str | None = None):
        super().__init__(message, hint=hint, field=field)
        self.http_status = status
