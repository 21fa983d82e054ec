"""Request models: every JSON body the API accepts, checked field by field.

Each model is a frozen dataclass built by ``parse(body)`` (``parse(service, body)`` when checking
needs the server: its root for paths, its enabled backends, its defaults); a bad field is an
:class:`ApiError` 400 that names it, so the lab extension can flag it in place. A job submit and a
sweep start share :class:`RunRequest`: the notebook and where and how it runs.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jupyter_ext.service.errors import ApiError
from jupyter_ext.service.paths import api_path_of, resolve_notebook
from offload.errors import UsageError
from offload.jobs.budget import parse_budget
from offload.jobs.machines import MACHINE_NAME
from offload.spec import (
    ENV_MODES,
    KINDS,
    MAX_KEEP_ALIVE_S,
    STATES,
    check_job_id,
    duration_field,
    parse_duration,
    parse_keep_alive,
)


class ServerLimits(Protocol):
    """What request parsing needs of the server (the service provides it): the root every path
    stays inside, the backends the server enables, the defaults it applies."""

    root_dir: str
    max_runtime: str | int
    max_runtime_limit: str | int
    sweep_caps: dict[str, int]  # trials, parallel, per_gpu -> the most a request may ask for

    def default_backend(self) -> str: ...

    def enabled_backends(self) -> list[str]: ...


def check_fields(body: dict[str, Any], known: tuple[str, ...]) -> None:
    """400 for a field the request does not take (a misspelt ``parametrs`` must not run with the
    defaults), naming the closest known field."""
    for name in body:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            raise ApiError(400, f"unknown field {name!r}", field=name,
                           hint=f"did you mean {close[0]!r}?" if close else f"the fields are: {', '.join(known)}")


def require(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    """Field ``name`` of a JSON body, of type ``kind``; a 400 naming the field otherwise."""
    if name not in body or body[name] is None:
        if optional:
            return None
        raise ApiError(400, f"missing field {name!r}", field=name)
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:  # JSON true is no number
        names = " or ".join(k.__name__ for k in kinds)
        raise ApiError(400, f"field {name!r} must be {names}, not a boolean", field=name)
    if not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ApiError(400, f"field {name!r} must be {names}, got {type(value).__name__}", field=name)
    return value


def require_count(body: dict[str, Any], name: str, *, low: int = 1) -> int | None:
    """An optional whole number of at least ``low``."""
    value = require(body, name, int, optional=True)
    if value is not None and value < low:
        raise ApiError(400, f"field {name!r} must be >= {low}, got {value}", field=name)
    return value


def job_id_arg(job_id: str, field: str = "job_id") -> str:
    """A job or sweep id from the URL or the query: 400 when it could not be one."""
    try:
        return check_job_id(job_id)
    except UsageError as exc:
        raise ApiError(400, exc.message, field=field, hint=exc.hint) from None


def _notebook(service: ServerLimits, api_path: str) -> Path:
    path = resolve_notebook(service.root_dir, api_path)
    if path.suffix != ".ipynb" or not path.is_file():
        raise ApiError(400, f"path {api_path!r} is not a notebook", field="path", hint="pick a .ipynb file")
    return path


def _names(name: str, value: str | list[Any]) -> str | list[str]:
    """A name or a non-empty list of names (objectives, directions)."""
    if isinstance(value, list) and (not value or not all(isinstance(v, str) for v in value)):
        raise ApiError(400, f"field {name!r} must be a string or a non-empty list of strings", field=name)
    return value


@dataclass(frozen=True)
class RunRequest:
    """What a job submit and a sweep start share: the notebook, the backend and the machine."""

    path: str  # API path, as sent
    notebook: Path  # the OS path it resolves to, inside the server root
    backend: str
    machine: str | None
    gpu: str | None
    spot: bool
    max_runtime: str | int

    FIELDS = ("path", "backend", "machine", "gpu", "spot", "max_runtime")

    @staticmethod
    def run_fields(service: ServerLimits, body: dict[str, Any]) -> dict[str, Any]:
        notebook = _notebook(service, require(body, "path", str))
        api_path = api_path_of(service.root_dir, str(notebook))  # the root-relative form, however it was given
        backend = require(body, "backend", str, optional=True) or service.default_backend()
        enabled = service.enabled_backends()
        if backend not in enabled:
            raise ApiError(400, f"unknown backend {backend!r}", field="backend",
                           hint=f"enabled backends: {', '.join(enabled) or 'none'}")
        machine = require(body, "machine", str, optional=True) or None
        gpu = require(body, "gpu", str, optional=True) or None
        if machine and "+" in machine and not gpu:  # a machine offer "n1-standard-8+t4": shape + GPU
            machine, gpu = machine.split("+", 1)
        spot = require(body, "spot", bool, optional=True) or False
        max_runtime = require(body, "max_runtime", (str, int), optional=True)
        if max_runtime is None or max_runtime == "":
            max_runtime = service.max_runtime  # absent: the server's default; 0 is an error below
        try:
            seconds = parse_duration(max_runtime)
        except UsageError as exc:
            raise ApiError(400, exc.message, field="max_runtime", hint=exc.hint) from None
        if seconds > parse_duration(service.max_runtime_limit):
            raise ApiError(400, f"max_runtime {max_runtime!r} is longer than this server allows "
                           f"({service.max_runtime_limit})", field="max_runtime",
                           hint="ask for less, or raise OffloadExtensionApp.max_runtime_limit")
        return {"path": api_path, "notebook": notebook, "backend": backend, "machine": machine, "gpu": gpu,
                "spot": spot, "max_runtime": max_runtime}


@dataclass(frozen=True)
class JobRequest(RunRequest):
    """``POST /jobs``: run a notebook once."""

    parameters: dict[str, Any]
    gpu_count: int
    env: str
    data: tuple[str, ...]  # relative to the notebook's folder
    include: tuple[str, ...]
    policy: dict[str, Any]  # budget, cap_runtime_to_budget, stop_if_idle, idle_threshold, wait_for_capacity

    POLICY = ("budget", "cap_runtime_to_budget", "stop_if_idle", "idle_threshold", "wait_for_capacity")
    keep_alive: int | None = None  # seconds the machine stays for the next job (None: the backend's default)

    FIELDS = (*RunRequest.FIELDS, "parameters", "gpu_count", "env", "data", "include", *POLICY, "keep_alive")

    @classmethod
    def parse(cls, service: ServerLimits, body: dict[str, Any]) -> JobRequest:
        check_fields(body, cls.FIELDS)
        run = cls.run_fields(service, body)
        parameters = require(body, "parameters", dict, optional=True) or {}
        gpu_count = require_count(body, "gpu_count") or 1
        env = require(body, "env", str, optional=True) or "kernel"
        if env not in ENV_MODES:
            raise ApiError(400, f"field 'env' must be one of {', '.join(ENV_MODES)}, got {env!r}", field="env")
        lists: dict[str, tuple[str, ...]] = {}
        api_dir = "/".join(run["path"].strip("/").split("/")[:-1])
        for name in ("data", "include"):
            items = require(body, name, list, optional=True) or []
            for item in items:
                if not isinstance(item, str):
                    raise ApiError(400, f"field {name!r} must be a list of paths", field=name)
                # relative to the notebook's folder, and still inside the server root
                resolve_notebook(service.root_dir, f"{api_dir}/{item}" if api_dir else item, field=name)
            lists[name] = tuple(items)
        return cls(**run, parameters=parameters, gpu_count=gpu_count, env=env, **lists, policy=_policy(body),
                   keep_alive=_keep_alive(body))


def _keep_alive(body: dict[str, Any]) -> int | None:
    """``keep_alive``: "10m", seconds, or 0 (off); absent: the backend's ``keep_alive`` setting."""
    value = require(body, "keep_alive", (str, int), optional=True)
    try:
        seconds = parse_keep_alive(value)
    except UsageError as exc:
        raise ApiError(400, exc.message, field="keep_alive", hint=exc.hint) from None
    if seconds is not None and seconds > MAX_KEEP_ALIVE_S:
        raise ApiError(400, f"keep_alive {value!r} is longer than {MAX_KEEP_ALIVE_S // 3600} h", field="keep_alive",
                       hint="a warm machine bills while it waits: ask for minutes, e.g. 10m")
    return seconds


@dataclass(frozen=True)
class MachineStopRequest:
    """``POST /machines/stop``: end the named machines, or every live one with ``all: true``."""

    names: tuple[str, ...]
    all: bool

    FIELDS = ("names", "all")

    @classmethod
    def parse(cls, body: dict[str, Any]) -> MachineStopRequest:
        check_fields(body, cls.FIELDS)
        names = require(body, "names", list, optional=True) or []
        every = require(body, "all", bool, optional=True) or False
        if every == bool(names):
            raise ApiError(400, "say which machines to stop: names, or all: true", field="names",
                           hint='{"names": ["offload-2026..."]} as GET /machines lists them, or {"all": true}')
        for name in names:
            if not isinstance(name, str) or not MACHINE_NAME.match(name):
                raise ApiError(400, f"{name!r} is not a machine name", field="names",
                               hint="names as GET /machines lists them (lowercase letters, digits, dashes)")
        return cls(names=tuple(names), all=every)


def _policy(body: dict[str, Any]) -> dict[str, Any]:
    """Budget, idle stop and capacity wait of a job submit, checked as ``offload run`` checks them."""
    budget = require(body, "budget", (int, float, str), optional=True)
    threshold = require(body, "idle_threshold", (int, float), optional=True)
    if threshold is not None and not 0 <= threshold <= 100:
        raise ApiError(400, f"field 'idle_threshold' must be a percentage, got {threshold}", field="idle_threshold",
                       hint="between 0 and 100, for example 5")
    out: dict[str, Any] = {
        "cap_runtime_to_budget": require(body, "cap_runtime_to_budget", bool, optional=True) or False,
        "idle_threshold": 5.0 if threshold is None else float(threshold),
    }
    try:
        out["budget"] = parse_budget(budget)
        for name in ("stop_if_idle", "wait_for_capacity"):
            value = require(body, name, (str, int), optional=True)
            duration_field(value, name)  # a bad duration is a 400 now, not a failed launch
            out[name] = value or None
    except UsageError as exc:
        raise ApiError(400, exc.message, field=exc.field, hint=exc.hint) from None
    return out


def _sweep_budget(body: dict[str, Any]) -> float | None:
    try:
        return parse_budget(require(body, "budget", (int, float, str), optional=True))
    except UsageError as exc:
        raise ApiError(400, exc.message, field="budget", hint=exc.hint) from None


@dataclass(frozen=True)
class SweepRequest(RunRequest):
    """``POST /sweeps``: an Optuna study over the notebook's parameters, each trial a job."""

    space: dict[str, Any]
    objective: str | list[str]
    direction: str | list[str]
    trials: int
    parallel: int
    per_gpu: int
    seed: int | None
    max_failures: int | None
    sampler: str
    pruner: str | None
    budget: float | None  # USD for all trials together

    FIELDS = (*RunRequest.FIELDS, "space", "objective", "direction", "trials", "parallel", "per_gpu", "seed",
              "max_failures", "sampler", "pruner", "budget")

    @classmethod
    def parse(cls, service: ServerLimits, body: dict[str, Any]) -> SweepRequest:
        check_fields(body, cls.FIELDS)
        run = cls.run_fields(service, body)
        if run["machine"] == "local":
            run["machine"] = None
        space = body.get("space")
        if not isinstance(space, dict):  # never a string: that would read a file on the server
            raise ApiError(400, "field 'space' must be an object of parameter name -> range, choices or value",
                           field="space",
                           hint='for example {"lr": {"type": "float", "low": 1e-5, "high": 0.1, "log": true}}')
        if not space:
            raise ApiError(400, "the search space is empty", field="space",
                           hint="give at least one parameter a range or choices")
        objective = _names("objective", require(body, "objective", (str, list)))
        direction = _names("direction", require(body, "direction", (str, list), optional=True) or "maximize")
        counts = {name: require_count(body, name) for name in ("trials", "parallel", "per_gpu", "max_failures")}
        if counts["trials"] is None:
            raise ApiError(400, "missing field 'trials'", field="trials", hint="how many trials to run, e.g. 20")
        for name, cap in service.sweep_caps.items():
            if (counts.get(name) or 0) > cap:
                setting = {"trials": "max_sweep_trials", "parallel": "max_sweep_parallel"}.get(name, f"max_{name}")
                raise ApiError(400, f"{name}={counts[name]} is more than this server allows ({cap})", field=name,
                               hint=f"ask for at most {cap}, or raise OffloadExtensionApp.{setting}")
        return cls(
            **run, space=space, objective=objective, direction=direction, trials=counts["trials"],
            parallel=counts["parallel"] or 1, per_gpu=counts["per_gpu"] or 1,
            seed=require(body, "seed", int, optional=True), max_failures=counts["max_failures"],
            sampler=require(body, "sampler", str, optional=True) or "tpe",
            pruner=require(body, "pruner", str, optional=True) or None,
            budget=_sweep_budget(body),
        )


@dataclass(frozen=True)
class RerunRequest:
    """``POST /jobs/{id}/rerun``: the same bundle again, with some parameters changed."""

    parameters: dict[str, Any] | None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> RerunRequest:
        check_fields(body, ("parameters",))
        return cls(parameters=require(body, "parameters", dict, optional=True))


@dataclass(frozen=True)
class MergePlanRequest:
    """``POST /jobs/{id}/merge-plan``: the open notebook's cells, as ``id -> source``."""

    cells: dict[str, str]

    @classmethod
    def parse(cls, body: dict[str, Any]) -> MergePlanRequest:
        check_fields(body, ("cells",))
        cells: dict[str, str] = {}
        for i, c in enumerate(require(body, "cells", list)):
            if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not isinstance(c.get("source"), str):
                raise ApiError(400, f"cells[{i}] must be an object with string 'id' and 'source'", field="cells")
            cells[c["id"]] = c["source"]
        return cls(cells=cells)


@dataclass(frozen=True)
class MergeFileRequest:
    """``POST /jobs/{id}/merge``: merge into this notebook file (default: the job's source)."""

    path: str | None
    target: Path | None

    @classmethod
    def parse(cls, service: ServerLimits, body: dict[str, Any]) -> MergeFileRequest:
        check_fields(body, ("path",))
        path = require(body, "path", str, optional=True)
        return cls(path=path, target=resolve_notebook(service.root_dir, path) if path else None)


@dataclass(frozen=True)
class ResumeRequest:
    """``POST /sweeps/{id}/resume``: a new driver, optionally with another trial budget."""

    trials: int | None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ResumeRequest:
        check_fields(body, ("trials",))
        return cls(trials=require_count(body, "trials"))


@dataclass(frozen=True)
class ApplyBestRequest:
    """``POST /sweeps/{id}/apply-best``: the best (or chosen) trial's parameters, either as the
    rewritten ``source`` of the open notebook's parameters cell or written into a notebook file."""

    trial: int | None
    source: str | None
    path: str | None
    target: Path | None

    @classmethod
    def parse(cls, service: ServerLimits, body: dict[str, Any]) -> ApplyBestRequest:
        check_fields(body, ("trial", "source", "path"))
        path = require(body, "path", str, optional=True)
        return cls(trial=require(body, "trial", int, optional=True), source=require(body, "source", str, optional=True),
                   path=path, target=resolve_notebook(service.root_dir, path) if path else None)


@dataclass(frozen=True)
class JobListQuery:
    """``GET /jobs`` and ``GET /gallery``: one page of jobs, filtered on the server.

    ``limit`` rows (1-500, default 50) after ``cursor`` (the previous page's ``next_cursor``);
    ``state`` and ``kind`` take one value or several separated by commas; ``notebook`` is the
    notebook's path relative to the server root (or its file name in the bundle)."""

    limit: int
    cursor: str | None
    states: tuple[str, ...]
    kinds: tuple[str, ...]
    notebook: str | None
    sort: str | None = None
    order: str = "desc"

    FIELDS = ("limit", "cursor", "state", "kind", "notebook")
    DEFAULT_LIMIT = 50
    MAX_LIMIT = 500

    @classmethod
    def parse(cls, args: dict[str, str], *, sortable: bool = False) -> JobListQuery:
        check_fields(args, cls.FIELDS + (("sort", "order") if sortable else ()))
        raw = args.get("limit")
        try:
            limit = cls.DEFAULT_LIMIT if raw in (None, "") else int(raw)
        except ValueError:
            raise ApiError(400, f"limit must be a whole number, not {raw!r}", field="limit") from None
        if not 1 <= limit <= cls.MAX_LIMIT:
            raise ApiError(400, f"limit must be between 1 and {cls.MAX_LIMIT}, got {limit}", field="limit",
                           hint="page with next_cursor for more")
        states = _choices(args, "state", STATES)
        kinds = _choices(args, "kind", KINDS)
        order = args.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise ApiError(400, "order must be asc or desc", field="order")
        return cls(limit=limit, cursor=args.get("cursor") or None, states=states, kinds=kinds,
                   notebook=(args.get("notebook") or "").strip() or None, sort=args.get("sort") or None, order=order)


def _choices(args: dict[str, str], name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    values = tuple(v.strip() for v in (args.get(name) or "").split(",") if v.strip())
    for v in values:
        if v not in allowed:
            raise ApiError(400, f"unknown {name} {v!r}", field=name, hint=f"one of {', '.join(allowed)}")
    return values
