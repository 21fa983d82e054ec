"""The sweep panel: start and list sweeps, read one, stop, resume, apply the best parameters."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from jupyter_ext.handlers.base import OffloadHandler
from jupyter_ext.service import sweeps
from jupyter_ext.service.models import ApplyBestRequest, ResumeRequest, SweepRequest, job_id_arg


class SweepsHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        self.reply({"sweeps": await self.call(sweeps.list_sweeps, self.get_query_argument("notebook", None))})

    @web.authenticated
    @authorized(action="execute")
    async def post(self) -> None:
        req = await self.call(SweepRequest.parse, self.body())
        out = await self.call(sweeps.start_sweep, req)
        self.watcher.wake()
        self.reply(out, 201)


class SweepHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self, job_id: str) -> None:
        self.reply(await self.call(sweeps.sweep_state, job_id_arg(job_id)))


class SweepStopHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="write")
    async def post(self, job_id: str) -> None:
        out = await self.call(sweeps.stop_sweep, job_id_arg(job_id))
        self.watcher.wake()
        self.reply(out, 202)


class SweepResumeHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="execute")
    async def post(self, job_id: str) -> None:
        req = ResumeRequest.parse(self.body())
        out = await self.call(sweeps.resume_sweep, job_id_arg(job_id), req)
        self.watcher.wake()
        self.reply(out, 202)


class SweepApplyBestHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="write")
    async def post(self, job_id: str) -> None:
        req = await self.call(ApplyBestRequest.parse, self.body())
        self.reply(await self.call(sweeps.apply_best, job_id_arg(job_id), req))
