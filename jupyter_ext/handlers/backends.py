"""What the Run dialog reads before a run: the backends with their machines, and the notebook."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from jupyter_ext.handlers.base import OffloadHandler
from jupyter_ext.service import OffloadService, notebook


class BackendsHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        self.reply(await self.call(OffloadService.backends))


class NotebookHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        self.reply(await self.call(notebook.inspect, self.required_arg("path")))
