"""Packing: one machine runs up to ``per_gpu`` sweep trials at once, taking the next when a slot frees.

Two halves, both backend-neutral:

* **The pack server** runs on the machine. A *pack* is an ordinary job (launched by any backend:
  a GCE VM, a SLURM allocation, a local process) whose spec carries the labels
  ``role=sweep-pack``, ``sweep=<id>``, ``pack_slots=<K>``. ``offload.runner`` hands such a job to
  :func:`serve_if_pack` instead of executing a notebook. The server starts
  ``python -m offload.runner STORE TRIAL_JOB`` for each trial assigned to it, at most K at once
  (each runner streams its own status, metrics and notebook as usual), and exits when the driver
  says the sweep needs no more (``done`` marker), when it has been idle too long, or on SIGTERM
  (preemption), which it forwards to its runners so they record why they stopped.
* **The pack backend** (entry point ``sweep-pack``) is what trial jobs name as their backend:
  ``launch`` assigns the trial to the pack named in its ``pack`` label (an object the driver
  writes), ``state`` reads the pack's status (running here / finished / pack gone), ``cancel``
  relies on the cancel marker the runner watches. Lost packs therefore surface as lost trials
  through the normal job reconciliation, and the driver re-queues them.

Store objects (one writer each), under ``sweeps/<sweep>/packs/<pack-job>/``:
``assign/<trial-job>`` (driver), ``done`` (driver), ``status.json`` (pack server).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from offload.backends.base import B_GONE, B_PENDING, B_RUNNING, Backend, BackendState
from offload.spec import JobSpec
from offload.store import Store

ROLE = "sweep-pack"
TICK_S = 0.5
STATUS_EVERY_S = 2.0
STALE_S = 60.0
IDLE_EXIT_S = float(os.environ.get("OFFLOAD_PACK_IDLE_S", "300"))


def pack_key(sweep_id: str, pack_id: str, name: str = "") -> str:
    base = f"sweeps/{sweep_id}/packs/{pack_id}"
    return f"{base}/{name}" if name else base


def is_pack(labels: dict[str, Any]) -> bool:
    return labels.get("role") == ROLE


# The machine side -----------------------------------------------------------------------------
class PackServer:
    def __init__(self, store: Store, pack_job: str, spec: dict[str, Any]):
        labels = spec.get("labels") or {}
        self.store = store
        self.id = pack_job
        self.sweep = labels["sweep"]
        self.slots = max(1, int(labels.get("pack_slots", 1)))
        self.running: dict[str, subprocess.Popen] = {}
        self.done: list[str] = []
        self.started: set[str] = set()
        self.stopping = False
        self.last_status = 0.0
        self.last_busy = time.time()
        self.started_at = time.time()

    def write_status(self, state: str = "running", force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last_status < STATUS_EVERY_S:
            return
        self.last_status = now
        pack = {"running": sorted(self.running), "done": self.done, "slots": self.slots, "heartbeat": now,
                "host": socket.gethostname(), "pid": os.getpid(), "state": state}
        self.store.put_json(pack_key(self.sweep, self.id, "status.json"), pack)
        # The pack is a job too: keep its own status fresh so the job watcher does not call it lost.
        job = {"state": state, "heartbeat": now, "started_at": self.started_at, "host": socket.gethostname(),
               "pid": os.getpid(), "cell": 0, "n_cells": 0, "reason": f"sweep pack: {len(self.running)}/{self.slots} trials"}
        if state != "running":
            job["finished_at"] = now
        self.store.put_json(Store.job_key(self.id, "status.json"), job)

    def assigned(self) -> list[str]:
        keys = self.store.list(pack_key(self.sweep, self.id, "assign"))
        return [k.rsplit("/", 1)[-1] for k in keys]

    def start(self, job_id: str) -> None:
        log = open(os.devnull, "wb")  # the runner streams its own log to the store
        self.running[job_id] = subprocess.Popen(
            [sys.executable, "-m", "offload.runner", self.store.url, job_id],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self.started.add(job_id)

    def reap(self) -> None:
        for job_id, proc in list(self.running.items()):
            if proc.poll() is not None:
                del self.running[job_id]
                self.done.append(job_id)
                self.last_busy = time.time()
                self.last_status = 0.0

    def on_sigterm(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_sigterm)
        self.write_status(force=True)
        while True:
            self.reap()
            if self.stopping:
                for proc in self.running.values():
                    try:
                        os.killpg(proc.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                end = time.time() + 30
                while self.running and time.time() < end:
                    time.sleep(0.2)
                    self.reap()
                self.write_status("preempted" if not self.store.exists(Store.job_key(self.id, "cancel")) else "cancelled", force=True)
                return 1
            if self.store.exists(Store.job_key(self.id, "cancel")):
                self.stopping = True
                continue
            for job_id in self.assigned():
                if len(self.running) >= self.slots:
                    break
                if job_id not in self.started:
                    self.start(job_id)
                    self.last_status = 0.0
            if self.running:
                self.last_busy = time.time()
            finished = self.store.exists(pack_key(self.sweep, self.id, "done"))
            if not self.running and (finished or time.time() - self.last_busy > IDLE_EXIT_S):
                if not (set(self.assigned()) - self.started):
                    self.write_status("succeeded", force=True)
                    return 0
            self.write_status()
            time.sleep(TICK_S)


def serve_if_pack(store_url: str, job_id: str) -> int | None:
    """Runner hook: serve the pack if ``job_id`` is a sweep pack job, else return None."""
    store = Store(store_url)
    spec = store.get_json(Store.job_key(job_id, "spec.json"), {}) or {}
    if not is_pack(spec.get("labels") or {}):
        return None
    from offload.backends.local import drop_ticket

    drop_ticket()  # the pack's slots are its own: it does not queue for one of this machine's
    server = PackServer(store, job_id, spec)
    code = server.run()
    # Let the machine's backend clean up as after any runner (a GCE VM deletes itself here).
    try:
        from offload.runner import _backend_class

        final = (store.get_json(Store.job_key(job_id, "status.json"), {}) or {}).get("state", "succeeded")
        _backend_class(spec.get("backend", "local")).on_runner_exit(JobSpec.from_dict(spec), store, final)
    except Exception as exc:  # never turn a finished pack into a crash
        print(f"pack {job_id}: on_runner_exit: {exc}", file=sys.stderr)
    return code


# The client side ------------------------------------------------------------------------------
class PackBackend(Backend):
    """Backend of trial jobs that run inside a pack; the pack itself runs on a real backend."""

    name = "sweep-pack"

    def launch(self, spec: JobSpec) -> dict[str, Any]:
        sweep, pack = spec.labels.get("sweep"), spec.labels.get("pack")
        if not sweep or not pack:
            from offload.errors import UsageError

            raise UsageError("a sweep-pack job needs the sweep and pack labels", hint="only the sweep driver submits these")
        self.store.put_text(pack_key(sweep, pack, f"assign/{spec.id}"), str(time.time()))
        return {"sweep": sweep, "pack": pack, "job": spec.id}

    def state(self, handle: dict[str, Any]) -> BackendState:
        status = self.store.get_json(pack_key(handle["sweep"], handle["pack"], "status.json"), None)
        job = handle["job"]
        if status is None:
            pack_status = self.store.get_json(Store.job_key(handle["pack"], "status.json"), None)
            if pack_status and pack_status.get("state") not in ("queued", "provisioning", "running"):
                return BackendState(B_GONE, f"pack {handle['pack']} ended {pack_status.get('state')}")
            return BackendState(B_PENDING, "waiting for the pack machine")
        if job in status.get("done", []):
            return BackendState(B_GONE, "runner exited")
        if status.get("state") != "running" or time.time() - float(status.get("heartbeat", 0)) > STALE_S:
            return BackendState(B_GONE, f"pack {handle['pack']} is {status.get('state')} / silent")
        if job in status.get("running", []):
            return BackendState(B_RUNNING, details={"pack": handle["pack"], "host": status.get("host")})
        return BackendState(B_PENDING, f"queued in pack {handle['pack']} ({len(status.get('running', []))}/{status.get('slots')} slots busy)")

    def cancel(self, handle: dict[str, Any]) -> None:
        """The cancel marker is already written; the trial's runner stops within a second."""
