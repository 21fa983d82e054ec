"""The sweep pack, machine side: up to ``pack_slots`` trial runners at once on one machine.

A pack is a job of kind ``pack`` (0.1 wrote kind ``notebook`` with the label ``role=sweep-pack``)
launched by any backend (a GCE VM, a SLURM allocation, a local process). The server starts
``python -m offload.runner STORE TRIAL_JOB`` for each trial the driver assigns to it, at most K at
once (each runner streams its own status, metrics and notebook as usual), and exits when the
driver says the sweep needs no more (``done`` marker), when it has been idle too long, or on
SIGTERM (preemption), which it forwards to its runners so they record why they stopped. The
client half is :class:`offload.backends.pack.PackBackend`.

Store objects (one writer each), under ``sweeps/<sweep>/packs/<pack-job>/``:
``assign/<trial-job>`` (driver), ``done`` (driver), ``status.json`` (this server).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from offload.runner.core import machine_backend
from offload.spec import JobSpec, JobState
from offload.store import Store, layout
from offload.store.layout import pack_key

TICK_S = 0.5
STATUS_EVERY_S = 2.0
IDLE_EXIT_S = float(os.environ.get("OFFLOAD_PACK_IDLE_S", "300"))


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

    def write_status(self, state: str = JobState.RUNNING, force: bool = False) -> None:
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
        if state != JobState.RUNNING:
            job["finished_at"] = now
        self.store.put_json(layout.job_key(self.id, "status.json"), job)

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
                self.write_status(JobState.PREEMPTED if not self.store.exists(layout.job_key(self.id, "cancel")) else JobState.CANCELLED, force=True)
                return 1
            if self.store.exists(layout.job_key(self.id, "cancel")):
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
                    self.write_status(JobState.SUCCEEDED, force=True)
                    return 0
            self.write_status()
            time.sleep(TICK_S)


def serve_pack(store: Store, spec: JobSpec) -> int:
    """The ``pack`` program of the runner table."""
    code = PackServer(store, spec.id, spec.to_dict()).run()
    # Let the machine's backend clean up as after any runner (a GCE VM deletes itself here).
    try:
        final = (store.get_json(layout.job_key(spec.id, "status.json"), {}) or {}).get("state", JobState.SUCCEEDED)
        machine_backend(spec.backend).on_runner_exit(spec, store, final)
    except Exception as exc:  # never turn a finished pack into a crash
        print(f"pack {spec.id}: on_runner_exit: {exc}", file=sys.stderr)
    return code
