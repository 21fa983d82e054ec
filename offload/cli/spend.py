"""`offload spend`: this month's spend, per backend and per notebook, against the budgets."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from offload.cli._format import backend_name
from offload.config import backend_options, budget_settings, load_config
from offload.errors import OffloadError
from offload.jobs.budget import money, month_spend, parse_budget
from offload.jobs.listing import sync_store
from offload.store import known_stores


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("spend", help="this month's spend per backend and per notebook, against the budgets",
                       description="Month to date (UTC calendar month): the actual cost of jobs that ended, plus "
                                   "the estimate (most they can cost) of jobs still running, from the job index "
                                   "of this machine, refreshed from the stores first. Budgets: budget.monthly, "
                                   "backends.<name>.budget_monthly (offload config set ...).")
    s.add_argument("--backend", type=backend_name, help="only this backend's jobs")
    s.add_argument("--jobs", action="store_true", help="list every job that counts")
    s.add_argument("--no-refresh", action="store_true", help="answer from the index without reading the stores")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_spend)


def _refresh() -> None:
    for store in known_stores():
        try:
            sync_store(store, scan=True)
        except OffloadError as exc:  # an unreachable store: say so, count what the index has
            print(f"warning: could not refresh {store.url}: {exc}", file=sys.stderr)


def cmd_spend(args: argparse.Namespace) -> int:
    if not args.no_refresh:
        _refresh()
    spend = month_spend(backend=args.backend)
    settings = budget_settings()
    budgets: dict[str, Any] = {"budget.monthly": parse_budget(settings.get("monthly"), field_name="budget.monthly")}
    for name in sorted(set(spend.by_backend) | set(load_config().get("backends") or {})):
        value = backend_options(name).get("budget_monthly")
        if value is not None:
            budgets[f"backends.{name}.budget_monthly"] = parse_budget(value, field_name=f"backends.{name}.budget_monthly")
    out = {**spend.to_dict(), "budgets": budgets}
    if not args.jobs:
        out.pop("jobs")
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"spend {spend.month} (since {time.strftime('%Y-%m-%d', time.gmtime(spend.since))} UTC): "
          f"{money(spend.total)} = {money(spend.actual)} ended jobs + {money(spend.committed)} running (their estimate)")
    overall = budgets.get("budget.monthly")
    if overall:
        print(f"budget.monthly {money(overall)}: {money(max(0.0, overall - spend.total))} left")
    if spend.by_backend:
        print(f"\n{'BACKEND':<12} {'JOBS':>5} {'ENDED':>10} {'RUNNING':>10} {'BUDGET':>10}")
        for name, row in sorted(spend.by_backend.items()):
            cap = budgets.get(f"backends.{name}.budget_monthly")
            print(f"{name:<12} {row['jobs']:>5} {money(row['actual']):>10} {money(row['committed']):>10} "
                  f"{money(cap) if cap else '-':>10}")
    if spend.by_notebook:
        print(f"\n{'NOTEBOOK':<40} {'JOBS':>5} {'ENDED':>10} {'RUNNING':>10}")
        for name, row in sorted(spend.by_notebook.items(), key=lambda kv: -(kv[1]["actual"] + kv[1]["committed"])):
            print(f"{name[-40:]:<40} {row['jobs']:>5} {money(row['actual']):>10} {money(row['committed']):>10}")
    if args.jobs and spend.jobs:
        print(f"\n{'JOB':<24} {'BACKEND':<8} {'STATE':<10} {'COST':>10}  NOTEBOOK")
        for j in spend.jobs:
            cost = j.get("actual", j.get("committed"))
            print(f"{j['id']:<24} {j['backend']:<8} {j['state'] or '?':<10} {money(cost):>10}  {j['notebook']}")
    if not spend.jobs:
        print("no priced job this month (local and slurm jobs cost nothing here)")
    if spend.unknown:
        print(f"{len(spend.unknown)} job(s) whose cost could not be read: {', '.join(spend.unknown[:5])}")
    return 0
