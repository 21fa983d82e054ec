"""Set-up and housekeeping: deps, config, machines (offers; --running; stop), gc."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from offload.backends.cost import gce_price_table, price_note
from offload.backends.options import check_option
from offload.cli._format import backend_arg, backend_name, store_arg
from offload.config import config_path, effective_config, set_values
from offload.errors import UsageError
from offload.jobs.machines import list_machines, stop_all, stop_machine
from offload.snapshot.bundle import build_bundle, collect_garbage, human_size
from offload.snapshot.deps import render, snapshot


def add_parsers(sub: Any) -> None:
    d = sub.add_parser("deps", help="what will be installed remotely, and why")
    d.add_argument("notebook")
    d.add_argument("--format", choices=["text", "requirements", "pyproject", "json"], default="text")
    d.add_argument("--project-root")
    d.add_argument("--python", help="interpreter whose packages to inspect (default: this one)")
    d.add_argument("--data", action="append", metavar="PATH", help="as for offload run: list what of it would ship")
    d.add_argument("--include", action="append", metavar="PATH", help="as for offload run")
    d.add_argument("--allow-secret", action="append", metavar="PATH", help="as for offload run")
    d.set_defaults(func=cmd_deps)
    cf = sub.add_parser("config", help="show or set configuration")
    cf.add_argument("action", choices=["show", "set"])
    cf.add_argument("pairs", nargs="*", metavar="KEY VALUE")
    cf.add_argument("--json", action="store_true", help="every setting in force with its source")
    cf.set_defaults(func=cmd_config)
    ma = sub.add_parser("machines", help="machines a backend offers, with prices; --running: live machines; stop NAME|--all",
                        description="Without arguments: the machines a backend offers. --running: the machines up now "
                                    "(warm --keep-alive machines, %%offload sessions, sweep packs). stop NAME|--all: end them.")
    ma.add_argument("action", nargs="?", choices=["stop"], help="stop: end the named machine(s)")
    ma.add_argument("names", nargs="*", metavar="NAME", help="machine name(s) to stop, as --running lists them")
    ma.add_argument("--running", action="store_true", help="the machines up now, with idle deadline and cost so far")
    ma.add_argument("--all", action="store_true", help="with stop: every live machine")
    ma.add_argument("--backend", type=backend_name)
    ma.add_argument("--json", action="store_true")
    ma.set_defaults(func=cmd_machines)
    gc = sub.add_parser("gc", help="delete leftover machines of ended jobs")
    gc.add_argument("--backend", type=backend_name)
    gc.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    gc.add_argument("--older-than", type=float, default=24.0, metavar="HOURS",
                    help="staging objects younger than this are kept (default 24)")
    gc.set_defaults(func=cmd_gc)


def cmd_deps(args: argparse.Namespace) -> int:
    env = snapshot(args.notebook, project_root=args.project_root, python=args.python)
    nb = Path(args.notebook).expanduser().resolve()
    bundle = build_bundle(Path(args.project_root or env.project_root or nb.parent).expanduser(), nb,
                          data=args.data or [], include=args.include or [],
                          modules=[*env.local_files, *env.shipped_data()],
                          allow_secrets=args.allow_secret or [])
    if args.format == "json":
        out = json.loads(render(env, "json"))
        out["files"] = [{"path": e.path, "size": e.size} for e in sorted(bundle.files.values(), key=lambda e: e.path)]
        out["left_out"] = [{"path": p, "why": why} for p, why in bundle.excluded]
        print(json.dumps(out, indent=1))
        return 0
    print(render(env, args.format))
    # what ships with it, and what is left out and why (stderr for the machine-readable formats)
    where = sys.stdout if args.format == "text" else sys.stderr
    prefix = "" if args.format == "text" else "# "
    print(f"\n{prefix}files to ship: {len(bundle.files)}, {human_size(bundle.total_bytes)}", file=where)
    for line in bundle.left_out():
        print(f"{prefix}{line}", file=where)
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    if args.action == "set":
        set_values(args.pairs, check=check_option)
    rows = effective_config()
    if args.json:
        print(json.dumps({key: {"value": value, "source": source} for key, value, source in rows}, indent=1))
        return 0
    print(f"# {config_path()}")
    width = max(len(key) for key, _, _ in rows)
    for key, value, source in rows:
        print(f"{key:<{width}}  {json.dumps(value) if not isinstance(value, str) else value}  ({source})")
    return 0


def cmd_machines(args: argparse.Namespace) -> int:
    if args.action == "stop":
        return _stop_machines(args)
    if args.names or args.all:
        raise UsageError("machine names and --all go with stop", hint="offload machines stop NAME (or --all)")
    if args.running:
        return _running(args)
    name, be = backend_arg(args)
    if isinstance(getattr(be, "table", None), dict) and name == "gce":  # today's live prices (cached daily)
        be.table = gce_price_table(be.options, refresh=True)
    ms = be.machines()
    if args.json:
        print(json.dumps([m.to_dict() for m in ms], indent=1))
        return 0
    if not ms:
        print(f"{name} offers no machines to list (it runs jobs where its options say; `offload config show`)")
        return 0
    print(f"{'NAME':<22} {'GPU':<14} {'vCPU':>5} {'RAM GB':>7} {'$/h':>8} {'spot $/h':>9}")
    for m in ms:
        price = f"{m.price_per_hour:.2f}" if m.price_per_hour is not None else "-"
        spot = f"{m.spot_price_per_hour:.2f}" if m.spot_price_per_hour is not None else "-"
        gpu = f"{m.gpu_count}x {m.gpu}" if m.gpu else "-"
        print(f"{m.name:<22} {gpu:<14} {m.vcpus or '-':>5} {m.memory_gb or '-':>7} {price:>8} {spot:>9}")
    note = price_note(be.table) if isinstance(getattr(be, "table", None), dict) else None
    if note:
        print(note + "\n(contract prices: the backend's `prices` option or OFFLOAD_GCE_PRICES)")
    return 0


def _running(args: argparse.Namespace) -> int:
    rows, why = list_machines(store=store_arg(args))
    if args.backend:
        rows = [r for r in rows if r["backend"] == args.backend]
        if not rows and not why:
            why = f"no {args.backend} machine is running (other backends have some: drop --backend)"
    if args.json:
        print(json.dumps({"machines": rows, "why_empty": why or None}, indent=1))
        return 0
    if not rows:
        print(why)
        return 0
    print(f"{'NAME':<32} {'KIND':<8} {'BACKEND':<7} {'ZONE':<15} {'SHAPE':<26} {'STATE':<6} {'ENDS IN':>8} {'COST':>8}")
    for r in rows:
        counting = r["idle_left_s"] is not None and (r["state"] == "idle" or r["role"] == "session")
        left = _clock(r["idle_left_s"]) if counting else "-"  # a session counts down between cells
        cost = f"${r['cost_so_far']:.2f}" if r["cost_so_far"] is not None else "-"
        kind = {"keep-alive": "warm"}.get(r["role"], r["role"] or "-")
        print(f"{r['name']:<32} {kind:<8} {r['backend'] or '':<7} {r['zone'] or '-':<15} {_shape(r):<26} "
              f"{r['state'] or '-':<6} {left:>8} {cost:>8}")
    return 0


def _shape(r: dict[str, Any]) -> str:
    gpu = r.get("gpu")
    if gpu:
        gpu = f"{gpu} GPU" if str(gpu).isdigit() else f"{r.get('gpu_count') or 1}x {gpu}"
    return " ".join(str(p) for p in (r.get("machine"), gpu, "spot" if r.get("spot") else None) if p) or "-"


def _clock(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _stop_machines(args: argparse.Namespace) -> int:
    if args.all == bool(args.names):
        raise UsageError("say which machines to stop", hint="offload machines stop NAME (or --all)", field="name")
    results = stop_all(store=store_arg(args)) if args.all else [stop_machine(n, store=store_arg(args)) for n in args.names]
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    if not results:
        print("no machine is running: nothing to stop")
    for r in results:
        print(r["message"])
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    name, be = backend_arg(args)
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
