"""The backend contract: where a job runs.

A backend only starts ``python -m offload.runner <store-url> <job-id>`` somewhere and answers
what only it knows (still provisioning, pending in a queue, machine gone). Everything else about
a job is in the store, written by the runner. Backends are discovered through the entry-point
group ``offload.backends`` so a third party can add one without forking.
"""

from __future__ import annotations

import abc
import enum
import functools
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar

from offload.errors import UsageError
from offload.spec import JobSpec
from offload.store import Store, layout


class BackendPhase(str, enum.Enum):
    """What a backend can say about a launched job, independent of the runner's status.json."""

    PENDING = "pending"  # accepted, waiting for resources (SLURM PENDING, local queue)
    PROVISIONING = "provisioning"  # machine being created / booting
    RUNNING = "running"  # the runner's process/machine exists
    GONE = "gone"  # the process/machine no longer exists (ended, killed, deleted, preempted)
    UNKNOWN = "unknown"  # cannot tell right now (API unreachable): never a reason to mark lost

    def __str__(self) -> str:
        return self.value


# Short names, as the backends use them.
B_PENDING, B_PROVISIONING, B_RUNNING, B_GONE, B_UNKNOWN = BackendPhase


@dataclass
class BackendState:
    state: BackendPhase
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


class Ability(str, enum.Enum):
    """Optional abilities a backend declares in ``abilities``; callers ask ``backend.can(...)``
    instead of probing for methods."""

    KILL = "kill"  # kill(handle): a hard stop for a runner that ignores SIGTERM
    SERIAL_OUTPUT = "serial_output"  # serial_output(handle): the machine's console, for a boot that never reported
    JOB_COST = "job_cost"  # job_cost(handle, status): what the job cost, from the backend's own prices
    KEEP_ALIVE = "keep_alive"  # its machine can stay after a job and take the next (runner/machine.py)
    ATTACH = "attach"  # attach_route(handle, kernel): how to reach a running job's machine (offload.attach)


@dataclass
class AttachRoute:
    """How a client reaches a running job's machine, for ``offload ssh`` and ``offload attach``
    (the transports are in :mod:`offload.attach`).

    ``kind``: ``local`` (this machine: a process in the work dir, the kernel's sockets directly),
    ``srun`` (``srun --overlap --jobid slurm_job_id``: the shell, and the kernel's sockets relayed
    through srun), ``ssh`` (OpenSSH server at ``host:port`` as ``user`` with ``key_file``, or the
    SSH agent / default keys when it is None).
    """

    kind: str
    host: str | None = None
    port: int = 22
    user: str | None = None
    key_file: str | None = None
    slurm_job_id: str | None = None
    hint: str = ""  # what to check when the route does not answer (firewall, IAP, keys)


def ssh_route(options: dict[str, Any], *, host: str | None = None, hint: str = "") -> AttachRoute | None:
    """The SSH route a backend's options configure (``ssh_host``, ``ssh_port``, ``ssh_user``,
    ``ssh_key``), ``host`` filling in a missing ``ssh_host``; None when there is no host."""
    host = options.get("ssh_host") or host
    if not host:
        return None
    return AttachRoute("ssh", host=str(host), port=int(options.get("ssh_port") or 22),
                       user=options.get("ssh_user") or None, key_file=options.get("ssh_key") or None, hint=hint)


class Backend(abc.ABC):
    """Subclasses set ``name`` and implement the four verbs.

    ``handle`` is a JSON-serializable dict that the client stores as ``jobs/<id>/handle.json``
    so any later client (CLI, server after a restart) can ask about or cancel the job.

    ``abilities`` lists the optional verbs a backend implements (see :class:`Ability`);
    ``internal`` backends (registered in code with :func:`register_internal`) are used by the
    package itself and never offered to users.
    """

    name: ClassVar[str]
    abilities: ClassVar[frozenset[Ability]] = frozenset()
    internal: ClassVar[bool] = False
    # seconds between two ``state`` reads of one job by a client (0: every refresh); an API with a
    # read quota (Compute Engine) sets it, and clients back off further while nothing changes
    state_poll_s: ClassVar[float] = 0.0
    # each job's machine starts with an empty disk (a cloud VM): the client's paths (its Python)
    # mean nothing there, and the runner packs environments it builds into the store so that a
    # later machine unpacks them instead of building (runner/environment.py)
    fresh_machine: ClassVar[bool] = False

    def can(self, ability: Ability) -> bool:
        return ability in self.abilities

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

    # optional abilities: a backend that declares one in ``abilities`` overrides it
    def kill(self, handle: dict[str, Any]) -> None:
        raise NotImplementedError(f"backend {self.name!r} cannot kill a job")

    def serial_output(self, handle: dict[str, Any]) -> str:
        raise NotImplementedError(f"backend {self.name!r} has no serial console")

    def job_cost(self, handle: dict[str, Any], status: dict[str, Any] | None) -> dict[str, Any]:
        raise NotImplementedError(f"backend {self.name!r} does not know what a job cost")

    def attach_route(self, handle: dict[str, Any], kernel: dict[str, Any] | None) -> AttachRoute:
        """How to reach the running job's machine (``kernel``: the runner's ``kernel.json`` record,
        which names the host the job runs on)."""
        raise NotImplementedError(f"backend {self.name!r} cannot attach to a running job")

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
        """After the runner stored its last output (e.g. a VM deletes itself here). A job kept
        warm (``resources.keep_alive_s``) leaves its machine to the machine agent."""

    @classmethod
    def end_machine(cls, spec: JobSpec, store: Store) -> None:
        """The warm machine started for ``spec`` ends now (a VM deletes itself; a SLURM allocation
        ends when the agent exits, so nothing to do there)."""


def machine_record_live(record: dict[str, Any] | None, now: float | None = None) -> bool:
    """A machine's record (``machines/<name>.json``) says it is up: not ended, heartbeat fresh."""
    if not record or record.get("state") == "ended":
        return False
    age = (now or time.time()) - float(record.get("heartbeat") or 0)
    return age < 3 * float(record.get("heartbeat_every_s") or 15) + 30


def kept_warm(store: Store, job_id: str, machine: str) -> bool:
    """Whether the machine started for ``job_id`` is a live warm machine (cleanup leaves it)."""
    try:
        return machine_record_live(store.get_json(layout.machine_key(machine), None))
    except Exception:
        return False


_INTERNAL: dict[str, type[Backend]] = {}


def register_internal(cls: type[Backend]) -> type[Backend]:
    """Class decorator: a backend the package uses itself (never offered to users, no entry point)."""
    cls.internal = True
    _INTERNAL[cls.name] = cls
    return cls


@functools.cache
def available_backends() -> dict[str, Any]:
    """The user-facing backends of the entry-point group ``offload.backends``, read once per
    process: scanning every installed distribution's entry points costs ~60 ms, and a sweep
    driver asks for its backend on every launch."""
    return {ep.name: ep for ep in entry_points(group="offload.backends") if ep.name not in _INTERNAL}


def user_backends() -> list[str]:
    """Names offered to users (CLI, REST ``/backends``, the Run dialog)."""
    return sorted(available_backends())


def backend_class(name: str) -> type[Backend]:
    """The class registered as ``name``; a UsageError naming the choices when there is none."""
    if name in _INTERNAL:
        return _INTERNAL[name]
    eps = available_backends()
    if name not in eps:
        raise UsageError(
            f"unknown backend {name!r}",
            hint=f"available backends: {', '.join(sorted(eps)) or 'none'}",
            field="backend",
        )
    try:
        return eps[name].load()
    except ImportError as exc:
        raise UsageError(
            f"backend {name!r} needs a package that is not installed: {exc.name or exc}",
            hint=f"pip install 'jupyter-offload[{name}]'",
            field="backend",
        ) from None


def get_backend(name: str, store: Store, **options: Any) -> Backend:
    return backend_class(name)(store, **options)
