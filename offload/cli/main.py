"""The ``offload`` command: everything the UI does, from a terminal.

Exit codes: 0 success; 1 unexpected error; 2 bad usage or input (notebook, parameter, path);
3 job not found; 4 store unreachable or not writable; 5 backend error; 6 the job ended in another
state than ``succeeded``; 130 interrupted (the job keeps running).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from typing import Any

from offload.errors import JobFailed, OffloadError

_STATE_STYLE = {"succeeded": "32", "failed": "31", "lost": "31", "cancelled": "33", "preempted": "33", "running": "36"}


def _color(text: str, code: str | None, stream=sys.stdout) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if code and stream.isatty() else text


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _fmt_metrics(metrics: dict[str, Any], limit: int = 3) -> str:
    items = list(metrics.items())[:limit]
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


def _job_duration(row: dict[str, Any]) -> float | None:
    start = row.get("started_at")
    if not start:
        return None
    return (row.get("finished_at") or time.time()) - start


def _store(args: argparse.Namespace):
    """The store named with --store, else None: each command then picks the right one."""
    from offload.store import Store

    return Store(args.store) if getattr(args, "store", None) else None


def _backend(args: argparse.Namespace):
    from offload.backends.base import get_backend
    from offload.config import backend_options, backend_store, default_backend
    from offload.store import Store

    name = args.backend or default_backend()
    store = _store(args) or Store(backend_store(name))
    return name, get_backend(name, store, **backend_options(name))


# commands -------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from offload.jobs import submit
    from offload.notebook.params import load_param_file, parse_assignments

    params: dict[str, Any] = {}
    for f in args.param_file or []:
        params.update(load_param_file(f))
    params.update(parse_assignments(args.param))
    err = sys.stderr
    job = submit(
        args.notebook, parameters=params, backend=args.backend, gpu=args.gpu, gpu_count=args.gpu_count,
        machine=args.machine, spot=args.spot, max_runtime=args.max_runtime, cpus=args.cpus,
        memory_gb=args.memory, data=args.data or [], include=args.include or [], env=args.env,
        store=_store(args), allow_unresolved=args.allow_unresolved, retries=args.retries,
        backend_options_=_backend_opts(args),
        on_progress=(lambda m: print(m, file=err)) if not args.quiet else None,
    )
    if args.detach:
        print(job.id)
        return 0
    print(f"job {job.id} submitted to {job.spec.backend}", file=err)
    try:
        _watch(job, quiet=args.quiet)
        while (nxt := job.latest()).id != job.id:  # preempted and retried elsewhere: follow it
            print(f"job {job.id} was preempted; retrying as {nxt.id}", file=err)
            job = nxt
            _watch(job, quiet=args.quiet)
    except KeyboardInterrupt:
        print(f"\nstill running: `offload logs -f {job.id}` to follow, `offload cancel {job.id}` to stop", file=err)
        return 130
    return _final_report(job)


def _backend_opts(args: argparse.Namespace) -> dict[str, Any]:
    opts = {}
    for item in getattr(args, "option", None) or []:
        key, _, value = item.partition("=")
        from offload.notebook.params import parse_value

        opts[key] = parse_value(value)
    return opts


def _watch(job, *, quiet: bool = False) -> None:
    """Live progress on a terminal (one redrawn line); streamed log lines otherwise."""
    tty = sys.stderr.isatty()
    last_line = ""
    start = time.time()
    for text in job.iter_logs(follow=True, poll=0.1):
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if lines:
            last_line = lines[-1]
        if not tty and not quiet:
            sys.stdout.write(text)
            sys.stdout.flush()
        if tty:
            st = job._status or {}
            width = shutil.get_terminal_size((100, 20)).columns
            line = f"{st.get('state', '?')}  cell {st.get('cell', 0)}/{st.get('n_cells', 0)}  {_duration(time.time() - start)}  {last_line}"
            sys.stderr.write("\r\x1b[K" + line[: width - 1])
            sys.stderr.flush()
    if tty:
        sys.stderr.write("\r\x1b[K")


def _final_report(job) -> int:
    st = job.status
    state = st["state"]
    print(f"job {job.id} {_color(state, _STATE_STYLE.get(state))} in {_duration(st.get('duration_s') or _job_duration(st))}"
          + (f": {st.get('reason')}" if st.get("reason") and state != "succeeded" else ""))
    metrics = job.last_metrics()
    if metrics:
        print("metrics: " + _fmt_metrics(metrics, limit=10))
    if state != "succeeded":
        return JobFailed.exit_code
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from offload.jobs import list_jobs

    rows = list_jobs(store=_store(args), refresh=args.refresh, limit=args.limit)
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    if not rows:
        print("no jobs yet: `offload run NOTEBOOK` starts one")
        return 0
    header = ("ID", "NOTEBOOK", "STATE", "PROGRESS", "DURATION", "METRICS")
    table = [header]
    for r in rows:
        prog = f"{r.get('cell') or 0}/{r.get('n_cells') or 0}" if r.get("n_cells") else "-"
        table.append((r["id"], r["notebook"] or "", r["state"] or "?", prog, _duration(_job_duration(r)), _fmt_metrics(r.get("metrics") or {})))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header) - 1)]
    for row in table:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=False)]
        if row is not header:
            cells[2] = _color(cells[2], _STATE_STYLE.get(row[2]))
        print("  ".join(cells + [str(row[-1])]).rstrip())
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from offload.jobs import Job

    job = Job(args.job, store=_store(args))
    printed = False
    try:
        for text in job.iter_logs(follow=args.follow):
            printed = printed or bool(text)
            sys.stdout.write(text)
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    if not printed and job.handle:  # the runner never logged: show what the machine itself said
        serial = getattr(job.backend(), "serial_output", None)
        if serial is not None:
            try:
                text = serial(job.handle)
            except OffloadError as exc:
                text = f"(no serial console output: {exc})"
            print("(no job log yet; the machine's console output follows)")
            print(text)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from offload.jobs import Job

    job = Job(args.job, store=_store(args))
    st = job.status
    spec = job.spec
    env = job.store.get_json(job._key("env.json"), {}) or {}
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
        "timings": {"created_at": spec.created_at, "started_at": st.get("started_at"),
                    "finished_at": st.get("finished_at"), "duration_s": st.get("duration_s"), **(st.get("timings") or {})},
        "error": st.get("error"),
        "handle": job.handle,
        "attempts": job.store.get_json(job._key("attempts.json"), None),
        "cost": _cost(job, st),
        "output_notebook": f"{job.store.url}/{job._key('output.ipynb')}",
        "outputs": job.outputs(),
    }
    if args.json:
        print(json.dumps(info, indent=1, default=str))
        return 0
    print(f"job        {info['id']}  ({spec.kind} on {spec.backend})")
    print(f"notebook   {spec.notebook}  from {spec.source_path}")
    print(f"state      {_color(st.get('state', '?'), _STATE_STYLE.get(st.get('state')))}"
          + (f"  ({st.get('reason')})" if st.get("reason") else ""))
    if st.get("n_cells"):
        print(f"progress   cell {st.get('cell')}/{st.get('n_cells')}")
    print(f"duration   {_duration(st.get('duration_s') or _job_duration(st))}")
    if spec.parameters:
        print("parameters " + " ".join(f"{k}={v!r}" for k, v in spec.parameters.items()))
    if info["metrics"]:
        print("metrics    " + _fmt_metrics(info["metrics"], limit=20))
    r = spec.resources
    print(f"resources  gpu={r.gpu or '-'} machine={r.machine or '-'} spot={r.spot} max_runtime={_duration(r.max_runtime_s)}")
    print(f"env        {spec.env_mode}, python {info['env']['python']}, {info['env']['requirements']} pinned packages, hash {spec.env_hash}")
    if info["attempts"]:
        for a in info["attempts"] if isinstance(info["attempts"], list) else info["attempts"].get("attempts", []):
            print(f"attempt    {a}")
    if info["cost"]:
        flat = {k: v for k, v in info["cost"].items() if not isinstance(v, dict) and v is not None}
        print("cost       " + "  ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in flat.items()))
    if st.get("error"):
        print("error:")
        from offload.runner import _strip_ansi

        for line in st["error"].get("traceback") or [f"{st['error'].get('ename')}: {st['error'].get('evalue')}"]:
            print("  " + _strip_ansi(line))
    print(f"output     {info['output_notebook']}")
    for o in info["outputs"]:
        print(f"  file     {o}")
    return 0


def _cost(job, status: dict[str, Any]) -> dict[str, Any] | None:
    """Estimate before the run (from the launch handle), actual after (billed time x price)."""
    handle = job.handle or {}
    cost = dict(handle.get("cost_estimate") or {})
    if status.get("state") in ("succeeded", "failed", "cancelled", "preempted", "lost"):
        try:
            be = job.backend()
            if hasattr(be, "job_cost"):
                cost.update(be.job_cost(handle, status) or {})
        except OffloadError:
            pass
    return cost or None


def cmd_cancel(args: argparse.Namespace) -> int:
    from offload.jobs import Job

    job = Job(args.job, store=_store(args))
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
    from offload.jobs import Job

    job = Job(args.job, store=_store(args))
    report = job.merge(into=args.into)
    print(f"{report.path}: {report.describe()}")
    return 0


def cmd_deps(args: argparse.Namespace) -> int:
    from offload.snapshot.deps import render, snapshot

    env = snapshot(args.notebook, project_root=args.project_root, python=args.python)
    print(render(env, args.format))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from offload.config import config_path, load_config, set_values

    if args.action == "set":
        cfg = set_values(args.pairs)
    else:
        cfg = load_config()
    print(f"# {config_path()}")
    print(json.dumps(cfg, indent=2, sort_keys=True))
    return 0


def cmd_machines(args: argparse.Namespace) -> int:
    name, be = _backend(args)
    ms = be.machines()
    if args.json:
        print(json.dumps([m.to_dict() for m in ms], indent=1))
        return 0
    print(f"{'NAME':<22} {'GPU':<14} {'vCPU':>5} {'RAM GB':>7} {'$/h':>8} {'spot $/h':>9}")
    for m in ms:
        price = f"{m.price_per_hour:.2f}" if m.price_per_hour is not None else "-"
        spot = f"{m.spot_price_per_hour:.2f}" if m.spot_price_per_hour is not None else "-"
        gpu = f"{m.gpu_count}x {m.gpu}" if m.gpu else "-"
        print(f"{m.name:<22} {gpu:<14} {m.vcpus or '-':>5} {m.memory_gb or '-':>7} {price:>8} {spot:>9}")
    taken = getattr(be, "table", {}).get("taken") if isinstance(getattr(be, "table", None), dict) else None
    if taken:
        print(f"prices as of {taken} (override with the backend's `prices` option)")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from offload.snapshot.bundle import collect_garbage

    name, be = _backend(args)
    removed = be.cleanup(dry_run=args.dry_run)
    staging = collect_garbage(be.store, dry_run=args.dry_run, grace_s=args.older_than * 3600)
    verb = "would remove" if args.dry_run else "removed"
    if not removed and not staging:
        print(f"{name}: nothing to clean up in {be.store.url}")
    for item in removed:
        print(f"{verb} {item}")
    if staging:
        print(f"{verb} {len(staging)} stale staging object(s) in {be.store.url} (bundles, blobs and wheels no job uses)")
        for key in staging[:20]:
            print(f"  {key}")
    return 0


# parser ---------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from offload._version import __version__

    p = argparse.ArgumentParser(prog="offload", description="Run notebooks on big machines from where you are.")
    p.add_argument("--version", action="version", version=f"jupyter-offload {__version__}")
    p.add_argument("--store", help="store URL (default: OFFLOAD_STORE, config, or the user data dir)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    r = sub.add_parser("run", help="run a notebook as a job")
    r.add_argument("notebook")
    r.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="set a parameter (repeatable)")
    r.add_argument("--param-file", action="append", metavar="YAML", help="parameters from a YAML file")
    r.add_argument("--backend", help="local (default), gce, slurm, ...")
    r.add_argument("--gpu", help="GPU type (l4, a100, ...) or a comma list of fallbacks")
    r.add_argument("--gpu-count", type=int, default=1)
    r.add_argument("--machine", help="machine type, e.g. g2-standard-8")
    r.add_argument("--spot", action="store_true", help="use spot/preemptible capacity")
    r.add_argument("--max-runtime", "--time", dest="max_runtime", help="hard cap, e.g. 4h or 4:00:00 (default 6h)")
    r.add_argument("--cpus", type=int)
    r.add_argument("--memory", type=float, help="memory in GB")
    r.add_argument("--data", action="append", metavar="PATH", help="file or directory to ship (same relative path remotely)")
    r.add_argument("--include", action="append", metavar="PATH", help="extra local file or package to ship")
    r.add_argument("--env", choices=["kernel", "isolated"], default="kernel", help="kernel: this interpreter; isolated: a fresh environment from the snapshot")
    r.add_argument("--retries", type=int, default=2, help="runs again after preemption, restoring checkpoint_dir() (default 2)")
    r.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="backend option (zone=..., partition=...)")
    r.add_argument("--allow-unresolved", action="store_true", help="run even if some imports map to no installed package")
    r.add_argument("--detach", "-d", action="store_true", help="print the job id and return at once")
    r.add_argument("--quiet", "-q", action="store_true")
    r.set_defaults(func=cmd_run)

    ls = sub.add_parser("ls", help="list jobs, newest first")
    ls.add_argument("--refresh", action="store_true", help="rebuild the local index from the store")
    ls.add_argument("-n", "--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_ls)

    lg = sub.add_parser("logs", help="print a job's log")
    lg.add_argument("job")
    lg.add_argument("-f", "--follow", action="store_true", help="follow until the job ends")
    lg.set_defaults(func=cmd_logs)

    sh = sub.add_parser("show", help="everything about a job")
    sh.add_argument("job")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=cmd_show)

    c = sub.add_parser("cancel", help="stop a job")
    c.add_argument("job")
    c.add_argument("--no-wait", action="store_true")
    c.set_defaults(func=cmd_cancel)

    m = sub.add_parser("merge", help="merge a job's outputs and metrics into the source notebook")
    m.add_argument("job")
    m.add_argument("--into", help="notebook to merge into (default: the submitted one)")
    m.set_defaults(func=cmd_merge)

    d = sub.add_parser("deps", help="what will be installed remotely, and why")
    d.add_argument("notebook")
    d.add_argument("--format", choices=["text", "requirements", "pyproject", "json"], default="text")
    d.add_argument("--project-root")
    d.add_argument("--python", help="interpreter whose packages to inspect (default: this one)")
    d.set_defaults(func=cmd_deps)

    cf = sub.add_parser("config", help="show or set configuration")
    cf.add_argument("action", choices=["show", "set"])
    cf.add_argument("pairs", nargs="*", metavar="KEY VALUE")
    cf.set_defaults(func=cmd_config)

    ma = sub.add_parser("machines", help="machines a backend offers, with prices")
    ma.add_argument("--backend")
    ma.add_argument("--json", action="store_true")
    ma.set_defaults(func=cmd_machines)

    gc = sub.add_parser("gc", help="delete leftover machines of ended jobs")
    gc.add_argument("--backend")
    gc.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    gc.add_argument("--older-than", type=float, default=24.0, metavar="HOURS",
                    help="staging objects younger than this are kept (default 24)")
    gc.set_defaults(func=cmd_gc)

    try:
        from offload.sweeps import add_sweep_parser
    except ImportError:
        add_sweep_parser = None
    if add_sweep_parser is not None:
        add_sweep_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except OffloadError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
