"""Budgets, enforced before launch: a job's own budget and the month's caps.

:func:`enforce` runs in :func:`offload.jobs.launch.launch_spec` (and early in ``submit``, before
anything is uploaded), so every way a job starts is checked the same way and a refusal happens
before any cloud call. Three limits, each a :class:`~offload.errors.BudgetExceeded` naming the
budget, the estimate, the month's spend and the setting to change:

- ``JobSpec.budget`` (``--budget 20``, ``submit(budget=)``, default ``budget.job`` in the config):
  the estimate (price x max runtime) must fit; with ``cap_runtime_to_budget`` the max runtime (the
  VM's ``maxRunDuration``) is cut to fit instead.
- ``budget.monthly`` (config): this month's spend over every backend plus the estimate must fit.
- ``backends.<name>.budget_monthly`` (config): the same for one backend's jobs.
- a sweep's ``budget`` (``offload sweep --budget``, ``sweep(budget=)``): what its jobs cost so
  far plus the estimate; the driver launches no more trials once one is refused.

The month's spend (:func:`month_spend`) is what this machine's job index knows: the actual cost of
jobs that ended this month (price x billed time, from the backend, cached in the index's ``cost``
column once known) plus the estimate (the most they can cost) of jobs still active, since those
are money already committed. Backends without prices (local, slurm) cost nothing here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from offload.backends.base import Ability, Backend, get_backend
from offload.config import backend_options, budget_settings
from offload.errors import BudgetExceeded, OffloadError, UsageError
from offload.jobs import index
from offload.spec import ACTIVE_STATES, FINAL_STATES, JobSpec
from offload.store import Store, as_store, layout

MIN_CAPPED_RUNTIME_S = 60  # a runtime cut shorter than the one-minute billing minimum is refused
_FINAL = {str(s.value) for s in FINAL_STATES}
_ACTIVE = {str(s.value) for s in ACTIVE_STATES}


def parse_budget(value: Any, *, field_name: str = "budget") -> float | None:
    """``20``, ``"20"``, ``"$20.50"`` -> dollars; None and ``""`` stay None. A monthly budget may be
    0 (no priced launch this month); a job's budget must be positive."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        dollars = float(str(value).strip().lstrip("$").replace(",", "")) if isinstance(value, str) else float(value)
    except ValueError:
        raise UsageError(f"cannot read budget {value!r}", hint="a number of US dollars, for example 20",
                         field=field_name) from None
    if not math.isfinite(dollars) or dollars < 0 or (dollars == 0 and "monthly" not in field_name):
        raise UsageError(f"budget {value!r} must be a positive number of dollars", hint="for example 20",
                         field=field_name)
    return dollars


def money(value: float | None) -> str:
    return "?" if value is None else f"${value:,.2f}"


def month_start(now: float | None = None) -> float:
    """The first second of the current calendar month, UTC (Google bills by calendar month)."""
    t = time.gmtime(now if now is not None else time.time())
    return float(time.mktime((t.tm_year, t.tm_mon, 1, 0, 0, 0, 0, 0, 0)) - time.timezone)


@dataclass(kw_only=True)
class Spend:
    """This month's spend: actual costs of ended jobs plus the estimates of active ones."""

    month: str  # "2026-12"
    since: float
    actual: float = 0.0
    committed: float = 0.0  # estimates (most they can cost) of jobs still running
    by_backend: dict[str, dict[str, float]] = field(default_factory=dict)
    by_notebook: dict[str, dict[str, float]] = field(default_factory=dict)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # jobs whose cost could not be read

    @property
    def total(self) -> float:
        return round(self.actual + self.committed, 4)

    def of_backend(self, name: str) -> float:
        b = self.by_backend.get(name) or {}
        return round(b.get("actual", 0.0) + b.get("committed", 0.0), 4)

    def to_dict(self) -> dict[str, Any]:
        return {"month": self.month, "since": self.since, "total": self.total, "actual": round(self.actual, 4),
                "committed": round(self.committed, 4), "by_backend": self.by_backend,
                "by_notebook": self.by_notebook, "jobs": self.jobs, "unknown": self.unknown}


class _Backends:
    """One configured backend object per (name, store), or None where it knows no prices."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], Backend | None] = {}

    def get(self, name: str, store: Store) -> Backend | None:
        key = (name, store.url)
        if key not in self._cache:
            try:
                be = get_backend(name, store, **backend_options(name))
                self._cache[key] = be if be.can(Ability.JOB_COST) else None
            except (OffloadError, ImportError):
                self._cache[key] = None
        return self._cache[key]


def _row_cost(row: dict[str, Any], store: Store, be: Backend) -> tuple[str, float | None]:
    """("actual" | "committed", dollars) of one indexed job."""
    handle = store.get_json(layout.job_key(row["id"], "handle.json"), None)
    if not handle:
        return "actual", 0.0  # never launched (refused, failed before a machine existed)
    status = store.get_json(layout.job_key(row["id"], "status.json"), None) or {}
    if str(status.get("state")) not in _FINAL:
        status = {**status, **(store.get_json(layout.job_key(row["id"], "reconciled.json"), None) or {})}
    if str(status.get("state")) in _FINAL and status.get("finished_at"):
        return "actual", (be.job_cost(handle, status) or {}).get("actual_cost")
    est = handle.get("cost_estimate") or {}
    return "committed", est.get("max_cost")


def month_spend(*, now: float | None = None, backend: str | None = None) -> Spend:
    """This month's spend from the local job index (every store this machine has used).

    ``backend`` limits it to one backend's jobs. An ended job's actual cost is written back into
    the index's ``cost`` column, so each job's cost is computed once.
    """
    since = month_start(now)
    spend = Spend(month=time.strftime("%Y-%m", time.gmtime(since + 1)), since=since)
    return _tally(spend, [r for r in index.rows(None) if not backend or r["backend"] == backend])


def sweep_spend(store: Store, sweep_id: str) -> Spend:
    """What a sweep's jobs cost so far (ended: actual; running: their estimate), whatever the month."""
    spend = Spend(month="all", since=0.0)
    return _tally(spend, [r for r in index.rows(store.url) if (r.get("labels") or {}).get("sweep") == sweep_id])


def _tally(spend: Spend, rows: list[dict[str, Any]]) -> Spend:
    since = spend.since
    backends = _Backends()
    stores: dict[str, Store] = {}
    for row in rows:
        state = row.get("state")
        active = state is None or state in _ACTIVE
        ended_at = row.get("finished_at") or row.get("created_at") or 0
        if not active and ended_at < since:
            continue
        if not active and row.get("cost") is not None:
            kind, cost = "actual", float(row["cost"])
        else:
            try:
                store = stores.get(row["store"]) or stores.setdefault(row["store"], as_store(row["store"]))
                be = backends.get(row["backend"], store)
                if be is None:
                    continue  # local, slurm: no prices, no spend
                kind, cost = _row_cost(row, store, be)
            except OffloadError:
                spend.unknown.append(row["id"])
                continue
            if cost is None:
                spend.unknown.append(row["id"])
                continue
            if kind == "actual" and not active:
                _cache_cost(row, cost)
            if kind == "committed" and not active and ended_at < since:
                continue
        if not cost:
            continue
        setattr(spend, kind, getattr(spend, kind) + cost)
        for table, key in ((spend.by_backend, row["backend"]), (spend.by_notebook, row["notebook"])):
            entry = table.setdefault(key, {"actual": 0.0, "committed": 0.0, "jobs": 0})
            entry[kind] = round(entry[kind] + cost, 4)
            entry["jobs"] += 1
        spend.jobs.append({"id": row["id"], "backend": row["backend"], "notebook": row["notebook"],
                           "state": state, kind: round(cost, 4)})
    return spend


def _cache_cost(row: dict[str, Any], cost: float) -> None:
    try:
        index.upsert({**row, "cost": round(cost, 4)})
    except Exception:
        pass  # the index is a cache: the cost is computed again next time


@dataclass(kw_only=True)
class _Limit:
    setting: str  # what the user changes
    budget: float
    spent: float  # already counted against it (0 for a job's own budget)

    @property
    def left(self) -> float:
        return self.budget - self.spent


def _limits(spec: JobSpec, options: dict[str, Any], settings: dict[str, Any], need_spend: bool,
            now: float | None) -> tuple[list[_Limit], Spend | None]:
    limits: list[_Limit] = []
    if spec.budget is not None:
        limits.append(_Limit(setting="budget", budget=float(spec.budget), spent=0.0))
    monthly = parse_budget(settings.get("monthly"), field_name="budget.monthly")
    per_backend = parse_budget(options.get("budget_monthly"), field_name=f"backends.{spec.backend}.budget_monthly")
    spend = month_spend(now=now) if (monthly or per_backend or need_spend) else None
    if monthly is not None and spend is not None:
        limits.append(_Limit(setting="budget.monthly", budget=monthly, spent=spend.total))
    if per_backend is not None and spend is not None:
        limits.append(_Limit(setting=f"backends.{spec.backend}.budget_monthly", budget=per_backend,
                             spent=spend.of_backend(spec.backend)))
    return limits, spend


def enforce(spec: JobSpec, *, backend: Backend, options: dict[str, Any] | None = None,
            now: float | None = None, cut: bool = True) -> dict[str, Any] | None:
    """Refuse ``spec`` when its estimate goes over a budget, or cut its max runtime to fit
    (``spec.cap_runtime_to_budget``). Returns what was checked (recorded in the handle), or None
    when no budget applies. Makes no cloud call. ``cut=False`` (``submit``'s early check, before
    the upload) only refuses: the cut is made, and recorded, by the launch itself."""
    settings = budget_settings()
    if spec.budget is None and settings.get("job") is not None:
        spec.budget = parse_budget(settings["job"], field_name="budget.job")
    opts = options or {}
    sweep_limit = _sweep_limit(spec, backend.store)
    if (spec.budget is None and settings.get("monthly") is None and opts.get("budget_monthly") is None
            and sweep_limit is None):
        return None
    estimate = backend.estimate_cost(spec)
    if estimate is None:
        if not backend.can(Ability.JOB_COST):
            return None  # a backend without prices costs nothing we can count
        raise BudgetExceeded(
            f"cannot check the budget: backend {spec.backend} has no price for this machine",
            hint="name a machine the price table knows (offload machines), or give the gce backend a price "
                 "table with it (option prices)", field="budget", budget=spec.budget)
    limits, spend = _limits(spec, opts, settings, need_spend=True, now=now)
    if sweep_limit is not None:
        limits.append(sweep_limit)
    if not limits:
        return None
    month = spend.total if spend is not None else None
    tightest = min(limits, key=lambda lim: lim.left)
    report: dict[str, Any] = {"estimate": round(estimate, 4), "budget": spec.budget, "month_spend": month,
                              "limits": {lim.setting: lim.budget for lim in limits}}
    if estimate <= tightest.left + 1e-9:
        return report
    runtime = spec.resources.max_runtime_s
    price = estimate * 3600 / runtime if runtime else None
    if spec.cap_runtime_to_budget and price:
        fits = int(max(0.0, tightest.left) * 3600 / price)
        if fits >= MIN_CAPPED_RUNTIME_S and not cut:
            return report
        if fits >= MIN_CAPPED_RUNTIME_S:
            spec.resources.max_runtime_s = fits
            new_estimate = round(price * fits / 3600, 4)
            return {**report, "estimate": new_estimate, "runtime_cut_from_s": runtime, "runtime_s": fits,
                    "capped_by": tightest.setting}
    raise _refusal(spec, tightest, estimate, month, price)


def _sweep_limit(spec: JobSpec, store: Store) -> _Limit | None:
    """A sweep's trials (and packs) share the sweep's ``budget`` (``offload sweep --budget``)."""
    sid = (spec.labels or {}).get("sweep")
    if not sid:
        return None
    try:
        rec = store.get_json(layout.sweep_key(sid, "sweep.json"), None) or {}
    except OffloadError:
        return None
    if not rec.get("budget"):
        return None
    return _Limit(setting=f"sweep {sid} budget", budget=float(rec["budget"]), spent=sweep_spend(store, sid).total)


def _refusal(spec: JobSpec, lim: _Limit, estimate: float, month: float | None, price: float | None) -> BudgetExceeded:
    runtime = spec.resources.max_runtime_s
    month_text = f"; this month's spend so far {money(month)}" if month is not None else ""
    fits = int(max(0.0, lim.left) * 3600 / price) if price else 0
    shorter = (f", shorten --max-runtime to {fits // 60} min" if fits >= MIN_CAPPED_RUNTIME_S else "")
    if lim.setting == "budget":
        message = (f"estimate {money(estimate)} ({money(price)}/h x {runtime / 3600:g} h max runtime) is over the "
                   f"job's budget {money(lim.budget)}{month_text}")
        hint = (f"raise --budget (budget=){shorter}, or add --cap-runtime-to-budget to cut the max runtime to fit"
                if fits >= MIN_CAPPED_RUNTIME_S else
                f"raise --budget (budget=) to at least {money(estimate)}: the budget does not cover one billed minute")
    elif lim.setting.startswith("sweep "):
        message = (f"estimate {money(estimate)} plus what the sweep's jobs cost so far {money(lim.spent)} is over "
                   f"the {lim.setting} {money(lim.budget)}{month_text}")
        hint = "start a sweep with a larger --budget (offload sweep ... --budget USD), or shorten --max-runtime per trial"
    else:
        message = (f"estimate {money(estimate)} plus this month's spend {money(lim.spent)} is over the monthly "
                   f"budget {money(lim.budget)} ({lim.setting}; {money(max(0.0, lim.left))} left)")
        hint = (f"raise it (offload config set {lim.setting} AMOUNT){shorter}, wait for next month, "
                "or see `offload spend`")
    return BudgetExceeded(message, hint=hint, field=lim.setting if lim.setting.startswith("budget.") or
                          lim.setting.startswith("backends.") else "budget",
                          budget=lim.budget, estimate=round(estimate, 4), month_spend=month, setting=lim.setting)
