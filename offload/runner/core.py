"""What every runner program shares: status, logs, metrics and output snapshots streamed to the
store, the heartbeat, stop requests (cancel marker, SIGTERM, max runtime, GPUs idle past
``--stop-if-idle``: :mod:`offload.runner.idle`) and the end of a job.

A program subclasses :class:`JobProgram` and fills in named hooks:

``execute(work)``      do the job; return ``(state, reason, error)``
``kill()``             stop what ``execute`` runs, now (cancel, preemption, max runtime)
``output_mark(nb)``    a cheap fingerprint of the live notebook's outputs (snapshots are taken
                       when it changes; the default hashes nothing, it measures the outputs)
``slot()``             a context held while the job runs (the local backend's concurrency cap)
``before_finish()``    release what ``execute`` left running, before the final upload
``recorded(state)``    the job's end is in the store (a warm cell's client is told at once)

Everything the program knows is in the store when ``run()`` returns, whichever way it ended.

Store faults: a write that fails (after the store's own retries) is kept and sent again with the
next flush, so nothing is lost while the store is down. When the store stays unwritable for
``OFFLOAD_STORE_GRACE_S`` (default 60 s) the job is stopped, and it ends ``failed`` with "store not
writable: <reason>" as soon as the store takes writes again: the outputs and the final status are
tried with backoff for up to ``OFFLOAD_STORE_WAIT_S`` (default 15 min).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

import nbformat

from offload._version import __version__
from offload.backends.base import Backend, backend_class
from offload.errors import OffloadError, StoreError
from offload.metrics import last_values
from offload.paths import METRICS_FILE_ENV
from offload.runner import idle
from offload.spec import JobSpec, JobState
from offload.store import Store, layout

HEARTBEAT_S = float(os.environ.get("OFFLOAD_HEARTBEAT_S", "3"))
STORE_GRACE_S = float(os.environ.get("OFFLOAD_STORE_GRACE_S", "60"))
STORE_WAIT_S = float(os.environ.get("OFFLOAD_STORE_WAIT_S", "900"))
STORE = "store"  # the stop reason when the store cannot be written
TICK_S = 0.25
log = logging.getLogger("offload.runner")

Outcome = tuple[JobState, "str | None", "dict | None"]


class Stop(Exception):
    """Raised inside ``execute`` when a stop was requested; ``stopped_outcome`` says how it ends."""


class LogSink:
    """File-like target (papermill's stdout_file/stderr_file): text goes to the job log."""

    def __init__(self, program: JobProgram):
        self.program = program

    def write(self, text: str) -> int:
        self.program.append_log(text)
        return len(text)

    def flush(self) -> None:
        pass


def runner_timings() -> dict[str, float]:
    """What the runner knows at its start: when it started, and the machine's boot program's
    duration when one ran before it (``OFFLOAD_BOOT_S``, set by a GCE VM's boot)."""
    out = {"runner_started_at": time.time()}
    try:
        out["boot_program_s"] = float(os.environ["OFFLOAD_BOOT_S"])
    except (KeyError, ValueError):
        pass
    return out


def kernel_environ(*, job_id: str, store_url: str, work: Path) -> dict[str, str]:
    """The ``OFFLOAD_*`` variables a job's kernel sees, for a job whose work dir is ``work``
    (a standby runner starts its kernel with them before it knows its job: runner/standby.py)."""
    return {
        "OFFLOAD_JOB_ID": job_id, "OFFLOAD_STORE": store_url, METRICS_FILE_ENV: str(work / "metrics.jsonl"),
        "OFFLOAD_OUTPUT_DIR": str(work / "outputs"), "OFFLOAD_CHECKPOINT_DIR": str(work / "checkpoints"),
    }


def machine_backend(name: str) -> type[Backend]:
    """The class of the backend that started this machine, for its runner-side hooks
    (slot, termination reason, on_runner_exit); the plain base class when it is not installed."""
    try:
        return backend_class(name)
    except OffloadError:
        return Backend


class JobProgram:
    """The bookkeeping of one job in the store; subclasses run it."""

    # A thread ticks while ``execute`` runs; a program whose ``execute`` waits in a loop of its
    # own calls ``tick()`` every TICK_S instead (a warm cell: no thread per few-ms job).
    monitor_thread = True
    # Its first status is written as it starts; a warm cell job's by its first tick, 20 ms in,
    # or at its end (most end within milliseconds).
    announce = True

    def __init__(self, store: Store, spec: JobSpec):
        self.store = store
        self.spec = spec
        self.job_id = spec.id
        self.backend_cls = machine_backend(spec.backend)
        self.lock = threading.Lock()
        self.flush_lock = threading.Lock()
        self.status: dict[str, Any] = {
            "state": JobState.QUEUED, "cell": 0, "n_cells": 0, "attempt": spec.attempt,
            "host": socket.gethostname(), "pid": os.getpid(), "runner_version": __version__,
            "timings": runner_timings(),
        }
        self.status_dirty = True
        self.last_status_write = 0.0
        self.log_buf: list[str] = []
        self.log_seq = 0
        self.metrics: list[dict[str, Any]] = []
        self.metrics_pos = 0
        self.metrics_dirty = False
        self.metrics_file: str | None = None
        self.output_snapshot: str | None = None
        self.live_nb: Any = None  # the notebook being executed, as the program fills its outputs
        self.last_output_mark: tuple[int, int] = (0, 0)
        self.stop_reason: str | None = None
        self.finished = False
        self.current_cell_id: str | None = None
        self.deadline = time.time() + spec.resources.max_runtime_s
        self.idle = idle.watch_for(spec)  # --stop-if-idle: GPUs sampled by the monitor (runner/idle.py)
        self.idle_stop: str | None = None
        self.done = threading.Event()
        self.store_failing_since: float | None = None  # first failed flush of the current outage
        self.store_failure: str | None = None  # "store not writable: <reason>" once that stopped the job
        self.last_cancel_check = 0.0

    def key(self, name: str) -> str:
        return layout.job_key(self.job_id, name)

    # hooks ------------------------------------------------------------------------------------
    def execute(self, work: Path) -> Outcome:
        raise NotImplementedError

    def kill(self) -> None:
        """Stop what ``execute`` runs, now."""

    def output_mark(self, nb: Any) -> int:
        """Changes whenever an output is added or grows (display updates included)."""
        return sum(len(json.dumps(c.get("outputs", []))) for c in nb.cells)

    def snapshot_output(self) -> str | None:
        """The live notebook (``self.live_nb``) as text when its outputs changed since the last
        snapshot, mid-cell too (long cells stream their output), else None."""
        nb = self.live_nb
        if nb is None:
            return None
        try:
            mark = (self.status.get("cell", 0), self.output_mark(nb))
            if mark == self.last_output_mark:
                return None
            text = nbformat.writes(nb)
        except RuntimeError:  # the executing thread mutated a cell meanwhile: next tick
            return None
        self.last_output_mark = mark
        return text

    def slot(self) -> contextlib.AbstractContextManager:
        return self.backend_cls.runner_slot(self.spec, self.store, lambda: bool(self.stop_reason))

    def before_finish(self) -> None:
        """Release what ``execute`` left running (a kernel kept across cells)."""

    def recorded(self, state: JobState) -> None:
        """The job's end is in the store (``result.json`` written); its work dir is not cleaned yet."""

    # state updates ----------------------------------------------------------------------------
    def set_status(self, **fields: Any) -> None:
        """Update the status; ``timings`` are merged into those already recorded."""
        with self.lock:
            if "timings" in fields:
                fields["timings"] = {**self.status.get("timings", {}), **(fields["timings"] or {})}
            self.status.update(fields)
            self.status_dirty = True

    def append_log(self, text: str) -> None:
        if text:
            with self.lock:
                self.log_buf.append(text)

    def say(self, text: str) -> None:
        """The runner's own lines in the job log, marked so users can tell them from cell output."""
        self.append_log(f"[offload] {text}\n")

    def flush(self, *, force: bool = False) -> None:
        """Write whatever changed to the store. Called by the monitor thread and at the end."""
        # One flush at a time: otherwise the monitor's flush can store a final status.json while
        # the final flush is still writing metrics.jsonl, and a reader sees "succeeded" with no
        # metrics (a sweep then fails a good trial).
        with self.flush_lock:
            self._flush(force=force)

    def _flush(self, *, force: bool) -> None:
        with self.lock:
            chunk = "".join(self.log_buf)
            self.log_buf.clear()
            due = self.status_dirty or force or time.time() - self.last_status_write >= HEARTBEAT_S
            status = dict(self.status) if due else None
            if status is not None:
                status["heartbeat"] = time.time()
                self.status_dirty = False
                self.last_status_write = status["heartbeat"]
            snapshot, self.output_snapshot = self.output_snapshot, None
        try:
            if chunk:
                self.store.put_text(layout.log_chunk_key(self.job_id, self.log_seq), chunk)
                self.log_seq += 1
                chunk = ""
            self.read_metrics()
            if self.metrics_dirty:
                self.store.put_text(self.key("metrics.jsonl"), "".join(json.dumps(m) + "\n" for m in self.metrics))
                self.metrics_dirty = False
            if snapshot is not None:
                self.store.put_text(self.key("output.ipynb"), snapshot)
                snapshot = None
            if status is not None:
                self.store.put_json(self.key("status.json"), status)
        except Exception:
            with self.lock:  # nothing is lost: what was not written goes with the next flush
                if chunk:
                    self.log_buf.insert(0, chunk)
                if snapshot is not None and self.output_snapshot is None:
                    self.output_snapshot = snapshot
                if status is not None:
                    self.status_dirty = True
            raise

    def read_metrics(self) -> None:
        """Tail the metrics file the notebook's ``log_metric`` appends to (whole lines only)."""
        path = self.metrics_file
        if not path or not os.path.exists(path):
            return
        with open(path, encoding="utf-8") as fh:
            fh.seek(self.metrics_pos)
            data = fh.read()
        end = data.rfind("\n") + 1  # a torn tail is read next time
        if not end:
            return
        self.metrics_pos += len(data[:end].encode())
        for line in data[:end].splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            rec["cell_id"] = rec.get("cell_id") or self.current_cell_id
            self.metrics.append(rec)
            self.metrics_dirty = True

    def job_environ(self, work: Path) -> dict[str, str]:
        """The ``OFFLOAD_*`` variables the notebook's kernel sees (log_metric, output_dir...)."""
        self.metrics_file = str(work / "metrics.jsonl")
        return kernel_environ(job_id=self.job_id, store_url=self.store.url, work=work)

    # monitor ----------------------------------------------------------------------------------
    def monitor(self) -> None:
        """The monitor thread: a :meth:`tick` every ``TICK_S`` while the job runs."""
        while not self.done.wait(TICK_S):
            self.tick()

    def tick(self) -> None:
        """One look at the running job: the cancel marker and the max runtime (each second),
        idle GPUs, the live output; then whatever changed is written."""
        try:
            now = time.time()
            if now - self.last_cancel_check >= 1.0 and not self.stop_reason:
                self.last_cancel_check = now
                if self.store.exists(self.key("cancel")):
                    self.stop(JobState.CANCELLED, "cancelled by the user")
                elif now > self.deadline:
                    self.stop("timeout", f"stopped at the max runtime of {self.spec.resources.max_runtime_s} s")
            if self.idle is not None and not self.stop_reason:
                self.check_idle(now)
            saved = True
            try:
                text = self.snapshot_output()
            except StoreError as exc:  # live output saves write too: the flush below goes all the same
                text, saved = None, False
                self.store_trouble(exc)
            if text is not None:
                with self.lock:
                    self.output_snapshot = text
            self.flush()
            if saved:
                self.store_failing_since = None
        except StoreError as exc:
            self.store_trouble(exc)
        except Exception as exc:  # a store hiccup must not kill the job; say it and go on
            log.warning("monitor: %s", exc)

    def check_idle(self, now: float) -> None:
        """--stop-if-idle: record the last sample; stop the job when its GPUs stayed idle long enough."""
        why, seen = self.idle.check(now)
        if seen is not None:
            if seen.get("unavailable") and "idle" not in self.status:
                self.say(f"stop-if-idle: cannot read GPU utilization ({seen['unavailable']}); "
                         "the job will not be stopped for idleness")
            self.set_status(idle=seen)
        if why:
            self.idle_stop = why
            self.stop("idle", why)

    def store_trouble(self, exc: StoreError) -> None:
        """A flush failed after the store's retries: go on while the outage is shorter than
        STORE_GRACE_S (what was not written is kept), then stop the job."""
        now = time.time()
        if self.store_failing_since is None:
            self.store_failing_since = now
            log.warning("store not writable, retrying: %s", exc.reason)
        if now - self.store_failing_since >= STORE_GRACE_S and not self.stop_reason:
            self.store_failure = f"store not writable: {exc.reason}"
            self.stop(STORE, f"{self.store_failure} (for {now - self.store_failing_since:.0f} s); stopping the job")

    def until_recorded(self, write: Any, what: str) -> None:
        """``write()`` until the store takes it (backoff, up to STORE_WAIT_S): the end of a job
        is recorded as soon as the store can take it."""
        deadline = time.time() + STORE_WAIT_S
        delay = 1.0
        while True:
            try:
                write()
                return
            except StoreError as exc:
                if time.time() + delay > deadline:
                    raise
                log.warning("cannot record the %s yet, retrying in %.0f s: %s", what, delay, exc.reason)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)

    def stop(self, reason: str, message: str) -> None:
        if self.stop_reason or self.finished:
            return
        self.stop_reason = reason
        self.say(message)
        self.kill()

    def on_sigterm(self, signum: int, frame: Any) -> None:
        if self.finished:  # our own machine going away after we finished: not a preemption
            return
        if self.store.exists(self.key("cancel")):
            self.stop(JobState.CANCELLED, "cancelled by the user")
            return
        why = None
        try:
            why = self.backend_cls.termination_reason()
        except Exception:
            pass
        self.stop(why or "terminated", f"received {signal.Signals(signum).name}" + (f" ({why})" if why else ""))

    def stopped_outcome(self) -> Outcome:
        reason = self.stop_reason
        if reason == JobState.CANCELLED:
            return JobState.CANCELLED, "cancelled by the user", None
        if reason == JobState.PREEMPTED:
            return JobState.PREEMPTED, "the machine was preempted", None
        if reason == "timeout":
            return JobState.FAILED, f"max runtime of {self.spec.resources.max_runtime_s} s exceeded", None
        if reason == STORE:
            return JobState.FAILED, self.store_failure, None
        if reason == "idle":  # not a failure of the notebook: stopped by the job's own --stop-if-idle
            return JobState.CANCELLED, self.idle_stop, None
        return JobState.FAILED, f"terminated ({reason})", None

    # the run ----------------------------------------------------------------------------------
    def new_work_dir(self) -> Path:
        return Path(os.environ.get("OFFLOAD_WORK_DIR") or tempfile.mkdtemp(prefix=f"offload-{self.job_id}-"))

    def remove_work_dir(self, work: Path) -> None:
        """After the job is recorded (a warm session removes its cells' dirs when it is idle)."""
        shutil.rmtree(work, ignore_errors=True)

    def run(self, *, work: Path | None = None) -> int:
        """Run the job in ``work`` (default: a new work dir); a warm session's cell job comes
        with its work dir, its request already sent to the kernel (runner/session.py)."""
        signal.signal(signal.SIGTERM, self.on_sigterm)
        signal.signal(signal.SIGINT, self.on_sigterm)
        work = work or self.new_work_dir()
        work.mkdir(parents=True, exist_ok=True)
        monitor = threading.Thread(target=self.monitor, name="offload-monitor", daemon=True) if self.monitor_thread else None
        if self.announce:
            self.flush(force=True)
        if monitor is not None:
            monitor.start()
        # The slot is held through finish: uploading results is part of the job's footprint.
        with self.slot():
            state, reason, error = JobState.FAILED, None, None
            try:
                if self.stop_reason:
                    raise Stop
                state, reason, error = self.execute(work)
            except Stop:
                state, reason, error = self.stopped_outcome()
            except Exception as exc:
                state, reason = JobState.FAILED, f"runner error: {exc}"
                error = {"ename": type(exc).__name__, "evalue": str(exc), "traceback": traceback.format_exc().splitlines()}
                self.say(f"runner error: {exc}")
            finally:
                self.finished = True
                self.done.set()
                if monitor is not None:
                    monitor.join(timeout=5)
            if state == JobState.SUCCEEDED and self.stop_reason:
                state, reason, error = self.stopped_outcome()
            self.before_finish()
            self.finish(work, state, reason, error)
        return 0 if state == JobState.SUCCEEDED else 1

    def final_notebook(self, work: Path, state: JobState) -> str | None:
        """The output notebook to store last; the notebook job adds its provenance metadata."""
        return self.output_snapshot

    def finish(self, work: Path, state: JobState, reason: str | None, error: dict | None) -> None:
        finished_at = time.time()
        self.read_metrics()

        def save_outputs() -> None:
            text = self.final_notebook(work, state)
            if text is not None:
                self.store.put_text(self.key("output.ipynb"), text)
            self._upload_dir(work / "outputs", "outputs")
            self._upload_dir(work / "checkpoints", "checkpoints")

        try:
            self.until_recorded(save_outputs, "outputs")
        except Exception as exc:
            self.say(f"could not save every output: {exc}")
        started = self.status.get("started_at")
        self.set_status(state=state, reason=reason, error=error, finished_at=finished_at,
                        duration_s=(finished_at - started) if started else None)
        self.say(f"job {state}" + (f": {reason}" if reason else ""))
        result = {"state": state, "reason": reason, "metrics": last_values(self.metrics), "finished_at": finished_at}
        self.until_recorded(lambda: (self.flush(force=True), self.store.put_json(self.key("result.json"), result)),
                            "final status")
        self.recorded(state)
        if not os.environ.get("OFFLOAD_KEEP_WORK"):
            self.remove_work_dir(work)
        try:
            self.backend_cls.on_runner_exit(self.spec, self.store, state)
        except Exception as exc:
            log.warning("on_runner_exit: %s", exc)

    def _upload_dir(self, local: Path, prefix: str) -> None:
        if not local.exists():
            return
        for path in sorted(local.rglob("*")):
            if path.is_file():
                # the work dir is the runner's own and is removed after: a local store links it
                self.store.put_file(path, self.key(f"{prefix}/{path.relative_to(local).as_posix()}"), link=True)
