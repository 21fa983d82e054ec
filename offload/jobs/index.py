"""The local job index: a SQLite cache of job summaries for fast listing.

The store stays the truth; this file can be deleted at any time and rebuilt with
``offload ls --refresh``. WAL mode and a busy timeout let the CLI, the server and kernels share it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from offload.paths import data_dir
from offload.spec import JobSpec

_COLUMNS = ("id", "store", "notebook", "source_path", "kind", "backend", "state", "reason", "created_at",
            "started_at", "finished_at", "cell", "n_cells", "parameters", "metrics", "labels", "cost")
_JSON = ("parameters", "metrics", "labels")
_local = threading.local()


def _connect() -> sqlite3.Connection:
    path: Path = data_dir() / "index.sqlite"
    cached = getattr(_local, "conn", None)
    if cached is not None and cached[0] == path:
        return cached[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, store TEXT, notebook TEXT, source_path TEXT,"
        " kind TEXT, backend TEXT, state TEXT, reason TEXT, created_at REAL, started_at REAL,"
        " finished_at REAL, cell INTEGER, n_cells INTEGER, parameters TEXT, metrics TEXT, labels TEXT, cost REAL)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS jobs_created ON jobs(store, created_at)")
    _local.conn = (path, conn)
    return conn


def record(spec: JobSpec, store_url: str, status: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
    """Index one job from its spec and status. Never raises: the index is a cache, and no user
    action fails over it."""
    try:
        upsert({
            "id": spec.id, "store": store_url, "notebook": spec.notebook, "source_path": spec.source_path,
            "kind": spec.kind, "backend": spec.backend, "state": status.get("state"), "reason": status.get("reason"),
            "created_at": spec.created_at, "started_at": status.get("started_at"),
            "finished_at": status.get("finished_at"), "cell": status.get("cell"), "n_cells": status.get("n_cells"),
            "parameters": spec.parameters, "metrics": metrics or {}, "labels": spec.labels, "cost": status.get("cost"),
        })
    except Exception:
        pass


def upsert(row: dict[str, Any]) -> None:
    values = [json.dumps(row.get(c)) if c in _JSON else row.get(c) for c in _COLUMNS]
    _connect().execute(
        f"INSERT OR REPLACE INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", values
    )


def rows(store: str | None, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Newest first; ``store=None`` lists jobs of every store this machine has used."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM jobs {'WHERE store = ?' if store else ''} ORDER BY created_at DESC"
    if limit:
        sql += f" LIMIT {int(limit)}"
    out = []
    for r in _connect().execute(sql, (store,) if store else ()):
        d = dict(zip(_COLUMNS, r, strict=True))
        for c in _JSON:
            d[c] = json.loads(d[c]) if d[c] else ({} if c != "metrics" else {})
        out.append(d)
    return out


def ids(store: str) -> list[str]:
    return [r[0] for r in _connect().execute("SELECT id FROM jobs WHERE store = ?", (store,))]


def find(ref: str) -> list[tuple[str, str]]:
    """(job id, store URL) of every indexed job whose id starts or ends with ``ref``."""
    like = ref.replace("\\", "").replace("%", "").replace("_", "")
    return [(r[0], r[1]) for r in _connect().execute(
        "SELECT id, store FROM jobs WHERE id LIKE ? OR id LIKE ?", (like + "%", "%" + like))
        if r[0].startswith(ref) or r[0].endswith(ref)]


def forget(store: str) -> None:
    _connect().execute("DELETE FROM jobs WHERE store = ?", (store,))
