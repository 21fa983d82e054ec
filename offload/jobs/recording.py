"""What a submit records about a job beside its spec, after the launch: where its code came from
(:mod:`offload.jobs.provenance`), its MLflow run (:mod:`offload.jobs.tracking`) and where to say
that it ended (:mod:`offload.jobs.notify`). Each is a record, never a reason for a launched job
to fail: a problem is said (``say``) and the job runs.

:mod:`offload.jobs.submit` calls :func:`on_submit` and :func:`on_rerun`, one line each.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from offload.jobs import notify, provenance, tracking
from offload.jobs.job import Job
from offload.jobs.observe import observe, observe_again
from offload.spec import FINAL_STATES, JobSpec, JobState
from offload.store import Store, layout

log = logging.getLogger("offload")

__all__ = ["check_webhook", "observe_pass", "on_rerun", "on_submit", "sweep_ended", "sweep_started"]

check_webhook = notify.check_webhook  # submit checks its ``notify`` argument before anything else


def on_submit(store: Store, spec: JobSpec, *, project_root: str | Path, webhook: str | None = None,
              say: Any = None) -> None:
    say = say or log.info
    prov = provenance.capture(project_root)
    try:
        provenance.record(store, spec.id, prov)
    except Exception as exc:
        say(f"warning: could not record the job's provenance: {exc}")
    _side_records(store, spec, prov, webhook=webhook, say=say)


def on_rerun(store: Store, old: JobSpec, new: JobSpec, *, say: Any = None) -> None:
    say = say or log.info
    prov = None
    try:
        prov = provenance.record_rerun(store, old.id, new.id)
    except Exception as exc:
        say(f"warning: could not record the rerun's provenance: {exc}")
    try:
        webhook = notify.check_webhook(None)  # a rerun notifies as the settings say now
    except Exception as exc:
        say(f"warning: no end-of-job notification: {exc}")
        webhook = None
    _side_records(store, new, prov, webhook=webhook, say=say)


def _side_records(store: Store, spec: JobSpec, prov: dict[str, Any] | None, *, webhook: str | None, say: Any) -> None:
    try:
        notify.record_job(store, spec, webhook=webhook)
    except Exception as exc:
        say(f"warning: no end-of-job notification: {exc}")
    try:
        run = tracking.start_job_run(store, spec, provenance=prov)
        if run:
            say(f"MLflow run {run['run_id']}: {run.get('url') or run['tracking_uri']}")
    except Exception as exc:
        say(f"warning: the job is not recorded in MLflow: {exc}")


def observe_pass(store: Store, seen: dict[str, tuple[Any, Any]]) -> None:
    """After a watcher pass (``SyncReport.seen``: job id -> (state before, state now)): mirror the
    running jobs to MLflow and announce the jobs that ended in it. Never raises."""
    for job_id, (before, after) in seen.items():
        if after == JobState.RUNNING or (after in FINAL_STATES and before != after):
            try:
                job = Job(job_id, store=store, record=False)  # the pass has reconciled it already
                st = store.get_json(job.key("status.json"), None) or {}
                if st.get("state") != after:  # concluded by the client (lost, cancelled before start)
                    st = {**st, **(store.get_json(job.key("reconciled.json"), None) or {})}
                observe(job, {**st, "state": after})
            except Exception as exc:  # a job that cannot be read now is read at the next pass
                log.debug("observe %s: %s", job_id, exc)
    observe_again()


# sweeps: the driver is the one observer of its sweep ---------------------------------------------
def sweep_started(store: Store, sweep_id: str, rec: dict[str, Any], *, say: Any) -> None:
    """The sweep's webhook record and MLflow parent run (once; a resumed driver finds them)."""
    try:
        notify.record_sweep(store, sweep_id, webhook=(rec.get("submit") or {}).get("notify"))
    except Exception as exc:
        say(f"warning: no end-of-sweep notification: {exc}")
    try:
        run = tracking.start_sweep_run(store, sweep_id, rec)
        if run:
            say(f"MLflow parent run {run['run_id']}" + (f": {run['url']}" if run.get("url") else ""))
    except Exception as exc:
        say(f"warning: the sweep is not recorded in MLflow: {exc}")


def _best(study: Any, objectives: list[str]) -> dict[str, Any] | None:
    if len(objectives) != 1:
        return None
    try:
        t = study.best_trial
    except (ValueError, RuntimeError):  # no completed trial
        return None
    return {"values": {objectives[0]: t.value}, "params": dict(t.params), "number": t.number}


def sweep_ended(store: Store, sweep_id: str, rec: dict[str, Any], *, state: str, error: str | None,
                counts: dict[str, Any], study: Any, say: Any) -> None:
    """Close the MLflow parent run and announce the end (when the sweep asked for it)."""
    best = _best(study, rec.get("objectives") or [])
    shown = {k[2:]: v for k, v in counts.items() if v and k in ("n_complete", "n_pruned", "n_fail")}
    url = None
    try:
        tracking.end_sweep_run(store, sweep_id, state=str(state), best=best, counts=counts)
        url = (store.get_json(layout.sweep_key(sweep_id, layout.MLFLOW), None) or {}).get("url")
    except Exception as exc:
        say(f"warning: could not close the sweep's MLflow run: {exc}")
    if str(state) not in ("completed", "failed", "stopped"):
        return
    try:
        notify.sweep_ended(store, sweep_id, state=str(state), notebook=Path(rec["notebook"]).name, error=error,
                           counts=shown, best=best, run_url=url)
    except Exception as exc:
        say(f"warning: could not send the end-of-sweep webhook: {exc}")
