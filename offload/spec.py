"""What a job is: the immutable request the client writes once as ``jobs/<id>/spec.json``.

Plain dataclasses with explicit validation rather than a model library: the spec must load on
the remote machine with nothing but the standard library and stay readable by older and newer
clients, so it carries ``version`` and ignores unknown keys from a newer writer.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from offload.errors import UsageError

SPEC_VERSION = 1
KINDS = ("notebook", "cell", "trial", "session", "pack")  # session, pack: programs the runner serves
ENV_MODES = ("kernel", "isolated")
KEPT_KINDS = ("notebook", "cell", "trial")  # kinds whose machine can stay warm after them (--keep-alive)
MACHINE_KINDS = (*KEPT_KINDS, "session")  # kinds a warm machine can be handed (a session's window is its idle time)
MAX_KEEP_ALIVE_S = 24 * 3600  # a warm machine's idle window is capped: it bills while it waits

_JOB_ID = re.compile(r"^[a-z0-9][a-z0-9-]{5,62}$")


def new_job_id(now: float | None = None) -> str:
    """Time-sortable and short enough to type: ``20261122-221530-3fa9c1``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now or time.time()))
    return f"{stamp}-{secrets.token_hex(3)}"


def check_job_id(job_id: str) -> str:
    """Job ids become store keys and VM names: refuse anything that could escape a prefix."""
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise UsageError(
            f"invalid job id {job_id!r}",
            hint="a job id is 6-63 lowercase letters, digits and dashes, as printed by `offload ls`",
        )
    return job_id


def parse_keep_alive(text: str | int | float | None) -> int | None:
    """``--keep-alive``: a duration, or ``0``/``off``/``no`` for none; None stays None (default)."""
    if text is None or text == "":
        return None
    if str(text).strip().lower() in ("0", "off", "no", "none", "false"):
        return 0
    try:
        return parse_duration(text)
    except UsageError as exc:
        raise UsageError(f"cannot read keep-alive {text!r}", hint="write it like 10m, 1h or 0 (off)",
                         field="keep_alive") from exc


def machine_name(job_id: str) -> str:
    """The machine started for job ``job_id`` (a GCE VM's name; the key of ``machines/<name>.json``)."""
    name = f"offload-{job_id}"
    if len(name) <= 63:
        return name
    return name[:54].rstrip("-") + "-" + hashlib.sha256(job_id.encode()).hexdigest()[:8]


def parse_duration(text: str | int | float) -> int:
    """``"90s"``, ``"30m"``, ``"4h"``, ``"1d"``, ``"4:00:00"`` or seconds -> seconds."""
    if isinstance(text, (int, float)):
        seconds = int(text)
    else:
        s = str(text).strip().lower()
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", s)
        hms = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{1,2})(?::(\d{1,2}))?", s)
        if m:
            seconds = int(float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)])
        elif hms:
            days, a, b, c = hms.groups()
            h, mi, se = (int(a), int(b), int(c)) if c is not None else (0, int(a), int(b))
            seconds = int(days or 0) * 86400 + h * 3600 + mi * 60 + se
        else:
            raise UsageError(
                f"cannot read duration {text!r}", hint="write it like 90s, 30m, 4h, 1d or 4:00:00"
            )
    if seconds <= 0:
        raise UsageError(f"duration {text!r} must be positive", hint="for example 4h")
    return seconds


def duration_field(text: str | int | float | None, field: str) -> int | None:
    """An optional duration option (``stop_if_idle``, ``wait_for_capacity``); an error names ``field``."""
    if text is None or text == "":
        return None
    try:
        return parse_duration(text)
    except UsageError as exc:
        raise UsageError(exc.message, hint=exc.hint, field=field) from None


@dataclass
class Resources:
    """What the job asks of the machine; backends interpret what applies to them."""

    gpu: str | None = None  # "l4", "a100", "t4,l4" (fallback list), or a count for SLURM ("1")
    gpu_count: int = 1
    machine: str | None = None  # backend machine type, e.g. "g2-standard-8"
    spot: bool = False
    max_runtime_s: int = 6 * 3600  # hard cap; no VM without one
    cpus: int | None = None
    memory_gb: float | None = None
    zone: str | None = None
    region: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # backend-specific extras
    # After its job the machine stays this long for the next compatible job (None: the
    # backend's ``keep_alive`` default, 0: off). See offload/runner/machine.py.
    keep_alive_s: int | None = None

    def validate(self) -> Resources:
        if self.gpu_count < 1:
            raise UsageError("gpu_count must be at least 1", hint="drop --gpu for a CPU-only job")
        if self.max_runtime_s <= 0:
            raise UsageError("max runtime must be positive", hint="for example --max-runtime 4h")
        if self.cpus is not None and self.cpus < 1:
            raise UsageError("cpus must be at least 1")
        if self.keep_alive_s is not None and not 0 <= self.keep_alive_s <= MAX_KEEP_ALIVE_S:
            raise UsageError(
                f"keep-alive {self.keep_alive_s} s is outside 0 to {MAX_KEEP_ALIVE_S // 3600} h",
                hint="for example --keep-alive 10m (0 turns it off)", field="keep_alive",
            )
        return self

    def shape(self) -> dict[str, Any]:
        """What a machine started for these resources is: a job is handed to a warm machine only
        when its request has the same shape (backend, machine, GPU, spot, region/partition)."""
        return {
            "gpu": self.gpu, "gpu_count": self.gpu_count if self.gpu else 0, "machine": self.machine,
            "spot": bool(self.spot), "cpus": self.cpus, "memory_gb": self.memory_gb, "zone": self.zone,
            "region": self.region, "partition": self.options.get("partition"),
        }


@dataclass
class DataMount:
    """A local path shipped with the job, landing at the same relative path remotely."""

    path: str  # relative to the project root, POSIX separators


@dataclass
class JobSpec:
    """The request; written once by the client, read by the runner and every client."""

    id: str
    notebook: str  # entry notebook, relative to the bundle root
    bundle_id: str
    kind: str = "notebook"
    backend: str = "local"
    parameters: dict[str, Any] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    env_mode: str = "kernel"
    env_hash: str | None = None
    python: str | None = None  # interpreter the runner should use (local backend, env=kernel)
    source_path: str | None = None  # absolute path of the submitting notebook (for merge-back)
    cell_hashes: dict[str, str] = field(default_factory=dict)  # cell id -> source sha256 at submit
    data: list[DataMount] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # sweep id, trial number, session...
    retries: int = 0
    attempt: int = 0
    parent: str | None = None  # the job this one retries or reruns (checkpoints come from it)
    created_at: float = field(default_factory=time.time)
    client_version: str | None = None
    version: int = SPEC_VERSION
    # Spend and idle policy (offload/jobs/budget.py before launch, offload/runner/idle.py on the machine)
    budget: float | None = None  # USD the job may cost at most: price x max runtime over it is refused
    cap_runtime_to_budget: bool = False  # cut the max runtime to fit the budget instead of refusing
    stop_if_idle_s: int | None = None  # stop the job when its GPUs stay under idle_threshold this long
    idle_threshold: float = 5.0  # percent GPU utilization under which a GPU counts as idle
    wait_for_capacity_s: int | None = None  # gce: wait this long for capacity (DWS flex-start or zone cycling)

    def validate(self) -> JobSpec:
        check_job_id(self.id)
        if self.kind not in KINDS:
            raise UsageError(f"unknown job kind {self.kind!r}", hint=f"one of {', '.join(KINDS)}")
        if self.env_mode not in ENV_MODES:
            raise UsageError(
                f"unknown env mode {self.env_mode!r}", hint=f"use --env {' or --env '.join(ENV_MODES)}"
            )
        if not self.notebook.endswith(".ipynb") or self.notebook.startswith("/") or ".." in self.notebook.split("/"):
            raise UsageError(f"notebook path {self.notebook!r} must be a relative .ipynb path")
        if not isinstance(self.parameters, dict):
            raise UsageError("parameters must be a mapping of name to value")
        try:
            json.dumps(self.parameters)
        except TypeError as exc:
            raise UsageError(f"parameters must be JSON values: {exc}") from None
        self.resources.validate()
        self._validate_policy()
        return self

    def _validate_policy(self) -> None:
        if self.budget is not None and (isinstance(self.budget, bool) or not isinstance(self.budget, (int, float))
                                        or not 0 < self.budget < float("inf")):
            raise UsageError(f"budget {self.budget!r} must be a positive number of dollars",
                             hint="for example --budget 20", field="budget")
        if self.stop_if_idle_s is not None and self.stop_if_idle_s <= 0:
            raise UsageError("stop-if-idle must be a positive duration", hint="for example --stop-if-idle 20m",
                             field="stop_if_idle")
        if not 0 <= self.idle_threshold <= 100:
            raise UsageError(f"idle threshold {self.idle_threshold} is not a percentage",
                             hint="between 0 and 100, for example 5", field="idle_threshold")
        if self.wait_for_capacity_s is not None and not 0 < self.wait_for_capacity_s <= 7 * 86400:
            raise UsageError("wait-for-capacity must be between 1 s and 7 days",
                             hint="for example --wait-for-capacity 2h", field="wait_for_capacity")

    @property
    def keeps_machine(self) -> bool:
        """Its machine stays after it for ``resources.keep_alive_s`` (runner/machine.py)."""
        return bool(self.resources.keep_alive_s) and self.kind in KEPT_KINDS

    # JSON round trip -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        if data.get("version", 1) > SPEC_VERSION:
            # A newer client wrote it: keep what we understand rather than refusing to list it.
            pass
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        res = kwargs.get("resources") or {}
        rknown = {f.name for f in dataclasses.fields(Resources)}
        kwargs["resources"] = Resources(**{k: v for k, v in res.items() if k in rknown})
        kwargs["data"] = [DataMount(**d) if isinstance(d, dict) else DataMount(str(d)) for d in kwargs.get("data", [])]
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str | bytes) -> JobSpec:
        return cls.from_dict(json.loads(text))


# Job states ---------------------------------------------------------------------------------
class JobState(str, enum.Enum):
    """A job's state. ``str``-valued, so ``status.json`` and the REST API carry the same words.

    ``queued -> provisioning -> running -> succeeded | failed | cancelled``; ``preempted`` and
    ``lost`` (heartbeat stale and the machine gone) lead to a retry or stay final.
    """

    QUEUED = "queued"
    PROVISIONING = "provisioning"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"
    LOST = "lost"

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_active(self) -> bool:
        return self in ACTIVE_STATES


class MachineState(str, enum.Enum):
    """A machine's state in ``machines/<name>.json`` (written by the machine itself)."""

    BUSY = "busy"  # running a job (or a session held by a notebook kernel, or a sweep pack)
    IDLE = "idle"  # waiting for a compatible job until its idle deadline
    ENDING = "ending"  # past its deadline or stopped: takes nothing more, deleting itself
    ENDED = "ended"

    def __str__(self) -> str:
        return self.value


ACTIVE_STATES = (JobState.QUEUED, JobState.PROVISIONING, JobState.RUNNING)
FINAL_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.PREEMPTED, JobState.LOST)
STATES = ACTIVE_STATES + FINAL_STATES
