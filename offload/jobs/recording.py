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
from offload.spec import JobSpec
from offload.store import Store

log = logging.getLogger("offload")

__all__ = ["check_webhook", "on_rerun", "on_submit"]

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
