"""The kernel every runner program executes in: one set-up, shared by the notebook job and the
warm ``%%offload`` session.

The kernel runs ``python -m ipykernel_launcher`` of the job's interpreter (this one, or the
isolated environment built for the job), from a kernelspec written into the job's work dir, on
IPC sockets in a short private directory: no TCP port races between concurrent jobs, and nothing
listens beyond the machine (the directory is the user's own, mode 0700: other users cannot connect
either). ``offload attach`` reaches those sockets directly on the machine, or relayed through
``srun``/SSH from elsewhere (:mod:`offload.attach`); :func:`kernel_record` is what it reads.

ipykernel >= 7 (kernel subshells, JEP 91) is what lets a console run code while a cell runs; an
isolated environment always gets it, a job in the user's own interpreter (kernel mode) says so in
its log when that interpreter's ipykernel is older.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

KERNEL_NAME = "offload-runner-python"
SUBSHELLS_SINCE = 7  # ipykernel major version with kernel subshells (JEP 91)


def kernel_manager(work: Path, python: str, *, display_name: str = "offload runner") -> AsyncKernelManager:
    kdir = work / "kernels" / KERNEL_NAME
    kdir.mkdir(parents=True, exist_ok=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": display_name,
        "language": "python",
    }))
    ksm = KernelSpecManager(kernel_dirs=[str(work / "kernels")])
    sock_dir = tempfile.mkdtemp(prefix="ofk-", dir=_socket_parent())
    return AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm, transport="ipc",
                              ip=os.path.join(sock_dir, "k"))


KERNEL_ARGS = ["--HistoryManager.hist_file=:memory:"]


def start_kernel(work: Path, python: str, *, cwd: Path) -> AsyncKernelManager:
    """A job's kernel, started (not yet ready: nbclient waits for that) in ``cwd``; it inherits
    this process's environment, so the ``OFFLOAD_*`` variables must be set before."""
    km = kernel_manager(work, python)
    run_sync(km.start_kernel)(cwd=str(cwd), extra_arguments=KERNEL_ARGS)
    return km


class ReadyKernelClient(AsyncKernelClient):
    """The client nbclient gets for a kernel known to answer (a standby's: runner/standby.py).

    It is ready once the kernel has answered ``kernel_info`` on the shell channel and published on
    iopub (so iopub is connected and no output of the first cell is lost), without the further
    0.2 s of iopub silence jupyter_client waits for: what is still queued on iopub belongs to
    other requests, and nbclient reads only its own request's messages.
    """

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else 60.0)
        while True:
            msg_id = self.kernel_info()
            while True:
                try:
                    reply = await self.shell_channel.get_msg(timeout=1)
                except Empty:
                    reply = None
                    break
                if reply["parent_header"].get("msg_id") == msg_id:
                    break
            if reply is not None:
                try:
                    await self.iopub_channel.get_msg(timeout=0.5)
                except Empty:
                    pass  # iopub not connected yet: ask again
                else:
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout} seconds")


@dataclass
class Prestarted:
    """A kernel a standby runner started before it knew its job (runner/standby.py): the job
    takes it only when it is what the job would start itself (interpreter, cwd, variables)."""

    km: AsyncKernelManager
    python: str
    cwd: Path
    env: dict[str, str]  # the OFFLOAD_* variables the kernel sees now


def _socket_parent() -> str | None:
    """Where the kernel's IPC sockets go: the temp dir, unless its path is so long that a socket
    path would pass the 107-byte limit of AF_UNIX (a deep TMPDIR; the kernel then dies at start)."""
    tmp = tempfile.gettempdir()
    if len(tmp) <= 64:
        return None
    return "/tmp" if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK) else None


def kernel_pid(km: Any) -> int | None:
    """The kernel's pid once started (before the first cell it is only on the provisioner)."""
    return getattr(getattr(km, "provisioner", None), "pid", None) if km is not None else None


def kill_kernel(pid: int | None, sig: signal.Signals = signal.SIGKILL) -> None:
    """Signal the kernel's process group (the kernel and whatever it started), or the kernel alone."""
    if not pid:
        return
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def death_reason(km: Any, exc: Exception) -> str:
    """Why the kernel stopped answering, in the words a user can act on."""
    proc = getattr(getattr(km, "provisioner", None), "process", None)
    code = proc.poll() if proc is not None else None
    if code is not None and code < 0:
        sig = signal.Signals(-code).name
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"the kernel died: killed by {sig}{hint}"
    if code is not None:
        return f"the kernel died with exit status {code}"
    return f"the kernel died or stopped answering: {type(exc).__name__}: {exc}"


def ipykernel_version(python: str) -> str | None:
    """The ipykernel version of interpreter ``python`` (its metadata: no kernel import, ~30 ms)."""
    # the same path, not the same file: a virtual environment's python links to its base one
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("ipykernel")
        except PackageNotFoundError:
            return None
    try:
        out = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('ipykernel'))"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def has_subshells(version: str | None) -> bool:
    try:
        return int((version or "0").split(".")[0]) >= SUBSHELLS_SINCE
    except ValueError:
        return False


def kernel_record(km: Any, *, cwd: Path, work: Path, python: str, ipykernel: str | None) -> dict[str, Any]:
    """What ``offload attach``/``ssh`` need to reach the running kernel: its connection info (IPC
    socket paths and the HMAC key: the store is the trust boundary), where it runs, its pid."""
    info = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in km.get_connection_info().items()}
    return {
        "connection": info, "host": socket.gethostname(), "pid": kernel_pid(km), "runner_pid": os.getpid(),
        "cwd": str(cwd), "work_dir": str(work), "python": python, "ipykernel": ipykernel,
        "subshells": has_subshells(ipykernel),
    }


# Debug a copy (offload.attach.debug_copy): a failed job's rerun stops before the cell that failed
# and keeps its kernel for attach. Set by the client in the copy's spec labels.
DEBUG_CELL_LABEL = "debug_until_cell"  # code-cell ordinal (1-based) that failed: not run
DEBUG_HOLD_LABEL = "debug_hold_s"  # how long the kernel stays afterwards (default DEBUG_HOLD_S)
DEBUG_HOLD_S = 1800


def truncate_before_cell(path: Path, cell: int) -> int:
    """Cut the job's materialized copy of the notebook before code cell ``cell`` (1-based among
    code cells); the number of code cells left."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    kept, n = [], 0
    for c in nb.get("cells", []):
        if c.get("cell_type") == "code":
            n += 1
            if n >= cell:
                break
        kept.append(c)
    nb["cells"] = kept
    path.write_text(json.dumps(nb), encoding="utf-8")
    return sum(1 for c in kept if c.get("cell_type") == "code")
