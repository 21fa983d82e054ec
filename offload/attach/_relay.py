"""The kernel's sockets, reached from this machine.

The job's kernel listens on IPC (Unix) sockets in a private directory on its machine: nothing on
the network. A client on that machine connects to them directly. From elsewhere, each of the
kernel's channels gets a listener on this machine's loopback (``127.0.0.1``, an ephemeral port);
every connection to it starts a relay on the job's machine (:data:`BRIDGE`, a few lines of the
standard library run by the kernel's own interpreter) that joins the relay's stdin/stdout to the
channel's socket, carried by ``srun --overlap`` (SLURM) or an SSH exec channel (paramiko). ZeroMQ
speaks the same ZMTP over TCP and Unix sockets, so the client sees an ordinary TCP kernel.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

from offload.backends.base import AttachRoute

CHANNELS = ("shell", "iopub", "stdin", "control", "hb")

# Run on the job's machine as ``python -c BRIDGE <socket path>``: stdin -> socket, socket -> stdout.
BRIDGE = r"""
import os, socket, sys, threading
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
def up():
    while True:
        b = os.read(0, 65536)
        if not b:
            break
        s.sendall(b)
    try:
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
threading.Thread(target=up, daemon=True).start()
while True:
    b = s.recv(65536)
    if not b:
        break
    v = memoryview(b)
    while v:
        v = v[os.write(1, v):]
"""


def socket_path(info: dict[str, Any], channel: str) -> str:
    """The Unix socket of ``channel`` (jupyter_client names IPC endpoints ``<ip>-<port>``)."""
    return f"{info['ip']}-{info[channel + '_port']}"


def bridge_argv(python: str, path: str) -> list[str]:
    return [python, "-c", BRIDGE, path]


def srun_argv(slurm_job_id: str, *command: str, cwd: str | None = None, pty: bool = False) -> list[str]:
    """``srun`` into the job's allocation alongside its running step (``--overlap``)."""
    argv = ["srun", "--overlap", f"--jobid={slurm_job_id}", "--nodes=1", "--ntasks=1", "--quiet"]
    if cwd:
        argv.append(f"--chdir={cwd}")
    argv.append("--pty" if pty else "--unbuffered")
    return [*argv, "--", *command]


class Relay:
    """Loopback listeners, one per kernel channel, each connection relayed to the job's machine
    by ``open_pipe(path)`` (returns ``(send, recv, close)`` on a byte stream to that socket)."""

    def __init__(self, info: dict[str, Any], open_pipe: Callable[[str], Any], channels: tuple[str, ...] = CHANNELS):
        self.info = info
        self.open_pipe = open_pipe
        self.listeners: list[socket.socket] = []
        self.closed = threading.Event()
        self.local_info = {k: v for k, v in info.items() if not k.endswith("_port")}
        self.local_info.update(transport="tcp", ip="127.0.0.1")
        for channel in channels:
            lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            lsock.bind(("127.0.0.1", 0))
            lsock.listen(8)
            self.listeners.append(lsock)
            self.local_info[f"{channel}_port"] = lsock.getsockname()[1]
            threading.Thread(target=self._accept, args=(lsock, socket_path(info, channel)),
                             name=f"offload-relay-{channel}", daemon=True).start()

    def _accept(self, lsock: socket.socket, path: str) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, path), daemon=True).start()

    def _serve(self, conn: socket.socket, path: str) -> None:
        try:
            send, recv, close = self.open_pipe(path)
        except Exception:
            conn.close()
            return

        def down() -> None:  # job's machine -> client
            try:
                while True:
                    data = recv()
                    if not data:
                        break
                    conn.sendall(data)
            except Exception:  # the far side or the client went away (paramiko says EOFError)
                pass
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=down, daemon=True)
        t.start()
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                send(data)
        except Exception:  # the far side went away
            pass
        finally:
            with contextlib.suppress(Exception):
                close()
            t.join(timeout=5)
            conn.close()

    def close(self) -> None:
        self.closed.set()
        for lsock in self.listeners:
            with contextlib.suppress(OSError):
                lsock.close()


def srun_pipe(slurm_job_id: str, python: str) -> Callable[[str], Any]:
    def open_pipe(path: str) -> Any:
        proc = subprocess.Popen(srun_argv(slurm_job_id, *bridge_argv(python, path)), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)

        def send(data: bytes) -> None:
            proc.stdin.write(data)  # type: ignore[union-attr]

        def close() -> None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # type: ignore[union-attr]
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

        return send, lambda: proc.stdout.read(65536), close  # unbuffered: what is there  # type: ignore[union-attr]

    return open_pipe


def ssh_pipe(client: Any, python: str) -> Callable[[str], Any]:
    """An exec channel per connection on one SSH connection (paramiko ``SSHClient``). The remote
    command line is ``shlex.join`` of an argv we build (the interpreter, our bridge, a socket path
    from the runner's record): sshd hands it to the remote user's shell, and nothing in it comes
    from what a user typed."""
    def open_pipe(path: str) -> Any:
        chan = client.get_transport().open_session()
        chan.exec_command(shlex.join(bridge_argv(python, path)))

        def close() -> None:
            with contextlib.suppress(Exception):  # the connection may be closing under it
                chan.shutdown_write()
                chan.close()

        return chan.sendall, lambda: chan.recv(65536), close

    return open_pipe


@contextlib.contextmanager
def kernel_connection(route: AttachRoute, record: dict[str, Any], *, ssh: Any = None,
                      channels: tuple[str, ...] = CHANNELS) -> Iterator[dict[str, Any]]:
    """Connection info a jupyter_client can use here for the job's kernel (``record``: the
    runner's ``kernel.json``): the kernel's own on this machine, loopback relays otherwise."""
    info = dict(record["connection"])
    if route.kind == "local":
        yield info
        return
    python = record.get("python") or "python3"
    if route.kind == "srun":
        relay = Relay(info, srun_pipe(str(route.slurm_job_id), python), channels)
    elif route.kind == "ssh":
        relay = Relay(info, ssh_pipe(ssh, python), channels)
    else:
        raise ValueError(f"unknown attach route {route.kind!r}")
    try:
        yield relay.local_info
    finally:
        relay.close()
