"""A client of the job's kernel that runs code in a kernel subshell (ipykernel >= 7, JEP 91): a
second shell thread in the same process and namespace, answering while the notebook's cell keeps
the main shell busy. The client never interrupts, restarts or shuts down the kernel: leaving
deletes its subshell and nothing else.
"""

from __future__ import annotations

import io
import queue
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from jupyter_client.blocking.client import BlockingKernelClient

from offload.errors import BackendError
from offload.notebook import strip_ansi

REPLY_TIMEOUT_S = 60.0

# ipykernel's debugger starts debugpy by sending an execute_request to the kernel's MAIN shell,
# which the notebook's running cell keeps busy: JupyterLab's debug "initialize" would wait for the
# cell to end and hold the control channel meanwhile. Run through a subshell, this does the same
# (debugpy listening where the kernel's debugger will connect) and marks it done, so the debugger
# starts at once. Its names stay out of the user's namespace.
DEBUGPY_START = """\
def __offload_debugpy():
    import socket
    import debugpy
    dbg = getattr(get_ipython().kernel, "debugger", None)
    if dbg is None or dbg.debugpy_initialized:
        return
    client = dbg.debugpy_client
    if str(client.debugpy_port) == "-1":
        with socket.socket() as s:
            s.bind((client.debugpy_host, 0))
            client.debugpy_port = str(s.getsockname()[1])
    debugpy.listen((client.debugpy_host, int(client.debugpy_port)))
    dbg.debugpy_initialized = True
try:
    __offload_debugpy()
finally:
    del __offload_debugpy
"""


class SubshellClient:
    def __init__(self, connection: dict[str, Any], *, timeout: float = REPLY_TIMEOUT_S):
        self.timeout = timeout
        self.kc = BlockingKernelClient()
        self.kc.load_connection_info(connection)
        self.kc.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=True)
        self.subshell_id: str | None = None

    # protocol ---------------------------------------------------------------------------------
    def _request(self, channel: Any, msg_type: str, content: dict[str, Any], *, subshell: bool = False) -> str:
        msg = self.kc.session.msg(msg_type, content)
        if subshell and self.subshell_id:
            msg["header"]["subshell_id"] = self.subshell_id
        channel.send(msg)
        return msg["header"]["msg_id"]

    def _reply(self, channel: Any, msg_id: str, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BackendError(f"the job's kernel did not answer the {what} within {self.timeout:.0f} s",
                                   hint="is the job still running? (`offload show JOB`)")
            try:
                msg = channel.get_msg(timeout=min(left, 1.0))
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg

    def open(self) -> str:
        """Create this client's subshell, then make sure iopub is subscribed (a kernel_info on the
        subshell, repeated until its status message arrives): output is never missed."""
        mid = self._request(self.kc.control_channel, "create_subshell_request", {})
        reply = self._reply(self.kc.control_channel, mid, "request for a subshell")
        self.subshell_id = reply["content"].get("subshell_id")
        if not self.subshell_id:
            raise BackendError("the job's kernel made no subshell: " + str(reply["content"].get("evalue") or reply["content"]),
                               hint="attach needs ipykernel >= 7 in the job's environment")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            mid = self._request(self.kc.shell_channel, "kernel_info_request", {}, subshell=True)
            self._reply(self.kc.shell_channel, mid, "kernel info request")
            try:
                while True:
                    msg = self.kc.iopub_channel.get_msg(timeout=0.5)
                    if msg.get("parent_header", {}).get("msg_id") == mid:
                        return self.subshell_id
            except queue.Empty:
                continue
        raise BackendError("the job kernel's output channel did not connect", hint="try again")

    def execute(self, code: str, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
                on_output: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Run ``code`` in the subshell; print what it prints (text); return the execute_reply's
        content (``status`` ok / error)."""
        mid = self._request(self.kc.shell_channel, "execute_request", {
            "code": code, "silent": False, "store_history": False,  # the notebook keeps its own numbering
            "user_expressions": {},
            "allow_stdin": False, "stop_on_error": False,
        }, subshell=True)
        deadline = time.monotonic() + max(self.timeout, 3600.0)
        idle = False
        while not idle:
            if time.monotonic() > deadline:
                raise BackendError("no answer from the job's kernel")
            try:
                msg = self.kc.iopub_channel.get_msg(timeout=1.0)
            except queue.Empty:
                continue
            if msg.get("parent_header", {}).get("msg_id") != mid:
                continue  # the notebook's own output, or another client's
            kind, content = msg["msg_type"], msg["content"]
            if on_output is not None:
                on_output(msg)
            if kind == "stream":
                (err if content.get("name") == "stderr" else out).write(content.get("text", ""))
            elif kind in ("execute_result", "display_data"):
                text = content.get("data", {}).get("text/plain")
                if text is not None:
                    out.write(text + "\n")
            elif kind == "error":
                tb = content.get("traceback", [])
                err.write("\n".join(tb if err.isatty() else map(strip_ansi, tb)) + "\n")
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
            out.flush()
        return self._reply(self.kc.shell_channel, mid, "execute request")["content"]

    def start_debugpy(self) -> None:
        """Ready the kernel's debugger from this subshell (:data:`DEBUGPY_START`)."""
        err = io.StringIO()
        reply = self.execute(DEBUGPY_START, out=io.StringIO(), err=err)
        if reply.get("status") != "ok":
            raise BackendError(f"could not start the debugger in the job's kernel: {strip_ansi(err.getvalue())[-500:]}")

    def close(self) -> None:
        """Delete the subshell (the kernel and the notebook's run go on) and disconnect."""
        try:
            if self.subshell_id:
                mid = self._request(self.kc.control_channel, "delete_subshell_request", {"subshell_id": self.subshell_id})
                saved, self.timeout = self.timeout, 5.0
                try:
                    self._reply(self.kc.control_channel, mid, "subshell deletion")
                finally:
                    self.timeout = saved
        except BackendError:
            pass
        finally:
            self.kc.stop_channels()

    def __enter__(self) -> SubshellClient:
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

