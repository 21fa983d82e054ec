"""The verbs about jobs that exist: ls, logs, show, cancel, merge."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from offload.backends.base import Ability
from offload.cli._format import STATE_STYLE, color, duration, fmt_metrics, job_duration, store_arg
from offload.errors import OffloadError, UsageError
from offload.jobs import Job, index, provenance, sync_store, tracking
from offload.jobs.budget import money
from offload.notebook import strip_ansi
from offload.spec import FINAL_STATES, KINDS, STATES, machine_name
from offload.store import known_stores


def add_parsers(sub: Any) -> None:
    ls = sub.add_parser("ls", help="list jobs, newest first")
    ls.add_argument("--refresh", action="store_true", help="rebuild the local index from the store")
    ls.add_argument("-n", "--limit", type=int, default=50, help="show this many (default 50)")
    ls.add_argument("--state", help="only jobs in this state (several: failed,lost)")
    ls.add_argument("--notebook", help="only jobs of this notebook (its file name or path)")
    ls.add_argument("--kind", help="only jobs of this kind: notebook, cell, trial, session, pack")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_ls)
    lg = sub.add_parser("logs", help="print a job's log")
    lg.add_argument("job")
    lg.add_argument("-f", "--follow", action="store_true", help="follow until the job ends")
    lg.set_defaults(func=cmd_logs)
    sh = sub.add_parser("show", help="everything about a job")
    sh.add_argument("job")
    sh.add_argument("--json", action="store_true")
    sh.add_argument("--diff", action="store_true", help="print the uncommitted changes recorded at submit")
    sh.set_defaults(func=cmd_show)
    c = sub.add_parser("cancel", help="stop a job")
    c.add_argument("job")
    c.add_argument("--no-wait", action="store_true")
    c.set_defaults(func=cmd_cancel)
    m = sub.add_parser("merge", help="merge a job's outputs and metrics into the source notebook")
    m.add_argument("job")
    m.add_argument("--into", help="notebook to merge into (default: the submitted one)")
    m.set_defaults(func=cmd_merge)


def _choices(text: str | None, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in (text or "").split(",") if v.strip())
    for v in values:
        if v not in allowed:
            raise UsageError(f"unknown {name} {v!r}", field=name, hint=f"one of {', '.join(allowed)}")
    return values


def cmd_ls(args: argparse.Namespace) -> int:
    """One pass over each known store (new and active jobs only; --refresh: every job), then
    one page from the index."""
    store = store_arg(args)
    stores = [store] if store is not None else known_stores()
    for st in stores:
        sync_store(st, full=args.refresh)
    notebooks: tuple[str, ...] = ()
    if args.notebook:
        notebooks = (args.notebook, os.path.abspath(args.notebook), os.path.basename(args.notebook))
    where = index.Filter(states=_choices(args.state, tuple(STATES), "state"), notebooks=notebooks,
                         kinds=_choices(args.kind, KINDS, "kind"))
    if args.limit < 1:
        raise UsageError(f"-n must be at least 1, not {args.limit}", field="limit")
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:  # pages of at most index.MAX_PAGE up to -n
        page = index.page(store.url if store is not None else None, limit=min(args.limit - len(rows), index.MAX_PAGE),
                          cursor=cursor, where=where)
        rows += page.rows
        cursor = page.next_cursor
        if cursor is None or len(rows) >= args.limit:
            break
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    if not rows:
        print("no jobs match" if args.state or args.notebook or args.kind else "no jobs yet: `offload run NOTEBOOK` starts one")
        return 0
    header = ("ID", "NOTEBOOK", "STATE", "PROGRESS", "DURATION", "METRICS")
    table = [header]
    for r in rows:
        prog = f"{r.get('cell') or 0}/{r.get('n_cells') or 0}" if r.get("n_cells") else "-"
        table.append((r["id"], r["notebook"] or "", r["state"] or "?", prog, duration(job_duration(r)), fmt_metrics(r.get("metrics") or {})))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header) - 1)]
    for row in table:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=False)]
        if row is not header:
            cells[2] = color(cells[2], STATE_STYLE.get(row[2]))
        print("  ".join(cells + [str(row[-1])]).rstrip())
    if page.total > len(rows):
        print(f"({len(rows)} of {page.total}; -n N shows more, --state/--notebook narrow the list)", file=sys.stderr)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    job = Job(args.job, store=store_arg(args))
    printed = False
    try:
        for text in job.iter_logs(follow=args.follow):
            printed = printed or bool(text)
            sys.stdout.write(text)
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    if not printed and job.handle:  # the runner never logged: show what the machine itself said
        be = job.backend()
        if be.can(Ability.SERIAL_OUTPUT):
            try:
                text = be.serial_output(job.handle)
            except OffloadError as exc:
                text = f"(no serial console output: {exc})"
            print("(no job log yet; the machine's console output follows)")
            print(text)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    job = Job(args.job, store=store_arg(args))
    st = job.status
    spec = job.spec
    env = job.store.get_json(job.key("env.json"), {}) or {}
    info = {
        "id": job.id,
        "notebook": spec.notebook,
        "source": spec.source_path,
        "kind": spec.kind,
        "backend": spec.backend,
        "state": st.get("state"),
        "reason": st.get("reason"),
        "progress": {"cell": st.get("cell"), "n_cells": st.get("n_cells")},
        "parameters": spec.parameters,
        "metrics": job.last_metrics(),
        "resources": spec.resources.__dict__,
        "env": {"mode": spec.env_mode, "hash": spec.env_hash, "python": env.get("python"),
                "requirements": len(env.get("requirements", []))},
        "timings": job.timings(),
        "env_cache": st.get("env_cache"),
        "error": st.get("error"),
        "handle": job.handle,
        "attempts": job.store.get_json(job.key("attempts.json"), None),
        "cost": _cost(job, st),
        "budget": (job.handle or {}).get("budget"),
        "policy": {"budget": spec.budget, "cap_runtime_to_budget": spec.cap_runtime_to_budget,
                   "stop_if_idle_s": spec.stop_if_idle_s, "idle_threshold": spec.idle_threshold,
                   "wait_for_capacity_s": spec.wait_for_capacity_s},
        "output_notebook": f"{job.store.url}/{job.key('output.ipynb')}",
        "outputs": job.outputs(),
        "provenance": provenance.read(job.store, job.id),
        "mlflow": tracking.job_run(job.store, job.id),
    }
    if getattr(args, "diff", False) and not args.json:
        git = (info["provenance"] or {}).get("git") or {}
        print(git.get("diff") or "(no uncommitted changes recorded)", end="" if git.get("diff") else "\n")
        for f in git.get("withheld") or []:
            print(f"# withheld: {f['path']}: {f['why']}", file=sys.stderr)
        for f in git.get("omitted") or []:
            print(f"# omitted: {f['path']} ({f['bytes']} bytes, {f['why']})", file=sys.stderr)
        return 0
    if args.json:
        print(json.dumps(info, indent=1, default=str))
        return 0
    print(f"job        {info['id']}  ({spec.kind} on {spec.backend})")
    print(f"notebook   {spec.notebook}  from {spec.source_path}")
    print(f"state      {color(st.get('state', '?'), STATE_STYLE.get(st.get('state')))}"
          + (f"  ({st.get('reason')})" if st.get("reason") else ""))
    if st.get("n_cells"):
        print(f"progress   cell {st.get('cell')}/{st.get('n_cells')}")
    print(f"duration   {duration(st.get('duration_s') or job_duration(st))}")
    if spec.parameters:
        print("parameters " + " ".join(f"{k}={v!r}" for k, v in spec.parameters.items()))
    if info["metrics"]:
        print("metrics    " + fmt_metrics(info["metrics"], limit=20))
    r = spec.resources
    print(f"resources  gpu={r.gpu or '-'} machine={r.machine or '-'} spot={r.spot} max_runtime={duration(r.max_runtime_s)}")
    handle = job.handle or {}
    if handle.get("on_machine"):  # handed to a warm machine (offload/runner/machine.py)
        print(f"machine    warm machine {handle['on_machine']} (no new machine was started)")
    elif spec.keeps_machine:
        print(f"machine    {machine_name(spec.id)} stays warm {duration(r.keep_alive_s)} after the job "
              "(`offload machines --running`)")
    print(f"env        {spec.env_mode}, python {info['env']['python']}, {info['env']['requirements']} pinned packages, hash {spec.env_hash}"
          + (f", env_cache: {info['env_cache']}" if info["env_cache"] else ""))
    phases = [(k[:-2], v) for k, v in info["timings"].items()
              if k in ("provision_s", "boot_s", "env_s", "data_s", "kernel_s", "first_cell_s") and v is not None]
    if phases:
        print("timings    " + "  ".join(f"{k} {v:.1f}s" for k, v in phases))
    if info["attempts"]:
        for a in info["attempts"] if isinstance(info["attempts"], list) else info["attempts"].get("attempts", []):
            print(f"attempt    {a}")
    if info["cost"]:
        flat = {k: v for k, v in info["cost"].items() if not isinstance(v, dict) and v is not None}
        print("cost       " + "  ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in flat.items()))
    for line in _policy_lines(spec, info["budget"], st, capacity_seen=(job.handle or {}).get("capacity")):
        print(line)
    if st.get("error"):
        print("error:")
        for line in st["error"].get("traceback") or [f"{st['error'].get('ename')}: {st['error'].get('evalue')}"]:
            print("  " + strip_ansi(line))
    _print_provenance(info["provenance"])
    if info["mlflow"]:
        print(f"mlflow     {info['mlflow'].get('url') or info['mlflow']['run_id']}")
    print(f"output     {info['output_notebook']}")
    for o in info["outputs"]:
        print(f"  file     {o}")
    return 0


def _print_provenance(prov: dict[str, Any] | None) -> None:
    """``git  abc1234 on main (uncommitted: 2 files, +3 -1) origin https://...`` and what the
    recorded diff leaves out; ``offload show --diff`` prints the diff."""
    print(f"git        {provenance.summary_line(prov)}")
    if not prov:
        return
    if prov.get("rerun_of"):
        print(f"           rerun of {prov['rerun_of']} (same bundle: the code of that submit)")
    git = prov.get("git") or {}
    for f in git.get("files") or []:
        print(f"  changed  {f['path']} (+{f['added']} -{f['removed']}{', untracked' if f.get('status') == 'untracked' else ''})")
    for f in git.get("withheld") or []:
        print(f"  withheld {f['path']}: {f['why']}")
    if git.get("diff"):
        print("           `offload show --diff` prints the changes")


def _cost(job, status: dict[str, Any]) -> dict[str, Any] | None:
    """Estimate before the run (from the launch handle), actual after (billed time x price)."""
    handle = job.handle or {}
    cost = dict(handle.get("cost_estimate") or {})
    if status.get("state") in FINAL_STATES:
        try:
            be = job.backend()
            if be.can(Ability.JOB_COST):
                cost.update(be.job_cost(handle, status) or {})
        except OffloadError:
            pass
    return cost or None


def cmd_cancel(args: argparse.Namespace) -> int:
    job = Job(args.job, store=store_arg(args))
    if not job.cancel():
        print(f"job {job.id} already ended ({job.state})")
        return 0
    print(f"cancelling {job.id}...", file=sys.stderr)
    if args.no_wait:
        return 0
    try:
        job.wait(timeout=60)
    except TimeoutError:
        print(f"job {job.id} has not stopped yet ({job.state}); it was asked to", file=sys.stderr)
        return 1
    print(f"job {job.id} {job.state}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    job = Job(args.job, store=store_arg(args))
    report = job.merge(into=args.into)
    print(f"{report.path}: {report.describe()}")
    return 0


def _policy_lines(spec, checked: dict[str, Any] | None, status: dict[str, Any], *,
                  capacity_seen: dict[str, Any] | None = None) -> list[str]:
    """What `offload show` says of the job's budget, idle stop and capacity wait."""
    lines = []
    if checked:
        text = f"budget     estimate {money(checked.get('estimate'))}"
        if checked.get("budget") is not None:
            text += f" within the job's budget {money(checked['budget'])}"
        for setting, cap in (checked.get("limits") or {}).items():
            if setting != "budget":
                text += f"; {setting} {money(cap)} (month spend at launch {money(checked.get('month_spend'))})"
        if checked.get("runtime_cut_from_s"):
            text += (f"; max runtime cut from {duration(checked['runtime_cut_from_s'])} to "
                     f"{duration(checked['runtime_s'])} to fit {checked.get('capped_by')}")
        lines.append(text)
    if spec.stop_if_idle_s:
        idle = status.get("idle") or {}
        text = f"idle stop  after {_span(spec.stop_if_idle_s)} with every GPU under {spec.idle_threshold:g}%"
        if idle.get("source"):
            text += f" (sampled via {idle['source']}"
            text += f", idle for {_span(idle['idle_s'])})" if idle.get("idle_s") else ")"
        elif idle.get("unavailable"):
            text += f" (not sampling: {idle['unavailable']})"
        lines.append(text)
    if spec.wait_for_capacity_s:
        text = f"capacity   waits up to {_span(spec.wait_for_capacity_s)} for a machine"
        if capacity_seen:
            text += (f"; placed after {capacity_seen.get('rounds')} round(s), {_span(capacity_seen.get('waited_s') or 0)}"
                     + (" as a DWS flex-start VM" if capacity_seen.get("flex_start") else ""))
        elif status.get("waiting"):
            text += f"; {status.get('reason')}"
        lines.append(text)
    return lines


def _span(seconds: float) -> str:
    """3 s, 20 min, 2 h: a setting as the user wrote it (duration() is a clock for elapsed time)."""
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.0f} s"
