"""Acting on a sweep that exists: its handle, stop, resume, apply the best parameters, and the
detached driver process (``python -m offload.sweeps.driver``) that runs it in the background.

These back ``offload sweep stop|resume|show --apply-best`` and the panel's buttons; a sweep is
started by :func:`offload.sweeps.api.sweep`.
"""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from offload.backends import procs
from offload.errors import ConflictError, NotebookError, UsageError
from offload.notebook import parameters_cell, read_notebook
from offload.paths import data_dir
from offload.store import Store
from offload.store.layout import sweep_key
from offload.sweeps.driver import Driver
from offload.sweeps.records import (
    CREATED,
    ENDED_STATES,
    FAILED,
    LIVE_STATES,
    STOPPED,
    STOPPING,
    SweepFailed,
    as_store,
    driver_alive,
    driver_info,
    effective_state,
    launched_alive,
    load_record,
    open_study,
    summary_counts,
)
from offload.sweeps.views import best_rows, sweep_summary, trial_rows, trials_table


def spawn_driver(store: Store, sweep_id: str) -> int:
    """Start the sweep's driver as a detached process (it outlives this one); returns its pid."""
    log = data_dir() / "sweeps" / f"{sweep_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "offload.sweeps.driver", store.url, sweep_id],
            stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    procs.track(proc)  # reaped when found dead: a driver that exits is never a live-looking zombie
    # Until the driver writes its own record, this one says which process to watch: a driver that
    # dies before it could say anything reads as interrupted, not as "created" forever.
    info = driver_info(store, sweep_id)
    store.put_json(sweep_key(sweep_id, "driver.json"), {
        **info, "state": CREATED, "error": None, "launched_pid": proc.pid, "launched_host": socket.gethostname(),
        "launched_at": time.time(), "log": str(log),
    })
    return proc.pid


def run_driver(store: Store, sweep_id: str, *, detach: bool, quiet: bool, sampler: Any = None,
               pruner: Any = None) -> None:
    """Run the sweep's driver here until the sweep ends (SweepFailed when it failed), or start it
    in the background (``detach``). ``sampler``/``pruner``: Optuna objects, only in-process."""
    if detach:
        spawn_driver(store, sweep_id)
        return
    info = Driver(store, sweep_id, sampler=sampler, pruner=pruner, out=False if quiet else None).run()
    if info.get("state") == FAILED:
        raise SweepFailed(info.get("error") or "sweep failed", hint=f"`offload sweep show {sweep_id}` for details")


@dataclass
class SweepResult:
    """A handle on a sweep: its id, where its study lives, and what it found so far."""

    id: str
    store: Store = field(repr=False)
    state: str = CREATED
    error: str | None = None

    def refresh(self) -> SweepResult:
        info = driver_info(self.store, self.id)
        self.state = effective_state(info)
        self.error = info.get("error")
        return self

    @property
    def record(self) -> dict[str, Any]:
        return load_record(self.store, self.id)

    @property
    def study(self) -> Any:
        return open_study(self.record)

    @property
    def best_trial(self) -> dict[str, Any] | None:
        best = best_rows(self.record, self.study)
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

    def wait(self, timeout: float | None = None, *, poll_s: float = 1.0) -> SweepResult:
        end = None if timeout is None else time.time() + timeout
        while self.refresh().state in (CREATED, *LIVE_STATES):
            if end is not None and time.time() > end:
                break
            time.sleep(poll_s)
        return self

    def stop(self) -> None:
        sweep_stop(self.id, store=self.store)

    def to_dict(self) -> dict[str, Any]:
        return sweep_summary(self.id, store=self.store)


def sweep_stop(sweep_id: str, *, store: Store | str | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """Stop a sweep: running trials' jobs are cancelled and their points re-queued for ``resume``.

    Idempotent. The stop marker is written first, so a driver that is still starting stops as
    soon as it looks; the driver honours it between two launches. Waits up to ``timeout`` for the
    driver to end and returns its state (``stopping`` if it is still cancelling trials)."""
    st = as_store(store)
    sid = load_record(st, sweep_id)["id"]
    info = driver_info(st, sid)
    if info.get("state") in ENDED_STATES and not driver_alive(info):
        return info
    st.put_text(sweep_key(sid, "stop"), str(time.time()))
    end = time.time() + timeout
    while driver_alive(info) or launched_alive(info):
        if info.get("state") in ENDED_STATES:
            return info
        if time.time() > end:
            return {**info, "state": STOPPING}  # asked; it is still cancelling its trials
        time.sleep(0.2)
        info = driver_info(st, sid)
    # No live driver (crashed or never started): reconcile and stop here.
    if info.get("state") in ENDED_STATES:
        return info
    d = Driver(st, sid, out=False)
    d.info = dict(info)
    d.reconcile()
    d.stop_all("sweep stopped; re-run on resume", requeue=True)
    d.write_info(state=STOPPED, finished_at=time.time(), **summary_counts(d.study))
    return d.info


def sweep_resume(sweep_id: str, *, store: Store | str | None = None, detach: bool = False,
                 quiet: bool = False, trials: int | None = None) -> SweepResult:
    """Continue a stopped or interrupted sweep: adopts live jobs, re-runs re-queued points.

    ``trials`` sets a new total budget."""
    st = as_store(store)
    rec = load_record(st, sweep_id)
    sid = rec["id"]
    if trials is not None and (isinstance(trials, bool) or not isinstance(trials, int) or trials < 1):
        raise UsageError(f"trials must be a whole number >= 1, got {trials!r}", hint="a new total budget, e.g. 40",
                         field="trials")
    info = driver_info(st, sid)
    running = driver_alive(info)
    if running or launched_alive(info):
        pid, host = (info.get("pid"), info.get("host")) if running else (info["launched_pid"], info.get("launched_host"))
        raise ConflictError(f"sweep {sid} already has a running driver (pid {pid} on {host})",
                         hint=f"`offload sweep stop {sid}` first, or wait for it")
    if trials is not None:
        rec["trials"] = trials
        st.put_json(sweep_key(sid, "sweep.json"), rec)
    st.delete(sweep_key(sid, "stop"))  # the previous stop is honoured; this run starts without one
    run_driver(st, sid, detach=detach, quiet=quiet)
    return SweepResult(sid, st).refresh()


def apply_best(sweep_id: str, notebook: str | os.PathLike | None = None, *, store: Store | str | None = None,
               trial: int | None = None) -> dict[str, Any]:
    """Write the best trial's parameters into the notebook's parameters cell; returns them."""
    st = as_store(store)
    rec = load_record(st, sweep_id)
    study = open_study(rec)
    rows = {r["number"]: r for r in trial_rows(rec, study)}
    if trial is not None:
        if trial not in rows or rows[trial]["state"] != "COMPLETE":
            raise UsageError(f"trial {trial} of sweep {rec['id']} did not complete",
                             hint="pick a complete trial from `offload sweep show`", field="trial")
        chosen = rows[trial]
    else:
        best = best_rows(rec, study)
        if not best:
            raise UsageError(f"sweep {rec['id']} has no complete trial yet", hint="wait for a trial to finish",
                             field="trial")
        if len(best) > 1:
            raise UsageError(
                f"sweep {rec['id']} has several objectives: {len(best)} trials are Pareto-optimal",
                hint=f"choose one with trial=N (--trial N): {', '.join(str(b['number']) for b in best)}",
                field="trial",
            )
        chosen = best[0]
    path = Path(notebook or rec["notebook"])
    nb = read_notebook(path)
    found = parameters_cell(nb)
    if not found:
        raise NotebookError(f"notebook {path} has no parameters cell", hint="tag the defaults cell `parameters`")
    cell = found[1]
    cell.source = rewrite_assignments(cell.source, chosen["params"])
    nbformat.write(nb, str(path))
    return dict(chosen["params"])


def rewrite_assignments(source: str, values: dict[str, Any]) -> str:
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
