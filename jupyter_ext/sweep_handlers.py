"""REST handlers of the JupyterLab sweep panel, under ``<base_url>/offload/api/sweeps``.

A thin layer over :mod:`offload.sweep` (the sweep engineer's JSON functions): start a sweep from
a notebook and a search space built in the panel, read its summary, trials, history and
importances in one request, stop it, resume it, apply the best parameters. Same rules as the job handlers:
``@authenticated`` + ``@authorized`` on the resource ``offload``, every store or Optuna call in the
extension's thread pool (the driver itself runs in a detached subprocess, never in the server),
paths resolved against the server root, and a 400 that names the field for bad input (for a bad
search space the field is ``space.<parameter>`` when the error is about one parameter).

Importing this module adds its routes to :data:`jupyter_ext.handlers.ROUTES`, so the server, the
OpenAPI check and the "403 without token" test all see them.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from jupyter_ext.handlers import JOB_ID, ROUTES, OffloadHandler
from jupyter_ext.service import (
    ApiError,
    OffloadService,
    api_path_of,
    job_id_arg,
    require,
    resolve_notebook,
)
from offload.errors import NotebookError, OffloadError, UsageError

_PARAM_RE = re.compile(r"parameter '([^']+)'")
_INT_FIELDS = ("trials", "parallel", "per_gpu", "seed", "max_failures")
_importance_cache: dict[str, tuple[int, dict[str, float]]] = {}
_cache_lock = threading.Lock()


def _sweep_mod():
    """``offload.sweep`` the module (``import offload.sweep`` yields the callable wrapper too)."""
    import importlib

    return importlib.import_module("offload.sweeps.api")


def _space_error(exc: OffloadError) -> ApiError:
    m = _PARAM_RE.search(exc.message)
    field = f"space.{m.group(1)}" if m else "space"
    return ApiError(400, exc.message, field=field, hint=exc.hint)


def _usage_field(exc: UsageError) -> str | None:
    """The request field a core UsageError is about, from its wording (``trials must be ...``)."""
    msg = exc.message.lower()
    for name in (*_INT_FIELDS, "objective", "direction", "sampler", "pruner", "backend", "machine", "gpu",
                 "max_runtime"):
        if msg.startswith(name.replace("_", " ")) or msg.startswith(name) or f" {name} " in f" {msg} ":
            return name
    return None


# ---------------------------------------------------------------------------------------------
# the synchronous functions (run in the thread pool)


def start_sweep(service: OffloadService, body: dict[str, Any]) -> dict[str, Any]:
    """Validate the panel's request and start a detached sweep driver; returns its summary."""
    from offload.sweeps.space import SpaceError

    sw = _sweep_mod()
    api_path = require(body, "path", str)
    path = resolve_notebook(service.root_dir, api_path)
    if path.suffix != ".ipynb" or not path.is_file():
        raise ApiError(400, f"path {api_path!r} is not a notebook", field="path", hint="pick a .ipynb file")
    space = body.get("space")
    if not isinstance(space, dict):  # never a string: that would read a file on the server
        raise ApiError(400, "field 'space' must be an object of parameter name -> range, choices or value",
                       field="space", hint='for example {"lr": {"type": "float", "low": 1e-5, "high": 0.1, "log": true}}')
    if not space:
        raise ApiError(400, "the search space is empty", field="space",
                       hint="give at least one parameter a range or choices")
    objective = require(body, "objective", (str, list))
    direction = require(body, "direction", (str, list), optional=True) or "maximize"
    ints: dict[str, int | None] = {}
    for name in _INT_FIELDS:
        v = require(body, name, int, optional=True)
        if v is not None and name != "seed" and v < 1:
            raise ApiError(400, f"field {name!r} must be >= 1, got {v}", field=name)
        ints[name] = v
    if ints["trials"] is None:
        raise ApiError(400, "missing field 'trials'", field="trials", hint="how many trials to run, e.g. 20")
    backend = require(body, "backend", str, optional=True) or service._default_backend()
    if backend not in service._enabled_backends():
        raise ApiError(400, f"unknown backend {backend!r}", field="backend",
                       hint=f"enabled backends: {', '.join(service._enabled_backends()) or 'none'}")
    machine = require(body, "machine", str, optional=True) or None
    gpu = require(body, "gpu", str, optional=True) or None
    if machine and "+" in machine and not gpu:  # a machine offer "n1-standard-8+t4": shape + GPU
        machine, gpu = machine.split("+", 1)
    if machine == "local":
        machine = None
    spot = require(body, "spot", bool, optional=True) or False
    max_runtime = require(body, "max_runtime", (str, int), optional=True) or service.max_runtime
    sampler = require(body, "sampler", str, optional=True) or "tpe"
    pruner = require(body, "pruner", str, optional=True) or None
    from offload.spec import parse_duration

    try:
        parse_duration(max_runtime)
    except UsageError as exc:
        raise ApiError(400, exc.message, field="max_runtime", hint=exc.hint) from None
    try:
        res = sw.sweep(
            path, space=space, objective=objective, direction=direction, trials=ints["trials"],
            parallel=ints["parallel"] or 1, per_gpu=ints["per_gpu"] or 1, sampler=sampler, seed=ints["seed"],
            pruner=pruner, max_failures=ints["max_failures"], backend=backend, gpu=gpu, spot=spot,
            machine=machine, max_runtime=max_runtime, backend_options=service.backend_options.get(backend),
            store=service.store, detach=True, quiet=True,
        )
    except SpaceError as exc:
        raise _space_error(exc) from None
    except NotebookError as exc:
        raise ApiError(400, exc.message, field="path", hint=exc.hint) from None
    except UsageError as exc:
        raise ApiError(400, exc.message, field=_usage_field(exc), hint=exc.hint) from None
    return sweep_state(service, res.id, rows=[])


def list_sweeps(service: OffloadService, notebook: str | None = None) -> list[dict[str, Any]]:
    out = []
    for row in _sweep_mod().sweep_ls(store=service.store):
        row = dict(row)
        row["source_path"] = api_path_of(service.root_dir, row.get("notebook"))
        if notebook and row["source_path"] != notebook.strip("/"):
            continue
        out.append(row)
    return out


def _importances(sw: Any, service: OffloadService, sid: str, n_complete: int) -> dict[str, float]:
    """fANOVA takes a while: computed again only when another trial has completed."""
    with _cache_lock:
        hit = _importance_cache.get(sid)
    if hit and hit[0] == n_complete:
        return hit[1]
    imp = sw.importances(sid, store=service.store)
    with _cache_lock:
        _importance_cache[sid] = (n_complete, imp)
    return imp


def sweep_state(service: OffloadService, sweep_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the panel shows, in one answer: summary, trials (with job state and cost), history,
    importances. ``rows`` are the watcher's job rows (cost and live state of each trial's job)."""
    sw = _sweep_mod()
    summary = sw.sweep_summary(sweep_id, store=service.store)
    sid = summary["id"]
    jobs = {r["id"]: r for r in rows}
    trials = []
    total_cost = 0.0
    for t in sw.trials_table(sid, store=service.store):
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
        "history": sw.history(sid, store=service.store),
        "importances": _importances(sw, service, sid, n_complete),
        "total_cost": total_cost,
    }


def stop_sweep(service: OffloadService, sweep_id: str) -> dict[str, Any]:
    info = _sweep_mod().sweep_stop(sweep_id, store=service.store, timeout=30.0)
    return {"id": sweep_id, "state": (info or {}).get("state", "stopped")}


def resume_sweep(service: OffloadService, sweep_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """A new detached driver for a stopped, interrupted or failed sweep; 409 while one runs."""
    sw = _sweep_mod()
    trials = require(body, "trials", int, optional=True)
    if trials is not None and trials < 1:
        raise ApiError(400, f"field 'trials' must be >= 1, got {trials}", field="trials")
    summary = sw.sweep_summary(sweep_id, store=service.store)
    if summary["state"] in ("created", "running", "stopping"):
        raise ApiError(409, f"sweep {summary['id']} is {summary['state']}: its driver is still at work",
                       hint="stop it first, or wait for it to end")
    try:
        sw.sweep_resume(summary["id"], store=service.store, detach=True, quiet=True, trials=trials)
    except UsageError as exc:
        raise ApiError(409 if "already has a running driver" in exc.message else 400, exc.message,
                       hint=exc.hint) from None
    return sweep_state(service, summary["id"], rows=[])


def apply_best(service: OffloadService, sweep_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The best (or chosen) trial's parameters; written into the notebook file, or, when the panel
    sends the open notebook's ``source`` of its parameters cell, returned as rewritten source for
    the panel to put into the notebook model (no "file changed on disk", unsaved edits kept)."""
    sw = _sweep_mod()
    trial = require(body, "trial", int, optional=True)
    source = require(body, "source", str, optional=True)
    api_path = require(body, "path", str, optional=True)
    summary = sw.sweep_summary(sweep_id, store=service.store)
    sid = summary["id"]
    if api_path:
        target = resolve_notebook(service.root_dir, api_path)
    else:
        target = Path(summary["notebook"])
        if api_path_of(service.root_dir, str(target)) is None:
            raise ApiError(400, f"the sweep's notebook {target} is outside the server root", field="path",
                           hint="give the notebook path to write")
    if source is not None:
        chosen = _chosen_trial(sw, service, sid, summary, trial)
        return {"params": chosen["params"], "trial": chosen["number"], "value": chosen["value"],
                "source": sw._rewrite_assignments(source, chosen["params"]), "written": None}
    try:
        params = sw.apply_best(sid, target, store=service.store, trial=trial)
    except UsageError as exc:
        raise ApiError(409 if "no complete trial" in exc.message else 400, exc.message,
                       field="trial" if trial is not None or "trial" in exc.message else None, hint=exc.hint) from None
    return {"params": params, "trial": trial, "source": None,
            "written": api_path_of(service.root_dir, str(target))}


def _chosen_trial(sw: Any, service: OffloadService, sid: str, summary: dict[str, Any],
                  trial: int | None) -> dict[str, Any]:
    if trial is not None:
        for t in sw.trials_table(sid, store=service.store):
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


# ---------------------------------------------------------------------------------------------
# handlers


class SweepsHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self) -> None:
        self.reply({"sweeps": await self.run(list_sweeps, self.service, self.get_query_argument("notebook", None))})

    @web.authenticated
    @authorized(action="execute")
    async def post(self) -> None:
        body = self.body()
        out = await self.run(start_sweep, self.service, body)
        self.watcher.wake()
        self.reply(out, 201)


class SweepHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="read")
    async def get(self, job_id: str) -> None:
        rows = list(self.watcher.rows)
        self.reply(await self.run(sweep_state, self.service, job_id_arg(job_id), rows))


class SweepStopHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="write")
    async def post(self, job_id: str) -> None:
        out = await self.run(stop_sweep, self.service, job_id_arg(job_id))
        self.watcher.wake()
        self.reply(out, 202)


class SweepResumeHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="execute")
    async def post(self, job_id: str) -> None:
        body = self.body()
        out = await self.run(resume_sweep, self.service, job_id_arg(job_id), body)
        self.watcher.wake()
        self.reply(out, 202)


class SweepApplyBestHandler(OffloadHandler):
    @web.authenticated
    @authorized(action="write")
    async def post(self, job_id: str) -> None:
        body = self.body()
        self.reply(await self.run(apply_best, self.service, job_id_arg(job_id), body))


SWEEP_ROUTES: list[tuple[str, type[OffloadHandler]]] = [
    (r"sweeps", SweepsHandler),
    (rf"sweeps/{JOB_ID}", SweepHandler),
    (rf"sweeps/{JOB_ID}/stop", SweepStopHandler),
    (rf"sweeps/{JOB_ID}/resume", SweepResumeHandler),
    (rf"sweeps/{JOB_ID}/apply-best", SweepApplyBestHandler),
]

for _route in SWEEP_ROUTES:
    if _route not in ROUTES:
        ROUTES.append(_route)
