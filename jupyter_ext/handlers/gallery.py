"""The gallery: cards of executed notebooks, their thumbnails, and the comparison of two jobs."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from jupyter_ext.handlers.base import OffloadHandler
from jupyter_ext.service import ApiError, gallery
from jupyter_ext.service.models import JobListQuery, job_id_arg


class GalleryHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        query = JobListQuery.parse(self.query_args(), sortable=True)
        await self.watcher.ready()
        self.reply(await self.call(gallery.gallery, query))


class ThumbnailHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self, job_id: str) -> None:
        found = await self.call(gallery.thumbnail, job_id_arg(job_id))
        if found is None:
            raise ApiError(404, f"job {job_id} has no image output", field="job_id")
        mime, data = found
        self.set_header("Content-Type", mime)
        self.set_header("Cache-Control", "private, max-age=300")
        if mime == "image/svg+xml":  # never let an output's SVG run script in our origin
            self.set_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
        super(APIHandler, self).finish(data)  # APIHandler.finish would force application/json


class CompareHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        a = job_id_arg(self.required_arg("a", " (a job id)"), field="a")
        b = job_id_arg(self.required_arg("b", " (a job id)"), field="b")
        self.reply(await self.call(gallery.compare, a, b))
