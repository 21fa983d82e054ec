"""The driver's half of packing: one machine runs up to ``per_gpu`` trials at once.

A *pack* is a job of kind ``pack``, launched on the sweep's backend (a GCE VM, a SLURM allocation,
a local process), labelled ``sweep=<id>`` and ``pack_slots=<K>``; the runner serves it as a pack (:mod:`offload.runner.pack`). A trial that runs in a pack is a job of the
internal ``sweep-pack`` backend (:mod:`offload.backends.pack`) whose ``pack`` label names the pack
it was given. This module decides which pack gets which trial, starts a new pack when every live
one is full, finds the packs of a resumed sweep and tells them when the sweep needs no more.

Store objects written here: ``sweeps/<id>/packs/<pack>/done`` (the sweep needs no more trials);
``assign/<trial job>`` is written by the ``sweep-pack`` backend when the trial is submitted.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from typing import Any

from offload import jobs
from offload.config import default_backend
from offload.spec import ACTIVE_STATES, FINAL_STATES
from offload.store import Store
from offload.store.layout import pack_key
from offload.sweeps.records import open_job, safe_state, sweep_job_specs

PACK_ROLE = "sweep-pack"  # how 0.1 marked a pack job (a label); packs are now jobs of kind "pack"
PACK_BACKEND = "sweep-pack"  # the backend of trial jobs that run inside a pack


def packs_trials(rec: dict[str, Any]) -> bool:
    """Whether the sweep packs: ``per_gpu > 1`` on a remote backend (on the local backend slots
    are plain processes, unless the sweep asked for local packs, which tests the remote path)."""
    if int(rec.get("per_gpu") or 1) <= 1:
        return False
    backend = (rec.get("submit") or {}).get("backend") or default_backend()
    return backend != "local" or bool(rec.get("pack_local"))


class Packs:
    """The sweep's live pack machines, as the driver sees them."""

    def __init__(self, store: Store, sweep_id: str, rec: dict[str, Any], *, say: Callable[[str], None]):
        self.store = store
        self.id = sweep_id
        self.rec = rec
        self.say = say
        self.slots = int(rec.get("per_gpu") or 1)
        self.jobs: dict[str, Any] = {}  # pack job id -> Job

    def route(self, sub: dict[str, Any], labels: dict[str, str], *, busy: collections.Counter[str],
              env_spec: Any) -> dict[str, Any]:
        """Put a trial in a pack: labels it with a pack that has a free slot (starting a pack
        machine with the sweep's own submit options ``sub`` if none has) and returns the
        trial's submit options. ``busy`` counts the running trials of each pack."""
        labels["pack"] = self._free_pack(sub, busy, env_spec)
        opts = {"backend": PACK_BACKEND, "env": sub.get("env", "kernel"), "max_runtime": sub.get("max_runtime")}
        return {k: v for k, v in opts.items() if v is not None}

    def _free_pack(self, sub: dict[str, Any], busy: collections.Counter[str], env_spec: Any) -> str:
        """A live pack with a free slot, or a new pack machine if none has one."""
        for pack_id, job in list(self.jobs.items()):
            if safe_state(job) in FINAL_STATES:
                del self.jobs[pack_id]
                continue
            if busy[pack_id] < self.slots:
                return pack_id
        labels = {"sweep": self.id, "pack_slots": str(self.slots)}
        job = jobs.submit(self.rec["notebook"], parameters={}, kind="pack", labels=labels, store=self.store,
                          env_spec=env_spec, **sub)
        self.jobs[job.id] = job
        self.say(f"pack {job.id}: a machine for {self.slots} trials at once")
        return job.id

    def adopt(self) -> None:
        """A resumed driver takes over the packs still running."""
        for job_id, spec in sweep_job_specs(self.store, self.id).items():
            if spec.get("kind") == "pack" or spec["labels"].get("role") == PACK_ROLE:  # 0.1 packs: the label
                job = open_job(job_id, self.store)
                if safe_state(job) in ACTIVE_STATES:
                    self.jobs[job_id] = job

    def release(self) -> None:
        """The sweep needs no more trials: each pack ends once its running trials have."""
        for pack_id in self.jobs:
            self.store.put_text(pack_key(self.id, pack_id, "done"), str(time.time()))
