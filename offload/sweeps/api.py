"""Sweeps: an Optuna study whose trials are parametrized runs of a notebook.

``offload.sweep("train.ipynb", space="space.yaml", objective="val_acc", trials=50, parallel=8)``
samples parameters, runs each point as a job of kind ``trial`` (on any backend), reads the
objective from the metric the notebook logs with ``offload.log_metric``, prunes trials whose
intermediate values (logged with ``step=``) are bad, and keeps going until the budget is spent.

State lives in two places, both rebuildable views of what happened: the sweep record in the store
(``sweeps/<id>/sweep.json``, ``driver.json``, ``trials/<n>.json``) and the Optuna storage (SQLite
under :func:`offload.paths.data_dir` by default, or any Optuna storage URL for a study shared by
several drivers or inspected with optuna-dashboard).

This module starts sweeps (:func:`sweep`, :func:`create_sweep`); reading them back is
:mod:`offload.sweeps.views`, acting on them :mod:`offload.sweeps.control`. Every bad input raises
a :class:`~offload.errors.UsageError` whose ``field`` names the REST body field it is about
(``space.<parameter>`` for one parameter of the space).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from offload.backends.base import available_backends
from offload.errors import NotebookError, UsageError
from offload.jobs.budget import parse_budget
from offload.jobs.notify import check_webhook
from offload.notebook import declared_parameters, read_notebook
from offload.spec import new_job_id, parse_duration
from offload.store import Store
from offload.store.layout import sweep_key
from offload.sweeps import space as sp
from offload.sweeps.control import SweepResult, run_driver
from offload.sweeps.records import SweepFailed, as_store, default_storage, open_study

__all__ = ["SweepFailed", "SweepResult", "create_sweep", "open_study", "sweep"]


def _notebook_parameters(notebook: Path) -> dict[str, Any]:
    nb = read_notebook(notebook)
    declared = declared_parameters(nb)
    if not declared:
        raise NotebookError(
            f"notebook {notebook} has no parameters cell",
            hint="tag the cell that sets the defaults with `parameters` (cell toolbar > Add tag)",
        )
    return declared


def _whole(name: str, value: Any, *, low: int | None = 1, hint: str | None = None) -> None:
    """``value`` must be a whole number (>= ``low``); the error names the request field ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        need = "a whole number" + (f" >= {low}" if low is not None else "")
        raise UsageError(f"{name} must be {need}, got {value!r}",
                         hint=hint or f"for example --{name.replace('_', '-')} 4", field=name)


# The public entry point -------------------------------------------------------------------------
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
    budget: float | str | None = None,
    detach: bool = False,
    quiet: bool = False,
    sweep_id: str | None = None,
    pack: bool = False,
    notify: str | None = None,
) -> SweepResult:
    """Run an Optuna study whose trials are jobs running ``notebook`` with sampled parameters.

    ``budget`` (dollars) caps what all its trials together may cost: a trial whose estimate
    would go over it is not launched and the sweep stops. Blocks until the sweep ends (``detach=True`` starts a background driver and returns at once).
    ``notify``: a webhook told when the sweep ends (Slack-compatible; "off"; default: the
    ``notify.webhook`` setting); with MLflow tracking on, the sweep is a parent run of its trials.
    Raises :class:`SweepFailed` when ``max_failures`` trials failed; any bad input raises an
    :class:`~offload.errors.UsageError` before a job is started.
    """
    st = as_store(store)
    rec = create_sweep(
        notebook, space=space, objective=objective, direction=direction, trials=trials,
        parallel=parallel, per_gpu=per_gpu, sampler=sampler, seed=seed, pruner=pruner,
        storage=storage, study_name=study_name, max_failures=max_failures, enqueue=enqueue,
        backend=backend, gpu=gpu, spot=spot, machine=machine, max_runtime=max_runtime, env=env,
        data=data, backend_options=backend_options, retries=retries, store=st, sweep_id=sweep_id, budget=budget,
        pack=pack, notify=notify,
    )
    run_driver(
        st, rec["id"], detach=detach, quiet=quiet,
        sampler=None if isinstance(sampler, str) else sampler,
        pruner=None if (pruner is None or isinstance(pruner, str)) else pruner,
    )
    return SweepResult(rec["id"], st).refresh()


def create_sweep(notebook: str | os.PathLike, *, space: Any, objective: Any, direction: Any, trials: int,
                 parallel: int, per_gpu: int, sampler: Any, seed: int | None, pruner: Any,
                 storage: str | None, study_name: str | None, max_failures: int | None, enqueue: Any,
                 backend: str | None, gpu: str | None, spot: bool, machine: str | None,
                 max_runtime: Any, env: str | None, data: list[str] | None,
                 backend_options: dict[str, Any] | None, retries: int, store: Store,
                 sweep_id: str | None = None, pack: bool = False, budget: Any = None, notify: str | None = None) -> dict[str, Any]:
    """Validate everything and write ``sweeps/<id>/sweep.json``; no job is started.

    Each bad input raises a UsageError (SpaceError for the space) whose ``field`` is the REST body
    field it is about: ``space.<name>``, ``space``, ``trials``, ``objective``, ``backend`` ..."""
    nb = Path(notebook).expanduser().resolve()
    sp_ = sp.load_space(space)
    sp.check_against_notebook(sp_, _notebook_parameters(nb))
    names, dirs = sp.parse_objectives(objective, direction)
    for name, value in (("trials", trials), ("parallel", parallel), ("per_gpu", per_gpu)):
        _whole(name, value)
    if max_failures is not None:
        _whole("max_failures", max_failures, hint="for example --max-failures 3")
    if seed is not None:
        _whole("seed", seed, low=None, hint="for example --seed 0")
    if backend is not None and backend not in available_backends():
        raise UsageError(f"unknown backend {backend!r}", field="backend",
                         hint=f"available backends: {', '.join(sorted(available_backends())) or 'none'}")
    if max_runtime is not None:
        try:
            parse_duration(max_runtime)
        except UsageError as exc:
            raise UsageError(f"max_runtime: {exc.message}", hint=exc.hint, field="max_runtime") from None
    # Build them once now so a bad name fails here, not in a background driver.
    sp.make_sampler(sampler, seed=seed, space=sp_, n_objectives=len(names))
    sp.make_pruner(pruner, n_objectives=len(names))
    points = sp.load_enqueue(enqueue, sp_)
    check_webhook(notify)  # the sweep's end-of-run webhook: an http(s) URL or "off"
    sid = sweep_id or new_job_id()
    submit: dict[str, Any] = {"spot": bool(spot)}
    for k, v in (("backend", backend), ("gpu", gpu), ("machine", machine), ("max_runtime", max_runtime),
                 ("env", env), ("data", data), ("backend_options", backend_options), ("notify", notify)):
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
        "storage": storage or default_storage(sid),
        "study_name": study_name or f"offload-{sid}",
        "max_failures": max_failures,
        "retries": retries,
        "budget": parse_budget(budget),  # USD for all its trials together (offload/jobs/budget.py)
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

