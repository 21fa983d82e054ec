"""What the CLI and the server call: run code in a job's kernel, a console, a shell."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from offload.attach import _ssh
from offload.attach._kernel import SubshellClient
from offload.attach._relay import kernel_connection
from offload.attach._shell import run_shell
from offload.attach._target import Target, find_target
from offload.store import Store

ATTACH_CHANNELS = ("shell", "iopub", "control")  # what a subshell client uses (no stdin, no heartbeat)


@contextlib.contextmanager
def _ssh_for(target: Target) -> Iterator[Any]:
    if target.route.kind != "ssh":
        yield None
        return
    client = _ssh.connect(target.route)
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def open_kernel(target: Target, *, channels: tuple[str, ...] = ATTACH_CHANNELS) -> Iterator[dict[str, Any]]:
    """Connection info usable on this machine for the target's kernel, for as long as the block
    runs (relays and the SSH connection close after it)."""
    with _ssh_for(target) as ssh, kernel_connection(target.route, target.record, ssh=ssh, channels=channels) as info:
        yield info


def execute(ref: str, code: str, *, store: Store | str | None = None, wait: bool = True,
            timeout: float | None = None, progress: Callable[[str], None] | None = None,
            out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run ``code`` in job ``ref``'s kernel (a subshell: beside the running cell), print its
    output; 0 when it ran without an error, 1 otherwise."""
    target = find_target(ref, store=store, wait=wait, timeout=timeout, progress=progress)
    with open_kernel(target) as info, SubshellClient(info) as client:
        reply = client.execute(code, out=out, err=err)
    return 0 if reply.get("status") == "ok" else 1


def console(ref: str, *, store: Store | str | None = None, wait: bool = True, timeout: float | None = None,
            progress: Callable[[str], None] | None = None) -> int:
    """An interactive console on the job's kernel (a subshell): Ctrl-D leaves, the job goes on."""
    from offload.attach._console import repl

    target = find_target(ref, store=store, wait=wait, timeout=timeout, progress=progress)
    with open_kernel(target) as info, SubshellClient(info) as client:
        return repl(client, target)


def shell(ref: str, command: list[str] | None = None, *, store: Store | str | None = None, wait: bool = True,
          timeout: float | None = None, progress: Callable[[str], None] | None = None) -> int:
    """A shell (``command`` None) or one command on the job's machine, in the notebook's directory;
    the command's exit status."""
    target = find_target(ref, store=store, wait=wait, timeout=timeout, progress=progress, need_subshells=False)
    with _ssh_for(target) as ssh:
        return run_shell(target, command, ssh=ssh)
