"""The ``offload`` command: one module per verb group, each adding its own sub-commands.

``run`` (submit and follow), ``jobs`` (ls, logs, show, cancel, merge), ``admin`` (deps, config,
machines, gc), ``spend`` (month to date against the budgets), ``attach`` (ssh, attach: into a running job), ``sweep`` (the ``offload sweep`` group); ``_format`` is what they share.
"""

from __future__ import annotations

import argparse
import os
import sys

from offload import _startup

_startup.skip_unused_imports()  # the CLI is its own process: before anything imports nbformat

from offload._version import __version__  # noqa: E402
from offload.cli import admin, attach, jobs, run, spend, sweep  # noqa: E402
from offload.errors import OffloadError  # noqa: E402

VERB_GROUPS = (run, jobs, admin, spend, attach)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="offload", description="Run notebooks on big machines from where you are.")
    p.add_argument("--version", action="version", version=f"jupyter-offload {__version__}")
    p.add_argument("--store", help="store URL (default: OFFLOAD_STORE, config, or the user data dir)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in VERB_GROUPS:
        group.add_parsers(sub)
    sweep.add_sweep_parser(sub)
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
    except BrokenPipeError:  # `offload show --json | head`: the reader has gone, which is no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 0


__all__ = ["build_parser", "main"]
