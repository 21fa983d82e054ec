"""Say that a job or a sweep ended: a webhook (Slack-compatible JSON ``{"text": ...}``), once.

The webhook comes from the submit (``offload run --notify URL``, ``submit(notify=URL)``), else the
config's ``notify.webhook`` (or ``OFFLOAD_NOTIFY_WEBHOOK``); ``--notify off`` turns it off for one
job. The submitting client records it in ``jobs/<id>/notify.json`` (a sweep's driver in
``sweeps/<id>/notify.json``). Notebook jobs and sweeps notify; a sweep's trials and ``%%offload``
cells do not (a sweep says it once, cells are interactive).

Whoever observes the end sends it: the Jupyter server's watcher, a client waiting on the job
(``offload run``, ``Job.wait()``), the sweep driver for its sweep. Several may observe the same end,
so the sender first creates ``notified.json`` exclusively (``O_EXCL`` on a local store, a
create-only write on ``gs://``): the one that creates it sends, the others see it and do not.
An end older than :data:`MAX_AGE_S` when first observed (a server started days later) is not
announced. A failed send is tried again twice and then recorded in ``notified.json``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from offload.config import load_config
from offload.errors import UsageError
from offload.spec import FINAL_STATES, JobSpec, JobState
from offload.store import Store, layout

log = logging.getLogger("offload")

__all__ = ["NOTIFIED_KINDS", "check_webhook", "job_ended", "message_for_job", "record_job", "record_sweep",
           "send", "sweep_ended", "webhook_setting"]

NOTIFIED_KINDS = ("notebook",)
MAX_AGE_S = 24 * 3600.0
TIMEOUT_S = 10.0
OFF = ("", "off", "none", "false", "0")
_ICON = {JobState.SUCCEEDED: ":white_check_mark:", JobState.FAILED: ":x:", JobState.CANCELLED: ":no_entry_sign:",
         JobState.LOST: ":warning:", JobState.PREEMPTED: ":warning:"}


def webhook_setting() -> str | None:
    """``OFFLOAD_NOTIFY_WEBHOOK``, else the config's ``notify.webhook``."""
    url = os.environ.get("OFFLOAD_NOTIFY_WEBHOOK") or (load_config().get("notify") or {}).get("webhook")
    return str(url) if url and str(url).strip().lower() not in OFF else None


def check_webhook(url: str | None, *, field: str = "notify") -> str | None:
    """The webhook a submit uses: ``url`` when given (``off`` for none), else the setting; an
    http(s) URL with a host, or a UsageError naming ``field``."""
    if url is not None and str(url).strip().lower() in OFF:
        return None
    url = (str(url).strip() if url is not None else None) or webhook_setting()
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{field}: {url!r} is not an http(s) URL",
                         hint="give the webhook's URL, e.g. https://hooks.slack.com/services/..., or 'off'",
                         field=field)
    return url


def record_job(store: Store, spec: JobSpec, *, webhook: str | None) -> None:
    """Record ``webhook`` (from :func:`check_webhook`) for the job, when its kind notifies."""
    if webhook and spec.kind in NOTIFIED_KINDS:
        store.put_json(layout.job_key(spec.id, layout.NOTIFY), {"webhook": webhook})


def record_sweep(store: Store, sweep_id: str, *, webhook: str | None) -> None:
    """The sweep's webhook (``webhook`` as given to the sweep, else the setting), once."""
    url = check_webhook(webhook)
    key = layout.sweep_key(sweep_id, layout.NOTIFY)
    if url and not store.exists(key):
        store.put_json(key, {"webhook": url})


# -- claiming and sending -----------------------------------------------------------------------
def _claim(store: Store, key: str, obj: dict[str, Any]) -> bool:
    """Create ``key`` if nobody has: True for the one caller that created it."""
    data = json.dumps(obj, indent=1, sort_keys=True).encode()
    path = store.path(key)
    if store.local:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return True
    try:
        store.fs.pipe_file(path, data, mode="create")
    except FileExistsError:
        return False
    return True


def send(url: str, text: str, *, attempts: int = 3) -> dict[str, Any]:
    """POST ``{"text": text}``; the outcome as a dict (``ok``, ``status`` or ``error``)."""
    body = json.dumps({"text": text}).encode()
    last: dict[str, Any] = {}
    for attempt in range(attempts):
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "jupyter-offload"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 (http(s) checked)
                return {"ok": True, "status": resp.status}
        except urllib.error.HTTPError as exc:
            last = {"ok": False, "status": exc.code, "error": f"HTTP {exc.code} {exc.reason}"}
            if exc.code < 500 and exc.code != 429:
                return last  # the webhook refuses this message: asking again will not help
        except (urllib.error.URLError, OSError) as exc:
            last = {"ok": False, "error": str(getattr(exc, "reason", exc))}
        if attempt + 1 < attempts:
            time.sleep(1.0 * (attempt + 1))
    return last


def _announce(store: Store, notify_key: str, claim_key: str, text: str, ended_at: float | None) -> bool:
    cfg = store.get_json(notify_key, None)
    if not cfg or not cfg.get("webhook") or store.exists(claim_key):
        return False
    if ended_at and time.time() - float(ended_at) > MAX_AGE_S:
        return False
    me = {"by": f"{socket.gethostname()}:{os.getpid()}", "claimed_at": time.time()}
    if not _claim(store, claim_key, me):
        return False
    outcome = send(cfg["webhook"], text)
    if not outcome.get("ok"):
        log.warning("offload: the end-of-run webhook failed: %s", outcome.get("error"))
    store.put_json(claim_key, {**me, **outcome, "sent_at": time.time()})  # ours: we created it
    return bool(outcome.get("ok"))


def _fmt_s(s: float | None) -> str:
    if s is None:
        return ""
    s = int(s)
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def message_for_job(job: Any, st: dict[str, Any], *, run_url: str | None = None) -> str:
    state = st.get("state")
    spec = job.spec
    head = f"{_ICON.get(state, '')} {spec.notebook} {state}".strip()
    bits = [f"job {job.id} on {spec.backend}"]
    if st.get("duration_s") is not None:
        bits.append(f"in {_fmt_s(st['duration_s'])}")
    line = f"{head}: " + " ".join(bits)
    if st.get("reason") and state != JobState.SUCCEEDED:
        line += f"\n{str(st['reason']).splitlines()[0][:300]}"
    metrics = job.last_metrics()
    if metrics:
        line += "\n" + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(metrics.items())[:8])
    if run_url:
        line += f"\nMLflow: {run_url}"
    return line


def job_ended(job: Any, st: dict[str, Any], *, run_url: str | None = None) -> bool:
    """Announce ``job``'s end if it asked for it and nobody has; True when this call sent it."""
    if st.get("state") not in FINAL_STATES or st.get("retried_as"):
        return False  # a preempted job that is retried has not ended
    return _announce(job.store, job.key(layout.NOTIFY), job.key(layout.NOTIFIED),
                     message_for_job(job, st, run_url=run_url), st.get("finished_at"))


def sweep_ended(store: Store, sweep_id: str, *, state: str, notebook: str, error: str | None = None,
                counts: dict[str, Any] | None = None, best: dict[str, Any] | None = None,
                run_url: str | None = None) -> bool:
    icon = {"completed": ":white_check_mark:", "failed": ":x:", "stopped": ":no_entry_sign:"}.get(state, "")
    text = f"{icon} sweep {sweep_id} of {notebook} {state}".strip()
    if counts:
        text += ": " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    if error:
        text += f"\n{error.splitlines()[0][:300]}"
    if best and best.get("values"):
        text += "\nbest: " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in best["values"].items())
        if best.get("params"):
            text += " with " + " ".join(f"{k}={v!r}" for k, v in best["params"].items())
    if run_url:
        text += f"\nMLflow: {run_url}"
    return _announce(store, layout.sweep_key(sweep_id, layout.NOTIFY), layout.sweep_key(sweep_id, layout.NOTIFIED),
                     text, time.time())
