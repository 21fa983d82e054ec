"""Submit, watch, cancel and collect jobs; reconcile the runner's status with the backend's view.

The runner's ``status.json`` says what the job is doing; only the backend can say that the
process or machine behind it is gone. A job whose status is still active while its backend says
``gone`` is ``lost`` (a ``kill -9``, a deleted VM), never ``running`` forever. The client records
that conclusion in ``reconciled.json`` so every later client sees the same answer.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from offload._version import __version__
from offload.config import backend_options, backend_store, default_backend
from offload.errors import BackendError, JobFailed, JobNotFound, OffloadError, UsageError
from offload.jobs import index
from offload.notebook import cell_hash, ensure_cell_ids
from offload.spec import (
    ACTIVE_STATES,
    FINAL_STATES,
    DataMount,
    JobSpec,
    JobState,
    Resources,
    check_job_id,
    new_job_id,
    parse_duration,
)
from offload.store import Store

STALE_AFTER_S = 60.0  # heartbeat age after which a running job is flagged as unresponsive
LAUNCH_TIMEOUT_S = 3600.0  # a job still without a backend handle after this was never launched


def _store(store: Store | str | None) -> Store:
    return store if isinstance(store, Store) else Store(store)


def submit(
    notebook: str | os.PathLike,
    *,
    parameters: dict[str, Any] | None = None,
    backend: str | None = None,
    gpu: str | None = None,
    gpu_count: int = 1,
    machine: str | None = None,
    spot: bool = False,
    max_runtime: str | int | None = None,
    cpus: int | None = None,
    memory_gb: float | None = None,
    data: list[str | os.PathLike] = (),
    include: list[str | os.PathLike] = (),
    env: str = "kernel",
    kind: str = "notebook",
    labels: dict[str, str] | None = None,
    backend_options_: dict[str, Any] | None = None,
    store: Store | str | None = None,
    project_root: str | os.PathLike | None = None,
    python: str | None = None,
    retries: int = 2,
    parent: str | None = None,
    allow_unresolved: bool = False,
    env_spec: Any = None,
    on_progress: Any = None,
) -> Job:
    """Snapshot, stage and launch ``notebook``; return the :class:`Job` at once.

    Every check that can fail does so before anything is uploaded or launched, so a bad input
    never leaves a half-written job behind.
    """
    from offload.backends.base import get_backend
    from offload.notebook.params import check_parameters
    from offload.snapshot.bundle import build_bundle, stage

    say = on_progress or (lambda msg: None)
    nb_path = Path(notebook).expanduser().resolve()
    nb = ensure_cell_ids(nb_path)
    params = dict(parameters or {})
    check_parameters(nb, params, notebook=nb_path.name)
    root = Path(project_root).resolve() if project_root else nb_path.parent
    name = backend or default_backend()
    store = _store(store if store is not None else backend_store(name))
    options = {**backend_options(name), **(backend_options_ or {})}
    be = get_backend(name, store, **options)
    resources = Resources(
        gpu=gpu, gpu_count=gpu_count, machine=machine, spot=spot,
        max_runtime_s=parse_duration(max_runtime) if max_runtime else Resources().max_runtime_s,
        cpus=cpus, memory_gb=memory_gb,
    ).validate()

    if env_spec is None:
        from offload.snapshot.deps import snapshot

        env_spec = snapshot(nb_path, project_root=root, python=python)
    missing = [u for u in env_spec.unresolved if not u.get("optional")]
    if missing and not allow_unresolved and (env == "isolated" or name != "local"):
        lines = "; ".join(f"{u['module']} ({u.get('where', '?')})" for u in missing)
        raise UsageError(
            f"cannot resolve import(s) to an installed package: {lines}",
            hint="install them in this environment, add them to requirements.txt, or pass --allow-unresolved",
        )
    bundle = build_bundle(root, nb_path, include=list(include) + list(env_spec.local_files), data=list(data))
    bundle.env = env_spec.to_dict()
    store.check_writable()
    job_id = new_job_id()
    spec = JobSpec(
        id=job_id, notebook=bundle.notebook, bundle_id=bundle.id, kind=kind, backend=name,
        parameters=params, resources=resources, env_mode=env, env_hash=env_spec.env_hash,
        python=python or sys.executable, source_path=str(nb_path),
        cell_hashes={c["id"]: cell_hash(c.source) for c in nb.cells},
        data=[DataMount(Path(d).as_posix()) for d in data], labels=dict(labels or {}),
        retries=retries, parent=parent, client_version=__version__,
    ).validate()
    be.validate(spec)
    report = stage(bundle, store)
    say(f"staged {report.files} files ({report.bytes} bytes), uploaded {report.uploaded_blobs} new blob(s)")
    store.put_json(Store.job_key(job_id, "spec.json"), spec.to_dict())
    store.put_json(Store.job_key(job_id, "env.json"), bundle.env)
    job = Job(job_id, store=store, _spec=spec)
    job._index()
    try:
        handle = be.launch(spec)
    except Exception as exc:
        msg = str(exc) if isinstance(exc, OffloadError) else f"{type(exc).__name__}: {exc}"
        store.put_json(Store.job_key(job_id, "reconciled.json"), {"state": JobState.FAILED, "reason": f"launch failed: {msg}", "at": time.time()})
        job._index()
        raise
    store.put_json(Store.job_key(job_id, "handle.json"), handle)
    job._handle = handle
    return job


def resolve_job_id(ref: str, store: Store) -> str:
    """Full id from a unique prefix or suffix (as people copy them from `offload ls`)."""
    ref = ref.strip()
    if store.exists(Store.job_key(ref, "spec.json")) if _looks_like_id(ref) else False:
        return ref
    candidates = set(index.ids(store.url)) | set(store.list_dirs("jobs"))
    matches = sorted(i for i in candidates if i.startswith(ref) or i.endswith(ref))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise JobNotFound(f"no job {ref!r} in store {store.url}", hint="`offload ls` lists the jobs")
    raise UsageError(f"job reference {ref!r} is ambiguous: {', '.join(matches[:5])}", hint="give more characters of the id")


def _looks_like_id(ref: str) -> bool:
    try:
        check_job_id(ref)
        return True
    except UsageError:
        return False


class Job:
    """A handle on one job, attachable from any process: ``offload.Job("20261122-...")``."""

    def __init__(self, job_id: str, *, store: Store | str | None = None, _spec: JobSpec | None = None):
        if store is None and _spec is None:
            found = {url for _, url in index.find(job_id.strip())}
            if len(found) == 1:  # the index knows which store the job lives in (gs://, file://)
                store = found.pop()
        self.store = _store(store)
        self.id = job_id if _spec else resolve_job_id(job_id, self.store)
        self._spec = _spec
        self._handle: dict | None = None
        self._status: dict | None = None
        self._backend = None

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.state}>"

    def _key(self, name: str) -> str:
        return Store.job_key(self.id, name)

    @property
    def spec(self) -> JobSpec:
        if self._spec is None:
            try:
                self._spec = JobSpec.from_dict(self.store.get_json(self._key("spec.json")))
            except KeyError:
                raise JobNotFound(f"job {self.id} has no spec in {self.store.url}") from None
        return self._spec

    @property
    def handle(self) -> dict | None:
        if self._handle is None:
            self._handle = self.store.get_json(self._key("handle.json"), None)
        return self._handle

    def backend(self):
        if self._backend is None:
            from offload.backends.base import get_backend

            self._backend = get_backend(self.spec.backend, self.store, **backend_options(self.spec.backend))
        return self._backend

    # status -----------------------------------------------------------------------------------
    def refresh(self) -> dict[str, Any]:
        self._status = self._reconcile()
        self._index()
        return self._status

    @property
    def status(self) -> dict[str, Any]:
        return self.refresh() if self._status is None or self._status.get("state") in ACTIVE_STATES else self._status

    @property
    def state(self) -> str:
        return self.status["state"]

    def _reconcile(self) -> dict[str, Any]:
        status = self._reconcile_state()
        if status.get("state") == JobState.PREEMPTED:
            status = self._retry_if_allowed(status)
        return status

    def _retry_if_allowed(self, status: dict[str, Any]) -> dict[str, Any]:
        """A preempted job is run again (same bundle, checkpoints restored) up to ``retries``."""
        done = self.store.get_json(self._key("retry.json"), None)
        if done is None and self.spec.attempt < self.spec.retries:
            retry = self._launch_retry()
            done = {"job_id": retry.id, "at": time.time()}
            self.store.put_json(self._key("retry.json"), done)
        if done:
            status = {**status, "retried_as": done["job_id"]}
        return status

    def _launch_retry(self) -> Job:
        spec = JobSpec.from_dict({
            **self.spec.to_dict(), "id": new_job_id(), "attempt": self.spec.attempt + 1,
            "parent": self.id, "created_at": time.time(),
        })
        self.store.put_json(Store.job_key(spec.id, "spec.json"), spec.to_dict())
        env = self.store.get_json(self._key("env.json"), None)
        if env is not None:
            self.store.put_json(Store.job_key(spec.id, "env.json"), env)
        retry = Job(spec.id, store=self.store, _spec=spec)
        retry._index()
        handle = self.backend().launch(spec)
        self.store.put_json(Store.job_key(spec.id, "handle.json"), handle)
        retry._handle = handle
        return retry

    def latest(self) -> Job:
        """The last attempt of this job (following retries after preemption)."""
        job = self
        while (nxt := job.store.get_json(job._key("retry.json"), None)) is not None:
            job = Job(nxt["job_id"], store=self.store)
        return job

    def _reconcile_state(self) -> dict[str, Any]:
        reconciled = self.store.get_json(self._key("reconciled.json"), None)
        status = self.store.get_json(self._key("status.json"), None)
        if status and status.get("state") in FINAL_STATES:
            return status
        if reconciled:
            return {**(status or {}), **reconciled}
        status = dict(status or {"state": JobState.QUEUED, "cell": 0, "n_cells": 0})
        handle = self.handle
        if handle is None:
            # Launching can take minutes (zone failover waits on each insert); only a client that
            # died mid-launch leaves a job without a handle for this long.
            if time.time() - self.spec.created_at > LAUNCH_TIMEOUT_S:
                return self._conclude(status, JobState.LOST, "the job was never launched (client stopped during submit)")
            return {**status, "state": JobState.PROVISIONING, "reason": "launching"}
        try:
            bstate = self.backend().state(handle)
        except OffloadError as exc:
            status["backend_note"] = str(exc)
            return status
        except Exception as exc:  # backend unreachable: say so, conclude nothing
            status["backend_note"] = f"backend unreachable: {exc}"
            return status
        status["backend_state"] = bstate.state
        if bstate.reason:
            status["backend_reason"] = bstate.reason
        if bstate.details:
            status["backend"] = bstate.details
        if bstate.state == "gone":
            again = self.store.get_json(self._key("status.json"), None)  # it may have just finished
            if again and again.get("state") in FINAL_STATES:
                return again
            if self.store.exists(self._key("cancel")):  # e.g. a SLURM job cancelled while pending
                return self._conclude(status, "cancelled", "cancelled by the user")
            implied = (bstate.details or {}).get("job_state")  # e.g. SLURM TIMEOUT, JobState.PREEMPTED
            if implied in (JobState.FAILED, "preempted"):
                return self._conclude(status, implied, bstate.reason or implied)
            return self._conclude(status, JobState.LOST, f"the job's {self.spec.backend} process/machine is gone ({bstate.reason or 'no reason given'})")
        if bstate.state == "pending" and status["state"] == JobState.QUEUED:
            status["reason"] = bstate.reason
        elif bstate.state == "provisioning" and status["state"] == JobState.QUEUED:
            status["state"] = JobState.PROVISIONING
            status["reason"] = bstate.reason
        hb = status.get("heartbeat")
        if hb and status["state"] == "running" and time.time() - hb > STALE_AFTER_S:
            status["stale_heartbeat_s"] = time.time() - hb
        return status

    def _conclude(self, status: dict, state: str, reason: str) -> dict:
        record = {"state": state, "reason": reason, "at": time.time(), "finished_at": time.time()}
        self.store.put_json(self._key("reconciled.json"), record)
        return {**status, **record}

    def _index(self) -> None:
        st = self._status or self.store.get_json(self._key("status.json"), None) or {"state": JobState.QUEUED}
        spec = self.spec
        mark = (st.get("state"), st.get("cell"), st.get("n_cells"), st.get("finished_at"), st.get("heartbeat") is None)
        if mark == getattr(self, "_indexed", None):
            return  # unchanged since this object last wrote it: polling loops stay cheap
        self._indexed = mark
        try:
            index.upsert({
                "id": self.id, "store": self.store.url, "notebook": spec.notebook, "source_path": spec.source_path,
                "kind": spec.kind, "backend": spec.backend, "state": st.get("state"), "reason": st.get("reason"),
                "created_at": spec.created_at, "started_at": st.get("started_at"), "finished_at": st.get("finished_at"),
                "cell": st.get("cell"), "n_cells": st.get("n_cells"), "parameters": spec.parameters,
                "metrics": self.last_metrics() if st.get("state") in FINAL_STATES or st.get("state") == "running" else {},
                "labels": spec.labels, "cost": st.get("cost"),
            })
        except Exception:
            pass  # the index is a cache; never fail a user action over it

    # waiting and reading ------------------------------------------------------------------------
    def wait(self, timeout: float | None = None, *, raise_on_error: bool = False, poll: float = 0.1) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = poll
        while self.refresh()["state"] in ACTIVE_STATES or self._status.get("retried_as"):
            if self._status.get("retried_as"):  # preempted and retried: follow the new attempt
                nxt = self.latest()
                self.id, self._spec, self._handle, self._status = nxt.id, nxt._spec, None, None
                continue
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.id} still {self.state} after {timeout} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)  # a finished job is seen within half a second
        if raise_on_error and self.state != "succeeded":
            raise JobFailed(f"job {self.id} {self.state}: {self.status.get('reason') or ''}".rstrip(": "))
        return self

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    def logs(self) -> str:
        return "".join(self.iter_logs(follow=False))

    def iter_logs(self, *, follow: bool = True, poll: float = 0.25) -> Iterator[str]:
        """Yield log text as it is stored; with ``follow``, until the job has ended.

        A machine's boot log (``boot.log``, written before the runner exists) comes first, so a
        VM that fails during set-up explains itself in the same place as the cells' output.
        """
        nxt = 0
        boot_seen = 0
        while True:
            ended = self.refresh()["state"] in FINAL_STATES if follow else True
            if nxt == 0:
                boot = self._boot_log()
                if len(boot) > boot_seen:
                    yield boot[boot_seen:]
                    boot_seen = len(boot)
            for n, text in self.store.iter_log_chunks(self.id, nxt):
                nxt = n + 1
                yield text
            if ended:
                return
            time.sleep(poll)

    def _boot_log(self) -> str:
        try:
            return self.store.get_text(self._key("boot.log"))
        except KeyError:
            return ""

    @property
    def metrics(self) -> list[dict[str, Any]]:
        from offload.metrics import parse_metrics

        try:
            return parse_metrics(self.store.get_text(self._key("metrics.jsonl")))
        except KeyError:
            return []

    def last_metrics(self) -> dict[str, Any]:
        from offload.metrics import last_values

        return last_values(self.metrics)

    @property
    def output_notebook(self):
        import nbformat

        try:
            return nbformat.reads(self.store.get_text(self._key("output.ipynb")), as_version=4)
        except KeyError:
            return None

    def outputs(self) -> list[str]:
        prefix = self._key("outputs")
        return [k[len(prefix) + 1:] for k in self.store.list(prefix)]

    def download_outputs(self, dest: str | os.PathLike) -> list[Path]:
        out = []
        for rel in self.outputs():
            target = Path(dest) / rel
            self.store.get_file(self._key(f"outputs/{rel}"), target)
            out.append(target)
        return out

    # actions ----------------------------------------------------------------------------------
    def cancel(self) -> bool:
        """Ask the job to stop; False if it had already ended."""
        if self.refresh()["state"] in FINAL_STATES:
            return False
        self.store.put_text(self._key("cancel"), str(time.time()))
        handle = self.handle
        if handle is not None:
            try:
                self.backend().cancel(handle)
            except BackendError:
                raise
            except OffloadError:
                pass
        return True

    def merge(self, into: str | os.PathLike | None = None, *, write: bool = True):
        from offload.jobs.collect import merge_job

        return merge_job(self, into=into, write=write)

    def summary(self) -> dict[str, Any]:
        st = self.status
        spec = self.spec
        return {
            "id": self.id, "notebook": spec.notebook, "kind": spec.kind, "backend": spec.backend,
            "state": st.get("state"), "reason": st.get("reason"), "cell": st.get("cell"), "n_cells": st.get("n_cells"),
            "created_at": spec.created_at, "started_at": st.get("started_at"), "finished_at": st.get("finished_at"),
            "parameters": spec.parameters, "metrics": self.last_metrics(), "labels": spec.labels,
        }


def list_jobs(*, store: Store | str | None = None, refresh: bool = False, limit: int | None = None) -> list[dict[str, Any]]:
    """Newest first, from the index; active jobs are re-read from the store on every call.

    Without ``store``: the jobs of every store this machine knows (the default one and those
    configured for backends), so `offload ls` shows local and cloud jobs together.
    """
    from offload.config import load_config

    stores = [_store(store)] if store is not None else _known_stores(load_config())
    for st in stores:
        if refresh or not index.ids(st.url):
            if refresh:
                index.forget(st.url)
            for job_id in st.list_dirs("jobs"):
                try:
                    _reindex(job_id, st)
                except OffloadError:
                    continue
    rows = index.rows(stores[0].url if store is not None else None, limit=limit)
    by_url = {st.url: st for st in stores}
    for row in rows:
        if row["state"] in ACTIVE_STATES or row["state"] is None:
            try:
                st = by_url.get(row["store"]) or by_url.setdefault(row["store"], Store(row["store"]))
                job = Job(row["id"], store=st, _spec=JobSpec.from_dict(st.get_json(Store.job_key(row["id"], "spec.json"))))
                row.update(job.summary())
            except (KeyError, OffloadError):
                continue
    return rows


def _known_stores(cfg: dict[str, Any]) -> list[Store]:
    urls = [Store().url]
    for name in cfg.get("backends", {}):
        url = backend_store(name)
        if url and url not in urls:
            urls.append(url)
    out = []
    for url in urls:
        try:
            out.append(Store(url))
        except OffloadError:
            continue  # a backend's store without its driver installed: skip, `offload ls --store` says why
    return out


def _reindex(job_id: str, store: Store) -> None:
    try:
        spec = JobSpec.from_dict(store.get_json(Store.job_key(job_id, "spec.json")))
    except KeyError:
        return
    job = Job(job_id, store=store, _spec=spec)
    status = store.get_json(Store.job_key(job_id, "status.json"), None)
    if status and status.get("state") in FINAL_STATES:
        job._status = status
        job._index()
    else:
        job.refresh()
