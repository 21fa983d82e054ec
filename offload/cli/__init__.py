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

import importlib  # noqa: E402

from offload._version import __version__  # noqa: E402
from offload.errors import OffloadError  # noqa: E402

# offload.cli.<group> modules, each with add_parsers(sub); `sweep` adds the `offload sweep` group.
VERB_GROUPS = ("run", "jobs", "admin", "spend", "attach", "sweep")
# The verbs of each group, so that a command imports only its own group (`offload ls` must answer
# at once; the attach group alone loads jupyter_client). A verb not listed loads every group.
VERBS = {
    "run": "run", "ls": "jobs", "logs": "jobs", "show": "jobs", "cancel": "jobs", "merge": "jobs",
    "deps": "admin", "config": "admin", "machines": "admin", "gc": "admin", "spend": "spend",
    "ssh": "attach", "attach": "attach", "debug-copy": "attach", "sweep": "sweep",
}


def _verb(argv: list[str]) -> str | None:
    """The command word of ``argv`` (after options such as ``--store URL``), if any."""
    it = iter(argv)
    for word in it:
        if word == "--store":
            next(it, None)
        elif not word.startswith("-"):
            return word
    return None


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser for ``verb`` (only its group is imported), or for every command."""
    p = argparse.ArgumentParser(prog="offload", description="Run notebooks on big machines from where you are.")
    p.add_argument("--version", action="version", version=f"jupyter-offload {__version__}")
    p.add_argument("--store", help="store URL (default: OFFLOAD_STORE, config, or the user data dir)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in (VERBS[verb],) if verb in VERBS else VERB_GROUPS:
        group = importlib.import_module(f"offload.cli.{name}")
        if name == "sweep":
            group.add_sweep_parser(sub)
        else:
            group.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_verb(argv))
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
