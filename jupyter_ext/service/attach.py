"""A JupyterLab console on a job's running kernel, which this server did not start.

``open_console`` (in the thread pool) finds the job's kernel (``offload.attach``: its record in the
store, the backend's route, loopback relays for a remote machine), creates a kernel subshell there,
and ``register`` (on the server's loop) adds an :class:`AttachedKernelManager` for it to the
server's kernel manager under a new kernel id. JupyterLab then opens an ordinary console on that
id: its websocket goes through the same authenticated ``/api/kernels`` endpoint as every kernel's.

The manager sends every shell message to the subshell (the header's ``subshell_id`` is set,
``store_history`` turned off: the notebook's execution counts and history stay its own, and the
message is signed again), so the console, its kernel_info and the debugger's requests are
answered while the notebook's cell keeps the main shell busy. It never starts, interrupts,
restarts or shuts down the job's kernel: shutting the console's kernel down here deletes its
subshell and closes the relays; the job goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.session import DELIM
from jupyter_server.services.kernels.kernelmanager import ServerKernelManager
from tornado import web
from tornado.ioloop import PeriodicCallback
from traitlets import Unicode

from offload.attach import SubshellClient, debug_copy, ended_error, find_target, open_kernel
from offload.errors import ConflictError
from offload.spec import FINAL_STATES, JobState
from offload.store import layout

KERNEL_NAME = "python3"
CONSOLE_WAIT_S = 120.0  # a running job's kernel may still be starting
WATCH_S = 5.0  # how often a console's kernel checks that the job's kernel still runs


@dataclass
class AttachedConsole:
    job_id: str
    connection: dict[str, Any]
    subshell_id: str
    host: str | None
    route: str
    stack: contextlib.ExitStack = field(repr=False)
    record_exists: Any = field(default=None, repr=False)  # () -> bool: the job's kernel still runs


def open_console(service: Any, job_id: str) -> AttachedConsole:
    """Reach the running job's kernel and make a subshell for a console (thread pool)."""
    job = service.job(job_id)
    # a running job whose kernel is still starting (environment, first cell) is waited for; a
    # queued one is a 409 saying so (the button is offered again once it runs)
    running = job.refresh().get("state") == JobState.RUNNING
    try:
        target = find_target(job.id, store=job.store, wait=running, timeout=CONSOLE_WAIT_S)
    except ConflictError as exc:
        if job.last_status.get("state") in FINAL_STATES:
            raise
        raise ConflictError(exc.message, field="job", hint="Console opens once the job's kernel runs") from None
    stack = contextlib.ExitStack()
    try:
        info = stack.enter_context(open_kernel(target))
        client = SubshellClient(info, timeout=30)
        try:
            subshell = client.open()
        finally:
            client.kc.stop_channels()  # the subshell stays: the console uses it
    except Exception:
        stack.close()
        raise
    key = job.key(layout.KERNEL)
    return AttachedConsole(job.id, info, subshell, target.record.get("host"), target.route.kind, stack,
                           record_exists=lambda: job.store.exists(key))


class AttachedKernelManager(ServerKernelManager):
    """A kernel manager for a job's kernel: connects, never owns it."""

    job_id = Unicode("")
    subshell_id = Unicode("")

    def attach(self, console: AttachedConsole) -> None:
        self.load_connection_info(console.connection)
        self.job_id, self.subshell_id = console.job_id, console.subshell_id
        self._console = console
        self._ready = self._ready_future()

    @staticmethod
    def _ready_future() -> Any:
        import asyncio

        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    @property
    def has_kernel(self) -> bool:
        return True

    async def is_alive(self) -> bool:  # type: ignore[override]
        return not getattr(self, "_closed", False)

    def connect_shell(self, identity: bytes | None = None) -> Any:  # type: ignore[override]
        """The shell stream, with every outgoing message addressed to the subshell."""
        stream = super().connect_shell(identity=identity)
        send = stream.send_multipart
        session = self.session
        subshell = self.subshell_id

        def to_subshell(frames: list[Any], *args: Any, **kwargs: Any) -> Any:
            frames = [bytes(f) if not isinstance(f, bytes) else f for f in frames]
            i = frames.index(DELIM)
            header = json.loads(frames[i + 2])
            header["subshell_id"] = subshell
            frames[i + 2] = session.pack(header)
            if header.get("msg_type") == "execute_request":  # the notebook keeps its history and counts
                content = json.loads(frames[i + 5])
                content["store_history"] = False
                frames[i + 5] = session.pack(content)
            frames[i + 1] = session.sign(frames[i + 2:i + 6])
            return send(frames, *args, **kwargs)

        stream.send_multipart = to_subshell
        return stream

    def connect_control(self, identity: bytes | None = None) -> Any:  # type: ignore[override]
        """The control stream; JupyterLab's debugger starting (debug_request ``initialize``) first
        readies debugpy through the console's subshell (ipykernel would use the busy main shell and
        hold the control channel until the notebook's cell ends); messages sent meanwhile follow it
        in order."""
        stream = super().connect_control(identity=identity)
        send = stream.send_multipart
        state: dict[str, Any] = {"ready": False, "held": None}

        async def ready_then_send() -> None:
            try:
                await asyncio.to_thread(self._start_debugpy)
                state["ready"] = True
            except Exception as exc:
                self.log.warning("offload: job %s: %s", self.job_id, exc)
            held, state["held"] = state["held"], None
            for frames, args, kwargs in held:
                send(frames, *args, **kwargs)

        def to_control(frames: list[Any], *args: Any, **kwargs: Any) -> Any:
            if state["held"] is not None:
                state["held"].append((frames, args, kwargs))
                return None
            if not state["ready"] and _debug_command(frames) == "initialize":
                state["held"] = [(frames, args, kwargs)]
                asyncio.ensure_future(ready_then_send())
                return None
            return send(frames, *args, **kwargs)

        stream.send_multipart = to_control
        return stream

    def _start_debugpy(self) -> None:  # blocking: a round trip to the kernel (thread pool)
        console: AttachedConsole = self._console
        client = SubshellClient(console.connection, timeout=30)
        client.subshell_id = console.subshell_id
        try:
            client.start_debugpy()
        finally:
            client.kc.stop_channels()  # the console keeps its subshell

    async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:  # type: ignore[override]
        """Delete the subshell and close the relays; the job's kernel is not touched."""
        if restart:
            raise web.HTTPError(409, f"this console's kernel belongs to job {self.job_id}; it cannot be restarted from here")
        if getattr(self, "_closed", False):
            return
        self._closed = True
        console: AttachedConsole = self._console
        watch = getattr(self, "_watch", None)
        if watch is not None:
            watch.stop()

        def release() -> None:  # blocking (zmq round trip, relays): in a thread, off the server's loop
            try:
                if console.record_exists is None or console.record_exists():  # an ended kernel has no subshell to delete
                    client = SubshellClient(console.connection, timeout=5)
                    client.subshell_id = console.subshell_id
                    client.close()  # delete_subshell_request on the control channel
            except Exception as exc:
                self.log.info("offload: could not delete subshell %s of job %s: %s", console.subshell_id, self.job_id, exc)
            finally:
                console.stack.close()

        await asyncio.to_thread(release)

    async def restart_kernel(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        raise web.HTTPError(409, f"this console's kernel belongs to job {self.job_id}; it cannot be restarted from here")

    async def interrupt_kernel(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        raise web.HTTPError(409, f"this console's kernel belongs to job {self.job_id}; interrupting it would stop the "
                                 "job's running cell", reason="Conflict")

    def cleanup_resources(self, restart: bool = False) -> None:  # nothing of ours on the job's machine
        pass


def _debug_command(frames: list[Any]) -> str | None:
    """The DAP command of a debug_request's frames; None for any other message."""
    try:
        parts = [bytes(f) if not isinstance(f, bytes) else f for f in frames]
        i = parts.index(DELIM)
        if json.loads(parts[i + 2]).get("msg_type") != "debug_request":
            return None
        return json.loads(parts[i + 5]).get("command")
    except (ValueError, IndexError, TypeError):
        return None


def register(kernel_manager: Any, console: AttachedConsole) -> dict[str, Any]:
    """Add the console's kernel to the server's kernel manager (on the server's loop)."""
    kernel_id = str(uuid.uuid4())
    km = AttachedKernelManager(parent=kernel_manager, log=kernel_manager.log, kernel_name=KERNEL_NAME, kernel_id=kernel_id,
                               connection_file="", owns_kernel=False)
    km.attach(console)
    kernel_manager._kernels[kernel_id] = km
    kernel_manager._kernel_connections[kernel_id] = 0
    kernel_manager._kernel_ports[kernel_id] = km.ports
    kernel_manager.start_watching_activity(kernel_id)
    km.execution_state = "busy"  # the notebook's cell is running: the server does not nudge it

    async def check() -> None:  # the job's kernel stopped (job ended): the console's kernel goes too
        if console.record_exists is not None and not await asyncio.to_thread(console.record_exists):
            if kernel_id in kernel_manager:
                await kernel_manager.shutdown_kernel(kernel_id)

    km._watch = PeriodicCallback(lambda: asyncio.ensure_future(check()), WATCH_S * 1000)
    km._watch.start()
    return {"kernel_id": kernel_id, "job_id": console.job_id, "subshell_id": console.subshell_id,
            "host": console.host, "route": console.route, "kernel_name": KERNEL_NAME}



def terminal_command(service: Any, job_id: str) -> list[str]:
    """The argv of a terminal that runs ``offload ssh JOB`` (this server's interpreter and store):
    started by the terminal manager as a program, never typed into a shell. An ended job is a 409
    naming its state; a queued one is fine (the terminal shows offload ssh waiting for it)."""
    job = service.job(job_id)
    status = job.refresh()
    if status.get("state") in FINAL_STATES:
        raise ended_error(job, status)
    return [sys.executable, "-m", "offload.cli", "--store", job.store.url, "ssh", job.id]


def start_debug_copy(service: Any, job_id: str, hold_s: int | None) -> dict[str, Any]:
    job = service.job(job_id)
    new = debug_copy(job, hold_s=hold_s)
    return {"id": new.id, "debug_copy_of": job.id, "state": new.state}
