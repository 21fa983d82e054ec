"""Into a running job from JupyterLab: a console on the job's kernel (service/attach.py)."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from jupyter_ext.handlers.base import OffloadHandler
from jupyter_ext.service import attach
from jupyter_ext.service.models import job_id_arg


class ConsoleHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="execute")
    async def post(self, job_id: str) -> None:
        """Reach the job's running kernel and register it as a kernel of this server (a subshell
        for the console): 201 ``{kernel_id, job_id, subshell_id, host, route}``; 409 naming the
        job's state when it has ended or is not running yet."""
        console = await self.call(attach.open_console, job_id_arg(job_id))
        self.reply(attach.register(self.kernel_manager, console), 201)
