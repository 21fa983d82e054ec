"""The sweep panel's calls: start a sweep, list them, read one (summary, trials, history,
importances in one answer), stop, resume, apply the best parameters.

A thin layer over :mod:`offload.sweeps`; the driver itself runs in a detached subprocess, never
in the server. Bad input is the core's error, whose ``field`` is the request field (for a bad
search space ``space.<parameter>`` when the error is about one parameter).
"""

from __future__ import annotations

from typing import Any

from jupyter_ext.service.core import OffloadService
from jupyter_ext.service.errors import ApiError
from jupyter_ext.service.jobs import rows_by_id
from jupyter_ext.service.models import ApplyBestRequest, ResumeRequest, SweepRequest
from jupyter_ext.service.paths import api_path_of
from offload import sweeps
from offload.sweeps.control import rewrite_assignments
from offload.sweeps.records import CREATED, LIVE_STATES

_DRIVER_AT_WORK = (CREATED, *LIVE_STATES)  # a sweep's (its driver's) states, not job states


def start_sweep(service: OffloadService, req: SweepRequest) -> dict[str, Any]:
    """Start a detached sweep driver; returns the sweep as :func:`sweep_state` shows it."""
    res = sweeps.sweep(
        req.notebook, space=req.space, objective=req.objective, direction=req.direction, trials=req.trials,
        parallel=req.parallel, per_gpu=req.per_gpu, sampler=req.sampler, seed=req.seed, pruner=req.pruner,
        max_failures=req.max_failures, backend=req.backend, gpu=req.gpu, spot=req.spot, machine=req.machine,
        max_runtime=req.max_runtime, backend_options=service.backend_options.get(req.backend),
        store=service.store, detach=True, quiet=True, budget=req.budget,
    )
    return sweep_state(service, res.id, rows=[])


def list_sweeps(service: OffloadService, notebook: str | None = None) -> list[dict[str, Any]]:
    out = []
    for row in sweeps.sweep_ls(store=service.store):
        row = dict(row)
        row["source_path"] = api_path_of(service.root_dir, row.get("notebook"))
        if notebook and row["source_path"] != notebook.strip("/"):
            continue
        out.append(row)
    return out


def sweep_state(service: OffloadService, sweep_id: str, rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything the panel shows, in one answer: summary, trials (with job state and cost), history,
    importances. Each trial's job state and cost come from ``rows`` when given, else from the job
    index the watcher keeps current."""
    summary = sweeps.sweep_summary(sweep_id, store=service.store)
    sid = summary["id"]
    table = sweeps.trials_table(sid, store=service.store)
    if rows is None:
        jobs = rows_by_id(service, [t["job_id"] for t in table if t.get("job_id")])
    else:
        jobs = {r["id"]: r for r in rows}
    trials = []
    total_cost = 0.0
    for t in table:
        job = jobs.get(t.get("job_id") or "")
        cost = job.get("cost") if job else None
        if isinstance(cost, (int, float)):
            total_cost += cost
        trials.append({**t, "cost": cost, "job_state": job.get("state") if job else None})
    n_complete = int((summary.get("counts") or {}).get("n_complete", 0))
    summary["source_path"] = api_path_of(service.root_dir, summary.get("notebook"))
    return {
        "summary": summary,
        "trials": trials,
        "history": sweeps.history(sid, store=service.store),
        "importances": _importances(service, sid, n_complete),
        "total_cost": total_cost,
    }


def _importances(service: OffloadService, sid: str, n_complete: int) -> dict[str, float]:
    """fANOVA takes a while: computed again only when another trial has completed."""
    with service.importances_lock:
        hit = service.importances.get(sid)
    if hit and hit[0] == n_complete:
        return hit[1]
    imp = sweeps.importances(sid, store=service.store)
    with service.importances_lock:
        service.importances[sid] = (n_complete, imp)
    return imp


def stop_sweep(service: OffloadService, sweep_id: str) -> dict[str, Any]:
    info = sweeps.sweep_stop(sweep_id, store=service.store, timeout=30.0)
    return {"id": sweep_id, "state": (info or {}).get("state", "stopped")}


def resume_sweep(service: OffloadService, sweep_id: str, req: ResumeRequest) -> dict[str, Any]:
    """A new detached driver for a stopped, interrupted or failed sweep; 409 while one runs."""
    summary = sweeps.sweep_summary(sweep_id, store=service.store)
    if summary["state"] in _DRIVER_AT_WORK:
        raise ApiError(409, f"sweep {summary['id']} is {summary['state']}: its driver is still at work",
                       hint="stop it first, or wait for it to end")
    sweeps.sweep_resume(summary["id"], store=service.store, detach=True, quiet=True, trials=req.trials)
    return sweep_state(service, summary["id"], rows=[])


def apply_best(service: OffloadService, sweep_id: str, req: ApplyBestRequest) -> dict[str, Any]:
    """The best (or chosen) trial's parameters; written into the notebook file, or, when the panel
    sends the open notebook's ``source`` of its parameters cell, returned as rewritten source for
    the panel to put into the notebook model (no "file changed on disk", unsaved edits kept)."""
    summary = sweeps.sweep_summary(sweep_id, store=service.store)
    sid = summary["id"]
    target = req.target
    if target is None and api_path_of(service.root_dir, summary["notebook"]) is None:
        raise ApiError(400, f"the sweep's notebook {summary['notebook']} is outside the server root", field="path",
                       hint="give the notebook path to write")
    chosen = _chosen_trial(service, sid, summary, req.trial)
    if req.source is not None:
        return {"params": chosen["params"], "trial": chosen["number"], "value": chosen["value"],
                "source": rewrite_assignments(req.source, chosen["params"]), "written": None}
    target = target or summary["notebook"]
    params = sweeps.apply_best(sid, target, store=service.store, trial=chosen["number"])
    return {"params": params, "trial": req.trial, "source": None, "written": api_path_of(service.root_dir, str(target))}


def _chosen_trial(service: OffloadService, sid: str, summary: dict[str, Any], trial: int | None) -> dict[str, Any]:
    """The trial asked for (400 unless it completed), else the best one (409 before any completed,
    400 for several objectives: the panel must choose from the Pareto front)."""
    if trial is not None:
        for t in sweeps.trials_table(sid, store=service.store):
            if t["number"] == trial and t["state"] == "COMPLETE":
                return t
        raise ApiError(400, f"trial {trial} of sweep {sid} did not complete", field="trial",
                       hint="pick a complete trial")
    if summary.get("pareto"):
        nums = ", ".join(str(b["number"]) for b in summary["pareto"])
        raise ApiError(400, f"sweep {sid} has several objectives: trials {nums} are Pareto-optimal", field="trial",
                       hint="choose one of them")
    if not summary.get("best"):
        raise ApiError(409, f"sweep {sid} has no complete trial yet", hint="wait for a trial to finish")
    return summary["best"]
