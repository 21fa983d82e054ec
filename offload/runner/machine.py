"""The machine agent: a machine that stays after its job and takes the next compatible one.

A job with a keep-alive window (``resources.keep_alive_s``) is run by :func:`serve`: the job's
own program runs first, in this process, as on any machine; then, instead of deleting itself,
the machine waits for jobs handed to it until it has been idle for the window, and ends
(``Backend.end_machine``: a VM deletes itself, a SLURM allocation ends with this process). The
VM's maxRunDuration / the allocation's time limit is the job's max runtime plus the window, and
stays the hard cap: the client never hands a machine a job whose max runtime does not fit in
what is left of it.

The machine is the one writer of its record, ``machines/<name>.json`` (see
``offload/store/layout.py``): backend, shape, zone/region/partition, price, env hashes it holds,
``state`` (:class:`~offload.spec.MachineState`), the job it runs, its idle and hard deadlines
and a heartbeat. Sessions (``%%offload``) and sweep packs register the same record while they
run (:func:`registered`), so every machine is listed by ``offload machines --running``.

Claim protocol (the client side is ``offload.jobs.machines.hand_off``, called by the one launch
path): the client writes the job's ``spec.json``, then the claim ``machines/<name>/queue/<job>``,
then lists the queue. It wins only when its claim is the only one there; else it deletes its
claim and boots a new machine. Two clients can both lose, never both win: the later writer lists
after the earlier one's claim exists. The winner writes ``handle.json`` naming the machine; the
agent runs a queue entry only once that handle names it, and removes entries that never got one
(a losing or crashed client) after :data:`UNCLAIMED_S`. A winner reads the record once more and
withdraws when the machine is no longer idle (it took another job in between), so a handed job
never waits behind another. Clients claim only a machine whose idle deadline is more than 10 s
away; at its deadline the agent says ``ending`` (no client claims it any more), reads its queue
one last time and waits up to :data:`CLAIM_GRACE_S` for a claim still missing its handle, so a
claim that raced with the deadline is served, not stranded.

Each handed job runs as its own ``python -m offload.runner`` process (a clean interpreter, the
job's own signal handling and bookkeeping), started with ``OFFLOAD_MACHINE=<name>`` so it neither
becomes an agent itself nor deletes the machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from offload.runner.core import HEARTBEAT_S, machine_backend
from offload.spec import JobSpec, MachineState, machine_name
from offload.store import Store, layout

MACHINE_ENV = "OFFLOAD_MACHINE"  # set for the runners a machine agent starts
POLL_S = float(os.environ.get("OFFLOAD_MACHINE_POLL_S", "0.25"))  # queue reads in the first minute idle
IDLE_POLL_S = max(POLL_S, 1.0)  # then: a list is a billed store operation (GCS class A), 3,600 an hour
RECORD_EVERY_S = max(5.0, HEARTBEAT_S * 5)  # the record's heartbeat
UNCLAIMED_S = 120.0  # a queue entry without a handle naming this machine is dropped after this
CLAIM_GRACE_S = 30.0  # at its deadline, how long the machine waits for a claim's handle
# What of the first job's handle a handed job's handle copies: where the machine is and its price,
# not the first job's attempts, cost estimate or boot timeout (a handed job does not boot).
HANDLE_KEYS = ("backend", "project", "zone", "region", "name", "machine", "gpu", "gpu_count", "spot",
               "price_per_hour", "api_endpoint", "slurm_job_id", "cluster", "output")
log = logging.getLogger("offload.runner.machine")

Program = Callable[[Store, JobSpec], int]


def keeps_machine(spec: JobSpec) -> bool:
    """Whether this runner becomes a machine agent after its job (not when an agent started it)."""
    return spec.keeps_machine and not os.environ.get(MACHINE_ENV)


class MachineRecord:
    """``machines/<name>.json``, written by this machine only, with a heartbeat thread."""

    def __init__(self, store: Store, spec: JobSpec, *, role: str):
        self.store = store
        self.name = machine_name(spec.id)
        self.key = layout.machine_key(self.name)
        self.lock = threading.Lock()
        self.stop_beat = threading.Event()
        now = time.time()
        self.data: dict[str, Any] = {
            "name": self.name, "backend": spec.backend, "role": role, "state": MachineState.BUSY,
            "job": spec.id, "job_kind": spec.kind, "first_job": spec.id, "shape": spec.resources.shape(),
            "keep_alive_s": spec.resources.keep_alive_s or 0, "started_at": now, "idle_since": None,
            "idle_deadline": None, "hard_deadline": now + spec.resources.max_runtime_s + (spec.resources.keep_alive_s or 0),
            "env_hashes": [spec.env_hash] if spec.env_hash else [], "jobs_served": 0, "host": socket.gethostname(),
            "partition": spec.resources.options.get("partition") or os.environ.get("SLURM_JOB_PARTITION"),
            "heartbeat_every_s": RECORD_EVERY_S, "store": store.url,
        }
        self._with_handle(spec.id)

    def _with_handle(self, job_id: str) -> None:
        """Zone, price, VM or allocation from the first job's handle (the client writes it right
        after launch; a machine that boots faster than that reads it at its next write)."""
        if self.data.get("handle"):
            return
        handle = self.store.get_json(layout.job_key(job_id, "handle.json"), None)
        if not handle:
            return
        self.data["handle"] = {k: handle[k] for k in HANDLE_KEYS if handle.get(k) is not None}
        for k in ("zone", "region", "machine", "gpu", "gpu_count", "spot", "price_per_hour", "slurm_job_id"):
            if handle.get(k) is not None:
                self.data[k] = handle[k]
        if handle.get("created_at"):  # billing starts when the VM was created, not when we booted
            self.data["started_at"] = min(self.data["started_at"], float(handle["created_at"]))

    def update(self, **fields: Any) -> None:
        with self.lock:
            self.data.update(fields)
            self._write()

    def note(self, **fields: Any) -> None:
        """Change fields; the next heartbeat writes them (no store write on a warm cell's path)."""
        with self.lock:
            self.data.update(fields)

    def _write(self) -> None:
        try:
            self._with_handle(self.data["first_job"])
            self.store.put_json(self.key, {**self.data, "heartbeat": time.time()})
        except Exception as exc:  # the store is flaky: the next beat writes it again
            log.warning("cannot write %s: %s", self.key, exc)

    def _beat(self) -> None:
        while not self.stop_beat.wait(RECORD_EVERY_S):
            with self.lock:
                self._write()

    def start(self) -> MachineRecord:
        self.update()
        threading.Thread(target=self._beat, name="offload-machine-beat", daemon=True).start()
        return self

    def end(self, reason: str) -> None:
        self.stop_beat.set()
        self.update(state=MachineState.ENDED, reason=reason, ended_at=time.time(), job=None, idle_deadline=None)


@contextlib.contextmanager
def registered(store: Store, spec: JobSpec, *, role: str) -> Iterator[MachineRecord | None]:
    """A session or sweep pack listed as a machine while it runs (none when an agent runs it:
    the agent's own record says it is busy with it)."""
    if os.environ.get(MACHINE_ENV):
        yield None
        return
    rec = MachineRecord(store, spec, role=role).start()
    reason = "ended"
    try:
        yield rec
    except BaseException as exc:
        reason = f"ended: {type(exc).__name__}"
        raise
    finally:
        rec.end(reason)


class MachineAgent:
    """Runs the first job, then jobs handed to this machine, until idle past its window."""

    def __init__(self, store: Store, spec: JobSpec):
        self.store = store
        self.spec = spec
        self.record = MachineRecord(store, spec, role="keep-alive")
        self.name = self.record.name
        self.window_s = int(spec.resources.keep_alive_s or 0)
        self.child: subprocess.Popen | None = None
        self.terminated: str | None = None
        self.first_seen: dict[str, float] = {}
        self.pending = 0

    # signals: the VM is going away (preemption, maxRunDuration, a delete) or SLURM ends us
    def on_sigterm(self, signum: int, frame: Any) -> None:
        self.terminated = f"received {signal.Signals(signum).name}"
        child = self.child
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    def run(self, first: Program) -> int:
        self.record.start()
        rc = 1
        reason = "ended"
        try:
            rc = first(self.store, self.spec)  # the job's own program, as on any machine
            signal.signal(signal.SIGTERM, self.on_sigterm)
            signal.signal(signal.SIGINT, self.on_sigterm)
            status = self.store.get_json(layout.job_key(self.spec.id, "status.json"), None) or {}
            if status.get("state") == "preempted" or str(status.get("reason") or "").startswith("terminated"):
                self.terminated = f"the machine is going away ({status.get('reason')})"  # not kept
            self._note_done(self.spec)
            reason = self.serve()
        except BaseException as exc:
            reason = f"the machine agent failed: {type(exc).__name__}: {exc}"
            log.exception("machine agent")
        finally:
            self.record.end(reason)
            print(f"offload machine {self.name}: {reason}", flush=True)
            if not self.terminated:  # a machine being deleted already is not deleted twice
                try:
                    machine_backend(self.spec.backend).end_machine(self.spec, self.store)
                except Exception as exc:
                    print(f"offload machine {self.name}: cannot delete itself ({exc}); its max run "
                          "duration will", flush=True)
        return rc

    def _note_done(self, spec: JobSpec) -> None:
        """After a job: idle, with a fresh deadline (the job's own window when it asked for one)."""
        if spec.resources.keep_alive_s:
            self.window_s = int(spec.resources.keep_alive_s)
        hashes = list(self.record.data["env_hashes"])
        if spec.env_hash and spec.env_hash not in hashes:
            hashes.append(spec.env_hash)
        now = time.time()
        self.record.update(state=MachineState.IDLE, job=None, job_kind=None, idle_since=now,
                           idle_deadline=min(now + self.window_s, self.record.data["hard_deadline"]),
                           env_hashes=hashes, jobs_served=self.record.data["jobs_served"] + 1,
                           keep_alive_s=self.window_s)

    def _handed(self) -> list[str]:
        """Queued job ids whose client confirmed the claim (handle.json names this machine);
        ``self.pending`` counts fresh claims not confirmed yet."""
        out = []
        now = time.time()
        self.pending = 0
        for key in self.store.list(layout.machine_queue_key(self.name)):
            job_id = key.rsplit("/", 1)[-1]
            handle = self.store.get_json(layout.job_key(job_id, "handle.json"), None)
            if handle and handle.get("on_machine") == self.name:
                out.append(job_id)
                continue
            seen = self.first_seen.setdefault(job_id, now)
            if now - seen > UNCLAIMED_S:  # a losing or crashed client's claim
                self.store.delete(key)
                self.first_seen.pop(job_id, None)
            else:
                self.pending += 1
        return out

    def serve(self) -> str:
        stop_key = layout.machine_stop_key(self.name)
        last_stop_check = 0.0
        while True:
            if self.terminated:
                return f"stopped: {self.terminated}"
            handed = self._handed()
            if handed:
                self._run_handed(handed[0])
                continue
            now = time.time()
            if now - last_stop_check >= 1.0:
                last_stop_check = now
                if self.store.exists(stop_key):
                    self.record.update(state=MachineState.ENDING)
                    return "stopped by the user"
            deadline = self.record.data["idle_deadline"] or now
            if now >= deadline:
                if self.record.data["state"] != MachineState.ENDING:
                    self.record.update(state=MachineState.ENDING)  # no client claims it from now on
                handed = self._handed()  # a claim that raced with the deadline is still served
                if handed:
                    self._run_handed(handed[0])
                    continue
                if self.pending and now < deadline + CLAIM_GRACE_S:
                    time.sleep(POLL_S)  # a client between its claim and its handle: wait for it
                    continue
                return f"idle for {self.window_s} s after {self.record.data['jobs_served']} job(s)"
            idle_since = self.record.data.get("idle_since") or now
            time.sleep(POLL_S if now - idle_since < 60 else IDLE_POLL_S)

    def _run_handed(self, job_id: str) -> None:
        try:
            spec = JobSpec.from_dict(self.store.get_json(layout.job_key(job_id, "spec.json")))
        except Exception as exc:
            print(f"offload machine {self.name}: job {job_id} has no readable spec ({exc})", flush=True)
            self.store.delete(layout.machine_queue_key(self.name, job_id))
            return
        self.record.update(state=MachineState.BUSY, job=job_id, job_kind=spec.kind, idle_deadline=None, idle_since=None)
        self.store.delete(layout.machine_queue_key(self.name, job_id))
        self.first_seen.pop(job_id, None)
        env = dict(os.environ, **{MACHINE_ENV: self.name})
        self.child = subprocess.Popen([sys.executable, "-m", "offload.runner", self.store.url, job_id], env=env)
        try:
            while True:
                try:
                    self.child.wait()
                    break
                except InterruptedError:
                    continue
        finally:
            self.child = None
        self._note_done(spec)


def serve(store: Store, spec: JobSpec, first: Program) -> int:
    """Run ``spec`` with ``first`` (its program), then keep the machine for the next jobs."""
    return MachineAgent(store, spec).run(first)


__all__ = ["MACHINE_ENV", "MachineAgent", "MachineRecord", "keeps_machine", "registered", "serve"]
