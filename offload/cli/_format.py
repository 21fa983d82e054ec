"""What every verb group shares: colours, durations, metrics, and the --store/--backend options."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from offload.backends.base import get_backend, user_backends
from offload.config import backend_options, backend_store, default_backend
from offload.notebook import parse_value
from offload.spec import JobState
from offload.store import Store

STATE_STYLE = {JobState.SUCCEEDED: "32", JobState.FAILED: "31", JobState.LOST: "31", JobState.CANCELLED: "33",
               JobState.PREEMPTED: "33", JobState.RUNNING: "36"}


def color(text: str, code: str | None, stream: Any = None) -> str:
    """``text`` in colour ``code`` when the stream (the current ``sys.stdout`` by default, looked up
    at call time: a stream bound at import may since have been replaced and closed) is a terminal."""
    stream = sys.stdout if stream is None else stream
    return f"\x1b[{code}m{text}\x1b[0m" if code and stream.isatty() else text


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def fmt_metrics(metrics: dict[str, Any], limit: int = 3) -> str:
    items = list(metrics.items())[:limit]
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in items)


def job_duration(row: dict[str, Any]) -> float | None:
    start = row.get("started_at")
    if not start:
        return None
    return (row.get("finished_at") or time.time()) - start


def store_arg(args: argparse.Namespace):
    """The store named with --store, else None: each command then picks the right one."""
    return Store(args.store) if getattr(args, "store", None) else None


def backend_arg(args: argparse.Namespace):
    name = args.backend or default_backend()
    store = store_arg(args) or Store(backend_store(name))
    return name, get_backend(name, store, **backend_options(name))


def backend_opts(args: argparse.Namespace) -> dict[str, Any]:
    opts = {}
    for item in getattr(args, "option", None) or []:
        key, _, value = item.partition("=")
        opts[key] = parse_value(value)
    return opts


def backend_name(name: str) -> str:
    """argparse ``type`` of ``--backend``: the backends offered to users (internal ones are not)."""
    offered = user_backends()
    if name not in offered:
        raise argparse.ArgumentTypeError(f"unknown backend {name!r}; available backends: {', '.join(offered)}")
    return name
