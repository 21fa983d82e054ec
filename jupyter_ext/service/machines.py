"""Warm machines through the REST API: the live ones, and stopping them.

The same functions as ``offload machines --running`` and ``offload machines stop``
(:mod:`offload.jobs.machines`), over the server's store and every store the user's config names.
"""

from __future__ import annotations

from typing import Any

from jupyter_ext.service.core import OffloadService
from jupyter_ext.service.models import MachineStopRequest
from offload.jobs import machines


def running(service: OffloadService) -> dict[str, Any]:
    """``{machines: [...], why_empty}``: each with its idle deadline and cost so far."""
    rows, why = machines.list_machines(also=[service.store])
    return {"machines": rows, "why_empty": why or None}


def stop(service: OffloadService, req: MachineStopRequest) -> dict[str, Any]:
    """Ask the machines to end; 404 for a name no store knows, 400 for a sweep's pack
    (it ends with its sweep)."""
    if req.all:
        results = machines.stop_all(also=[service.store])
    else:
        results = [machines.stop_machine(name, also=[service.store]) for name in req.names]
    return {"stopped": results}
