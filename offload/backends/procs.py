"""Process helpers shared by the local backend, the runner's programs and the sweep driver.

A pid alone is not an identity (pids are reused), so a process is named by its pid and its
kernel start time; a zombie counts as dead. Children this process started are remembered so
that asking whether one is alive also reaps it.
"""

from __future__ import annotations

import os
import select
import subprocess
import time

_children: dict[int, subprocess.Popen] = {}


def track(proc: subprocess.Popen) -> None:
    """Remember a child so that it is reaped once it has exited (no zombies left under a
    long-lived client such as the Jupyter server, whichever way the child ended)."""
    reap()
    _children[proc.pid] = proc


def reap() -> None:
    """Collect every tracked child that has exited (``poll`` waits for it without blocking)."""
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            _children.pop(pid, None)


def proc_start_time(pid: int) -> str | None:
    """Kernel start time of ``pid`` (guards against pid reuse), None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    except OSError:
        return "?"
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def pid_alive(pid: int, start_time: str | None = None) -> bool:
    """Whether ``pid`` still runs (and is the process that had ``start_time``, when given)."""
    child = _children.get(pid)
    reap()
    if child is not None and child.returncode is not None:
        return False
    if os.path.exists("/proc/self/stat"):
        now = proc_start_time(pid)
        return now is not None and (start_time in (None, "?") or now == start_time)
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def wait_child(pid: int) -> None:
    """Wait for a child this process started (and tracked) to exit; nothing if it is not ours."""
    child = _children.pop(pid, None)
    if child is not None:
        child.wait()


def wait_exits(pids: list[int], timeout: float) -> set[int]:
    """Sleep up to ``timeout`` seconds, waking as soon as one of ``pids`` exits (Linux pidfds;
    elsewhere, or with no pid, a plain sleep). The pids seen exited (or gone already)."""
    fds: dict[int, int] = {}
    gone: set[int] = set()
    try:
        if hasattr(os, "pidfd_open"):
            for pid in pids:
                try:
                    fds[os.pidfd_open(pid)] = pid
                except OSError:  # exited and reaped already
                    gone.add(pid)
        if gone:
            return gone
        if not fds:
            time.sleep(timeout)
            return gone
        ready, _, _ = select.select(list(fds), [], [], timeout)
        return {fds[fd] for fd in ready}
    finally:
        for fd in fds:
            os.close(fd)
