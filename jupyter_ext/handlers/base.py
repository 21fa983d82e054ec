"""The handler every route uses: authentication, the thread pool, JSON in and out, errors.

Every handler is ``@authenticated`` (token or login) and ``@authorized`` (resource ``offload``,
so a deployment's authorizer can grant or deny the whole feature). Work that touches the store
or a backend runs in the extension's thread pool. Errors are JSON ``{message, field, hint,
status}``: an ``OffloadError`` answers its own ``http_status`` (400 naming the bad field, 404 a
missing job or notebook, 409 a conflict with the job's state, 502/503 a backend or store that
failed); an unexpected exception is logged and reported as 500 with its cause, never as a bare page.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web

from jupyter_ext.service import ApiError, OffloadService
from offload.errors import OffloadError

AUTH_RESOURCE = "offload"


class OffloadHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def ext(self) -> Any:  # the OffloadExtensionApp
        return self.settings["offload_app"]

    @property
    def service(self) -> OffloadService:
        return self.ext.service

    @property
    def watcher(self) -> Any:  # the JobWatcher
        return self.ext.watcher

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(service, *args, **kwargs)`` in the extension's thread pool (it may block)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.ext.executor, functools.partial(fn, self.service, *args, **kwargs))

    def body(self) -> dict[str, Any]:
        """The request's JSON object (``{}`` when empty); 400 ``field: body`` otherwise."""
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except ValueError as exc:
            raise ApiError(400, f"request body is not JSON: {exc}", field="body") from None
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object", field="body")
        return data

    def int_arg(self, name: str, default: int) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ApiError(400, f"query argument {name!r} must be an integer", field=name) from None

    def required_arg(self, name: str, what: str = "") -> str:
        value = self.get_query_argument(name, None)
        if not value:
            raise ApiError(400, f"query argument {name!r}{what} is required", field=name)
        return value

    def reply(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(obj, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, OffloadError):
            payload = exc.to_dict()
        elif isinstance(exc, web.HTTPError):
            payload = {"message": exc.log_message or self._reason, "field": None, "hint": None, "status": status_code}
        else:
            payload = {"message": f"internal error: {type(exc).__name__}: {exc}" if exc else self._reason,
                       "field": None, "hint": "see the Jupyter server log", "status": status_code}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, OffloadError):  # the caller's or a backend's: answered, not logged as a crash
            self.send_error(e.http_status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)
