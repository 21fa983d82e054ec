"""The embedded default: the runner as a subprocess on this machine.

The runner runs in its own session (process group), so cancel reaches the kernel too and closing
the terminal that submitted it does not. The concurrency cap is enforced by the runners
themselves through slot lock files: it holds across every client (CLI, server, kernel) on the
machine, and a slot is freed by the kernel when its holder dies, even by ``kill -9``.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from offload.backends import local_standby
from offload.backends.base import (
    B_GONE,
    B_RUNNING,
    Ability,
    AttachRoute,
    Backend,
    BackendPhase,
    BackendState,
    Machine,
    ssh_route,
)
from offload.backends.procs import pid_alive, proc_start_time, track
from offload.errors import BackendError, UsageError
from offload.paths import data_dir
from offload.spec import JobSpec
from offload.store import Store


class LocalBackend(Backend):
    name = "local"
    abilities = frozenset({Ability.KILL, Ability.ATTACH})

    def __init__(self, store: Store, **options: Any):
        super().__init__(store, **options)
        self.max_jobs = int(options.get("max_jobs") or os.environ.get("OFFLOAD_LOCAL_MAX_JOBS") or (os.cpu_count() or 2))

    def launch(self, spec: JobSpec) -> dict[str, Any]:
        logs = data_dir() / "local" / "runner-logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{spec.id}.log"
        env = dict(os.environ)
        env["OFFLOAD_LOCAL_MAX_JOBS"] = str(self.max_jobs)
        env["OFFLOAD_LOCAL_SLOTS"] = str(data_dir() / "local" / "slots")
        ticket = _queue_ticket(Path(env["OFFLOAD_LOCAL_SLOTS"]), spec.id)
        # A sweep's trial goes to one of the sweep's ready standby runners (imports done, kernel
        # up: local_standby.py); the driver says how many to keep for the trials still to come.
        sweep = spec.labels.get("sweep") if spec.kind == "trial" else None
        standby = local_standby.take(self.store.url, sweep) if sweep else None
        if standby is not None and local_standby.hand(standby, spec.id, ticket, log=log_path):
            proc = standby.proc
        else:
            with open(log_path, "ab") as out:
                try:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "offload.runner", self.store.url, spec.id],
                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                        start_new_session=True, env={**env, TICKET_ENV: str(ticket)}, close_fds=True,
                    )
                except OSError as exc:
                    ticket.unlink(missing_ok=True)
                    raise BackendError(f"cannot start the local runner: {exc}") from None
            track(proc)
        _write_ticket(ticket, proc.pid)
        if sweep:
            try:
                local_standby.keep(self.store.url, sweep, template=spec.id, want=int(self.options.get("standby") or 0),
                                   env=env, logs=logs)
            except OSError as exc:  # the trial runs all the same; the next ones start as this one did
                print(f"offload: cannot start a standby runner: {exc}", file=sys.stderr)
        return {
            "pid": proc.pid,
            "start_time": proc_start_time(proc.pid),
            "host": socket.gethostname(),
            "runner_log": str(log_path),
        }

    def state(self, handle: dict[str, Any]) -> BackendState:
        if handle.get("host") not in (None, socket.gethostname()):
            return BackendState(BackendPhase.UNKNOWN, f"job runs on another host ({handle['host']})")
        pid = int(handle["pid"])
        if pid_alive(pid, handle.get("start_time")):
            return BackendState(B_RUNNING)
        return BackendState(B_GONE, "runner process exited")

    def cancel(self, handle: dict[str, Any]) -> None:
        pid = int(handle["pid"])
        if not pid_alive(pid, handle.get("start_time")):
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        except PermissionError as exc:
            raise BackendError(f"cannot stop runner process {pid}: {exc}") from None

    def kill(self, handle: dict[str, Any]) -> None:
        """Hard stop (runner and kernel), for a runner that ignores SIGTERM."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(handle["pid"]), signal.SIGKILL)

    def attach_route(self, handle: dict[str, Any], kernel: dict[str, Any] | None) -> AttachRoute:
        """This machine, directly; through SSH when ``ssh_host`` is configured (a local job seen
        from another machine, or a check of the SSH path)."""
        via_ssh = ssh_route(self.options)
        if via_ssh is not None:
            return via_ssh
        host = (kernel or {}).get("host") or handle.get("host")
        if host not in (None, socket.gethostname()):
            raise BackendError(f"the job runs on another host ({host}); attach from there",
                               hint="or configure SSH to it: offload config set backend local ssh_host " + str(host))
        return AttachRoute("local")

    def machines(self) -> list[Machine]:
        gpus = local_gpus()
        models = ", ".join(sorted(set(gpus)))
        return [Machine(
            name=MACHINE, gpu="local" if gpus else None, gpu_count=len(gpus), vcpus=os.cpu_count(),
            price_per_hour=0.0,
            description=f"this machine{f' ({models})' if models else ''}, up to {self.max_jobs} jobs at once",
        )]

    def validate(self, spec: JobSpec) -> None:
        """The job runs on this machine as it is: a machine by another name, or a GPU this
        machine does not have (model or count), is refused naming the field."""
        r = spec.resources
        if r.machine and r.machine not in (MACHINE, socket.gethostname()):
            raise UsageError(
                f"the local backend runs jobs on this machine; it has no machine type {r.machine!r}", field="machine",
                hint="leave the machine out (or 'local'), or pick a backend that offers it (offload machines --backend gce)",
            )
        if not r.gpu:
            return
        gpus = local_gpus()
        if not gpus:
            raise UsageError(f"this machine has no GPU, so the local backend cannot give the job a {r.gpu} GPU",
                             field="gpu", hint="leave --gpu out, or pick a backend with GPUs (gce, slurm)")
        wanted = [g.strip().lower() for g in r.gpu.split(",") if g.strip()]
        if not any(g == "local" or any(_names_gpu(g, model) for model in gpus) for g in wanted):
            raise UsageError(f"this machine's GPUs are {', '.join(sorted(set(gpus)))}, not {r.gpu}", field="gpu",
                             hint="ask for one of those (or --gpu local), or pick a backend that has it")
        if r.gpu_count > len(gpus):
            raise UsageError(f"this machine has {len(gpus)} GPU(s); the job asks for {r.gpu_count}", field="gpu_count",
                             hint=f"ask for at most {len(gpus)}, or pick a backend with bigger machines")

    def estimate_cost(self, spec: JobSpec) -> float | None:
        return 0.0

    # runner side ------------------------------------------------------------------------------
    @classmethod
    def runner_slot(cls, spec: JobSpec, store: Store, should_stop: Callable[[], bool]):
        return _slot(should_stop)


MACHINE = "local"  # the one machine the local backend offers


@functools.lru_cache(maxsize=1)
def local_gpus() -> tuple[str, ...]:
    """The models of this machine's NVIDIA GPUs, one entry per GPU (``nvidia-smi -L``)."""
    if not shutil.which("nvidia-smi"):
        return ()
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    # "GPU 0: NVIDIA H200 (UUID: GPU-...)"
    return tuple(m.group(1).strip() for m in re.finditer(r"^GPU \d+: (.+?)(?: \(UUID:.*)?$", out, re.M))


def _names_gpu(wanted: str, model: str) -> bool:
    """``a100`` and ``a100-80gb`` name "NVIDIA A100-SXM4-80GB"; ``l4`` does not name "NVIDIA L40S"."""
    return all(re.search(rf"(?<![a-z0-9]){re.escape(part)}(?![a-z0-9])", model.lower())
               for part in wanted.split("-") if part)


# Queued jobs start in submission order: launch() writes a ticket (named by submission time, holding
# the pid that will wait) into slots/queue before the runner exists, and a waiting runner lets every
# live older ticket go first. A ticket whose process is gone is removed by whoever sees it.


_ticket: Path | None = None  # this runner's place in the queue (see take_ticket)
TICKET_ENV = "OFFLOAD_LOCAL_TICKET"  # where a runner finds its ticket


def take_ticket() -> None:
    """Called first by the runner: moves its ticket out of the environment, so that the processes
    it starts (kernels, a sweep pack's trial runners) do not inherit a place in the queue."""
    global _ticket
    value = os.environ.pop(TICKET_ENV, None)
    _ticket = Path(value) if value else None


def drop_ticket() -> None:
    """Leave the queue: the slot is taken, or this runner does not wait for one (a warm session,
    a sweep pack), or it is exiting."""
    global _ticket
    if _ticket is not None:
        _ticket.unlink(missing_ok=True)
        _ticket = None


def _queue_ticket(slots: Path, job_id: str) -> Path:
    queue = slots / "queue"
    queue.mkdir(parents=True, exist_ok=True)
    ticket = queue / f"{time.time_ns():020d}-{job_id}"
    _write_ticket(ticket, os.getpid())  # the launcher holds the place until its runner exists
    return ticket


def _write_ticket(ticket: Path, pid: int) -> None:
    tmp = ticket.with_name(f".{ticket.name}.tmp")
    tmp.write_text(f"{pid} {proc_start_time(pid) or ''}")
    os.replace(tmp, ticket)


def _waiting_ahead(ticket: Path) -> int:
    """Live tickets older than ``ticket`` (dead ones are removed on the way)."""
    ahead = 0
    try:
        names = sorted(n for n in os.listdir(ticket.parent) if not n.startswith("."))
    except FileNotFoundError:
        return 0
    for name in names:
        if name >= ticket.name:
            break
        other = ticket.parent / name
        try:
            pid, _, start = other.read_text().partition(" ")
            alive = pid_alive(int(pid), start or None)
        except (OSError, ValueError):
            continue  # just removed, or being rewritten
        if alive:
            ahead += 1
        else:
            other.unlink(missing_ok=True)
    return ahead


def _try_slots(fds: list[int], wanted: int) -> int | None:
    """Lock a free slot if at least ``wanted`` slots are free (the waiters ahead take the others)."""
    got: list[int] = []
    for fd in fds:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            got.append(fd)
        except BlockingIOError:
            continue
        if len(got) >= wanted:
            break
    if len(got) >= wanted:
        keep = got.pop()
    else:
        keep = None
    for fd in got:
        fcntl.flock(fd, fcntl.LOCK_UN)
    return keep


@contextlib.contextmanager
def _slot(should_stop: Callable[[], bool]) -> Iterator[None]:
    """Hold one of ``OFFLOAD_LOCAL_MAX_JOBS`` slot locks while the job executes, taking turns in
    submission order with the other queued jobs."""
    n = int(os.environ.get("OFFLOAD_LOCAL_MAX_JOBS") or 0)
    directory = os.environ.get("OFFLOAD_LOCAL_SLOTS")
    ticket = _ticket
    if n <= 0 or not directory:
        drop_ticket()
        yield
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    fds = [os.open(os.path.join(directory, f"slot-{i}.lock"), os.O_RDWR | os.O_CREAT, 0o600) for i in range(n)]
    held = None
    try:
        while held is None:
            ahead = _waiting_ahead(ticket) if ticket is not None else 0
            if ahead < n:
                held = _try_slots(fds, ahead + 1)
            if held is None:
                if should_stop():
                    break
                time.sleep(0.05)
        drop_ticket()
        yield
    finally:
        drop_ticket()
        for fd in fds:
            os.close(fd)  # closing releases the lock
