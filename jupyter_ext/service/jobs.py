"""Jobs through the REST API: submit, list, detail, log, metrics, cancel, rerun, merge back.

Submit and rerun go through ``offload.jobs`` (its one launch path); nothing here writes a spec."""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import nbformat

from jupyter_ext.service.core import OffloadService, jsonable
from jupyter_ext.service.errors import ApiError
from jupyter_ext.service.models import JobListQuery, JobRequest
from jupyter_ext.service.paths import api_path_of, resolve_notebook
from offload import jobs as core_jobs
from offload.errors import OffloadError
from offload.jobs import Job, index, provenance, recording, tracking
from offload.jobs.listing import SyncReport
from offload.notebook import align_cells, provenance_of
from offload.spec import ACTIVE_STATES, FINAL_STATES, JobSpec
from offload.store import has_output, layout, read_output

# ---------------------------------------------------------------------------------------------
# submit and rerun


def submit(service: OffloadService, req: JobRequest, *, active_count: int = 0,
           user: str | None = None) -> dict[str, Any]:
    """Snapshot and launch the notebook as ``user``; 409 when the server's limit of active jobs,
    or this user's, is reached."""
    if service.max_active_jobs and active_count >= service.max_active_jobs:
        raise ApiError(409, f"{active_count} jobs are already running (limit {service.max_active_jobs})",
                       hint="wait for one to finish or cancel one, or raise OffloadExtensionApp.max_active_jobs")
    service.check_user_cap(user)
    folder = req.notebook.parent
    job = core_jobs.submit(
        req.notebook, parameters=req.parameters, backend=req.backend, gpu=req.gpu, gpu_count=req.gpu_count,
        machine=req.machine, spot=req.spot, max_runtime=req.max_runtime, keep_alive=req.keep_alive,
        data=[folder / d for d in req.data],
        include=[folder / i for i in req.include], env=req.env, **req.policy,
        labels={"source": "jupyterlab", **({"user": user} if user else {})},
        backend_options_=service.backend_options.get(req.backend), store=service.store,
        server_root=service.root_dir,  # the project root: a marker folder above the notebook, else the server's root
    )
    return job_detail(service, job.id)


def rerun(service: OffloadService, job_id: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """A new job from the same bundle (same files, same environment), optionally new parameters,
    checked against the bundle's own ``parameters`` cell (see :func:`offload.jobs.rerun`)."""
    old = service.job(job_id)
    new = core_jobs.rerun(old, parameters=parameters, backend_options_=service.backend_options.get(old.spec.backend))
    return job_detail(service, new.id)


# ---------------------------------------------------------------------------------------------
# reading jobs


def summary_of(service: OffloadService, job: Job) -> dict[str, Any]:
    """One row of the jobs panel: what a user scans for (state, progress, time, cost, metrics)."""
    s = job.summary()
    st = job.status
    spec = job.spec
    r = spec.resources
    s.update(
        source_path=api_path_of(service.root_dir, spec.source_path),
        progress={"cell": st.get("cell"), "n_cells": st.get("n_cells")},
        elapsed_s=_elapsed(st),
        cost=st.get("cost"),
        heartbeat=st.get("heartbeat"),
        stale_heartbeat_s=st.get("stale_heartbeat_s"),
        resources={"gpu": r.gpu, "machine": r.machine, "spot": r.spot, "max_runtime_s": r.max_runtime_s},
        parent=spec.parent,
    )
    return s


def job_detail(service: OffloadService, job_id: str) -> dict[str, Any]:
    job = service.job(job_id)
    out = summary_of(service, job)
    st = job.status
    spec = job.spec
    out.update(
        status=jsonable(st),
        spec=spec.to_dict(),
        env=service.store.get_json(layout.job_key(job.id, "env.json"), None),
        handle=job.handle,
        zones_tried=_zones_tried(st, job.handle),
        error=st.get("error"),
        has_output=has_output(service.store, job.id),
        outputs=_safe(job.outputs, []),
        cli=cli_command(spec, service.root_dir),
        timings=jsonable(_safe(job.timings, {})),
        env_cache=st.get("env_cache"),
        provenance=_safe(lambda: provenance.for_view(provenance.read(service.store, job.id)), None),
        mlflow=_safe(lambda: tracking.job_run(service.store, job.id), None),
    )
    return out


def sync(service: OffloadService, *, full: bool = False, scan: bool = True, watch: Collection[str] = (),
         on_first_chunk: Callable[[], None] | None = None) -> SyncReport:
    """One watcher pass over the server's store: new and active jobs only (``full``: every job);
    then running jobs are mirrored to MLflow and ended ones announced (``offload.jobs.recording``)."""
    report = core_jobs.sync_store(service.store, full=full, scan=scan, watch=watch, on_first_chunk=on_first_chunk)
    recording.observe_pass(service.store, report.seen)
    return report


def api_row(service: OffloadService, row: dict[str, Any]) -> dict[str, Any]:
    """An index row as the API shows it: JSON-safe, ``source_path`` relative to the server root."""
    row = jsonable(dict(row))
    row["source_path"] = api_path_of(service.root_dir, row.get("source_path"))
    row.pop("store", None)
    return row


def job_filter(service: OffloadService, query: JobListQuery, *, kinds: tuple[str, ...] | None = None,
               states: tuple[str, ...] | None = None) -> index.Filter:
    """The index filter of a list query; ``notebook`` matches the API path or the bundle name."""
    notebooks: tuple[str, ...] = ()
    if query.notebook:
        notebooks = (query.notebook,)
        try:
            notebooks += (str(resolve_notebook(service.root_dir, query.notebook, field="notebook", must_exist=False)),)
        except ApiError:
            pass  # not a path under the root: it can still be a bundle name
    return index.Filter(states=states if states is not None else query.states, notebooks=notebooks,
                        kinds=kinds if kinds is not None else query.kinds)


def list_page(service: OffloadService, query: JobListQuery) -> dict[str, Any]:
    """``GET /jobs``: one page from the index the watcher keeps current (no store reads)."""
    page = index.page(service.store.url, limit=query.limit, cursor=query.cursor, where=job_filter(service, query))
    return {"jobs": [api_row(service, r) for r in page.rows], "next_cursor": page.next_cursor, "total": page.total}


def rows_by_id(service: OffloadService, job_ids: Collection[str]) -> dict[str, dict[str, Any]]:
    """The indexed rows of these jobs (a sweep's trials), by id."""
    return {k: api_row(service, r) for k, r in index.get(service.store.url, job_ids).items()}


def active_count(service: OffloadService) -> int:
    return len(index.active_ids(service.store.url))


def indexed(service: OffloadService) -> bool:
    """Has the index caught up with this store before (so a restarted server can answer from it)?"""
    return index.synced_at(service.store.url) is not None


def logs(service: OffloadService, job_id: str, cursor: int = 0) -> dict[str, Any]:
    """Log text after ``cursor`` (a chunk sequence number): polling that survives any proxy."""
    job = service.job(job_id)
    if cursor < 0:
        raise ApiError(400, "cursor must be >= 0", field="cursor")
    texts, nxt = [], cursor
    for n, text in service.store.iter_log_chunks(job.id, cursor):
        texts.append(text)
        nxt = n + 1
    state = job.status.get("state")
    return {"text": "".join(texts), "cursor": nxt, "state": state, "done": state in FINAL_STATES}


def metrics(service: OffloadService, job_id: str) -> dict[str, Any]:
    job = service.job(job_id)
    return {"records": jsonable(job.metrics), "last": jsonable(job.last_metrics())}


def executed_notebook(service: OffloadService, job_id: str) -> dict[str, Any]:
    job = service.job(job_id)
    nb = read_output(service.store, job.id)
    if nb is None:
        raise ApiError(409, f"job {job.id} has no executed notebook yet ({job.state})",
                       hint="it appears once the job starts running")
    return nb


# ---------------------------------------------------------------------------------------------
# acting on jobs


def cancel(service: OffloadService, job_id: str) -> dict[str, Any]:
    job = service.job(job_id)
    if not job.cancel():
        raise ApiError(409, f"job {job.id} has already ended ({job.state})", hint="nothing to cancel")
    return {"id": job.id, "cancel_requested": True, "state": job.state}


def merge_plan(service: OffloadService, job_id: str, cells: dict[str, str]) -> dict[str, Any]:
    """Outputs to copy into the open notebook, given its cells (id -> source) as they are now.

    The browser applies the plan through the notebook model (undo works, no "file changed on
    disk"): a cell is updated only if its id and source hash still match what was submitted.
    """
    job = _ended(service, job_id)
    executed = job.output_notebook
    if executed is None:
        raise ApiError(409, f"job {job.id} has no executed notebook ({job.state})")
    plan: dict[str, Any] = {"job_id": job.id, "state": job.state, "merged": [], "edited": [], "deleted": []}
    # By id; cells whose ids differ from the job's (a notebook saved without ids, or opened from a
    # clone: JupyterLab gives it ids of its own) are aligned by position and source instead.
    target = [{"id": cid, "source": src, "cell_type": "code"} for cid, src in cells.items()]
    for m in align_cells(target, executed.cells, job.spec.cell_hashes):
        if m.action == "deleted":
            plan["deleted"].append(m.executed["id"])
        elif m.action == "edited":
            plan["edited"].append(target[m.target]["id"])
        else:
            plan["merged"].append({
                "id": target[m.target]["id"],
                "outputs": nbformat.from_dict(m.executed.get("outputs", [])),
                "execution_count": m.executed.get("execution_count"),
            })
    plan["provenance"] = jsonable(provenance_of(job))
    return jsonable(plan)


def merge_file(service: OffloadService, job_id: str, target: Path | None) -> dict[str, Any]:
    """Merge into the notebook file on disk (when it is not open in the browser)."""
    job = _ended(service, job_id)
    if target is None:
        src = job.spec.source_path
        if not src or api_path_of(service.root_dir, src) is None:
            raise ApiError(400, "the job's source notebook is outside the server root", field="path",
                           hint="give the notebook to merge into")
        target = Path(src)
    return job.merge(into=target).to_dict() | {"path": api_path_of(service.root_dir, str(target))}


def _ended(service: OffloadService, job_id: str) -> Job:
    job = service.job(job_id)
    if job.state in ACTIVE_STATES:
        raise ApiError(409, f"job {job.id} is still {job.state}", hint="merge once it has finished")
    return job


# ---------------------------------------------------------------------------------------------
# helpers


def cli_command(spec: JobSpec, root_dir: str) -> str:
    """The equivalent `offload run` command line, for "Copy CLI command"."""
    nb = api_path_of(root_dir, spec.source_path) or spec.source_path or spec.notebook
    args = ["offload", "run", nb]
    if spec.backend:
        args += ["--backend", spec.backend]
    r = spec.resources
    if r.machine:
        args += ["--machine", r.machine]
    if r.gpu:
        args += ["--gpu", r.gpu if r.gpu_count == 1 else f"{r.gpu}:{r.gpu_count}"]
    if r.spot:
        args.append("--spot")
    if r.max_runtime_s:
        args += ["--max-runtime", _fmt_duration(r.max_runtime_s)]
    for d in spec.data:
        args += ["--data", d.path]
    for k, v in spec.parameters.items():
        args += ["-p", f"{k}={v if isinstance(v, str) else json.dumps(v)}"]
    return " ".join(shlex.quote(a) for a in args)


def _fmt_duration(s: int) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % n == 0:
            return f"{s // n}{unit}"
    return f"{s}s"


def _elapsed(st: dict[str, Any]) -> float | None:
    start = st.get("started_at")
    if not start:
        return None
    end = st.get("finished_at") or (time.time() if st.get("state") in ACTIVE_STATES else None)
    return round(end - start, 1) if end else None


def _zones_tried(st: dict[str, Any], handle: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Where the backend tried to get capacity (GCE zone failover), for the job detail."""
    for src in (handle or {}, st.get("backend") or {}, st):
        z = src.get("zones_tried") or src.get("attempts")
        if isinstance(z, list):
            return [x if isinstance(x, dict) else {"zone": str(x)} for x in z]
    zone = (handle or {}).get("zone")
    return [{"zone": zone, "result": "launched"}] if zone else []


def _safe(fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except (OffloadError, OSError, KeyError):
        return default

