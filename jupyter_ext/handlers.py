"""REST handlers under ``<base_url>/offload/api/`` (described in ``openapi.yaml``).

Every handler is ``@authenticated`` (token or login) and ``@authorized`` (resource ``offload``,
so a deployment's authorizer can grant or deny the whole feature). Work that touches the store
or a backend runs in the extension's thread pool. Errors are JSON ``{message, field, hint}``
with a specific status: 400 names the bad field, 404 a missing job or notebook, 409 a conflict
with the job's state; an unexpected exception is logged and reported as 500 with its cause,
never as a bare page.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from jupyter_ext.service import ApiError, error_field, error_status, job_id_arg
from offload.errors import OffloadError

AUTH_RESOURCE = "offload"
JOB_ID = r"(?P<job_id>[^/]+)"


class OffloadHandler(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def ext(self):  # the OffloadExtensionApp
        return self.settings["offload_app"]

    @property
    def service(self):
        return self.ext.service

    @property
    def watcher(self):
        return self.ext.watcher

    async def run(self, fn, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking core call in the extension's thread pool, mapping its errors."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.ext.executor, functools.partial(fn, *args, **kwargs))
        except ApiError:
            raise
        except OffloadError as exc:
            raise ApiError(error_status(exc), exc.message, field=error_field(exc), hint=exc.hint) from None

    def body(self) -> dict[str, Any]:
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

    def reply(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(obj, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            payload = exc.to_dict()
        elif isinstance(exc, web.HTTPError):
            payload = {"message": exc.log_message or self._reason, "field": None, "hint": None, "status": status_code}
        else:
            payload = {"message": f"internal error: {type(exc).__name__}: {exc}" if exc else self._reason,
                       "field": None, "hint": "see the Jupyter server log", "status": status_code}
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, ApiError):
            self.send_error(e.status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


class BackendsHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        self.reply(await self.run(self.service.backends))


class NotebookHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        path = self.get_query_argument("path", None)
        if not path:
            raise ApiError(400, "query argument 'path' is required", field="path")
        self.reply(await self.run(self.service.inspect, path))


class JobsHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        await self.watcher.ready()
        from jupyter_ext.service import filter_rows

        rows = filter_rows(self.watcher.rows, notebook=self.get_query_argument("notebook", None),
                           state=self.get_query_argument("state", None))
        self.reply({"jobs": rows, "seq": self.watcher.seq, "updated_at": self.watcher.updated_at,
                    "watcher_error": self.watcher.last_error})

    @web.authenticated
    @authorized(action="execute")
    async def post(self) -> None:
        body = self.body()
        await self.watcher.ready()
        job = await self.run(self.service.submit, body, active_count=self.watcher.active)
        await self.watcher.refresh()
        self.set_header("Location", url_path_join(self.base_url, "offload/api/jobs", job["id"]))
        self.reply(job, 201)


class JobHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self, job_id: str) -> None:
        self.reply(await self.run(self.service.job_detail, job_id_arg(job_id)))


class LogHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self, job_id: str) -> None:
        cursor = self.int_arg("cursor", 0)
        self.reply(await self.run(self.service.logs, job_id_arg(job_id), cursor))


class MetricsHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self, job_id: str) -> None:
        self.reply(await self.run(self.service.metrics, job_id_arg(job_id)))


class CancelHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="write")
    async def post(self, job_id: str) -> None:
        out = await self.run(self.service.cancel, job_id_arg(job_id))
        self.watcher.wake()
        self.reply(out, 202)


class RerunHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="execute")
    async def post(self, job_id: str) -> None:
        from jupyter_ext.service import require

        body = self.body()
        params = require(body, "parameters", dict, optional=True)
        out = await self.run(self.service.rerun, job_id_arg(job_id), params)
        await self.watcher.refresh()
        self.reply(out, 201)


class ExecutedNotebookHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self, job_id: str) -> None:
        self.reply(await self.run(self.service.executed_notebook, job_id_arg(job_id)))


class MergePlanHandler(OffloadHandler):
    """POST the open notebook's cells; get back the outputs to apply through the model."""

    @web.authenticated
    @authorized(action="read")
    async def post(self, job_id: str) -> None:
        from jupyter_ext.service import require

        cells = require(self.body(), "cells", list)
        self.reply(await self.run(self.service.merge_plan, job_id_arg(job_id), cells))


class MergeFileHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="write")
    async def post(self, job_id: str) -> None:
        from jupyter_ext.service import require

        path = require(self.body(), "path", str, optional=True)
        self.reply(await self.run(self.service.merge_file, job_id_arg(job_id), path))


class ThumbnailHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self, job_id: str) -> None:
        found = await self.run(self.service.thumbnail, job_id_arg(job_id))
        if found is None:
            raise ApiError(404, f"job {job_id} has no image output", field="job_id")
        mime, data = found
        self.set_header("Content-Type", mime)
        self.set_header("Cache-Control", "private, max-age=300")
        if mime == "image/svg+xml":  # never let an output's SVG run script in our origin
            self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
        super(APIHandler, self).finish(data)  # APIHandler.finish would force application/json


class GalleryHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        await self.watcher.ready()
        order = self.get_query_argument("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError(400, "order must be asc or desc", field="order")
        self.reply(await self.run(
            self.service.gallery, list(self.watcher.rows), notebook=self.get_query_argument("notebook", None),
            state=self.get_query_argument("state", None), sort=self.get_query_argument("sort", None), order=order,
        ))


class CompareHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        a, b = self.get_query_argument("a", None), self.get_query_argument("b", None)
        if not a:
            raise ApiError(400, "query argument 'a' (a job id) is required", field="a")
        if not b:
            raise ApiError(400, "query argument 'b' (a job id) is required", field="b")
        self.reply(await self.run(self.service.compare, job_id_arg(a), job_id_arg(b)))


class EventsHandler(OffloadHandler):
    """State changes seen by the watcher after ``since`` (for notifications)."""

    @web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        since = self.int_arg("since", 0)
        self.reply({"events": self.watcher.events_since(since), "seq": self.watcher.seq})


ROUTES: list[tuple[str, type[OffloadHandler]]] = [
    (r"backends", BackendsHandler),
    (r"notebook", NotebookHandler),
    (r"jobs", JobsHandler),
    (rf"jobs/{JOB_ID}", JobHandler),
    (rf"jobs/{JOB_ID}/log", LogHandler),
    (rf"jobs/{JOB_ID}/metrics", MetricsHandler),
    (rf"jobs/{JOB_ID}/cancel", CancelHandler),
    (rf"jobs/{JOB_ID}/rerun", RerunHandler),
    (rf"jobs/{JOB_ID}/notebook", ExecutedNotebookHandler),
    (rf"jobs/{JOB_ID}/merge-plan", MergePlanHandler),
    (rf"jobs/{JOB_ID}/merge", MergeFileHandler),
    (rf"jobs/{JOB_ID}/thumbnail", ThumbnailHandler),
    (r"gallery", GalleryHandler),
    (r"compare", CompareHandler),
    (r"events", EventsHandler),
]


def handlers(base_url: str) -> list[tuple[str, type[OffloadHandler]]]:
    return [(url_path_join(base_url, "offload/api", pattern), h) for pattern, h in ROUTES]


from jupyter_ext import sweep_handlers as _sweep_handlers  # noqa: E402, F401  (adds the sweep panel's routes to ROUTES)
