"""Sweeps: an Optuna study whose trials are parametrized runs of a notebook.

``offload.sweep("train.ipynb", space="space.yaml", objective="val_acc", trials=50, parallel=8)``
samples parameters, runs each point as a job of kind ``trial`` (on any backend), reads the
objective from the metric the notebook logs with ``offload.log_metric``, prunes trials whose
intermediate values (logged with ``step=``) are bad, and keeps going until the budget is spent.

State lives in two places, both rebuildable views of what happened: the sweep record in the store
(``sweeps/<id>/sweep.json``, ``driver.json``, ``trials/<n>.json``) and the Optuna storage (SQLite
under :func:`offload.store.data_dir` by default, or any Optuna storage URL for a study shared by
several drivers or inspected with optuna-dashboard).

The functions below also back ``offload sweep ls|show|stop|resume`` and return JSON-able dicts for
the JupyterLab sweep panel (``sweep_summary``, ``trials_table``, ``history``, ``importances``).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offload.errors import NotebookError, OffloadError, StoreError, UsageError
from offload.paths import data_dir
from offload.spec import new_job_id
from offload.store import Store
from offload.sweeps import space as sp
from offload.sweeps.driver import (
    Driver,
    SweepFailed,
    driver_alive,
    make_storage,
    pid_alive,
    summary_counts,
    sweep_key,
)

__all__ = [
    "SweepFailed",
    "SweepResult",
    "add_sweep_parser",
    "apply_best",
    "history",
    "importances",
    "sweep",
    "sweep_ls",
    "sweep_resume",
    "sweep_show",
    "sweep_stop",
    "sweep_summary",
    "trials_table",
]


def default_storage() -> str:
    """One SQLite file for every sweep of this user: optuna-dashboard shows them all."""
    path = data_dir() / "sweeps.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _store(store: Store | str | None) -> Store:
    return store if isinstance(store, Store) else Store(store)


def _record(store: Store, sweep_id: str) -> dict[str, Any]:
    rec = store.get_json(sweep_key(sweep_id, "sweep.json"), default=None)
    if rec is None:
        from offload.errors import JobNotFound

        known = store.list_dirs("sweeps")
        close = [s for s in known if s.startswith(sweep_id)] if sweep_id else []
        if len(close) == 1:
            return store.get_json(sweep_key(close[0], "sweep.json"))
        raise JobNotFound(
            f"no sweep {sweep_id!r} in store {store.url}",
            hint="`offload sweep ls` lists sweeps" + (f"; did you mean {close[0]}?" if close else ""),
        )
    return rec


def open_study(rec: dict[str, Any], *, create: bool = False) -> Any:
    """The sweep's Optuna study (None while nobody has created it); a storage that cannot be
    opened is a StoreError naming it, not a database traceback."""
    optuna = sp._optuna()
    try:
        storage = make_storage(rec["storage"])
        if create:
            return optuna.create_study(storage=storage, study_name=rec["study_name"],
                                       directions=rec["directions"], load_if_exists=True)
        return optuna.load_study(study_name=rec["study_name"], storage=storage)
    except KeyError:
        return None  # the driver has not created it yet
    except Exception as exc:
        if isinstance(exc, OffloadError) or type(exc).__module__.split(".")[0] not in ("sqlalchemy", "sqlite3", "optuna"):
            raise
        raise StoreError(
            f"cannot open the sweep's Optuna storage {rec['storage']}: {str(exc).splitlines()[0]}",
            hint="check the --storage URL (its directory must exist and be writable), or leave it out for "
                 "the default SQLite file",
        ) from None


def _notebook_parameters(notebook: Path) -> dict[str, Any]:
    from offload.notebook import declared_parameters, read_notebook

    nb = read_notebook(notebook)
    declared = declared_parameters(nb)
    if not declared:
        raise NotebookError(
            f"notebook {notebook} has no parameters cell",
            hint="tag the cell that sets the defaults with `parameters` (cell toolbar > Add tag)",
        )
    return declared


# The public entry point -------------------------------------------------------------------------
@dataclass
class SweepResult:
    """A handle on a sweep: its id, where its study lives, and what it found so far."""

    id: str
    store: Store = field(repr=False)
    state: str = "created"
    error: str | None = None

    def refresh(self) -> SweepResult:
        info = self.store.get_json(sweep_key(self.id, "driver.json"), default={}) or {}
        self.state = _effective_state(info)
        self.error = info.get("error")
        return self

    @property
    def record(self) -> dict[str, Any]:
        return _record(self.store, self.id)

    @property
    def study(self) -> Any:
        return open_study(self.record)

    @property
    def best_trial(self) -> dict[str, Any] | None:
        best = _best(self.record, self.study)
        return best[0] if best else None

    @property
    def best_params(self) -> dict[str, Any] | None:
        b = self.best_trial
        return b["params"] if b else None

    @property
    def best_value(self) -> float | None:
        b = self.best_trial
        return b["value"] if b else None

    def trials(self) -> list[dict[str, Any]]:
        return trials_table(self.id, store=self.store)

    def wait(self, timeout: float | None = None, poll_s: float = 1.0) -> SweepResult:
        end = None if timeout is None else time.time() + timeout
        while self.refresh().state in ("created", "running", "stopping"):
            if end is not None and time.time() > end:
                break
            time.sleep(poll_s)
        return self

    def stop(self) -> None:
        sweep_stop(self.id, store=self.store)

    def to_dict(self) -> dict[str, Any]:
        return sweep_summary(self.id, store=self.store)


def sweep(
    notebook: str | os.PathLike,
    *,
    space: Any,
    objective: str | list[str],
    direction: str | list[str] = "maximize",
    trials: int,
    parallel: int = 1,
    per_gpu: int = 1,
    sampler: Any = "tpe",
    seed: int | None = None,
    pruner: Any = None,
    storage: str | None = None,
    study_name: str | None = None,
    max_failures: int | None = None,
    enqueue: Any = None,
    backend: str | None = None,
    gpu: str | None = None,
    spot: bool = False,
    machine: str | None = None,
    max_runtime: str | int | None = None,
    env: str | None = None,
    data: list[str] | None = None,
    backend_options: dict[str, Any] | None = None,
    retries: int = 1,
    store: Store | str | None = None,
    detach: bool = False,
    quiet: bool = False,
    sweep_id: str | None = None,
    pack: bool = False,
) -> SweepResult:
    """Run an Optuna study whose trials are jobs running ``notebook`` with sampled parameters.

    Blocks until the sweep ends (``detach=True`` starts a background driver and returns at once).
    Raises :class:`SweepFailed` when ``max_failures`` trials failed; any bad input raises an
    :class:`~offload.errors.UsageError` before a job is started.
    """
    st = _store(store)
    rec = create_sweep(
        notebook, space=space, objective=objective, direction=direction, trials=trials,
        parallel=parallel, per_gpu=per_gpu, sampler=sampler, seed=seed, pruner=pruner,
        storage=storage, study_name=study_name, max_failures=max_failures, enqueue=enqueue,
        backend=backend, gpu=gpu, spot=spot, machine=machine, max_runtime=max_runtime, env=env,
        data=data, backend_options=backend_options, retries=retries, store=st, sweep_id=sweep_id,
        pack=pack,
    )
    result = SweepResult(rec["id"], st)
    if detach:
        _spawn_driver(st, rec["id"])
        return result
    driver = Driver(
        st, rec["id"],
        sampler=None if isinstance(sampler, str) else sampler,
        pruner=None if (pruner is None or isinstance(pruner, str)) else pruner,
        out=False if quiet else None,
    )
    info = driver.run()
    result.refresh()
    if info.get("state") == "failed":
        raise SweepFailed(info.get("error") or "sweep failed", hint=f"`offload sweep show {rec['id']}` for details")
    return result


def create_sweep(notebook: str | os.PathLike, *, space: Any, objective: Any, direction: Any, trials: int,
                 parallel: int, per_gpu: int, sampler: Any, seed: int | None, pruner: Any,
                 storage: str | None, study_name: str | None, max_failures: int | None, enqueue: Any,
                 backend: str | None, gpu: str | None, spot: bool, machine: str | None,
                 max_runtime: Any, env: str | None, data: list[str] | None,
                 backend_options: dict[str, Any] | None, retries: int, store: Store,
                 sweep_id: str | None = None, pack: bool = False) -> dict[str, Any]:
    """Validate everything and write ``sweeps/<id>/sweep.json``; no job is started."""
    nb = Path(notebook).expanduser().resolve()
    sp_ = sp.load_space(space)
    sp.check_against_notebook(sp_, _notebook_parameters(nb))
    names, dirs = sp.parse_objectives(objective, direction)
    for label, value, low in (("trials", trials, 1), ("parallel", parallel, 1), ("per_gpu", per_gpu, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise UsageError(f"{label} must be a whole number >= {low}, got {value!r}",
                             hint=f"for example --{label.replace('_', '-')} 4")
    if max_failures is not None and (not isinstance(max_failures, int) or max_failures < 1):
        raise UsageError(f"max_failures must be a whole number >= 1, got {max_failures!r}")
    # Build them once now so a bad name fails here, not in a background driver.
    sp.make_sampler(sampler, seed=seed, space=sp_, n_objectives=len(names))
    sp.make_pruner(pruner, n_objectives=len(names))
    points = sp.load_enqueue(enqueue, sp_)
    sid = sweep_id or new_job_id()
    submit: dict[str, Any] = {"spot": bool(spot)}
    for k, v in (("backend", backend), ("gpu", gpu), ("machine", machine), ("max_runtime", max_runtime),
                 ("env", env), ("data", data), ("backend_options", backend_options)):
        if v is not None:
            submit[k] = v
    rec = {
        "id": sid,
        "notebook": str(nb),
        "space": sp_.to_dict(),
        "objectives": names,
        "directions": dirs,
        "trials": trials,
        "parallel": parallel,
        "per_gpu": per_gpu,
        "sampler": sampler if isinstance(sampler, str) else f"custom:{type(sampler).__name__}",
        "seed": seed,
        "pruner": pruner if (pruner is None or isinstance(pruner, str)) else f"custom:{type(pruner).__name__}",
        "storage": storage or default_storage(),
        "study_name": study_name or f"offload-{sid}",
        "max_failures": max_failures,
        "retries": retries,
        "enqueue": points,
        "submit": submit,
        "pack_local": bool(pack),
        "created_at": time.time(),
        "version": 1,
    }
    if str(rec["sampler"]).startswith("custom:"):
        rec["sampler"] = "tpe"  # what a resumed driver uses; the object itself runs in-process
        rec["sampler_note"] = f"started with a {type(sampler).__name__}"
    if str(rec["pruner"]).startswith("custom:"):
        rec["pruner_note"], rec["pruner"] = f"started with a {type(pruner).__name__}", "median"
    store.check_writable()
    open_study(rec, create=True)  # a bad storage URL fails here; the schema exists before any reader
    store.put_json(sweep_key(sid, "sweep.json"), rec)
    return rec


def _spawn_driver(store: Store, sweep_id: str) -> int:
    log = data_dir() / "sweeps" / f"{sweep_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "offload.sweeps.driver", store.url, sweep_id],
            stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    # Until the driver writes its own record, this one says which process to watch: a driver that
    # dies before it could say anything reads as interrupted, not as "created" forever.
    info = store.get_json(sweep_key(sweep_id, "driver.json"), default={}) or {}
    store.put_json(sweep_key(sweep_id, "driver.json"), {
        **info, "state": "created", "error": None, "launched_pid": proc.pid, "launched_host": socket.gethostname(),
        "launched_at": time.time(), "log": str(log),
    })
    return proc.pid


# Reading sweeps back (CLI and the panel) ------------------------------------------------------
def _launched_alive(info: dict[str, Any]) -> bool:
    """A background driver was started and has not yet written its own record."""
    return (info.get("state") or "created") == "created" and bool(info.get("launched_pid")) and pid_alive(
        info["launched_pid"], info.get("launched_host"))


def _effective_state(info: dict[str, Any]) -> str:
    state = info.get("state") or "created"
    if state in ("running", "stopping") and not driver_alive(info):
        return "interrupted"  # the driver died: `resume` reconciles
    if state == "created" and info.get("launched_pid") and not pid_alive(info["launched_pid"], info.get("launched_host")):
        return "interrupted"  # it died before it started (its log is in driver.json's "log")
    return state


def _trial_rows(rec: dict[str, Any], study: Any) -> list[dict[str, Any]]:
    if study is None:
        return []
    rows = []
    for t in study.get_trials(deepcopy=False):
        values = list(t.values) if t.values is not None else None
        dur = None
        if t.datetime_start and t.datetime_complete:
            dur = (t.datetime_complete - t.datetime_start).total_seconds()
        rows.append({
            "number": t.number,
            "state": t.state.name,
            "params": {**t.params, **{k: v["value"] for k, v in rec["space"].items() if v.get("type") == "fixed"}},
            "values": values,
            "value": values[0] if values else None,
            "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
            "job_id": t.user_attrs.get("job_id"),
            "error": t.user_attrs.get("error"),
            "requeued": bool(t.user_attrs.get("offload_requeued")),
            "started_at": t.datetime_start.timestamp() if t.datetime_start else None,
            "finished_at": t.datetime_complete.timestamp() if t.datetime_complete else None,
            "duration_s": dur,
        })
    return rows


def _best(rec: dict[str, Any], study: Any) -> list[dict[str, Any]]:
    """The best trial (one objective) or the Pareto front (several)."""
    if study is None:
        return []
    rows = {r["number"]: r for r in _trial_rows(rec, study)}
    try:
        best = study.best_trials if len(rec["objectives"]) > 1 else [study.best_trial]
    except ValueError:
        return []
    return [rows[t.number] for t in best]


def trials_table(sweep_id: str, *, store: Store | str | None = None) -> list[dict[str, Any]]:
    """Every trial as a JSON-able dict, best first (failed and running last)."""
    st = _store(store)
    rec = _record(st, sweep_id)
    rows = _trial_rows(rec, open_study(rec))
    sign = -1 if rec["directions"][0] == "maximize" else 1
    order = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "WAITING": 3, "FAIL": 4}
    return sorted(rows, key=lambda r: (order.get(r["state"], 5),
                                       sign * r["value"] if r["value"] is not None else 0, r["number"]))


def history(sweep_id: str, *, store: Store | str | None = None) -> list[dict[str, Any]]:
    """Optimization history: completed trials in order with the best value so far (first objective)."""
    st = _store(store)
    rec = _record(st, sweep_id)
    maximize = rec["directions"][0] == "maximize"
    best = None
    out = []
    for r in sorted(_trial_rows(rec, open_study(rec)), key=lambda r: r["number"]):
        if r["state"] != "COMPLETE":
            continue
        v = r["value"]
        best = v if best is None or (v > best if maximize else v < best) else best
        out.append({"number": r["number"], "value": v, "best": best, "finished_at": r["finished_at"]})
    return out


def importances(sweep_id: str, *, store: Store | str | None = None, min_trials: int = 4) -> dict[str, float]:
    """Parameter importances (fANOVA) once ``min_trials`` trials completed; ``{}`` before."""
    st = _store(store)
    rec = _record(st, sweep_id)
    study = open_study(rec)
    if study is None:
        return {}
    optuna = sp._optuna()
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < min_trials or len({json.dumps(t.params, sort_keys=True, default=str) for t in done}) < 2:
        return {}
    try:
        target = (lambda t: t.values[0]) if len(rec["objectives"]) > 1 else None
        imp = optuna.importance.get_param_importances(study, target=target)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}
    return {k: float(v) for k, v in imp.items()}


def sweep_summary(sweep_id: str, *, store: Store | str | None = None) -> dict[str, Any]:
    """Everything the panel's header needs: the record, driver state, counts and the best trial(s)."""
    st = _store(store)
    rec = _record(st, sweep_id)
    info = st.get_json(sweep_key(rec["id"], "driver.json"), default={}) or {}
    study = open_study(rec)
    best = _best(rec, study)
    return {
        "id": rec["id"],
        "notebook": rec["notebook"],
        "objectives": rec["objectives"],
        "directions": rec["directions"],
        "space": rec["space"],
        "trials": rec["trials"],
        "parallel": rec["parallel"],
        "per_gpu": rec["per_gpu"],
        "sampler": rec["sampler"],
        "pruner": rec["pruner"],
        "seed": rec["seed"],
        "storage": rec["storage"],
        "study_name": rec["study_name"],
        "created_at": rec["created_at"],
        "state": _effective_state(info),
        "error": info.get("error"),
        "counts": summary_counts(study) if study is not None else {},
        "best": best[0] if len(best) == 1 else None,
        "pareto": best if len(best) > 1 else [],
    }


def sweep_ls(*, store: Store | str | None = None) -> list[dict[str, Any]]:
    st = _store(store)
    out = []
    for sid in reversed(st.list_dirs("sweeps")):
        rec = st.get_json(sweep_key(sid, "sweep.json"), default=None)
        if not rec:
            continue
        info = st.get_json(sweep_key(sid, "driver.json"), default={}) or {}
        out.append({
            "id": sid,
            "notebook": rec["notebook"],
            "objective": ",".join(rec["objectives"]),
            "state": _effective_state(info),
            "done": sum(info.get(k, 0) for k in ("n_complete", "n_pruned", "n_fail")),
            "trials": rec["trials"],
            "created_at": rec["created_at"],
        })
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows)


def format_ls(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no sweeps yet (start one with `offload sweep NOTEBOOK --space space.yaml --objective NAME`)"
    table = [["SWEEP", "STATE", "DONE", "OBJECTIVE", "NOTEBOOK", "CREATED"]]
    for r in rows:
        table.append([r["id"], r["state"], f"{r['done']}/{r['trials']}", r["objective"], Path(r["notebook"]).name,
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"]))])
    return _table(table)


def sweep_show(sweep_id: str, *, store: Store | str | None = None, limit: int | None = None) -> str:
    """The trials table sorted by objective, then the best parameters: what `offload sweep show` prints."""
    st = _store(store)
    summary = sweep_summary(sweep_id, store=st)
    rows = trials_table(summary["id"], store=st)
    names = [n for n, v in summary["space"].items() if v.get("type") != "fixed"]
    objs = summary["objectives"]
    c = summary["counts"]
    head = [
        f"sweep {summary['id']}  {summary['state']}  notebook {summary['notebook']}",
        f"objective {', '.join(f'{o} ({d})' for o, d in zip(objs, summary['directions'], strict=False))}  "
        f"trials {c.get('n_complete', 0)} complete, {c.get('n_pruned', 0)} pruned, "
        f"{c.get('n_fail', 0)} failed, {c.get('n_running', 0)} running of {summary['trials']}"
        + (f" ({c['n_requeued']} re-queued)" if c.get("n_requeued") else ""),
    ]
    if summary["error"]:
        head.append(f"error: {summary['error']}")
    table = [["#", "STATE", *objs, *names, "SECONDS", "JOB"]]
    for r in rows[:limit] if limit else rows:
        vals = r["values"] or [None] * len(objs)
        table.append([str(r["number"]), r["state"].lower(), *(_fmt(v) if v is not None else "-" for v in vals),
                      *(_fmt(r["params"].get(n, "-")) for n in names),
                      f"{r['duration_s']:.1f}" if r["duration_s"] is not None else "-", r["job_id"] or "-"])
    out = "\n".join(head) + "\n\n" + (_table(table) if rows else "no trials yet")
    best = [summary["best"]] if summary["best"] else summary["pareto"]
    if best:
        label = "best" if summary["best"] else "pareto front"
        for b in best:
            out += f"\n\n{label}: trial {b['number']} {objs[0]}={_fmt(b['value'])}\n"
            out += "\n".join(f"  {k} = {v!r}" for k, v in b["params"].items())
    return out


# Control ----------------------------------------------------------------------------------------
def sweep_stop(sweep_id: str, *, store: Store | str | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """Stop a sweep: running trials' jobs are cancelled and their points re-queued for ``resume``."""
    st = _store(store)
    rec = _record(st, sweep_id)
    sid = rec["id"]
    info = st.get_json(sweep_key(sid, "driver.json"), default={}) or {}
    if driver_alive(info):
        st.put_text(sweep_key(sid, "stop"), str(time.time()))
        end = time.time() + timeout
        while time.time() < end:
            info = st.get_json(sweep_key(sid, "driver.json"), default={}) or {}
            if info.get("state") not in ("running", "stopping"):
                return info
            time.sleep(0.2)
        raise OffloadError(f"the driver of sweep {sid} did not stop within {timeout:.0f} s",
                           hint=f"it may be busy; check `offload sweep show {sid}`")
    # No live driver (crashed or never started): reconcile and stop here.
    if info.get("state") in ("completed", "failed", "stopped"):
        return info
    d = Driver(st, sid, out=False)
    d.info = dict(info)
    d.reconcile()
    d.stop_all("sweep stopped; re-run on resume", requeue=True)
    d.write_info(state="stopped", finished_at=time.time(), **summary_counts(d.study))
    return d.info


def sweep_resume(sweep_id: str, *, store: Store | str | None = None, detach: bool = False,
                 quiet: bool = False, trials: int | None = None) -> SweepResult:
    """Continue a stopped or interrupted sweep: adopts live jobs, re-runs re-queued points."""
    st = _store(store)
    rec = _record(st, sweep_id)
    sid = rec["id"]
    info = st.get_json(sweep_key(sid, "driver.json"), default={}) or {}
    running = driver_alive(info)
    if running or _launched_alive(info):
        pid, host = (info.get("pid"), info.get("host")) if running else (info["launched_pid"], info.get("launched_host"))
        raise UsageError(f"sweep {sid} already has a running driver (pid {pid} on {host})",
                         hint=f"`offload sweep stop {sid}` first, or wait for it")
    if trials is not None:
        rec["trials"] = int(trials)
        st.put_json(sweep_key(sid, "sweep.json"), rec)
    result = SweepResult(sid, st)
    if detach:
        _spawn_driver(st, sid)
        return result
    out = Driver(st, sid, out=False if quiet else None).run()
    result.refresh()
    if out.get("state") == "failed":
        raise SweepFailed(out.get("error") or "sweep failed", hint=f"`offload sweep show {sid}` for details")
    return result


def apply_best(sweep_id: str, notebook: str | os.PathLike | None = None, *, store: Store | str | None = None,
               trial: int | None = None) -> dict[str, Any]:
    """Write the best trial's parameters into the notebook's parameters cell; returns them."""
    import nbformat

    from offload.notebook import parameters_cell, read_notebook

    st = _store(store)
    rec = _record(st, sweep_id)
    study = open_study(rec)
    rows = {r["number"]: r for r in _trial_rows(rec, study)}
    if trial is not None:
        if trial not in rows or rows[trial]["state"] != "COMPLETE":
            raise UsageError(f"trial {trial} of sweep {rec['id']} did not complete",
                             hint="pick a complete trial from `offload sweep show`")
        chosen = rows[trial]
    else:
        best = _best(rec, study)
        if not best:
            raise UsageError(f"sweep {rec['id']} has no complete trial yet", hint="wait for a trial to finish")
        if len(best) > 1:
            raise UsageError(
                f"sweep {rec['id']} has several objectives: {len(best)} trials are Pareto-optimal",
                hint=f"choose one with trial=N (--trial N): {', '.join(str(b['number']) for b in best)}",
            )
        chosen = best[0]
    path = Path(notebook or rec["notebook"])
    nb = read_notebook(path)
    found = parameters_cell(nb)
    if not found:
        raise NotebookError(f"notebook {path} has no parameters cell", hint="tag the defaults cell `parameters`")
    cell = found[1]
    cell.source = _rewrite_assignments(cell.source, chosen["params"])
    nbformat.write(nb, str(path))
    return dict(chosen["params"])


def _rewrite_assignments(source: str, values: dict[str, Any]) -> str:
    """Replace ``name = ...`` statements (keeping trailing comments); append names not found."""
    lines = source.splitlines()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    spans: dict[str, tuple[int, int, int, int]] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            spans[stmt.targets[0].id] = (stmt.lineno, stmt.end_lineno or stmt.lineno, stmt.value.col_offset,
                                         stmt.value.end_col_offset or 0)
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            spans[stmt.target.id] = (stmt.lineno, stmt.end_lineno or stmt.lineno, stmt.value.col_offset,
                                     stmt.value.end_col_offset or 0)
    missing = []
    # Edit bottom-up so earlier line numbers stay valid.
    for name, value in sorted(values.items(), key=lambda kv: -spans.get(kv[0], (0,))[0]):
        if name not in spans:
            missing.append(name)
            continue
        start, end, c0, c1 = spans[name]
        first, last = lines[start - 1], lines[end - 1]
        lines[start - 1 : end] = [first[:c0] + repr(value) + last[c1:]]
    for name in sorted(missing):
        lines.append(f"{name} = {values[name]!r}")
    return "\n".join(lines)


# CLI ---------------------------------------------------------------------------------------------
VERBS = ("ls", "show", "stop", "resume")


def add_sweep_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``offload sweep`` (run) and ``offload sweep ls|show|stop|resume``.

    The handler is ``args.func(args) -> int`` (exit code); errors are raised as OffloadError.
    """
    p = subparsers.add_parser(
        "sweep",
        help="hyperparameter sweep: trials are parametrized runs of a notebook",
        description="offload sweep NOTEBOOK --space space.yaml --objective NAME [...]\n"
        "offload sweep ls | show SWEEP [--apply-best [NB]] | stop SWEEP | resume SWEEP",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", help="a notebook to sweep, or one of: ls, show, stop, resume")
    p.add_argument("sweep_id", nargs="?", help="the sweep (for show/stop/resume)")
    g = p.add_argument_group("running a sweep")
    g.add_argument("--space", help="search space YAML file")
    g.add_argument("--objective", help="metric(s) the notebook logs, comma-separated for several")
    g.add_argument("--direction", default="maximize", help="maximize or minimize (one per objective)")
    g.add_argument("--trials", type=int, help="number of trials (default 20)")
    g.add_argument("--parallel", type=int, default=1, help="trials running at once")
    g.add_argument("--per-gpu", type=int, default=1, help="trials packed on one machine")
    g.add_argument("--sampler", default="tpe", help="tpe|random|grid|cmaes|gp (name:key=value,... for options)")
    g.add_argument("--seed", type=int)
    g.add_argument("--pruner", default=None, help="median|percentile|hyperband|successive-halving|none")
    g.add_argument("--storage", help="Optuna storage URL (default: SQLite in the offload data dir)")
    g.add_argument("--study-name")
    g.add_argument("--max-failures", type=int)
    g.add_argument("--enqueue", help="YAML file of known-good points to try first")
    g.add_argument("--backend")
    g.add_argument("--gpu")
    g.add_argument("--machine")
    g.add_argument("--spot", action="store_true")
    g.add_argument("--max-runtime", help="per trial, e.g. 2h")
    g.add_argument("--env", choices=("kernel", "isolated"))
    g.add_argument("--detach", action="store_true", help="run the driver in the background")
    g.add_argument("--quiet", action="store_true")
    g.add_argument("--json", action="store_true", help="print JSON (ls, show)")
    g.add_argument("--apply-best", nargs="?", const="", metavar="NOTEBOOK",
                   help="write the best parameters into the notebook's parameters cell")
    g.add_argument("--trial", type=int, help="with --apply-best: the trial to apply")
    p.set_defaults(func=run_sweep_cli)
    return p


def run_sweep_cli(args: argparse.Namespace) -> int:
    verb = args.target
    st = Store(getattr(args, "store", None))
    if verb == "ls":
        rows = sweep_ls(store=st)
        print(json.dumps(rows, indent=1) if args.json else format_ls(rows))
        return 0
    if verb in ("show", "stop", "resume"):
        if not args.sweep_id:
            raise UsageError(f"`offload sweep {verb}` needs a sweep id", hint="`offload sweep ls` lists them")
        if verb == "show":
            if args.json:
                sid = _record(st, args.sweep_id)["id"]
                print(json.dumps({**sweep_summary(sid, store=st), "trials": trials_table(sid, store=st),
                                  "history": history(sid, store=st), "importances": importances(sid, store=st)},
                                 indent=1, default=str))
            else:
                print(sweep_show(args.sweep_id, store=st))
            if args.apply_best is not None:
                _cli_apply(args, st)
            return 0
        if verb == "stop":
            info = sweep_stop(args.sweep_id, store=st)
            print(f"sweep {args.sweep_id}: {info.get('state', 'stopped')}")
            return 0
        res = sweep_resume(args.sweep_id, store=st, detach=args.detach, quiet=args.quiet, trials=args.trials)
        print(f"sweep {res.id}: {res.state}" if args.detach else sweep_show(res.id, store=st))
        return 0
    if args.sweep_id:
        raise UsageError(f"unexpected argument {args.sweep_id!r}",
                         hint="offload sweep NOTEBOOK --space space.yaml --objective NAME")
    if not args.space or not args.objective:
        raise UsageError("a sweep needs --space and --objective",
                         hint="offload sweep train.ipynb --space space.yaml --objective val_acc --trials 20")
    res = sweep(
        verb, space=args.space, objective=args.objective, direction=args.direction,
        trials=args.trials or 20, parallel=args.parallel, per_gpu=args.per_gpu, sampler=args.sampler,
        seed=args.seed, pruner=args.pruner, storage=args.storage, study_name=args.study_name,
        max_failures=args.max_failures, enqueue=args.enqueue, backend=args.backend, gpu=args.gpu,
        spot=args.spot, machine=args.machine, max_runtime=args.max_runtime, env=args.env,
        detach=args.detach, quiet=args.quiet, store=st,
    )
    if args.detach:
        print(f"sweep {res.id} started in the background; `offload sweep show {res.id}` to follow it")
        return 0
    print(sweep_show(res.id, store=st))
    if args.apply_best is not None:
        args.sweep_id = res.id
        _cli_apply(args, st)
    return 0


def _cli_apply(args: argparse.Namespace, st: Store) -> None:
    nb = args.apply_best or None
    params = apply_best(args.sweep_id, nb, store=st, trial=args.trial)
    print(f"wrote {', '.join(f'{k}={v!r}' for k, v in params.items())} into the parameters cell")
