"""Watch, cancel and collect jobs; reconcile the runner's status with the backend's view.

The runner's ``status.json`` says what the job is doing; only the backend can say that the
process or machine behind it is gone. A job whose status is still active while its backend says
``gone`` is ``lost`` (a ``kill -9``, a deleted VM), never ``running`` forever. The client records
that conclusion in ``reconciled.json`` so every later client sees the same answer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4.rwbase import rejoin_lines

from offload.backends.base import Ability, BackendPhase, BackendState, get_backend
from offload.config import backend_options
from offload.errors import (
    BackendError,
    JobFailed,
    JobNotFound,
    OffloadError,
    StoreError,
    UsageError,
)
from offload.jobs import index, machines
from offload.jobs.collect import merge_job
from offload.jobs.launch import launch_spec
from offload.jobs.observe import observe
from offload.metrics import last_values, parse_metrics
from offload.spec import (
    ACTIVE_STATES,
    FINAL_STATES,
    JobSpec,
    JobState,
    check_job_id,
    new_job_id,
)
from offload.store import Store, as_store, layout, read_output

STALE_AFTER_S = 60.0  # heartbeat age after which a running job is flagged as unresponsive
LAUNCH_TIMEOUT_S = 3600.0  # a job still without a backend handle after this was never launched
STATE_POLL_MAX_S = 15.0  # backend reads back off to this while nothing changes
# job id -> (monotonic time of the last backend read, next interval, BackendState, (state, cell))
_BACKEND_READS: dict[str, tuple[float, float, BackendState, tuple]] = {}


def resolve_job_id(ref: str, store: Store) -> str:
    """Full id from a unique prefix or suffix (as people copy them from `offload ls`)."""
    ref = ref.strip()
    if store.exists(layout.job_key(ref, "spec.json")) if _looks_like_id(ref) else False:
        return ref
    candidates = set(index.ids(store.url)) | set(store.list_dirs("jobs"))
    matches = sorted(i for i in candidates if i.startswith(ref) or i.endswith(ref))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise JobNotFound(f"no job {ref!r} in store {store.url}", hint="`offload ls` lists the jobs")
    raise UsageError(f"job reference {ref!r} is ambiguous: {', '.join(matches[:5])}", hint="give more characters of the id")


def _looks_like_id(ref: str) -> bool:
    try:
        check_job_id(ref)
        return True
    except UsageError:
        return False


class Job:
    """A handle on one job, attachable from any process: ``offload.Job("20261122-...")``."""

    def __init__(self, job_id: str, *, store: Store | str | None = None, spec: JobSpec | None = None,
                 handle: dict | None = None, record: bool = True):
        """``record=False`` for a reader (the server's GET paths): the conclusions reconciliation
        reaches (lost, a retry after preemption) are shown, not written; a recording client (the
        watcher, the CLI) writes them."""
        if store is None and spec is None:
            found = {url for _, url in index.find(job_id.strip())}
            if len(found) == 1:  # the index knows which store the job lives in (gs://, file://)
                store = found.pop()
        self.store = as_store(store)
        self.id = job_id if spec else resolve_job_id(job_id, self.store)
        self._spec = spec
        self._handle: dict | None = handle
        self._status: dict | None = None
        self._backend = None
        self.record = record

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.state}>"

    def key(self, name: str) -> str:
        """The store key of this job's object ``name`` (``status.json``, ``output.ipynb``...)."""
        return layout.job_key(self.id, name)

    @property
    def spec(self) -> JobSpec:
        if self._spec is None:
            try:
                self._spec = JobSpec.from_dict(self.store.get_json(self.key("spec.json")))
            except KeyError:
                raise JobNotFound(f"job {self.id} has no spec in {self.store.url}") from None
        return self._spec

    @property
    def handle(self) -> dict | None:
        if self._handle is None:
            self._handle = self.store.get_json(self.key("handle.json"), None)
        return self._handle

    def backend(self):
        if self._backend is None:
            self._backend = get_backend(self.spec.backend, self.store, **backend_options(self.spec.backend))
        return self._backend

    # status -----------------------------------------------------------------------------------
    def refresh(self) -> dict[str, Any]:
        self._status = self._reconcile()
        self._index()
        return self._status

    @property
    def last_status(self) -> dict[str, Any]:
        """The status as last read (no store access); empty before the first read."""
        return self._status or {}

    @property
    def status(self) -> dict[str, Any]:
        return self.refresh() if self._status is None or self._status.get("state") in ACTIVE_STATES else self._status

    @property
    def state(self) -> str:
        return self.status["state"]

    def _reconcile(self) -> dict[str, Any]:
        status = self._reconcile_state()
        if status.get("state") == JobState.PREEMPTED:
            status = self._retry_if_allowed(status)
        return status

    def _retry_if_allowed(self, status: dict[str, Any]) -> dict[str, Any]:
        """A preempted job is run again (same bundle, checkpoints restored) up to ``retries``."""
        done = self.store.get_json(self.key("retry.json"), None)
        if done is None and self.spec.attempt < self.spec.retries and self.record:
            retry = self._launch_retry()
            done = {"job_id": retry.id, "at": time.time()}
            self.store.put_json(self.key("retry.json"), done)
        if done:
            status = {**status, "retried_as": done["job_id"]}
        return status

    def _launch_retry(self) -> Job:
        spec = JobSpec.from_dict({
            **self.spec.to_dict(), "id": new_job_id(), "attempt": self.spec.attempt + 1,
            "parent": self.id, "created_at": time.time(),
        })
        handle = launch_spec(spec, store=self.store, env=self.store.get_json(self.key("env.json"), None),
                             backend=self.backend())
        return Job(spec.id, store=self.store, spec=spec, handle=handle)

    def latest(self) -> Job:
        """The last attempt of this job (following retries after preemption)."""
        job = self
        while (nxt := job.store.get_json(job.key("retry.json"), None)) is not None:
            job = Job(nxt["job_id"], store=self.store)
        return job

    def _reconcile_state(self) -> dict[str, Any]:
        reconciled = self.store.get_json(self.key("reconciled.json"), None)
        status = self.store.get_json(self.key("status.json"), None)
        if status and status.get("state") in FINAL_STATES:
            return status
        if reconciled:
            return {**(status or {}), **reconciled}
        reported = status is not None  # the runner has written its first status
        status = dict(status or {"state": JobState.QUEUED, "cell": 0, "n_cells": 0})
        handle = self.handle
        if handle is None:
            # Launching can take minutes (zone failover waits on each insert); only a client that
            # died mid-launch leaves a job without a handle for this long.
            if time.time() - self.spec.created_at > LAUNCH_TIMEOUT_S + (self.spec.wait_for_capacity_s or 0):
                return self._conclude(status, JobState.LOST, "the job was never launched (client stopped during submit)")
            waiting = (self.store.get_json(self.key("attempts.json"), None) or {}).get("waiting") \
                if self.spec.wait_for_capacity_s else None  # --wait-for-capacity: round, next try (gce/capacity.py)
            return {**status, "state": JobState.PROVISIONING, "reason": waiting["say"] if waiting else "launching",
                    **({"waiting": waiting} if waiting else {})}
        try:
            bstate = self._backend_state(handle, status)
        except OffloadError as exc:
            status["backend_note"] = str(exc)
            return status
        except Exception as exc:  # backend unreachable: say so, conclude nothing
            status["backend_note"] = f"backend unreachable: {exc}"
            return status
        status["backend_state"] = bstate.state
        if bstate.reason:
            status["backend_reason"] = bstate.reason
        if bstate.details:
            status["backend"] = bstate.details
        if bstate.state == BackendPhase.GONE:
            again = self.store.get_json(self.key("status.json"), None)  # it may have just finished
            if again and again.get("state") in FINAL_STATES:
                return again
            if self.store.exists(self.key("cancel")):  # e.g. a SLURM job cancelled while pending
                return self._conclude(status, JobState.CANCELLED, "cancelled by the user")
            implied = (bstate.details or {}).get("job_state")  # e.g. SLURM TIMEOUT, JobState.PREEMPTED
            if implied in (JobState.FAILED, JobState.PREEMPTED):
                return self._conclude(status, implied, bstate.reason or implied)
            return self._conclude(status, JobState.LOST, f"the job's {self.spec.backend} process/machine is gone ({bstate.reason or 'no reason given'})")
        if not reported and bstate.state in (BackendPhase.RUNNING, BackendPhase.PROVISIONING):
            # The machine is up but its runner has not reported: booting (never "queued" while it
            # bills), and failed by the watchdog when it stays silent past the backend's boot timeout.
            timeout = handle.get("boot_timeout_s")
            if timeout and self._boot_overdue(handle, float(timeout)):
                return self._boot_failed(handle, status, float(timeout))
            return {**status, "state": JobState.PROVISIONING,
                    "reason": "booting" if bstate.state == BackendPhase.RUNNING else bstate.reason}
        if bstate.state == BackendPhase.PENDING and status["state"] == JobState.QUEUED:
            status["reason"] = bstate.reason
        elif bstate.state == BackendPhase.PROVISIONING and status["state"] == JobState.QUEUED:
            status["state"] = JobState.PROVISIONING
            status["reason"] = bstate.reason
        hb = status.get("heartbeat")
        if hb and status["state"] == JobState.RUNNING and time.time() - hb > STALE_AFTER_S:
            status["stale_heartbeat_s"] = time.time() - hb
        return status

    def _backend_state(self, handle: dict, status: dict[str, Any]) -> BackendState:
        """The backend's view, read at most once per ``state_poll_s`` per job (Compute Engine
        read quota), less often while nothing changes; the store is read first on every refresh,
        so a runner's own news is never delayed. Shared by every Job object of this process."""
        be = self.backend()
        poll = float(be.state_poll_s or 0)
        if not poll:
            return be.state(handle)
        now = time.monotonic()
        mark = (status.get("state"), status.get("cell"))
        last = _BACKEND_READS.get(self.id)
        if last is not None and now < last[0] + (last[1] if mark == last[3] else poll):
            return last[2]
        bstate = be.state(handle)
        steady = last is not None and last[2].state == bstate.state and last[3] == mark
        _BACKEND_READS[self.id] = (now, min(last[1] * 1.5, STATE_POLL_MAX_S) if steady else poll, bstate, mark)
        return bstate

    def _boot_overdue(self, handle: dict, timeout: float) -> bool:
        """No status, and no boot-log line either, within ``timeout`` of the machine's creation
        (or of the boot log's last write: a slow boot that keeps logging is not stuck)."""
        now = time.time()
        since = float(handle.get("created_at") or self.spec.created_at)
        if now - since < timeout:
            return False
        logged = self.store.modified(self.key("boot.log"))
        return now - max(since, logged or 0) >= timeout

    def _boot_failed(self, handle: dict, status: dict[str, Any], timeout: float) -> dict[str, Any]:
        """The boot watchdog: fail the job with the machine's console tail, delete the machine."""
        be = self.backend()
        tail = ""
        if be.can(Ability.SERIAL_OUTPUT):
            try:
                lines = [ln for ln in be.serial_output(handle).splitlines() if ln.strip()]
                tail = "\n".join(lines[-12:])
            except Exception as exc:  # the console is a courtesy: the verdict stands without it
                tail = f"(no console output: {exc})"
        try:
            be.cancel(handle)
        except Exception as exc:
            status["backend_note"] = f"could not delete the machine: {exc}"
        reason = (f"the machine did not report within the boot timeout ({timeout:.0f} s); "
                  + (f"its console ends with:\n{tail}" if tail else "it wrote no console output"))
        _BACKEND_READS.pop(self.id, None)
        return self._conclude(status, JobState.FAILED, reason)

    def conclude(self, state: JobState, reason: str) -> dict[str, Any]:
        """Record the client's conclusion about a job whose runner cannot (it never ran, or its
        machine is gone): ``reconciled.json``, which every later client reads as final."""
        self._status = self._conclude(dict(self.last_status), state, reason)
        self._index()
        return self._status

    def _conclude(self, status: dict, state: str, reason: str) -> dict:
        record = {"state": state, "reason": reason, "at": time.time(), "finished_at": time.time()}
        if self.record:
            try:
                self.store.put_json(self.key("reconciled.json"), record)
            except StoreError as exc:  # a read-only store: shown now, recorded by the next client that can
                return {**status, **record, "store_note": f"not recorded: {exc.reason}"}
        return {**status, **record}

    def _index(self) -> None:
        st = self._status or self.store.get_json(self.key("status.json"), None) or {"state": JobState.QUEUED}
        mark = (st.get("state"), st.get("cell"), st.get("n_cells"), st.get("finished_at"), st.get("heartbeat") is None)
        if mark == getattr(self, "_indexed", None):
            return  # unchanged since this object last wrote it: polling loops stay cheap
        self._indexed = mark
        shows_metrics = st.get("state") in FINAL_STATES or st.get("state") == JobState.RUNNING
        index.record(self.spec, self.store.url, st, self.last_metrics() if shows_metrics else {})

    # waiting and reading ------------------------------------------------------------------------
    def wait(self, timeout: float | None = None, *, raise_on_error: bool = False, poll: float = 0.1) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = poll
        while self.refresh()["state"] in ACTIVE_STATES or self._status.get("retried_as"):
            if self._status.get("retried_as"):  # preempted and retried: follow the new attempt
                nxt = self.latest()
                self.id, self._spec, self._handle, self._status = nxt.id, nxt._spec, None, None
                continue
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.id} still {self.state} after {timeout} s")
            self._observe()
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)  # a finished job is seen within half a second
        self._observe()
        if raise_on_error and self.state != JobState.SUCCEEDED:
            raise JobFailed(f"job {self.id} {self.state}: {self.status.get('reason') or ''}".rstrip(": "))
        return self

    def _observe(self) -> None:
        """A recording client watching the job mirrors it to MLflow and announces its end
        (:mod:`offload.jobs.observe`; nothing for a job without a run or a webhook)."""
        if self.record and self._status is not None:
            observe(self, self._status)

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    def logs(self) -> str:
        return "".join(self.iter_logs(follow=False))

    def iter_logs(self, *, follow: bool = True, poll: float = 0.25) -> Iterator[str]:
        """Yield log text as it is stored; with ``follow``, until the job has ended.

        A machine's boot log (``boot.log``, written before the runner exists) comes first, so a
        VM that fails during set-up explains itself in the same place as the cells' output.
        """
        nxt = 0
        boot_seen = 0
        # A local store answers in microseconds: its first 10 s are followed every 20 ms, so a short
        # job's end is seen at once, not up to ``poll`` later; then every ``poll``.
        fast_until = time.time() + 10 if self.store.local else 0.0
        while True:
            ended = self.refresh()["state"] in FINAL_STATES if follow else True
            if follow:
                self._observe()
            if nxt == 0:
                boot = self._boot_log()
                if len(boot) > boot_seen:
                    yield boot[boot_seen:]
                    boot_seen = len(boot)
            for n, text in self.store.iter_log_chunks(self.id, nxt):
                nxt = n + 1
                yield text
            if ended:
                return
            time.sleep(min(poll, 0.02) if time.time() < fast_until else poll)

    def _boot_log(self) -> str:
        try:
            return self.store.get_text(self.key("boot.log"))
        except KeyError:
            return ""

    @property
    def metrics(self) -> list[dict[str, Any]]:
        try:
            return parse_metrics(self.store.get_text(self.key("metrics.jsonl")))
        except KeyError:
            return []

    def last_metrics(self) -> dict[str, Any]:
        return last_values(self.metrics)

    @property
    def output_notebook(self):
        """The executed notebook: complete once the job has ended, as far as it ran before."""
        nb = read_output(self.store, self.id)
        return None if nb is None else rejoin_lines(nbformat.from_dict(nb))  # as nbformat.reads would

    def outputs(self) -> list[str]:
        prefix = self.key("outputs")
        return [k[len(prefix) + 1:] for k in self.store.list(prefix)]

    def download_outputs(self, dest: str | os.PathLike) -> list[Path]:
        out = []
        for rel in self.outputs():
            target = Path(dest) / rel
            self.store.get_file(self.key(f"outputs/{rel}"), target)
            out.append(target)
        return out

    # actions ----------------------------------------------------------------------------------
    def cancel(self) -> bool:
        """Ask the job to stop; False if it had already ended."""
        if self.refresh()["state"] in FINAL_STATES:
            return False
        self.store.put_text(self.key("cancel"), str(time.time()))
        handle = self.handle
        if handle is not None and not self._machine_stays(handle):
            try:
                self.backend().cancel(handle)
            except BackendError:
                raise
            except OffloadError:
                pass
        return True

    def _machine_stays(self, handle: dict) -> bool:
        """A job on a warm machine is stopped by its cancel marker alone (the runner sees it within
        a second) so the machine stays for the next job: one handed to a machine, or one kept warm
        whose runner is up. Before its runner starts, the machine is deleted as for any job."""
        if machines.is_handed(handle):
            return True
        return self.spec.keeps_machine and self.last_status.get("state") == JobState.RUNNING

    def merge(self, into: str | os.PathLike | None = None, *, write: bool = True):
        return merge_job(self, into=into, write=write)

    def timings(self) -> dict[str, Any]:
        """Where a job's time went, in seconds (None for a phase not reached or not measured):

        ``provision_s`` launch -> machine created (backends that create one: GCE);
        ``boot_s`` machine created (else launch) -> runner started; ``env_s`` the environment
        (built, unpacked or reused: ``env_cache`` says which); ``data_s`` bundle and checkpoints
        from the store; ``kernel_s`` kernel start -> first cell; ``first_cell_s`` submit -> first
        cell started (the sum a user waits). The runner records what it measures in its status;
        the times before it exists come from the handle the launch wrote."""
        st = self.status
        raw = dict(st.get("timings") or {})
        h = self.handle or {}
        submitted = self.spec.created_at
        launched, created = h.get("launched_at"), h.get("created_at")
        runner, first = raw.get("runner_started_at"), raw.get("first_cell_at")

        def span(a: Any, b: Any) -> float | None:
            return round(float(b) - float(a), 3) if a is not None and b is not None else None

        phases = {
            "provision_s": span(launched, created),
            "boot_s": span(created or launched or submitted, runner),
            "env_s": raw.get("env_s"), "data_s": raw.get("data_s"), "kernel_s": raw.get("kernel_s"),
            "first_cell_s": span(submitted, first),
        }
        phases = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in phases.items()}
        return {**phases, "created_at": submitted, "started_at": st.get("started_at"),
                "finished_at": st.get("finished_at"), "duration_s": st.get("duration_s"),
                **{k: v for k, v in raw.items() if k not in phases}}

    def summary(self) -> dict[str, Any]:
        st = self.status
        spec = self.spec
        return {
            "id": self.id, "notebook": spec.notebook, "kind": spec.kind, "backend": spec.backend,
            "state": st.get("state"), "reason": st.get("reason"), "cell": st.get("cell"), "n_cells": st.get("n_cells"),
            "created_at": spec.created_at, "started_at": st.get("started_at"), "finished_at": st.get("finished_at"),
            "parameters": spec.parameters, "metrics": self.last_metrics(), "labels": spec.labels,
        }
