"""Keeping the job index current, incrementally, and listing jobs from it.

A pass (:func:`sync_store`) lists the job ids under ``jobs/`` (one listing, not one read per job),
reads the jobs the index has never seen, re-reads and reconciles only those it last saw active,
and drops those gone from the store. A finished job is read once, ever: its status, spec and last
metrics do not change. ``full=True`` (``offload ls --refresh``) re-reads every job. Reads run in a
small thread pool: on ``gs://`` each is a round trip.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from offload.errors import OffloadError
from offload.jobs import index
from offload.jobs.job import Job
from offload.metrics import last_values, parse_metrics
from offload.spec import FINAL_STATES, JobSpec, JobState
from offload.store import Store, as_store, known_stores, layout

READ_THREADS = 8
CHUNK = 1000  # jobs read and indexed together
_specs: dict[tuple[str, str], JobSpec] = {}  # specs never change: read each once per process
_specs_lock = threading.Lock()


@dataclass(frozen=True, kw_only=True)
class Change:
    """A job whose indexed row this pass wrote: its state before (None: new to the index) and now."""

    id: str
    before: str | None
    after: str | None


@dataclass(kw_only=True)
class SyncReport:
    store: str
    scanned: bool  # the store's job ids were listed (new and deleted jobs seen)
    read: int = 0  # jobs read from the store
    changes: list[Change] = field(default_factory=list)  # rows new to the index or in another state
    seen: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # every row read: (before, now)
    removed: list[str] = field(default_factory=list)
    active: int = 0  # jobs still queued, provisioning or running after the pass


def _spec(store: Store, job_id: str) -> JobSpec:
    key = (store.url, job_id)
    spec = _specs.get(key)
    if spec is None:
        spec = JobSpec.from_dict(store.get_json(layout.job_key(job_id, "spec.json")))
        with _specs_lock:
            if len(_specs) > 20_000:
                _specs.clear()
            _specs[key] = spec
    return spec


def read_row(store: Store, job_id: str) -> dict[str, Any] | None:
    """The index row of one job as the store has it now; an active job is reconciled with its
    backend (a runner that is gone becomes ``lost``). None: no spec (not a job, or half-written)."""
    try:
        spec = _spec(store, job_id)
    except KeyError:
        return None
    status = store.get_json(layout.job_key(job_id, "status.json"), None)
    if not (status and status.get("state") in FINAL_STATES):
        reconciled = store.get_json(layout.job_key(job_id, "reconciled.json"), None)
        if reconciled:
            status = {**(status or {}), **reconciled}
        else:
            status = Job(job_id, store=store, spec=spec).refresh()
    state = status.get("state")
    shows_metrics = state in FINAL_STATES or state == JobState.RUNNING
    metrics: dict[str, Any] = {}
    if shows_metrics:
        try:
            metrics = last_values(parse_metrics(store.get_text(layout.job_key(job_id, "metrics.jsonl"))))
        except KeyError:
            pass
    return index.row_of(spec, store.url, status, metrics)


def sync_store(store: Store | str | None = None, *, full: bool = False, scan: bool = True,
               watch: Collection[str] = (), on_first_chunk: Callable[[], None] | None = None) -> SyncReport:
    """Bring the index up to date with one store.

    ``scan=False`` skips listing the store's job ids (only active jobs are re-read); ``watch``
    names more jobs to re-read whatever the index says (a caller's own view of active jobs).
    Jobs are read newest first, ``CHUNK`` at a time, each chunk indexed as it is read:
    ``on_first_chunk`` is called once the newest are in (a server that never indexed this store
    answers its first list then, and the rest fills in while it catches up).
    """
    store = as_store(store)
    known = index.states(store.url)
    report = SyncReport(store=store.url, scanned=bool(scan or full or not known))
    todo: list[str]
    if report.scanned:
        present = store.list_dirs(layout.JOBS)
        present_set = set(present)
        report.removed = [i for i in known if i not in present_set]
        index.remove(store.url, report.removed)
        todo = list(present) if full else [i for i in present if i not in known]
    else:
        todo = []
    queued = set(todo)
    for job_id in [*index.active_ids(store.url), *watch]:
        if job_id not in queued and job_id not in report.removed:
            queued.add(job_id)
            todo.append(job_id)
    todo.sort(reverse=True)  # ids are time-sortable: the newest (the first page) first

    def one(job_id: str) -> dict[str, Any] | None:
        try:
            return read_row(store, job_id)
        except OffloadError:
            return None

    pool = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="offload-index") if len(todo) > 4 else None
    try:
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start:start + CHUNK]
            rows = list(pool.map(one, chunk)) if pool else [one(i) for i in chunk]
            fresh = [r for r in rows if r is not None]
            index.upsert_many(fresh)
            for r in fresh:
                before = known.get(r["id"])
                report.seen[r["id"]] = (before, r["state"])
                if r["id"] not in known or before != r["state"]:
                    report.changes.append(Change(id=r["id"], before=before, after=r["state"]))
            if start == 0 and on_first_chunk is not None:
                on_first_chunk()
    finally:
        if pool is not None:
            pool.shutdown()
    index.mark_synced(store.url, full=full)
    report.read = len(todo)
    report.active = len(index.active_ids(store.url))
    return report


def list_jobs(*, store: Store | str | None = None, refresh: bool = False, limit: int | None = None) -> list[dict[str, Any]]:
    """Newest first, from the index after an incremental pass (``refresh``: a full re-read).

    Without ``store``: the jobs of every store this machine knows (the default one and those
    configured for backends), so `offload ls` shows local and cloud jobs together.
    """
    stores = [as_store(store)] if store is not None else known_stores()
    for st in stores:
        sync_store(st, full=refresh)
    return index.rows(stores[0].url if store is not None else None, limit=limit)


def page_jobs(*, store: Store | str | None = None, limit: int = 50, cursor: str | None = None,
              where: index.Filter | None = None, order: index.Order | None = None,
              sync: bool = True) -> index.Page:
    """One page of jobs of one store (see :func:`offload.jobs.index.page`), after a pass."""
    st = as_store(store)
    if sync:
        sync_store(st)
    return index.page(st.url, limit=limit, cursor=cursor, where=where, order=order)
