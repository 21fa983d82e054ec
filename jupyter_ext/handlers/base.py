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
import re
from collections.abc import Callable
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider
from jupyter_server.base.handlers import APIHandler
from tornado import web

from jupyter_ext.service import ApiError, OffloadService
from offload.errors import OffloadError

AUTH_RESOURCE = "offload"
MAX_DEPTH = 64  # no request the API takes nests deeper than a handful of levels


def check_json(data: Any) -> None:
    """400 naming the place of the first value nested deeper than ``MAX_DEPTH`` or the first
    string (value or key) that is not valid text; ``field`` is the top-level field it is under."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        field = re.split(r"[.\[]", where, maxsplit=1)[0] or "body"
        if depth > MAX_DEPTH:
            raise ApiError(400, f"request body nests deeper than {MAX_DEPTH} levels at {where}", field=field)
        if isinstance(value, str):
            _text(value, where or "body", field)
        elif isinstance(value, dict):
            for key, item in value.items():
                _text(key, f"a key in {where or 'body'}", field)
                stack.append((item, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))


def _text(s: str, where: str, field: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, f"{where} holds a lone surrogate, which is not text", field=field,
                       hint="send UTF-8 text") from None


class OffloadHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    def user_key(self) -> str:
        """Who is asking, for per-user limits: the user's name where the server knows its users
        (JupyterHub, a deployment's identity provider); ``owner`` on a single-user server, where
        token or password login makes each new client an anonymous user of its own."""
        if type(self.identity_provider) in (IdentityProvider, PasswordIdentityProvider):
            return "owner"
        return self.current_user.username

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
        """The request's JSON object (``{}`` when empty): 413 when larger than the server's limit,
        400 ``field: body`` when it is not JSON, nests too deeply or holds a string that is not
        text (a lone surrogate), so nothing downstream fails on it with a 500."""
        raw = self.request.body
        if not raw:
            return {}
        limit = self.ext.max_request_bytes
        if len(raw) > limit:
            raise ApiError(413, f"request body of {len(raw)} bytes is larger than the limit of {limit}", field="body",
                           hint="send less, or raise OffloadExtensionApp.max_request_bytes")
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, f"request body is not JSON: {exc}", field="body") from None
        except RecursionError:
            data = None  # deeper than the parser goes: refused below
        if not isinstance(data, dict):
            if data is None and raw.strip() != b"null":
                raise ApiError(400, f"request body nests deeper than {MAX_DEPTH} levels", field="body")
            raise ApiError(400, "request body must be a JSON object", field="body")
        check_json(data)
        return data

    def int_arg(self, name: str, default: int) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ApiError(400, f"query argument {name!r} must be an integer", field=name) from None

    def query_args(self) -> dict[str, str]:
        """The query string as name -> last value (a repeated argument counts once). A bare
        number without a value is JupyterLab's cache-buster (``ServerConnection`` appends
        ``?<milliseconds>`` to every request it makes with its default ``cache: 'no-store'``), not
        a field: it is left out, so the lab's own requests are not refused as unknown fields."""
        return {k: self.get_query_argument(k) for k in self.request.query_arguments
                if not (k.isdigit() and not self.get_query_argument(k))}

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
