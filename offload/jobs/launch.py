"""The one launch path: :func:`launch_spec` is the only writer of a job's ``spec.json``,
``env.json`` and ``handle.json`` and the only caller of ``Backend.launch``.

Everything that starts a job goes through it: ``submit`` (CLI, REST, ``%%offload``, sweep trials
and packs), a retry after preemption, a rerun from the gallery, a warm session and the cell jobs
it serves. It is also where a job is handed to an idle warm machine of the same shape instead of
booting one (:func:`offload.jobs.machines.hand_off`; the claim protocol is in
``offload/runner/machine.py``). So a job is written the same way whoever starts it, a failed
launch always leaves the same trace (``reconciled.json`` says ``failed`` with the backend's reason), and nothing is written
before every check has passed.
"""

from __future__ import annotations

import time
from typing import Any

from offload.backends.base import Backend, get_backend
from offload.config import backend_options
from offload.errors import OffloadError
from offload.jobs import budget, index, machines
from offload.spec import JobSpec, JobState
from offload.store import Store, layout


def launch_spec(
    spec: JobSpec,
    *,
    store: Store,
    env: dict[str, Any] | None = None,
    backend: Backend | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate ``spec`` (ours and the backend's), write it, launch it; return the handle.

    ``backend`` is the launcher to use (default: the spec's backend with the user's options plus
    ``options``); a warm session passes its own queue. ``env`` is the EnvSpec dict stored beside
    the spec. The bundle must already be staged.
    """
    spec.validate()
    opts = {**backend_options(spec.backend), **(options or {})}
    be = backend or get_backend(spec.backend, store, **opts)
    machines.apply_keep_alive_default(spec, be, {**opts, **be.options})
    be.validate(spec)
    spent = budget.enforce(spec, backend=be, options=be.options)  # before any cloud call
    store.put_json(layout.job_key(spec.id, "spec.json"), spec.to_dict())
    if env is not None:
        store.put_json(layout.job_key(spec.id, "env.json"), env)
    index.record(spec, store.url, {"state": JobState.QUEUED})
    try:
        # A warm machine of the same shape takes the job (no new VM, no sbatch); else boot one.
        handle = machines.hand_off(spec, store, be) or be.launch(spec)
    except Exception as exc:
        msg = str(exc) if isinstance(exc, OffloadError) else f"{type(exc).__name__}: {exc}"
        failed = {"state": JobState.FAILED, "reason": f"launch failed: {msg}", "at": time.time(), "finished_at": time.time()}
        if store.exists(layout.job_key(spec.id, "cancel")):  # cancelled while launching (waiting for capacity)
            failed.update(state=JobState.CANCELLED, reason=msg)
        store.put_json(layout.job_key(spec.id, "reconciled.json"), failed)
        index.record(spec, store.url, failed)
        raise
    handle = {**handle, "budget": spent} if spent else handle
    store.put_json(layout.job_key(spec.id, "handle.json"), handle)
    return handle
