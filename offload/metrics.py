"""What a notebook calls while it runs: ``log_metric``, ``output_dir``, ``checkpoint_dir``.

Inside a job the runner sets ``OFFLOAD_METRICS_FILE`` and the kernel appends one JSON line per
metric; the runner tails the file and streams it to the store (for pruning and the UI). Outside a
job the same calls cost almost nothing and keep working, so a notebook runs unchanged locally.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

_local_log: list[dict[str, Any]] = []


def _current_cell_id() -> str | None:
    try:  # ipykernel passes the executing cell's id in the request metadata (nbclient, JupyterLab)
        from IPython import get_ipython

        ip = get_ipython()
        parent = ip.kernel.get_parent() if ip is not None and hasattr(ip, "kernel") else None
        return (parent or {}).get("metadata", {}).get("cellId")
    except Exception:
        return None


def log_metric(name: str, value: float, step: int | None = None) -> None:
    """Record ``value`` for metric ``name`` (optionally at ``step``, for curves and pruning)."""
    if not isinstance(name, str) or not name:
        raise ValueError("metric name must be a non-empty string")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"metric {name!r}: value {value!r} is not a number") from None
    record = {
        "name": name,
        "value": value if math.isfinite(value) else str(value),
        "step": int(step) if step is not None else None,
        "ts": time.time(),
        "cell_id": _current_cell_id(),
    }
    path = os.environ.get("OFFLOAD_METRICS_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
    else:
        _local_log.append(record)


def _dir_from_env(var: str, fallback: str) -> Path:
    path = os.environ.get(var)
    if path:
        p = Path(path)
    else:
        p = Path(tempfile.gettempdir()) / "offload-local" / fallback
    p.mkdir(parents=True, exist_ok=True)
    return p


def output_dir() -> Path:
    """Files written here are uploaded with the job's results (``offload show`` lists them)."""
    return _dir_from_env("OFFLOAD_OUTPUT_DIR", "outputs")


def checkpoint_dir() -> Path:
    """Write checkpoints here: they are saved on preemption and restored when the job is retried."""
    return _dir_from_env("OFFLOAD_CHECKPOINT_DIR", "checkpoints")


def parse_metrics(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line while the kernel writes: skip, it comes next time
    return out


def last_values(records: list[dict[str, Any]]) -> dict[str, Any]:
    last: dict[str, Any] = {}
    for r in records:
        last[r["name"]] = r["value"]
    return last
