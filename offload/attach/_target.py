"""Which running kernel, on which machine, reached how: the job's state, its ``kernel.json``
record and its backend's :class:`~offload.backends.base.AttachRoute`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from offload.backends.base import Ability, AttachRoute
from offload.errors import ConflictError, UsageError
from offload.jobs import Job
from offload.runner.kernel import DEBUG_CELL_LABEL
from offload.spec import FINAL_STATES, JobState
from offload.store import Store, layout

KERNEL_KINDS = ("notebook", "cell", "trial")  # the programs that run the notebook in a kernel
POLL_S = 0.5


@dataclass
class Target:
    job: Job
    record: dict[str, Any]  # the runner's kernel.json
    route: AttachRoute

    @property
    def cwd(self) -> str:
        return self.record.get("cwd") or self.record.get("work_dir") or "."


def ended_error(job: Job, status: dict[str, Any]) -> ConflictError:
    state = status.get("state")
    reason = status.get("reason")
    hint = f"`offload logs {job.id}` shows what it did"
    if state == JobState.FAILED:
        hint += "; Debug a copy (JupyterLab) or `offload rerun` runs it again to look inside"
    return ConflictError(f"job {job.id} has ended ({state}{': ' + reason if reason else ''}); "
                         "there is no running kernel to attach to", field="job", hint=hint)


def find_target(ref: str, *, store: Store | str | None = None, wait: bool = True, timeout: float | None = None,
                progress: Callable[[str], None] | None = None, need_subshells: bool = True) -> Target:
    """The running job ``ref``'s kernel and the route to it. A queued or starting job is waited
    for (``progress`` hears each change; ``wait=False`` says so at once); an ended job is a
    ConflictError naming its state."""
    job = Job(ref, store=store)
    spec = job.spec
    if spec.kind not in KERNEL_KINDS:
        raise UsageError(f"job {job.id} is a {spec.kind}, which runs no notebook kernel of its own", field="job",
                         hint="attach to one of its cell or trial jobs instead (offload ls --kind cell)")
    backend = job.backend()
    if not backend.can(Ability.ATTACH):
        raise UsageError(f"the {spec.backend} backend cannot attach to a running job", field="backend",
                         hint="the local, slurm and gce backends can")
    deadline = None if timeout is None else time.monotonic() + timeout
    said = None
    while True:
        status = job.refresh()
        state = status.get("state")
        if state in FINAL_STATES:
            raise ended_error(job, status)
        record = job.store.get_json(job.key(layout.KERNEL), None)
        if record and spec.labels.get(DEBUG_CELL_LABEL) and status.get("phase") != "debug":
            record = None  # a debug copy is ready once it has run up to its failing cell
        if record:
            if need_subshells and not record.get("subshells"):
                raise UsageError(
                    f"job {job.id}'s kernel runs ipykernel {record.get('ipykernel') or '(unknown)'}; a console "
                    "beside a running cell needs ipykernel >= 7 (kernel subshells)", field="ipykernel",
                    hint=f"install 'ipykernel>=7' into {record.get('python')} (kernel mode uses your own "
                         "interpreter), or run the job with --env isolated; `offload ssh` works meanwhile")
            return Target(job, record, backend.attach_route(job.handle or {}, record))
        detail = status.get("phase") if state == JobState.RUNNING else status.get("reason")
        if state == JobState.RUNNING and spec.labels.get(DEBUG_CELL_LABEL):
            detail = f"a debug copy running its cells before cell {spec.labels[DEBUG_CELL_LABEL]}"
        now = f"job {job.id} is {state}" + (f" ({detail})" if detail else "")
        if not wait:
            raise ConflictError(f"{now}: its kernel is not running yet", field="job",
                                hint="without --no-wait, offload attach waits for it")
        if deadline is not None and time.monotonic() > deadline:
            raise ConflictError(f"{now}: its kernel did not start within {timeout:.0f} s", field="job",
                                hint="try again later; `offload logs -f` follows it")
        if progress is not None and now != said:
            progress(f"{now}; waiting for its kernel to start (Ctrl-C to give up)")
            said = now
        time.sleep(POLL_S)
