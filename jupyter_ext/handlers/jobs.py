"""Jobs: submit, list, one job's detail, log, metrics; cancel, rerun, merge back; events."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web

from jupyter_ext.handlers.base import OffloadHandler
from jupyter_ext.service import jobs
from jupyter_ext.service.models import (
    JobListQuery,
    JobRequest,
    MergeFileRequest,
    MergePlanRequest,
    RerunRequest,
    job_id_arg,
)


class JobsHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        query = JobListQuery.parse(self.query_args())
        await self.watcher.ready()
        page = await self.call(jobs.list_page, query)
        self.reply({**page, "seq": self.watcher.seq, "updated_at": self.watcher.updated_at,
                    "active": self.watcher.active, "watcher_error": self.watcher.last_error})

    @web.authenticated
    @authorized(action="execute")
    async def post(self) -> None:
        req = await self.call(JobRequest.parse, self.body())
        await self.watcher.ready()
        job = await self.call(jobs.submit, req, active_count=self.watcher.active, user=self.user_key())
        await self.watcher.refresh()
        self.set_header("Location", url_path_join(self.base_url, "offload/api/jobs", job["id"]))
        self.reply(job, 201)


class JobHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self, job_id: str) -> None:
        self.reply(await self.call(jobs.job_detail, job_id_arg(job_id)))


class LogHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self, job_id: str) -> None:
        cursor = self.int_arg("cursor", 0)
        self.reply(await self.call(jobs.logs, job_id_arg(job_id), cursor))


class MetricsHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self, job_id: str) -> None:
        self.reply(await self.call(jobs.metrics, job_id_arg(job_id)))


class CancelHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="write")
    async def post(self, job_id: str) -> None:
        out = await self.call(jobs.cancel, job_id_arg(job_id))
        self.watcher.wake()
        self.reply(out, 202)


class RerunHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="execute")
    async def post(self, job_id: str) -> None:
        req = RerunRequest.parse(self.body())
        out = await self.call(jobs.rerun, job_id_arg(job_id), req.parameters)
        await self.watcher.refresh()
        self.reply(out, 201)


class ExecutedNotebookHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self, job_id: str) -> None:
        self.reply(await self.call(jobs.executed_notebook, job_id_arg(job_id)))


class MergePlanHandler(OffloadHandler):
    """POST the open notebook's cells; get back the outputs to apply through the model."""

    @web.authenticated
    @authorized(action="read")
    async def post(self, job_id: str) -> None:
        req = MergePlanRequest.parse(self.body())
        self.reply(await self.call(jobs.merge_plan, job_id_arg(job_id), req.cells))


class MergeFileHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="write")
    async def post(self, job_id: str) -> None:
        req = await self.call(MergeFileRequest.parse, self.body())
        self.reply(await self.call(jobs.merge_file, job_id_arg(job_id), req.target))


class EventsHandler(OffloadHandler):
    """State changes seen by the watcher after ``since`` (for notifications)."""

    @web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        since = self.int_arg("since", 0)
        self.reply({"events": self.watcher.events_since(since), "seq": self.watcher.seq})
