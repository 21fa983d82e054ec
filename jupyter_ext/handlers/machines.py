"""The side panel's machines: the live ones (warm --keep-alive machines, %%offload sessions,
sweep packs) with their countdown, and the Stop button."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from jupyter_ext.handlers.base import OffloadHandler
from jupyter_ext.service import machines
from jupyter_ext.service.models import MachineStopRequest


class MachinesHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        self.reply(await self.call(machines.running))


class MachinesStopHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="write")
    async def post(self) -> None:
        req = MachineStopRequest.parse(self.body())
        self.reply(await self.call(machines.stop, req), 202)
