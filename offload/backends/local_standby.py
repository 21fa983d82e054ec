"""Standby runners for a sweep's trials on the local backend, the launcher's half (issue 14).

A sweep's next trial does not have to wait for a runner's imports and a kernel start: while
trials run, the launching process keeps up to ``standby`` runners of the sweep warm (its driver
passes that many as a local backend option: the trials still to come, at most ``--parallel``).
A standby (:mod:`offload.runner.standby`) has done its imports and started the kernel the
sweep's trials use; :func:`LocalBackend.launch` hands the next trial to one that says it is
ready (the job's id on its stdin), and the standby becomes that job's runner, the pid in its
handle. A trial with no ready standby starts a runner as before.

Standbys are children of the launching process and live in its memory (this module's pools):
:func:`release` ends a sweep's standbys (the driver calls it when the sweep ends, stops or
fails), and the end of their stdin ends them when the launching process dies, whichever way.
Local only: a remote machine's next trial is the machine agent's or the sweep pack's.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from offload.backends.procs import track


@dataclass
class Standby:
    proc: subprocess.Popen
    ready_fd: int  # the read end of the pipe the standby says "ready" on
    log: Path
    ready: bool = False

    def is_ready(self) -> bool:
        if not self.ready and self.ready_fd >= 0:
            readable, _, _ = select.select([self.ready_fd], [], [], 0)
            if readable:
                self.ready = os.read(self.ready_fd, 64).startswith(b"ready")
                os.close(self.ready_fd)
                self.ready_fd = -1
        return self.ready

    def release(self) -> None:
        """Let it go without a job: it exits with its kernel; its log goes too (it served no job)."""
        self.close()
        self.log.unlink(missing_ok=True)

    def close(self) -> None:
        """Close our ends: its stdin ends, so a standby without a job exits with its kernel."""
        if self.ready_fd >= 0:
            os.close(self.ready_fd)
            self.ready_fd = -1
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass


_pools: dict[tuple[str, str], list[Standby]] = {}
_lock = threading.Lock()  # the Jupyter server launches from several threads


def take(store_url: str, sweep: str) -> Standby | None:
    """A ready standby of ``sweep``, out of its pool; None when none is ready."""
    with _lock:
        pool = _pools.get((store_url, sweep), [])
        for sb in list(pool):
            if sb.proc.poll() is not None:  # it failed (its log says why); no job of its own
                pool.remove(sb)
                sb.close()
            elif sb.is_ready():
                pool.remove(sb)
                return sb
    return None


def hand(sb: Standby, job_id: str, ticket: Path | None, *, log: Path) -> bool:
    """Give ``job_id`` to the standby; False (and it is let go) when it cannot take it. Its
    log file becomes ``log``, the job's runner log."""
    line = f"{job_id} {ticket or ''}".strip() + "\n"
    try:
        assert sb.proc.stdin is not None
        sb.proc.stdin.write(line.encode())
        sb.proc.stdin.flush()
    except (OSError, ValueError):
        sb.close()
        return False
    sb.close()  # one job per standby: the line is all it reads
    try:
        os.replace(sb.log, log)  # the standby keeps writing to it under the job's name
        sb.log = log
    except OSError:
        pass
    return True


def keep(store_url: str, sweep: str, *, template: str, want: int, env: dict[str, str], logs: Path) -> None:
    """Keep ``want`` standbys for ``sweep`` (their kernels as ``template``'s job would start
    its own): start the missing ones, let the extra ones go (the least warm first)."""
    with _lock:
        pool = _pools.setdefault((store_url, sweep), [])
        for sb in [sb for sb in pool if sb.proc.poll() is not None]:  # exited (failed to start?)
            pool.remove(sb)
            sb.close()
        while len(pool) > max(0, want):
            pool.pop().release()
        while len(pool) < want:
            pool.append(_start(store_url, template, env, logs))
        if not pool:
            _pools.pop((store_url, sweep), None)


def release(store_url: str, sweep: str) -> int:
    """The sweep needs no more trials: its standbys exit with their kernels. How many there were."""
    with _lock:
        pool = _pools.pop((store_url, sweep), [])
    for sb in pool:
        sb.release()
    return len(pool)


def count(store_url: str, sweep: str) -> tuple[int, int]:
    """The sweep's standbys in this process: (all, ready)."""
    with _lock:
        pool = [sb for sb in _pools.get((store_url, sweep), []) if sb.proc.poll() is None]
        return len(pool), sum(1 for sb in pool if sb.is_ready())


def _start(store_url: str, template: str, env: dict[str, str], logs: Path) -> Standby:
    read_fd, write_fd = os.pipe()
    log_path = logs / f"standby-{template}-{time.time_ns()}.log"  # renamed for its job (hand)
    try:
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "offload.runner", "--standby", store_url, template, str(write_fd)],
                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env,
                close_fds=True, pass_fds=(write_fd,),
            )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    track(proc)
    return Standby(proc=proc, ready_fd=read_fd, log=log_path)


__all__ = ["Standby", "count", "hand", "keep", "release", "take"]
