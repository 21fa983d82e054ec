"""Into a running job from JupyterLab (service/attach.py): a console on the job's kernel, a
terminal running ``offload ssh JOB``, and Debug a copy of a failed job."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from jupyter_ext.handlers.base import OffloadHandler
from jupyter_ext.service import attach
from jupyter_ext.service.errors import ApiError
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


class TerminalHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="execute")
    async def post(self, job_id: str) -> None:
        """A JupyterLab terminal running ``offload ssh JOB``: 201 ``{name}`` (open it with
        terminal:open); 409 naming the job's state when it has ended."""
        argv = await self.call(attach.terminal_command, job_id_arg(job_id))
        terminals = self.settings.get("terminal_manager")
        if terminals is None:
            raise ApiError(409, "this server has no terminals", hint="install jupyter_server_terminals, or use `offload ssh` in a shell")
        model = terminals.create(shell_command=argv, cwd=self.settings.get("server_root_dir"))
        self.reply({"name": model["name"], "job_id": argv[-1]}, 201)


class DebugCopyHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="execute")
    async def post(self, job_id: str) -> None:
        """Rerun a failed job up to its failing cell and keep the kernel: 201 ``{id}`` of the copy."""
        hold = self.body().get("hold_s")
        if hold is not None and (not isinstance(hold, int) or isinstance(hold, bool)):
            raise ApiError(400, "hold_s must be a whole number of seconds", field="hold_s")
        out = await self.call(attach.start_debug_copy, job_id_arg(job_id), hold)
        await self.watcher.refresh()
        self.reply(out, 201)
