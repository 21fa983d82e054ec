"""The backend contract: where a job runs.

A backend only starts ``python -m offload.runner <store-url> <job-id>`` somewhere and answers
what only it knows (still provisioning, pending in a queue, machine gone). Everything else about
a job is in the store, written by the runner. Backends are discovered through the entry-point
group ``offload.backends`` so a third party can add one without forking.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar

from offload.errors import UsageError
from offload.spec import JobSpec
from offload.store import Store

# What a backend can say about a launched job, independent of the runner's status.json.
B_PENDING = "pending"  # accepted, waiting for resources (SLURM PENDING, local queue)
B_PROVISIONING = "provisioning"  # machine being created / booting
B_RUNNING = "running"  # the runner's process/machine exists
B_GONE = "gone"  # the process/machine no longer exists (ended, killed, deleted, preempted)
B_UNKNOWN = "unknown"  # cannot tell right now (API unreachable): never a reason to mark lost


@dataclass
class BackendState:
    state: str
    reason: str | None = None  # e.g. SLURM's "Resources", GCE "PREEMPTED", exit code
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Machine:
    """One offer of a backend, for `offload machines` and the Run dialog."""

    name: str
    gpu: str | None = None
    gpu_count: int = 0
    vcpus: int | None = None
    memory_gb: float | None = None
    price_per_hour: float | None = None
    spot_price_per_hour: float | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Backend(abc.ABC):
    """Subclasses set ``name`` and implement the four verbs.

    ``handle`` is a JSON-serializable dict that the client stores as ``jobs/<id>/handle.json``
    so any later client (CLI, server after a restart) can ask about or cancel the job.
    """

    name: ClassVar[str]

    def __init__(self, store: Store, **options: Any):
        self.store = store
        self.options = options

    @abc.abstractmethod
    def launch(self, spec: JobSpec) -> dict[str, Any]:
        """Start the runner for ``spec`` (already staged in the store); return a handle."""

    @abc.abstractmethod
    def state(self, handle: dict[str, Any]) -> BackendState:
        """What the backend knows about the job now. Must not block for long."""

    @abc.abstractmethod
    def cancel(self, handle: dict[str, Any]) -> None:
        """Stop the job's process/machine. The client has already written the cancel marker."""

    def cleanup(self, *, dry_run: bool = False) -> list[str]:
        """Remove leftovers of ended jobs (VMs, processes); return what was (or would be) removed."""
        return []

    def machines(self) -> list[Machine]:
        return []

    def validate(self, spec: JobSpec) -> None:
        """Reject resources this backend cannot provide, before anything is staged."""

    def estimate_cost(self, spec: JobSpec) -> float | None:
        """Dollars for the job's max runtime, where the backend knows prices."""
        return None

    # Hooks the runner calls on the remote side (class-level: no client configuration there).
    @classmethod
    def termination_reason(cls) -> str | None:
        """On SIGTERM: why the machine is stopping (e.g. ``"preempted"``), if the backend knows."""
        return None

    @classmethod
    def runner_slot(cls, spec: JobSpec, store: Store, should_stop: Callable[[], bool]) -> AbstractContextManager:
        """Held while the job executes; waiting here shows the job as ``queued`` (local cap)."""
        return nullcontext()

    @classmethod
    def on_runner_exit(cls, spec: JobSpec, store: Store, final_state: str) -> None:
        """After the runner stored its last output (e.g. a VM deletes itself here)."""


@functools.cache
def available_backends() -> dict[str, Any]:
    """Read once per process: scanning every installed distribution's entry points costs ~60 ms,
    and a sweep driver asks for its backend on every launch."""
    return {ep.name: ep for ep in entry_points(group="offload.backends")}


def get_backend(name: str, store: Store, **options: Any) -> Backend:
    eps = available_backends()
    if name not in eps:
        raise UsageError(
            f"unknown backend {name!r}",
            hint=f"available backends: {', '.join(sorted(eps)) or 'none'}",
        )
    try:
        cls = eps[name].load()
    except ImportError as exc:
        raise UsageError(
            f"backend {name!r} needs a package that is not installed: {exc.name or exc}",
            hint=f"pip install 'jupyter-offload[{name}]'",
        ) from None
    return cls(store, **options)
