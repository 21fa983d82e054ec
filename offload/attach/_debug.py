"""Debug a copy: rerun a failed job with the same bundle, environment and parameters up to the
cell that failed, then keep its kernel for ``offload attach`` (and JupyterLab's Console) while you
look at the state the failing cell met. The copy stops running cells before the failing one, holds
its kernel for ``hold_s`` (default 30 min, within its max runtime), and ends ``succeeded`` when the
hold ends, ``cancelled`` when you cancel it; on a kept machine the usual keep-alive rules follow.
"""

from __future__ import annotations

import time
from typing import Any

from offload.errors import ConflictError, UsageError
from offload.jobs import Job, launch_spec, recording
from offload.runner.kernel import DEBUG_CELL_LABEL, DEBUG_HOLD_LABEL
from offload.spec import JobSpec, JobState, new_job_id
from offload.store import Store, layout


def debug_copy(ref: str | Job, *, store: Store | str | None = None, hold_s: int | None = None,
               backend_options_: dict[str, Any] | None = None) -> Job:
    old = ref if isinstance(ref, Job) else Job(ref, store=store)
    status = old.refresh()
    if status.get("state") != JobState.FAILED:
        raise ConflictError(f"job {old.id} is {status.get('state')}: Debug a copy reruns a failed job up to the cell "
                            "that failed", field="job", hint=f"offload attach {old.id} attaches to a running job")
    cell = int((status.get("error") or {}).get("cell") or 0)
    if cell < 1:
        raise ConflictError(f"job {old.id} failed outside a cell ({status.get('reason')}): there is no cell to stop before",
                            field="job", hint="rerun it (offload rerun) and attach while it runs")
    if hold_s is not None and not 60 <= hold_s <= 24 * 3600:
        raise UsageError(f"the hold of {hold_s} s is outside 60 s to 24 h", field="hold_s")
    spec = old.spec
    labels = {**spec.labels, DEBUG_CELL_LABEL: str(cell), "debug_copy_of": spec.id}
    if hold_s is not None:
        labels[DEBUG_HOLD_LABEL] = str(hold_s)
    new = JobSpec.from_dict({**spec.to_dict(), "id": new_job_id(), "parent": spec.id, "labels": labels,
                             "created_at": time.time(), "attempt": 0, "retries": 0})
    handle = launch_spec(new, store=old.store, env=old.store.get_json(layout.job_key(spec.id, "env.json"), None),
                         options=backend_options_)
    recording.on_rerun(old.store, spec, new)  # provenance: the original's bundle, rerun_of it
    return Job(new.id, store=old.store, spec=new, handle=handle)
