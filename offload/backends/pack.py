"""The ``sweep-pack`` backend, client half of packing: a trial job runs inside a pack job.

A pack is a job of kind ``pack`` that runs up to ``pack_slots`` trials at once on one machine
(the machine half is :mod:`offload.runner.pack`). Trial jobs name ``sweep-pack`` as their backend:
``launch`` assigns the trial to the pack named in its ``pack`` label (an object the sweep driver
writes), ``state`` reads the pack's status (running there / finished / pack gone), ``cancel`` relies
on the cancel marker the trial's runner watches. Lost packs therefore surface as lost trials
through the normal job reconciliation, and the driver re-queues them.

It is an internal backend: registered in code, never offered to users.
"""

from __future__ import annotations

import time
from typing import Any

from offload.backends.base import (
    B_GONE,
    B_PENDING,
    B_RUNNING,
    Backend,
    BackendState,
    register_internal,
)
from offload.errors import UsageError
from offload.spec import ACTIVE_STATES, JobSpec, JobState
from offload.store import layout
from offload.store.layout import pack_key

STALE_S = 60.0  # a pack whose status is older than this is gone


# The client side ------------------------------------------------------------------------------
@register_internal
class PackBackend(Backend):
    """Backend of trial jobs that run inside a pack; the pack itself runs on a real backend."""

    name = "sweep-pack"

    def launch(self, spec: JobSpec) -> dict[str, Any]:
        sweep, pack = spec.labels.get("sweep"), spec.labels.get("pack")
        if not sweep or not pack:
            raise UsageError("a sweep-pack job needs the sweep and pack labels", hint="only the sweep driver submits these")
        self.store.put_text(pack_key(sweep, pack, f"assign/{spec.id}"), str(time.time()))
        return {"sweep": sweep, "pack": pack, "job": spec.id}

    def state(self, handle: dict[str, Any]) -> BackendState:
        status = self.store.get_json(pack_key(handle["sweep"], handle["pack"], "status.json"), None)
        job = handle["job"]
        if status is None:
            if not self.store.exists(layout.job_key(handle["pack"], "spec.json")):
                return BackendState(B_GONE, f"there is no pack job {handle['pack']}")
            pack_status = self.store.get_json(layout.job_key(handle["pack"], "status.json"), None)
            if pack_status and pack_status.get("state") not in ACTIVE_STATES:
                return BackendState(B_GONE, f"pack {handle['pack']} ended {pack_status.get('state')}")
            return BackendState(B_PENDING, "waiting for the pack machine")
        if job in status.get("done", []):
            return BackendState(B_GONE, "runner exited")
        if status.get("state") != JobState.RUNNING or time.time() - float(status.get("heartbeat", 0)) > STALE_S:
            return BackendState(B_GONE, f"pack {handle['pack']} is {status.get('state')} / silent")
        if job in status.get("running", []):
            return BackendState(B_RUNNING, details={"pack": handle["pack"], "host": status.get("host")})
        return BackendState(B_PENDING, f"queued in pack {handle['pack']} ({len(status.get('running', []))}/{status.get('slots')} slots busy)")

    def cancel(self, handle: dict[str, Any]) -> None:
        """The cancel marker is already written; the trial's runner stops within a second."""
