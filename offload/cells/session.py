"""Warm sessions for ``%%offload``: one long-lived kernel serving the cells of a notebook session.

A cold cell job pays for a runner process, a kernel start and imports every time (seconds on a
laptop, minutes on a fresh VM). A session pays once: the first ``%%offload`` cell of a kernel
starts a *session server* - itself a job (``labels.role = "session"``), listed by ``offload ls``
and cancellable like any other - that keeps one kernel alive and takes cell jobs from the store:

```
sessions/<session-id>/queue/<job-id>   client: "run this cell job next" (empty object)
sessions/<session-id>/stop             client: "end the session"
```

Each cell job is still a normal job (``spec.json`` by the client; ``status.json``, logs,
``output.ipynb``, ``outputs/`` and ``result.json`` by the server, through the same
:class:`offload.runner.Runner` bookkeeping), so nothing downstream can tell a warm cell from a
cold one except that it started in milliseconds. Variables pushed by one cell stay in the session
kernel, like in the local kernel, but every cell still ships what it reads: the session is a
cache, never the source of truth.

The same server runs wherever the runner runs: on a VM it is the program the runner hands over to
(``offload.cells.session.serve_if_session(store_url, job_id)`` from ``offload.runner.main``), so a VM
serves all the cells of a session and deletes itself when the session idles out or is stopped.
The local backend starts it directly (``python -m offload.cells.session STORE_URL JOB_ID``).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from offload.errors import BackendError
from offload.paths import data_dir
from offload.spec import FINAL_STATES, JobSpec, JobState, Resources, new_job_id, parse_duration
from offload.store import Store

ROLE_LABEL = "role"
SESSION_ROLE = "session"
IDLE_S = float(os.environ.get("OFFLOAD_SESSION_IDLE_S", "1800"))  # a session ends after this idle time
POLL_S = 0.01


class SessionGone(Exception):
    """The warm session's server is not there any more: fall back to a cold job."""


def can_serve(backend: str | None, opts: Any) -> bool:
    """Warm sessions exist for the local backend today (and, with the runner hook, any backend)."""
    from offload.config import default_backend

    name = backend or default_backend()
    return name == "local" and (getattr(opts, "env", None) or "kernel") == "kernel"


def _queue_key(sid: str, job_id: str = "") -> str:
    return f"sessions/{sid}/queue/{job_id}" if job_id else f"sessions/{sid}/queue"


# ------------------------------------------------------------------------------------------------
# client side


class SessionClient:
    """The kernel-side handle on a session server (one per kernel and set of options)."""

    def __init__(self, store: Store, job_id: str, handle: dict[str, Any], key: tuple, cwd: str):
        self.store = store
        self.id = job_id
        self.handle = handle
        self.key = key
        self.cwd = cwd
        self.served = 0

    @staticmethod
    def _key(opts: Any) -> tuple:
        return (opts.backend, opts.gpu, opts.gpu_count, opts.machine, bool(opts.spot), opts.env or "kernel")

    def compatible(self, opts: Any) -> bool:
        return self._key(opts) == self.key and self.alive()

    def alive(self) -> bool:
        from offload.backends.local import LocalBackend

        return LocalBackend(self.store).state(self.handle).state == "running" and not self.store.exists(
            f"sessions/{self.id}/stop")

    def describe(self) -> str:
        return f"job {self.id} (pid {self.handle.get('pid')}), {self.served} cell(s) served"

    @classmethod
    def start(cls, store: Store, opts: Any, *, cwd: str) -> SessionClient:
        """Stage and start the session server; returns at once (the kernel starts meanwhile)."""
        import nbformat.v4 as v4

        from offload._version import __version__
        from offload.backends.local import _children, _proc_start_time
        from offload.jobs import Job
        from offload.snapshot.bundle import build_bundle, stage

        root = Path(cwd)
        nb = v4.new_notebook()
        nb.nbformat_minor = 5
        nb.cells = [v4.new_markdown_cell("Warm session serving `%%offload` cells.")]
        nb.cells[0]["id"] = "offload-session"
        job_id = new_job_id()
        path = root / f".offload-session-{job_id}.ipynb"
        import nbformat

        nbformat.write(nb, path)
        try:
            bundle = build_bundle(root, path)
            bundle.env = {"python": sys.version.split()[0], "notes": ["warm %%offload session"]}
            stage(bundle, store)
        finally:
            path.unlink(missing_ok=True)
        resources = Resources(
            gpu=opts.gpu, gpu_count=opts.gpu_count or 1, machine=opts.machine, spot=bool(opts.spot),
            max_runtime_s=parse_duration(opts.max_runtime) if opts.max_runtime else Resources().max_runtime_s,
        ).validate()
        spec = JobSpec(
            id=job_id, notebook=bundle.notebook, bundle_id=bundle.id, kind="cell", backend="local",
            resources=resources, env_mode="kernel", python=sys.executable, source_path=None,
            labels={"source": "cell-magic", ROLE_LABEL: SESSION_ROLE}, client_version=__version__,
        ).validate()
        store.put_json(Store.job_key(job_id, "spec.json"), spec.to_dict())
        logs = data_dir() / "local" / "runner-logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, OFFLOAD_SESSION_CWD=cwd, OFFLOAD_SESSION_CLIENT_PID=str(os.getpid()))
        with open(logs / f"{job_id}.log", "ab") as out:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "offload.cells.session", store.url, job_id],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True, env=env, close_fds=True,
                )
            except OSError as exc:
                raise BackendError(f"cannot start the warm session: {exc}") from None
        _children[proc.pid] = proc
        handle = {"pid": proc.pid, "start_time": _proc_start_time(proc.pid), "host": socket.gethostname(),
                  "runner_log": str(logs / f"{job_id}.log"), "session": job_id}
        store.put_json(Store.job_key(job_id, "handle.json"), handle)
        Job(job_id, store=store, _spec=spec)._index()
        return cls(store, job_id, handle, cls._key(opts), cwd)

    def submit(self, nb: Any, opts: Any, *, env_spec: Any) -> Any:
        """Stage a cell job like :func:`offload.submit` and queue it on this session."""
        import nbformat

        from offload._version import __version__
        from offload.jobs import Job, cell_hash
        from offload.snapshot.bundle import build_bundle, stage

        if not self.alive():
            raise SessionGone(self.id)
        root = Path(self.cwd)
        job_id = new_job_id()
        path = root / f".offload-cell-{job_id}.ipynb"
        nbformat.write(nb, path)
        try:
            env = env_spec(path)
            bundle = build_bundle(root, path, include=list(getattr(env, "local_files", [])), data=list(opts.data or []))
            bundle.env = env.to_dict()
            stage(bundle, self.store)  # reads the files: before the notebook goes away
        finally:
            path.unlink(missing_ok=True)
        spec = JobSpec(
            id=job_id, notebook=bundle.notebook, bundle_id=bundle.id, kind="cell", backend="local",
            resources=Resources(max_runtime_s=parse_duration(opts.max_runtime) if opts.max_runtime else Resources().max_runtime_s),
            env_mode="kernel", env_hash=getattr(env, "env_hash", None), python=sys.executable,
            cell_hashes={c["id"]: cell_hash(c.source) for c in nb.cells},
            labels={"source": "cell-magic", "session": self.id}, client_version=__version__,
        ).validate()
        self.store.put_json(Store.job_key(job_id, "spec.json"), spec.to_dict())
        self.store.put_json(Store.job_key(job_id, "env.json"), bundle.env)
        self.store.put_json(Store.job_key(job_id, "handle.json"), self.handle)
        job = Job(job_id, store=self.store, _spec=spec)
        job._handle = self.handle
        job._index()
        self.store.put_bytes(_queue_key(self.id, job_id), b"")
        self.served += 1
        return job

    def stop(self) -> None:
        self.store.put_text(f"sessions/{self.id}/stop", str(time.time()))


# ------------------------------------------------------------------------------------------------
# server side


def _runner_classes() -> tuple[type, type]:
    from offload.backends.base import Backend
    from offload.runner import Runner

    class CellJobRunner(Runner):
        """One cell job executed on the session's live kernel, with the normal bookkeeping."""

        server: SessionServer

        def __init__(self, store_url: str, job_id: str, server: SessionServer):
            super().__init__(store_url, job_id)
            self.server = server
            self.backend_cls = Backend  # no slot, no machine teardown per cell

        def _kill_kernel(self) -> None:  # cancel: interrupt the cell, keep the session
            self.server.interrupt()

        def _snapshot_output(self) -> None:
            nb = getattr(self.nb_man, "nb", None)
            if nb is None:
                return
            try:
                import nbformat

                mark = (self.status.get("cell", 0), sum(len(json.dumps(c.get("outputs", []))) for c in nb.cells))
                if mark == self.last_output_mark:
                    return
                text = nbformat.writes(nb)
            except RuntimeError:
                return
            self.last_output_mark = mark
            with self.lock:
                self.output_snapshot = text

        def _run(self, work: Path) -> tuple[str, str | None, dict | None]:
            import nbformat

            outputs = work / "outputs"
            checkpoints = work / "checkpoints"
            outputs.mkdir(parents=True, exist_ok=True)
            checkpoints.mkdir(exist_ok=True)
            project = self.server.project_for(self.spec)
            nb = nbformat.reads(self.store.get_text(f"blobs/{self.server.notebook_blob(self.spec)}"), as_version=4)
            env = {
                "OFFLOAD_JOB_ID": self.job_id, "OFFLOAD_STORE": self.store.url,
                "OFFLOAD_METRICS_FILE": str(work / "metrics.jsonl"), "OFFLOAD_OUTPUT_DIR": str(outputs),
                "OFFLOAD_CHECKPOINT_DIR": str(checkpoints),
            }
            os.environ.update(env)  # the monitor thread reads OFFLOAD_METRICS_FILE from here
            self.set_status(state=JobState.RUNNING, started_at=time.time(), n_cells=len(nb.cells), python=sys.executable)
            self.nb_man = SimpleNamespace(nb=nb)
            state, reason, error = self.server.execute(self, nb, env, project)
            nbformat.write(nb, work / "output.ipynb")
            return state, reason, error

    class SessionServer(Runner):
        """The session job itself: keeps the kernel, serves queued cell jobs until idle/stopped."""

        def __init__(self, store_url: str, job_id: str):
            super().__init__(store_url, job_id)
            if self.spec.backend == "local":  # no slot held for a whole session on a laptop
                self.backend_cls = Backend
                from offload.backends.local import drop_ticket

                drop_ticket()  # nor a place in the queue of jobs waiting for one
            self.loop = asyncio.new_event_loop()
            self.km: Any = None
            self.kc: Any = None
            self.in_place = os.environ.get("OFFLOAD_SESSION_CWD")
            self.served = 0
            self._interrupting = False
            self.client_pid = int(os.environ.get("OFFLOAD_SESSION_CLIENT_PID") or 0)

        # kernel ---------------------------------------------------------------------------
        def interrupt(self) -> None:
            if self.km is not None:
                self._interrupting = True
                try:
                    self.loop.call_soon_threadsafe(lambda: None)
                    import signal

                    pid = getattr(self.km.provisioner, "pid", None)
                    if pid:
                        os.kill(pid, signal.SIGINT)
                except Exception:
                    pass

        async def _start_kernel(self, work: Path) -> None:
            from jupyter_client.kernelspec import KernelSpecManager
            from jupyter_client.manager import AsyncKernelManager

            from offload.runner import KERNEL_NAME

            kdir = work / "kernels" / KERNEL_NAME
            kdir.mkdir(parents=True, exist_ok=True)
            (kdir / "kernel.json").write_text(json.dumps({
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "offload session", "language": "python",
            }))
            ksm = KernelSpecManager(kernel_dirs=[str(work / "kernels")])
            sock_dir = tempfile.mkdtemp(prefix="ofs-")
            self.km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm, transport="ipc",
                                         ip=os.path.join(sock_dir, "k"))
            cwd = self.in_place or str(work / "project")
            Path(cwd).mkdir(parents=True, exist_ok=True)
            await self.km.start_kernel(cwd=cwd)
            self.kc = self.km.client()
            self.kc.start_channels()
            await self.kc.wait_for_ready(timeout=120)
            self.kernel_pid = getattr(self.km.provisioner, "pid", None)

        def project_for(self, spec: JobSpec) -> str:
            """Where the cell runs: the user's directory for a local in-place session, else the
            bundle materialized into the session's project dir (files accumulate; same paths)."""
            if self.in_place:
                return self.in_place
            from offload.snapshot.bundle import materialize

            project = self.work / "project"
            materialize(self.store, spec.bundle_id, project)
            return str(project)

        def notebook_blob(self, spec: JobSpec) -> str:
            manifest = self.store.get_json(f"bundles/{spec.bundle_id}.json")
            return manifest["files"][spec.notebook]["sha256"]

        def execute(self, job: Any, nb: Any, env: dict[str, str], project: str) -> tuple[str, str | None, dict | None]:
            return self.loop.run_until_complete(self._execute_cells(job, nb, env, project))

        async def _execute_cells(self, job: Any, nb: Any, env: dict[str, str], project: str):
            from nbclient import NotebookClient
            from nbclient.exceptions import CellExecutionError

            from offload.spec import JobState

            prelude = f"import os as _o; _o.environ.update({env!r}); _o.chdir({project!r}); del _o"
            reply = await self.kc.execute_interactive(prelude, silent=True, store_history=False, timeout=60)
            if reply["content"].get("status") != "ok":
                return JobState.FAILED, "the session kernel could not be prepared", None
            client = NotebookClient(nb, km=self.km, timeout=None, allow_errors=False, kernel_name="")
            client.kc = self.kc
            for index, cell in enumerate(nb.cells):
                if job.stop_reason:
                    return job._stopped_state()
                job.current_cell_id = cell.get("id")
                job.set_status(cell=index + 1, cell_id=cell.get("id"))
                try:
                    await client.async_execute_cell(cell, index)
                except CellExecutionError as exc:
                    if job.stop_reason:
                        return job._stopped_state()
                    tb = next((o.get("traceback", []) for o in cell.get("outputs", []) if o.get("output_type") == "error"), [])
                    error = {"ename": exc.ename, "evalue": exc.evalue, "traceback": tb, "cell": index + 1}
                    return JobState.FAILED, f"{exc.ename}: {exc.evalue}", error
                except Exception as exc:
                    return JobState.FAILED, f"the session kernel failed: {type(exc).__name__}: {exc}", None
            return JobState.SUCCEEDED, None, None

        # serving --------------------------------------------------------------------------
        def _run(self, work: Path) -> tuple[str, str | None, dict | None]:
            self.work = work
            self.set_status(state=JobState.RUNNING, started_at=time.time(), cell=0, n_cells=0)
            self.loop.run_until_complete(self._start_kernel(work))
            self.say("session kernel ready")
            idle_since = time.time()
            stop_key = f"sessions/{self.job_id}/stop"
            last_stop_check = 0.0
            while not self.stop_reason:
                queued = self.store.list(_queue_key(self.job_id))
                if queued:
                    for key in queued:
                        job_id = key.rsplit("/", 1)[-1]
                        self.store.delete(key)
                        self._serve(job_id)
                    idle_since = time.time()
                    continue
                now = time.time()
                if now - last_stop_check > 0.5:
                    last_stop_check = now
                    if self.store.exists(stop_key):
                        return JobState.SUCCEEDED, f"session stopped after {self.served} cell(s)", None
                if self.client_pid and not _pid_alive(self.client_pid):
                    return JobState.SUCCEEDED, f"the client kernel exited after {self.served} cell(s)", None
                if now - idle_since > IDLE_S:
                    return JobState.SUCCEEDED, f"session idle for {int(IDLE_S)} s after {self.served} cell(s)", None
                time.sleep(POLL_S if now - idle_since < 60 else 0.2)
            return self._stopped_state()

        def _serve(self, job_id: str) -> None:
            import signal

            handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
            try:
                CellJobRunner(self.store.url, job_id, self).run()
            except Exception as exc:
                self.say(f"cell job {job_id} could not run: {exc}")
            finally:
                signal.signal(signal.SIGTERM, handlers[0])
                signal.signal(signal.SIGINT, handlers[1])
            self.served += 1
            self.set_status(cell=self.served)

        def _finish(self, work: Path, state: str, reason: str | None, error: dict | None) -> None:
            try:
                if self.km is not None:
                    self.kc.stop_channels()
                    self.loop.run_until_complete(self.km.shutdown_kernel(now=True))
            except Exception:
                pass
            super()._finish(work, state, reason, error)

    return CellJobRunner, SessionServer


def _pid_alive(pid: int) -> bool:
    from offload.backends.local import _alive  # zombie- and pid-reuse-aware

    return _alive(pid, None)


def serve_if_session(store_url: str, job_id: str) -> int | None:
    """Runner hook: run the session server if ``job_id`` is a session job, else return None.

    ``offload.runner.main`` calls it first so that any backend that starts the runner (a GCE
    VM's startup script, a SLURM batch script) can host a warm session.
    """
    store = Store(store_url)
    labels = (store.get_json(Store.job_key(job_id, "spec.json"), {}) or {}).get("labels") or {}
    if labels.get(ROLE_LABEL) != SESSION_ROLE:
        return None
    _, server_cls = _runner_classes()
    return server_cls(store_url, job_id).run()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m offload.cells.session STORE_URL SESSION_JOB_ID", file=sys.stderr)
        return 2
    code = serve_if_session(argv[0], argv[1])
    if code is None:
        print(f"job {argv[1]} is not a session job", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["SessionClient", "SessionGone", "can_serve", "serve_if_session", "FINAL_STATES"]
