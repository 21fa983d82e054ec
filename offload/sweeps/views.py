"""Reading sweeps back: JSON-able views for the JupyterLab panel and the text `offload sweep` prints.

``sweep_summary``, ``trials_table``, ``history`` and ``importances`` back the panel (through
``jupyter_ext``) and ``offload sweep show --json``; ``sweep_show`` and ``format_ls`` are the
terminal's. Nothing here writes: every view is rebuilt from the store records and the study.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from offload.store import Store
from offload.store.layout import SWEEPS, sweep_key
from offload.sweeps import space as sp
from offload.sweeps.records import (
    REQUEUED,
    as_store,
    driver_info,
    effective_state,
    load_record,
    open_study,
    summary_counts,
)

# Optuna trial states, best first in a table (failed and running last).
_ORDER = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "WAITING": 3, "FAIL": 4}


def trial_rows(rec: dict[str, Any], study: Any) -> list[dict[str, Any]]:
    """Every trial of the study as a JSON-able dict, fixed parameters included, in study order."""
    if study is None:
        return []
    fixed = {k: v["value"] for k, v in rec["space"].items() if v.get("type") == "fixed"}
    rows = []
    for t in study.get_trials(deepcopy=False):
        values = list(t.values) if t.values is not None else None
        dur = None
        if t.datetime_start and t.datetime_complete:
            dur = (t.datetime_complete - t.datetime_start).total_seconds()
        rows.append({
            "number": t.number,
            "state": t.state.name,
            "params": {**t.params, **fixed},
            "values": values,
            "value": values[0] if values else None,
            "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
            "job_id": t.user_attrs.get("job_id"),
            "error": t.user_attrs.get("error"),
            "requeued": bool(t.user_attrs.get(REQUEUED)),
            "started_at": t.datetime_start.timestamp() if t.datetime_start else None,
            "finished_at": t.datetime_complete.timestamp() if t.datetime_complete else None,
            "duration_s": dur,
        })
    return rows


def best_rows(rec: dict[str, Any], study: Any) -> list[dict[str, Any]]:
    """The best trial (one objective) or the Pareto front (several), as :func:`trial_rows` rows."""
    if study is None:
        return []
    rows = {r["number"]: r for r in trial_rows(rec, study)}
    try:
        best = study.best_trials if len(rec["objectives"]) > 1 else [study.best_trial]
    except ValueError:
        return []
    return [rows[t.number] for t in best]


def trials_table(sweep_id: str, *, store: Store | str | None = None) -> list[dict[str, Any]]:
    """Every trial as a JSON-able dict, best first (failed and running last)."""
    st = as_store(store)
    rec = load_record(st, sweep_id)
    rows = trial_rows(rec, open_study(rec))
    sign = -1 if rec["directions"][0] == "maximize" else 1
    return sorted(rows, key=lambda r: (_ORDER.get(r["state"], 5),
                                       sign * r["value"] if r["value"] is not None else 0, r["number"]))


def history(sweep_id: str, *, store: Store | str | None = None) -> list[dict[str, Any]]:
    """Optimization history: completed trials in order with the best value so far (first objective)."""
    st = as_store(store)
    rec = load_record(st, sweep_id)
    maximize = rec["directions"][0] == "maximize"
    best = None
    out = []
    for r in sorted(trial_rows(rec, open_study(rec)), key=lambda r: r["number"]):
        if r["state"] != "COMPLETE":
            continue
        v = r["value"]
        best = v if best is None or (v > best if maximize else v < best) else best
        out.append({"number": r["number"], "value": v, "best": best, "finished_at": r["finished_at"]})
    return out


def importances(sweep_id: str, *, store: Store | str | None = None, min_trials: int = 4) -> dict[str, float]:
    """Parameter importances (fANOVA) once ``min_trials`` trials completed; ``{}`` before."""
    st = as_store(store)
    rec = load_record(st, sweep_id)
    study = open_study(rec)
    if study is None:
        return {}
    optuna = sp.optuna_module()
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
    st = as_store(store)
    rec = load_record(st, sweep_id)
    info = driver_info(st, rec["id"])
    study = open_study(rec)
    best = best_rows(rec, study)
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
        "state": effective_state(info),
        "error": info.get("error"),
        "counts": summary_counts(study) if study is not None else {},
        "best": best[0] if len(best) == 1 else None,
        "pareto": best if len(best) > 1 else [],
    }


def sweep_ls(*, store: Store | str | None = None) -> list[dict[str, Any]]:
    """Every sweep in the store, newest first, with its state and progress."""
    st = as_store(store)
    out = []
    for sid in reversed(st.list_dirs(SWEEPS)):
        rec = st.get_json(sweep_key(sid, "sweep.json"), default=None)
        if not rec:
            continue
        info = driver_info(st, sid)
        out.append({
            "id": sid,
            "notebook": rec["notebook"],
            "objective": ",".join(rec["objectives"]),
            "state": effective_state(info),
            "done": sum(info.get(k, 0) for k in ("n_complete", "n_pruned", "n_fail")),
            "trials": rec["trials"],
            "created_at": rec["created_at"],
        })
    return out


# Text for the terminal ---------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows)


def format_ls(rows: list[dict[str, Any]]) -> str:
    """:func:`sweep_ls` rows as the table `offload sweep ls` prints."""
    if not rows:
        return "no sweeps yet (start one with `offload sweep NOTEBOOK --space space.yaml --objective NAME`)"
    table = [["SWEEP", "STATE", "DONE", "OBJECTIVE", "NOTEBOOK", "CREATED"]]
    for r in rows:
        table.append([r["id"], r["state"], f"{r['done']}/{r['trials']}", r["objective"], Path(r["notebook"]).name,
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"]))])
    return _table(table)


def sweep_show(sweep_id: str, *, store: Store | str | None = None, limit: int | None = None) -> str:
    """The trials table sorted by objective, then the best parameters: what `offload sweep show` prints."""
    st = as_store(store)
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
