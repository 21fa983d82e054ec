"""``offload sweep``: run a sweep, and ``offload sweep ls|show|stop|resume`` to follow and steer it.

The handler is ``args.func(args) -> int`` (exit code); errors are raised as OffloadError and the
``offload`` command prints them.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from offload.cli._format import backend_name
from offload.errors import UsageError
from offload.store import Store
from offload.sweeps import (
    apply_best,
    history,
    importances,
    sweep,
    sweep_ls,
    sweep_resume,
    sweep_show,
    sweep_stop,
    sweep_summary,
    trials_table,
)
from offload.sweeps.views import format_ls

VERBS = ("ls", "show", "stop", "resume")


def add_sweep_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``offload sweep`` (run) and ``offload sweep ls|show|stop|resume``."""
    p = subparsers.add_parser(
        "sweep",
        help="hyperparameter sweep: trials are parametrized runs of a notebook",
        description="offload sweep NOTEBOOK --space space.yaml --objective NAME [...]\n"
        "offload sweep ls | show SWEEP [--apply-best [NB]] | stop SWEEP | resume SWEEP",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", help="a notebook to sweep, or one of: " + ", ".join(VERBS))
    p.add_argument("sweep_id", nargs="?", help="the sweep (for show/stop/resume)")
    g = p.add_argument_group("running a sweep")
    g.add_argument("--space", help="search space YAML file")
    g.add_argument("--objective", help="metric(s) the notebook logs, comma-separated for several")
    g.add_argument("--direction", default="maximize", help="maximize or minimize (one per objective)")
    g.add_argument("--trials", type=int, help="number of trials (default 20)")
    g.add_argument("--parallel", type=int, default=1, help="trials running at once")
    g.add_argument("--per-gpu", type=int, default=1, help="trials packed on one machine")
    g.add_argument("--sampler", default="tpe", help="tpe|random|grid|cmaes|gp (name:key=value,... for options)")
    g.add_argument("--seed", type=int)
    g.add_argument("--pruner", default=None, help="median|percentile|hyperband|successive-halving|none")
    g.add_argument("--storage", help="Optuna storage URL (default: SQLite in the offload data dir)")
    g.add_argument("--study-name")
    g.add_argument("--max-failures", type=int)
    g.add_argument("--budget", metavar="USD", help="most all trials together may cost; the sweep stops before going over")
    g.add_argument("--enqueue", help="YAML file of known-good points to try first")
    g.add_argument("--backend", type=backend_name)
    g.add_argument("--gpu")
    g.add_argument("--machine")
    g.add_argument("--spot", action="store_true")
    g.add_argument("--max-runtime", help="per trial, e.g. 2h")
    g.add_argument("--env", choices=("kernel", "isolated"))
    g.add_argument("--notify", metavar="URL", help="webhook told when the sweep ends (Slack-compatible; 'off')")
    g.add_argument("--detach", action="store_true", help="run the driver in the background")
    g.add_argument("--quiet", action="store_true")
    g.add_argument("--json", action="store_true", help="print JSON (ls, show)")
    g.add_argument("--apply-best", nargs="?", const="", metavar="NOTEBOOK",
                   help="write the best parameters into the notebook's parameters cell")
    g.add_argument("--trial", type=int, help="with --apply-best: the trial to apply")
    p.set_defaults(func=run_sweep_cli)
    return p


def run_sweep_cli(args: argparse.Namespace) -> int:
    verb = args.target
    st = Store(getattr(args, "store", None))
    if verb == "ls":
        rows = sweep_ls(store=st)
        print(json.dumps(rows, indent=1) if args.json else format_ls(rows))
        return 0
    if verb in VERBS:
        if not args.sweep_id:
            raise UsageError(f"`offload sweep {verb}` needs a sweep id", hint="`offload sweep ls` lists them")
        if verb == "show":
            _show(args, st)
            return 0
        if verb == "stop":
            info = sweep_stop(args.sweep_id, store=st)
            print(f"sweep {args.sweep_id}: {info.get('state', 'stopped')}")
            return 0
        res = sweep_resume(args.sweep_id, store=st, detach=args.detach, quiet=args.quiet, trials=args.trials)
        print(f"sweep {res.id}: {res.state}" if args.detach else sweep_show(res.id, store=st))
        return 0
    if args.sweep_id:
        raise UsageError(f"unexpected argument {args.sweep_id!r}",
                         hint="offload sweep NOTEBOOK --space space.yaml --objective NAME")
    if not args.space or not args.objective:
        raise UsageError("a sweep needs --space and --objective",
                         hint="offload sweep train.ipynb --space space.yaml --objective val_acc --trials 20")
    res = sweep(
        verb, space=args.space, objective=args.objective, direction=args.direction,
        trials=args.trials or 20, parallel=args.parallel, per_gpu=args.per_gpu, sampler=args.sampler,
        seed=args.seed, pruner=args.pruner, storage=args.storage, study_name=args.study_name,
        max_failures=args.max_failures, enqueue=args.enqueue, backend=args.backend, gpu=args.gpu,
        spot=args.spot, machine=args.machine, max_runtime=args.max_runtime, env=args.env, budget=args.budget,
        detach=args.detach, quiet=args.quiet, store=st, notify=args.notify,
    )
    if args.detach:
        print(f"sweep {res.id} started in the background; `offload sweep show {res.id}` to follow it")
        return 0
    print(sweep_show(res.id, store=st))
    if args.apply_best is not None:
        args.sweep_id = res.id
        _apply(args, st)
    return 0


def _show(args: argparse.Namespace, st: Store) -> None:
    if args.json:
        summary = sweep_summary(args.sweep_id, store=st)
        sid = summary["id"]
        print(json.dumps({**summary, "trials": trials_table(sid, store=st), "history": history(sid, store=st),
                          "importances": importances(sid, store=st)}, indent=1, default=str))
    else:
        print(sweep_show(args.sweep_id, store=st))
    if args.apply_best is not None:
        _apply(args, st)


def _apply(args: argparse.Namespace, st: Store) -> None:
    params = apply_best(args.sweep_id, args.apply_best or None, store=st, trial=args.trial)
    print(f"wrote {', '.join(f'{k}={v!r}' for k, v in params.items())} into the parameters cell")
