"""The kernel every runner program executes in: one set-up, shared by the notebook job and the
warm ``%%offload`` session.

The kernel runs ``python -m ipykernel_launcher`` of the job's interpreter (this one, or the
isolated environment built for the job), from a kernelspec written into the job's work dir, on
IPC sockets in a short private directory: no TCP port races between concurrent jobs, and nothing
listens beyond the machine.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

KERNEL_NAME = "offload-runner-python"


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
