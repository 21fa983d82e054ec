"""The service: one per server, the state every REST call shares.

What the API does lives in plain synchronous functions over the ``offload`` core
(:mod:`~jupyter_ext.service.jobs`, :mod:`~jupyter_ext.service.gallery`,
:mod:`~jupyter_ext.service.sweeps`, :mod:`~jupyter_ext.service.notebook`), each taking this
:class:`OffloadService` first. The handlers run them in a thread executor (store and cloud calls
block); keeping them free of tornado makes them testable on their own and keeps the one-way
import rule obvious: ``jupyter_ext -> offload``. Bad input raises an ``OffloadError`` that
carries its HTTP status and field (from the core, or an :class:`ApiError` from here).
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

from jupyter_ext.service.errors import ApiError
from jupyter_ext.service.models import job_id_arg
from offload import config
from offload.backends.base import get_backend, user_backends
from offload.errors import JobNotFound, OffloadError, UsageError
from offload.jobs import Job, budget, index
from offload.spec import ACTIVE_STATES
from offload.store import Store

# What a sweep started through the server may ask for at most (OffloadExtensionApp overrides).
SWEEP_CAPS = {"trials": 1000, "parallel": 64, "per_gpu": 16}


class OffloadService:
    """The store, the configured backends and limits, and the caches of finished jobs."""

    def __init__(
        self,
        *,
        root_dir: str,
        store_url: str | None = None,
        backends: list[str] | None = None,
        backend_options: dict[str, dict[str, Any]] | None = None,
        default_backend: str | None = None,
        default_machine: str | None = None,
        max_runtime: str = "4h",
        max_runtime_limit: str = "7d",
        sweep_caps: dict[str, int] | None = None,
        max_active_jobs: int = 0,
        max_active_jobs_per_user: int = 0,
        budget: float | None = None,
    ):
        self.root_dir = str(Path(root_dir).resolve())
        self.store = Store(store_url)
        self.backend_names = backends
        self.backend_options = backend_options or {}
        self.default_machine = default_machine
        self.max_runtime = max_runtime
        self.max_runtime_limit = max_runtime_limit
        self.sweep_caps = {**SWEEP_CAPS, **(sweep_caps or {})}
        self.max_active_jobs = max_active_jobs
        self.max_active_jobs_per_user = max_active_jobs_per_user
        self.budget = budget
        self._default_backend = default_backend
        # first image output of a finished job, by job id (None: it has none)
        self.thumbnails: dict[str, tuple[str, bytes] | None] = {}
        # fANOVA importances of a sweep with the number of complete trials they were computed from
        self.importances: dict[str, tuple[int, dict[str, float]]] = {}
        self.importances_lock = threading.Lock()

    # backends ------------------------------------------------------------------------------
    def enabled_backends(self) -> list[str]:
        """The backends offered to users (never an internal one), restricted by configuration."""
        names = user_backends()
        if self.backend_names:
            names = [n for n in self.backend_names if n in names]
        return names

    def options(self, name: str) -> dict[str, Any]:
        """A backend's options: the user's config file, then the server's configuration."""
        return {**config.backend_options(name), **self.backend_options.get(name, {})}

    def default_backend(self) -> str:
        return self._default_backend or config.default_backend()

    def backends(self) -> dict[str, Any]:
        """Every enabled backend with its machines; a backend that cannot load says why."""
        out = []
        for name in self.enabled_backends():
            entry: dict[str, Any] = {"name": name, "available": True, "machines": [], "error": None}
            try:
                be = get_backend(name, self.store, **self.options(name))
                entry["machines"] = [m.to_dict() for m in be.machines()]
            except OffloadError as exc:
                entry.update(available=False, error=str(exc))
            except Exception as exc:  # a third-party backend failing must not hide the others
                entry.update(available=False, error=f"{type(exc).__name__}: {exc}")
            out.append(entry)
        return {
            "backends": out,
            "default_backend": self.default_backend(),
            "default_machine": self.default_machine,
            "max_runtime": self.max_runtime,
            "budget": self.budget or budget.parse_budget(config.budget_settings().get("job"), field_name="budget.job"),
            "spend": self.spend_summary(),
            "store": self.store.url,
        }

    def spend_summary(self) -> dict[str, Any] | None:
        """This month's spend against the monthly budgets, for the Run dialog (None: no monthly
        budget set). Read from the job index: no store or cloud call."""
        monthly = config.budget_settings().get("monthly")
        per_backend = {n: self.options(n).get("budget_monthly") for n in self.enabled_backends()}
        if monthly is None and not any(v is not None for v in per_backend.values()):
            return None
        try:
            spend = budget.month_spend()
        except OffloadError:
            return None
        return {"month": spend.month, "total": spend.total,
                "monthly": budget.parse_budget(monthly, field_name="budget.monthly"),
                "backends": {n: {"spent": spend.of_backend(n),
                                 "monthly": budget.parse_budget(v, field_name=f"backends.{n}.budget_monthly")}
                             for n, v in per_backend.items()}}

    # jobs ----------------------------------------------------------------------------------
    def check_user_cap(self, user: str | None) -> None:
        """409 when ``user`` already has ``max_active_jobs_per_user`` jobs active (counted from
        the index the watcher keeps: jobs this server submitted carry their user's label)."""
        cap = self.max_active_jobs_per_user
        if not cap or not user:
            return
        mine = [r for r in index.rows(self.store.url)
                if r.get("state") in ACTIVE_STATES and (r.get("labels") or {}).get("user") == user]
        if len(mine) >= cap:
            raise ApiError(409, f"you have {len(mine)} active jobs, the most this server allows one user "
                                f"(max_active_jobs_per_user = {cap})",
                           hint="wait for one to finish or cancel one, or raise "
                                "OffloadExtensionApp.max_active_jobs_per_user")

    def job(self, job_id: str) -> Job:
        """The job ``job_id`` in the store: 400 for an id that cannot be one, 404 for none."""
        job_id_arg(job_id)
        try:
            return Job(job_id, store=self.store, record=False)  # a read never writes to the store
        except JobNotFound:
            raise
        except UsageError as exc:  # ambiguous or malformed reference
            raise ApiError(404, f"no job {job_id!r}", field="job_id", hint=exc.hint) from None


def jsonable(obj: Any) -> Any:
    """Round-trip through JSON rules: NaN/inf metrics become None, tuples lists, keys strings."""
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return json.loads(json.dumps(obj, default=str))
