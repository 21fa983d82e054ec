"""Warm sessions for ``%%offload``, client half: the first warm cell of a kernel starts a session
job (kind ``session``, served by :mod:`offload.runner.session`), later cells are queued on it.

A cold cell job pays for a runner process, a kernel start and imports every time; a session pays
once. Every cell is still a normal job written through the one launch path
(:func:`offload.jobs.launch_spec`): its "backend launch" is a queue entry the session picks up,
so it is listed, followed, cancelled and merged like any other job. Variables pushed by one cell
stay in the session kernel, but every cell still ships what it reads: the session is a cache,
never the source of truth.

On gce and slurm the session is the whole job of its own VM / allocation (a machine, listed by
``offload machines --running``): cells queue on it while it boots, and it ends, deleting the VM,
when the kernel shuts down (the stop marker written at exit), on ``%offload stop``, on
``offload machines stop`` or after its idle window (``--keep-alive``, the backend's
``keep_alive``, else 30 min).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import nbformat.v4 as v4

from offload._version import __version__
from offload.backends.base import (
    B_PENDING,
    B_PROVISIONING,
    B_RUNNING,
    B_UNKNOWN,
    Backend,
    BackendState,
    get_backend,
)
from offload.backends.doorbell import ring
from offload.config import backend_options, default_backend
from offload.jobs import Job, launch_spec
from offload.notebook import cell_hash
from offload.runner.session import CLIENT_PID_LABEL, CWD_LABEL
from offload.snapshot.bundle import build_bundle, stage
from offload.spec import JobSpec, Resources, new_job_id, parse_duration, parse_keep_alive
from offload.store import Store, layout

SESSION_NOTEBOOK = "offload-session.ipynb"  # the session job's own (one markdown cell) notebook
CELL_NOTEBOOK = "offload-cell.ipynb"  # where a queued cell's notebook sits in its bundle


class SessionGone(Exception):
    """The warm session's server is not there any more: fall back to a cold job."""


WARM_BACKENDS = ("local", "gce", "slurm")  # where a session serves cells (its own VM / allocation remotely)


def can_serve(backend: str | None, opts: Any) -> bool:
    """Warm sessions serve cells in the kernel's environment on local, gce and slurm."""
    name = backend or default_backend()
    return name in WARM_BACKENDS and (getattr(opts, "env", None) or "kernel") == "kernel"


def _max_runtime(opts: Any) -> int:
    return parse_duration(opts.max_runtime) if opts.max_runtime else Resources().max_runtime_s


class _SessionQueue(Backend):
    """The launcher of a session's cell jobs: "launching" one queues it on the session, and the
    cell job's handle is the session's, so its state is the session process's state."""

    name = "local"

    def __init__(self, store: Store, session: SessionClient):
        super().__init__(store)
        self.session = session
        self.host = session.host()

    def launch(self, spec: JobSpec) -> dict[str, Any]:
        self.store.put_bytes(layout.session_queue_key(self.session.id, spec.id), b"")
        if self.session.backend == "local" and self.store.local:  # the session, on this machine, looks now
            ring(f"session-{self.session.id}")
        # The session's machine: cancelling the cell must interrupt it, not end the machine. No
        # boot watchdog for a cell (it may wait behind another cell; the session's boot is the
        # session job's): without this a cell queued 15 min after the VM was created would read as
        # a boot that never reported, and the watchdog would delete the session's VM.
        handle = {k: v for k, v in self.session.handle.items() if k != "boot_timeout_s"}
        return {**handle, "on_session": self.session.id, "created_at": time.time()}

    def state(self, handle: dict[str, Any]) -> BackendState:
        return self.host.state(handle)

    def cancel(self, handle: dict[str, Any]) -> None:
        """The cancel marker is written; the session interrupts the cell and keeps its kernel."""


def client_labels() -> dict[str, str]:
    """Labels of the jobs a kernel's %%offload starts: their source, and the notebook the kernel
    serves when Jupyter says (``JPY_SESSION_NAME``), so the lab groups them under that notebook."""
    labels = {"source": "cell-magic"}
    if os.environ.get("JPY_SESSION_NAME"):
        labels["notebook"] = os.environ["JPY_SESSION_NAME"]
    return labels


class SessionClient:
    """The kernel-side handle on a session job (one per kernel and set of options)."""

    def __init__(self, *, store: Store, job_id: str, backend: str, handle: dict[str, Any], key: tuple, cwd: str):
        self.store = store
        self.id = job_id
        self.backend = backend
        self.handle = handle
        self.key = key
        self.cwd = cwd
        self.served = 0
        self._host: Backend | None = None
        self._env: tuple[Any, dict[str, Any]] = (None, {})  # the last EnvSpec and its dict

    @staticmethod
    def _key(opts: Any) -> tuple:
        return (opts.backend, opts.gpu, opts.gpu_count, opts.machine, bool(opts.spot), opts.env or "kernel",
                getattr(opts, "keep_alive", None))

    def host(self) -> Backend:
        if self._host is None:
            self._host = get_backend(self.backend, self.store, **backend_options(self.backend))
        return self._host

    def compatible(self, opts: Any) -> bool:
        return self._key(opts) == self.key and self.alive()

    def alive(self) -> bool:
        """Up or coming up (a VM booting, an allocation pending): cells queue meanwhile. A backend
        that cannot answer right now (B_UNKNOWN) is no reason to boot a second machine."""
        state = self.host().state(self.handle).state
        up = (B_PENDING, B_PROVISIONING, B_RUNNING, B_UNKNOWN)
        return state in up and not self.store.exists(layout.session_key(self.id, "stop"))

    def describe(self) -> str:
        return f"job {self.id} (pid {self.handle.get('pid')}), {self.served} cell(s) served"

    @classmethod
    def start(cls, store: Store, opts: Any, *, cwd: str) -> SessionClient:
        """Stage and launch the session job; returns at once (its kernel starts meanwhile)."""
        nb = v4.new_notebook()
        nb.nbformat_minor = 5
        nb.cells = [v4.new_markdown_cell("Warm session serving `%%offload` cells.")]
        nb.cells[0]["id"] = "offload-session"
        root = Path(cwd)
        bundle = build_bundle(root, root / SESSION_NOTEBOOK, nb=nb)
        bundle.env = {"python": sys.version.split()[0], "notes": ["warm %%offload session"]}
        stage(bundle, store)
        backend = opts.backend or default_backend()
        spec = JobSpec(
            id=new_job_id(), notebook=bundle.notebook, bundle_id=bundle.id, kind="session", backend=backend,
            resources=Resources(gpu=opts.gpu, gpu_count=opts.gpu_count or 1, machine=opts.machine,
                                spot=bool(opts.spot), max_runtime_s=_max_runtime(opts),
                                keep_alive_s=parse_keep_alive(getattr(opts, "keep_alive", None))),
            env_mode="kernel", python=sys.executable,
            labels={**client_labels(), CWD_LABEL: cwd, CLIENT_PID_LABEL: str(os.getpid())},
            client_version=__version__,
        )
        handle = launch_spec(spec, store=store, env=bundle.env)
        return cls(store=store, job_id=spec.id, backend=backend, handle=handle, key=cls._key(opts), cwd=cwd)

    def submit(self, nb: Any, opts: Any, *, env_spec: Any, known_alive: bool = False) -> Job:
        """Stage a cell job like :func:`offload.jobs.submit` and queue it on this session
        (``known_alive``: the caller has just checked that it is up)."""
        if not known_alive and not self.alive():
            raise SessionGone(self.id)
        root = Path(self.cwd)
        path = root / CELL_NOTEBOOK
        env = env_spec(path)
        bundle = build_bundle(root, path, nb=nb, modules=list(env.local_files), data=list(opts.data or []),
                              validate=False)
        if self._env[0] is not env:  # the same snapshot for cell after cell (the magic caches it)
            self._env = (env, env.to_dict())
        bundle.env = self._env[1]
        stage(bundle, self.store)
        spec = JobSpec(
            id=new_job_id(), notebook=bundle.notebook, bundle_id=bundle.id, kind="cell", backend=self.backend,
            resources=Resources(max_runtime_s=_max_runtime(opts)), env_mode="kernel", env_hash=env.env_hash,
            python=sys.executable, cell_hashes={c["id"]: cell_hash(c.source) for c in nb.cells},
            labels={**client_labels(), "session": self.id}, client_version=__version__,
        )
        handle = launch_spec(spec, store=self.store, env=bundle.env, backend=_SessionQueue(self.store, self))
        self.served += 1
        return Job(spec.id, store=self.store, spec=spec, handle=handle)

    def stop(self) -> None:
        self.store.put_text(layout.session_key(self.id, "stop"), str(time.time()))


__all__ = ["SessionClient", "SessionGone", "can_serve", "client_labels"]
