"""What a process watching a job does beside showing it: mirror it to MLflow and announce its end.

:func:`observe` is called by every client-side watcher with the status it just read: the Jupyter
server's watcher pass, ``Job.wait()`` and ``Job.iter_logs(follow=True)`` (``offload run``,
``offload logs -f``), the sweep driver for its trials. It is cheap for a job without an MLflow run
or a webhook (one cached read), sends new metric points at most every :data:`MIRROR_EVERY_S`
while the job runs, and at the end mirrors the rest and sends the webhook (once in all, see
:mod:`offload.jobs.notify`). It never raises: a tracking server or webhook that is down is logged
once per job, and the job's own life goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from offload.jobs import notify, tracking
from offload.spec import FINAL_STATES

log = logging.getLogger("offload")

__all__ = ["MIRROR_EVERY_S", "observe", "observe_again"]

MIRROR_EVERY_S = 1.0
KEEP_TRYING_S = 3600.0  # an ended job's run is sent again for this long (the tracking server down)
_lock = threading.Lock()
_last: dict[tuple[str, str], float] = {}
_done: set[tuple[str, str]] = set()
_warned: set[tuple[str, str, str]] = set()
# Jobs seen ended before their submitter recorded the MLflow run (a quick job submitted through
# the server: the run is created after the launch): looked at again by observe_again.
_later: dict[tuple[str, str], tuple[Any, dict[str, Any], float, float]] = {}  # job, status, last try, first


def observe(job: Any, status: dict[str, Any] | None = None) -> None:
    """Mirror ``job`` (an :class:`offload.jobs.Job`) to MLflow and announce its end; never raises."""
    key = (job.store.url, job.id)
    st = status if status is not None else job.last_status
    final = st.get("state") in FINAL_STATES and not st.get("retried_as")
    now = time.monotonic()
    with _lock:
        if key in _done or (not final and now - _last.get(key, 0.0) < MIRROR_EVERY_S):
            return
        _last[key] = now
        if final:
            _done.add(key)
            _last.pop(key, None)
    url = _mirror(job, st, final=final)
    if final:
        try:
            notify.job_ended(job, st, run_url=url)
        except Exception as exc:
            _warn(key, "notify", f"job {job.id}: could not send the end-of-job webhook: {exc}")


def _mirror(job: Any, st: dict[str, Any], *, final: bool) -> str | None:
    """Send the job to its MLflow run; the run's URL. An ended job whose run its submitter has
    not recorded yet (a quick job submitted through the server, where the run is created just
    after the launch), or whose end could not be sent (the tracking server down), is kept for
    :func:`observe_again`."""
    key = (job.store.url, job.id)
    try:
        if tracking.mirror(job, st):
            with _lock:
                _later.pop(key, None)
            return (tracking.job_run(job.store, job.id) or {}).get("url")
        if (final and tracking.tracking_uri() and job.spec.kind in tracking.TRACKED_KINDS
                and time.time() - float(job.spec.created_at) < tracking.RECORD_WAIT_S):
            _keep(key, job, st)
    except Exception as exc:
        _warn(key, "mlflow", f"job {job.id}: could not send it to MLflow: {exc}")
        if final:
            _keep(key, job, st)
    return None


def _keep(key: tuple[str, str], job: Any, st: dict[str, Any]) -> None:
    with _lock:
        first = _later.get(key, (None, None, 0.0, time.monotonic()))[3]
        _later[key] = (job, st, time.monotonic(), first)


def observe_again() -> None:
    """Mirror again the ended jobs kept by :func:`_mirror`, every MIRROR_EVERY_S, for up to
    KEEP_TRYING_S; a long-lived observer (the server's watcher) calls this after each pass."""
    now = time.monotonic()
    with _lock:
        due = [(k, v) for k, v in _later.items() if now - v[2] >= MIRROR_EVERY_S]
        for k, (_, _, _, first) in due:
            if now - first > KEEP_TRYING_S:
                _later.pop(k, None)  # given up: no run was recorded, or the server stayed down
    for k, (job, st, _, _) in due:
        if k in _later:
            _mirror(job, st, final=True)


def _warn(key: tuple[str, str], what: str, text: str) -> None:
    with _lock:
        if (*key, what) in _warned:
            return
        _warned.add((*key, what))
    log.warning("offload: %s", text)
