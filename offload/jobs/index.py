"""The local job index: a SQLite cache of job summaries for fast, paged listing.

The store stays the truth; this file can be deleted at any time and rebuilt with
``offload ls --refresh``. WAL mode and a busy timeout let the CLI, the server and kernels share it.

Listing reads one page (:func:`page`): newest first, filtered by state, notebook and kind in SQL,
continued by an opaque cursor. Keeping it current is :mod:`offload.jobs.listing`'s job: it re-reads
only jobs that are still active and jobs the index has not seen, never every job per pass. The
``stores`` table remembers when each store was last synced, so a restarted server answers from the
index at once while it catches up.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offload.errors import UsageError
from offload.paths import data_dir
from offload.spec import ACTIVE_STATES, JobSpec

_COLUMNS = ("id", "store", "notebook", "source_path", "kind", "backend", "state", "reason", "created_at",
            "started_at", "finished_at", "cell", "n_cells", "parameters", "metrics", "labels", "cost")
_JSON = ("parameters", "metrics", "labels")
_ACTIVE = tuple(str(s.value) for s in ACTIVE_STATES)
MAX_PAGE = 500  # the most rows one page may ask for
_local = threading.local()


def _connect() -> sqlite3.Connection:
    path: Path = data_dir() / "index.sqlite"
    cached = getattr(_local, "conn", None)
    if cached is not None and cached[0] == path:
        return cached[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # a cache: a power cut may lose the last pass, never corrupt
    conn.execute(
        "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, store TEXT, notebook TEXT, source_path TEXT,"
        " kind TEXT, backend TEXT, state TEXT, reason TEXT, created_at REAL, started_at REAL,"
        " finished_at REAL, cell INTEGER, n_cells INTEGER, parameters TEXT, metrics TEXT, labels TEXT, cost REAL)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS jobs_created ON jobs(store, created_at)")
    conn.execute("CREATE INDEX IF NOT EXISTS jobs_state ON jobs(store, state)")
    conn.execute("CREATE TABLE IF NOT EXISTS stores (store TEXT PRIMARY KEY, synced_at REAL, full_at REAL)")
    _local.conn = (path, conn)
    return conn


# writing ---------------------------------------------------------------------------------------


def row_of(spec: JobSpec, store_url: str, status: dict[str, Any], metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """The index row of one job, from its spec, status and last metric values."""
    state = status.get("state")
    return {
        "id": spec.id, "store": store_url, "notebook": spec.notebook, "source_path": spec.source_path,
        "kind": spec.kind, "backend": spec.backend, "state": str(getattr(state, "value", state)) if state else None,
        "reason": status.get("reason"), "created_at": spec.created_at, "started_at": status.get("started_at"),
        "finished_at": status.get("finished_at"), "cell": status.get("cell"), "n_cells": status.get("n_cells"),
        "parameters": spec.parameters, "metrics": metrics or {}, "labels": spec.labels, "cost": status.get("cost"),
    }


def record(spec: JobSpec, store_url: str, status: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
    """Index one job from its spec and status. Never raises: the index is a cache, and no user
    action fails over it."""
    try:
        upsert(row_of(spec, store_url, status, metrics))
    except Exception:
        pass


def _finite(v: Any) -> Any:
    """NaN and infinities as null: SQLite's JSON functions (filters, sorts) refuse them."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _values(row: dict[str, Any]) -> list[Any]:
    return [json.dumps(_finite(row.get(c)), default=str) if c in _JSON else row.get(c) for c in _COLUMNS]


_INSERT = f"INSERT OR REPLACE INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


def upsert(row: dict[str, Any]) -> None:
    _connect().execute(_INSERT, _values(row))


def upsert_many(rows: Iterable[dict[str, Any]]) -> None:
    """Many rows in one transaction (a rebuild of 10,000 jobs is one commit, not 10,000)."""
    conn = _connect()
    conn.execute("BEGIN")
    try:
        conn.executemany(_INSERT, [_values(r) for r in rows])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def remove(store: str, job_ids: Collection[str]) -> None:
    """Drop jobs that are no longer in the store (``offload gc``, a deleted prefix)."""
    if job_ids:
        _connect().executemany("DELETE FROM jobs WHERE store = ? AND id = ?", [(store, i) for i in job_ids])


def forget(store: str) -> None:
    conn = _connect()
    conn.execute("DELETE FROM jobs WHERE store = ?", (store,))
    conn.execute("DELETE FROM stores WHERE store = ?", (store,))


def mark_synced(store: str, *, full: bool = False) -> None:
    now = time.time()
    _connect().execute(
        "INSERT INTO stores (store, synced_at, full_at) VALUES (?, ?, ?) ON CONFLICT(store) DO UPDATE SET"
        " synced_at = excluded.synced_at, full_at = COALESCE(excluded.full_at, stores.full_at)",
        (store, now, now if full else None),
    )


def synced_at(store: str) -> float | None:
    """When the index last caught up with this store (None: never, the index knows nothing of it)."""
    r = _connect().execute("SELECT synced_at FROM stores WHERE store = ?", (store,)).fetchone()
    return r[0] if r else None


# reading ---------------------------------------------------------------------------------------


def _decode(r: tuple[Any, ...]) -> dict[str, Any]:
    d = dict(zip(_COLUMNS, r, strict=True))
    for c in _JSON:
        d[c] = json.loads(d[c]) if d[c] else {}
    return d


def rows(store: str | None, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Newest first; ``store=None`` lists jobs of every store this machine has used."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM jobs {'WHERE store = ?' if store else ''} ORDER BY created_at DESC, id DESC"
    if limit:
        sql += f" LIMIT {int(limit)}"
    return [_decode(r) for r in _connect().execute(sql, (store,) if store else ())]


def get(store: str, job_ids: Collection[str]) -> dict[str, dict[str, Any]]:
    """The indexed rows of these jobs, by id (jobs the index does not know are absent)."""
    out: dict[str, dict[str, Any]] = {}
    ids = list(job_ids)
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        sql = f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE store = ? AND id IN ({', '.join('?' * len(chunk))})"
        for r in _connect().execute(sql, (store, *chunk)):
            out[r[0]] = _decode(r)
    return out


def states(store: str) -> dict[str, str | None]:
    """Job id -> indexed state, for every job of the store (one cheap query: two columns)."""
    return dict(_connect().execute("SELECT id, state FROM jobs WHERE store = ?", (store,)).fetchall())


def active_ids(store: str) -> list[str]:
    """Jobs the index last saw queued, provisioning or running (or without a state)."""
    marks = ", ".join("?" * len(_ACTIVE))
    return [r[0] for r in _connect().execute(
        f"SELECT id FROM jobs WHERE store = ? AND (state IS NULL OR state IN ({marks}))", (store, *_ACTIVE))]


def ids(store: str) -> list[str]:
    return [r[0] for r in _connect().execute("SELECT id FROM jobs WHERE store = ?", (store,))]


def find(ref: str) -> list[tuple[str, str]]:
    """(job id, store URL) of every indexed job whose id starts or ends with ``ref``."""
    like = ref.replace("\\", "").replace("%", "").replace("_", "")
    return [(r[0], r[1]) for r in _connect().execute(
        "SELECT id, store FROM jobs WHERE id LIKE ? OR id LIKE ?", (like + "%", "%" + like))
        if r[0].startswith(ref) or r[0].endswith(ref)]


# pages -----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Filter:
    """What a page is restricted to. ``notebook`` matches a job's bundle name or its source path
    (any of the values given); an empty tuple means no restriction."""

    states: tuple[str, ...] = ()
    notebooks: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    include_null_kind: bool = False  # jobs indexed before kinds existed count as notebooks

    def where(self, store: str | None) -> tuple[str, list[Any]]:
        clauses, args = [], []
        if store:
            clauses.append("store = ?")
            args.append(store)
        if self.states:
            clauses.append(f"state IN ({', '.join('?' * len(self.states))})")
            args += [str(getattr(s, "value", s)) for s in self.states]
        if self.notebooks:
            marks = ", ".join("?" * len(self.notebooks))
            clauses.append(f"(notebook IN ({marks}) OR source_path IN ({marks}))")
            args += [*self.notebooks, *self.notebooks]
        if self.kinds:
            null = " OR kind IS NULL" if self.include_null_kind else ""
            clauses.append(f"(kind IN ({', '.join('?' * len(self.kinds))}){null})")
            args += list(self.kinds)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


@dataclass(frozen=True, kw_only=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None  # None: this was the last page
    total: int  # rows matching the filter, all pages together

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "next_cursor": self.next_cursor, "total": self.total}


@dataclass(frozen=True, kw_only=True)
class Order:
    """Newest first (``created_at``), or by ``cost`` or a metric's last value; rows without that
    value come last."""

    key: str = "created_at"
    metric: bool = False
    descending: bool = True

    def sql(self) -> tuple[str, list[Any]]:
        """The ORDER BY expression and its bound arguments (a metric name is never pasted into SQL)."""
        if self.key == "created_at":
            d = "DESC" if self.descending else "ASC"
            return f"created_at {d}, id {d}", []
        if self.metric:
            # only numbers sort: a metric logged as text on some job is "no value" there; the path
            # member is quoted, as metric names may hold dots
            expr = ("(CASE WHEN json_type(metrics, '$.' || ?) IN ('integer', 'real')"
                    " THEN json_extract(metrics, '$.' || ?) END)")
            path = json.dumps(self.key)
            args = [path, path] * 2
        else:
            expr, args = "cost", []
        return f"{expr} IS NULL, {expr} {'DESC' if self.descending else 'ASC'}, created_at DESC, id DESC", args


def encode_cursor(obj: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    """The position a cursor names; a cursor not made here is a 400 naming ``cursor``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        value = None
    if not isinstance(value, list) or not value or value[0] not in ("k", "o"):
        raise UsageError(f"invalid cursor {cursor[:40]!r}", field="cursor",
                         hint="pass the next_cursor of the previous page unchanged, or no cursor for the first page")
    return value


def page(store: str | None, *, limit: int = 50, cursor: str | None = None, where: Filter | None = None,
         order: Order | None = None) -> Page:
    """One page of jobs. The default order (newest first) continues by keyset: a job created
    while a user pages is never shown twice; other orders continue by offset."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise UsageError(f"limit must be between 1 and {MAX_PAGE}, not {limit!r}", field="limit",
                         hint="page with next_cursor for more")
    where = where or Filter()
    order = order or Order()
    clause, args = where.where(store)
    conn = _connect()
    total = conn.execute(f"SELECT COUNT(*) FROM jobs{clause}", args).fetchone()[0]
    offset = 0
    keyset = order.key == "created_at"
    if cursor:
        pos = decode_cursor(cursor)
        if pos[0] == "k" and keyset and len(pos) == 3 and isinstance(pos[2], str):
            op = "<" if order.descending else ">"
            clause = (clause + " AND " if clause else " WHERE ") + f"(created_at {op} ? OR (created_at = ? AND id {op} ?))"
            args = [*args, pos[1], pos[1], pos[2]]
        elif pos[0] == "o" and not keyset and len(pos) == 2 and isinstance(pos[1], int) and pos[1] >= 0:
            offset = pos[1]
        else:
            raise UsageError("this cursor belongs to another sort order", field="cursor",
                             hint="start again without a cursor after changing the sort")
    order_sql, order_args = order.sql()
    sql = f"SELECT {', '.join(_COLUMNS)} FROM jobs{clause} ORDER BY {order_sql} LIMIT ? OFFSET ?"
    found = [_decode(r) for r in conn.execute(sql, [*args, *order_args, limit + 1, offset])]
    more = len(found) > limit
    found = found[:limit]
    nxt = None
    if more and found:
        last = found[-1]
        nxt = encode_cursor(["k", last["created_at"], last["id"]]) if keyset else encode_cursor(["o", offset + limit])
    return Page(rows=found, next_cursor=nxt, total=total)


def distinct(store: str | None, where: Filter) -> tuple[list[str], list[str]]:
    """The notebooks and the numeric metric names among the jobs ``where`` selects (for the
    gallery's filters and sort menu), in two queries."""
    clause, args = where.where(store)
    conn = _connect()
    notebooks = [r[0] for r in conn.execute(f"SELECT DISTINCT notebook FROM jobs{clause}", args) if r[0]]
    metrics = [r[0] for r in conn.execute(
        f"SELECT DISTINCT m.key FROM (SELECT metrics FROM jobs{clause}) AS j, json_each(j.metrics) AS m"
        " WHERE m.type IN ('integer', 'real')", args)]
    return sorted(notebooks), sorted(metrics)
