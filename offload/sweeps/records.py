"""What a sweep leaves behind, read back: its store records, its Optuna study and its jobs.

Store objects (one writer each), under ``sweeps/<id>/`` (:func:`offload.store.layout.sweep_key`):
``sweep.json`` (the client, once), ``driver.json`` and ``trials/<n>.json`` (the driver), ``stop``
(``offload sweep stop``), ``packs/...`` (:mod:`offload.sweeps.packing`). Everything here is shared
by the driver, the views and the control functions; nothing here starts a job or a driver.
"""

from __future__ import annotations

import collections
import enum
import socket
import time
from typing import Any

from offload.backends import procs
from offload.errors import JobNotFound, OffloadError, StoreError
from offload.jobs import Job
from offload.paths import data_dir
from offload.store import Store
from offload.store.layout import JOBS, SWEEPS, job_key, sweep_key
from offload.sweeps import space as sp

STALE_S = 30.0  # a driver whose heartbeat is older than this is gone

class SweepState(str, enum.Enum):
    """A sweep's own life (``driver.json`` "state"), not a job's (those are JobState)."""

    CREATED = "created"
    RUNNING = "running"
    STOPPING = "stopping"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # never written: what a reader calls a driver that died (resume reconciles)

    def __str__(self) -> str:
        return self.value


CREATED, RUNNING, STOPPING, COMPLETED, STOPPED, FAILED, INTERRUPTED = SweepState
LIVE_STATES = (RUNNING, STOPPING)
ENDED_STATES = (COMPLETED, FAILED, STOPPED)

REQUEUED = "offload_requeued"  # trial user attr: this FAIL does not count; its point runs again


class SweepFailed(OffloadError):
    """The sweep stopped because too many trials failed."""

    exit_code = 6


def as_store(store: Store | str | None) -> Store:
    return store if isinstance(store, Store) else Store(store)


def load_record(store: Store, sweep_id: str) -> dict[str, Any]:
    """``sweep.json`` of ``sweep_id`` (or of the one sweep whose id starts with it)."""
    rec = store.get_json(sweep_key(sweep_id, "sweep.json"), default=None)
    if rec is None:
        known = store.list_dirs(SWEEPS)
        close = [s for s in known if s.startswith(sweep_id)] if sweep_id else []
        if len(close) == 1:
            return store.get_json(sweep_key(close[0], "sweep.json"))
        raise JobNotFound(
            f"no sweep {sweep_id!r} in store {store.url}",
            hint="`offload sweep ls` lists sweeps" + (f"; did you mean {close[0]}?" if close else ""),
            field="sweep_id",
        )
    return rec


def driver_info(store: Store, sweep_id: str) -> dict[str, Any]:
    """``driver.json``: what the driver last said (``{}`` before it said anything)."""
    return store.get_json(sweep_key(sweep_id, "driver.json"), default={}) or {}


# The Optuna study ------------------------------------------------------------------------------
def default_storage(sweep_id: str) -> str:
    """Optuna's journal file, one per sweep: safe for the driver and the panel's readers in
    parallel processes (Optuna advises against SQLite there), on one machine or a shared
    filesystem; ``optuna-dashboard <file>`` opens it."""
    path = data_dir() / "optuna" / f"{sweep_id}.journal"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"journal:{path}"


def make_storage(url: str) -> Any:
    """SQLite waits for a lock instead of failing when several drivers share one file.

    A new SQLite file gets its schema from whichever process opens it first; when two do at once
    (a driver just started and the panel reading the sweep, or two first sweeps), one of them
    fails on Optuna's schema set-up. It then opens the file again, which finds the schema made."""
    optuna = sp.optuna_module()
    if url.startswith("sqlite:"):
        # sqlalchemy comes with optuna (the optional `sweep` extra): imported only when a sweep runs
        from sqlalchemy.exc import IntegrityError, OperationalError

        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
            except (IntegrityError, OperationalError) as exc:
                if attempt == 4 or not _schema_race(exc):
                    raise
                time.sleep(0.2 * (attempt + 1))
    if url.startswith("journal:"):
        # part of optuna (the optional `sweep` extra): imported only when a sweep runs
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.split(":", 1)[1]))
    return url


def _schema_race(exc: Exception) -> bool:
    text = str(exc).lower()
    return ("alembic_version" in text or "already exists" in text or "unique constraint" in text
            or "database is locked" in text)


def open_study(rec: dict[str, Any], *, create: bool = False) -> Any:
    """The sweep's Optuna study (None while nobody has created it); a storage that cannot be
    opened is a StoreError naming it, not a database traceback."""
    optuna = sp.optuna_module()
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
            field="storage",
        ) from None


def summary_counts(study: Any) -> dict[str, int]:
    """Trials by state; a re-queued FAIL (stopped, its point runs again) is not a failure and does
    not count against the budget, so it has its own count."""
    counts: collections.Counter[str] = collections.Counter()
    for t in study.get_trials(deepcopy=False):
        state = t.state.name.lower()
        counts["requeued" if state == "fail" and t.user_attrs.get(REQUEUED) else state] += 1
    return {"n_" + k: counts.get(k, 0) for k in ("complete", "pruned", "fail", "running", "waiting", "requeued")}


# Is the driver alive? ----------------------------------------------------------------------------
def pid_alive(pid: int | None, host: str | None) -> bool:
    if not pid or host != socket.gethostname():
        return True  # another machine: cannot tell, trust the heartbeat
    return procs.pid_alive(int(pid))  # a dead driver its parent has not reaped is a zombie: dead


def driver_alive(info: dict[str, Any]) -> bool:
    """A driver counts as alive while its heartbeat is fresh and its process exists."""
    if info.get("state") not in LIVE_STATES:
        return False
    if time.time() - float(info.get("heartbeat") or 0) > STALE_S:
        return False
    return pid_alive(info.get("pid"), info.get("host"))


def launched_alive(info: dict[str, Any]) -> bool:
    """A background driver was started and has not yet written its own record."""
    return (info.get("state") or CREATED) == CREATED and bool(info.get("launched_pid")) and pid_alive(
        info["launched_pid"], info.get("launched_host"))


def effective_state(info: dict[str, Any]) -> str:
    """The sweep's state as a reader should show it: a dead driver's sweep is ``interrupted``."""
    state = info.get("state") or CREATED
    if state in LIVE_STATES and not driver_alive(info):
        return INTERRUPTED  # the driver died: `resume` reconciles
    if state == CREATED and info.get("launched_pid") and not pid_alive(info["launched_pid"], info.get("launched_host")):
        return INTERRUPTED  # it died before it started (its log is in driver.json's "log")
    return state


# The sweep's jobs ------------------------------------------------------------------------------
def open_job(job_id: str, store: Store) -> Job:
    return Job(job_id, store=store)


def job_error(job: Any) -> str:
    status = job.status or {}
    err = status.get("error") or {}
    if err.get("ename"):
        return f"{err.get('ename')}: {err.get('evalue', '')}".strip()
    return str(status.get("reason") or f"job ended {job.state}")


def safe_state(job: Any) -> str | None:
    """The job's state now, or None when it cannot be read."""
    try:
        job.refresh()
        return job.state
    except OffloadError:
        return None


def sweep_job_specs(store: Store, sweep_id: str) -> dict[str, dict[str, Any]]:
    """Job id -> spec of every job labelled with this sweep (trials and packs)."""
    out = {}
    for job_id in store.list_dirs(JOBS):
        spec = store.get_json(job_key(job_id, "spec.json"), default=None)
        if spec and (spec.get("labels") or {}).get("sweep") == sweep_id:
            out[job_id] = spec
    return out


def find_sweep_jobs(store: Store, sweep_id: str) -> dict[int, list[str]]:
    """Trial number -> job ids carrying this sweep's labels (the ground truth after a crash)."""
    out: dict[int, list[str]] = collections.defaultdict(list)
    for job_id, spec in sweep_job_specs(store, sweep_id).items():
        trial = str(spec["labels"].get("trial", ""))
        if trial.isdigit():
            out[int(trial)].append(job_id)
    return out
