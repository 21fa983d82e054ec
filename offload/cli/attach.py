"""The verbs into a running job: ``offload ssh`` and ``offload attach`` (see docs/attach.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from offload import attach
from offload.cli._format import store_arg


def add_parsers(sub: Any) -> None:
    s = sub.add_parser(
        "ssh", help="a shell (or one command) on a running job's machine, in its notebook's directory",
        description="offload ssh JOB opens a shell; offload ssh JOB -- CMD ARGS runs one command there and "
                    "exits with its status. Local jobs: this machine; SLURM: srun --overlap into the job's "
                    "allocation; GCE: SSH to the VM (docs/attach.md).")
    s.add_argument("job")
    s.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    _waiting(s)
    s.set_defaults(func=cmd_ssh)
    a = sub.add_parser(
        "attach", help="a console on a running job's kernel (a subshell, beside the running cell)",
        description="Code runs in the job's own kernel through a kernel subshell (ipykernel >= 7): it sees "
                    "the notebook's variables while a cell keeps running. Leaving never stops the job.")
    a.add_argument("job")
    a.add_argument("-e", "--execute", metavar="CODE", help="run CODE, print its output, exit (1 on an error)")
    _waiting(a)
    a.set_defaults(func=cmd_attach)
    d = sub.add_parser(
        "debug-copy", help="rerun a failed job up to the cell that failed and keep its kernel to attach",
        description="The copy uses the same bundle, environment and parameters, runs the cells before the one "
                    "that failed, then keeps its kernel (offload attach NEW) until --hold ends or you cancel it.")
    d.add_argument("job")
    d.add_argument("--hold", type=int, default=None, metavar="S", help="keep the kernel S seconds (default 1800)")
    d.add_argument("--attach", action="store_true", help="then open a console on it")
    d.set_defaults(func=cmd_debug_copy)


def _waiting(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-wait", action="store_true", help="fail at once when the job's kernel is not running yet")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="give up waiting for a queued job's kernel after S seconds (default: wait)")


def _progress(text: str) -> None:
    print(f"[offload] {text}", file=sys.stderr, flush=True)


def cmd_ssh(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":  # argparse keeps it when options came before
        command = command[1:]
    return attach.shell(args.job, command or None, store=store_arg(args), wait=not args.no_wait,
                        timeout=args.timeout, progress=_progress)


def cmd_attach(args: argparse.Namespace) -> int:
    kw = {"store": store_arg(args), "wait": not args.no_wait, "timeout": args.timeout, "progress": _progress}
    if args.execute is not None:
        return attach.execute(args.job, args.execute, **kw)
    if not sys.stdin.isatty():  # code piped in: run it all, like --execute
        return attach.execute(args.job, sys.stdin.read(), **kw)
    return attach.console(args.job, **kw)


def cmd_debug_copy(args: argparse.Namespace) -> int:
    new = attach.debug_copy(args.job, store=store_arg(args), hold_s=args.hold)
    print(f"debug copy {new.id} of job {args.job}: runs up to the failing cell, then keeps its kernel")
    print(f"  offload attach {new.id}        offload cancel {new.id} when done")
    if args.attach:
        return attach.console(new.id, store=new.store, progress=_progress)
    return 0
