"""The job watcher: keeps the server's view of jobs current without blocking the event loop.

Every ``interval`` seconds it asks for the job list (``list_jobs(full)``, given by the app: the
service's :func:`~jupyter_ext.service.jobs.list_jobs`) in a worker thread; the core
re-reads active jobs from the store and reconciles them with their backend (process gone -> lost,
VM still provisioning...). Its first pass after a start rebuilds the local index from the store,
so a server killed with ``kill -9`` picks its jobs up again: the store is the truth, this is a
cache. Handlers read :attr:`rows` instead of touching the store or a cloud API per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from offload.backends import procs
from offload.spec import ACTIVE_STATES, FINAL_STATES

Rows = list[dict[str, Any]]


class JobWatcher:
    def __init__(self, list_jobs: Callable[[bool], Rows], executor: Executor, *, interval: float = 1.0,
                 log: logging.Logger | None = None):
        """``list_jobs(full)`` returns the job rows; ``full`` (the first pass) rebuilds the index."""
        self.list_jobs = list_jobs
        self.executor = executor
        self.interval = interval
        self.log = log or logging.getLogger(__name__)
        self.rows: list[dict[str, Any]] = []
        self.ticks = 0
        self.last_error: str | None = None
        self.updated_at: float | None = None
        self.transitions: list[dict[str, Any]] = []  # recent state changes, newest last
        self._seq = 0
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._ready: asyncio.Event | None = None
        self._lock = asyncio.Lock()

    # lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._ready = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="offload-job-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    def wake(self) -> None:
        """Look again now (after a submit or cancel) instead of at the next interval."""
        if self._wake is not None:
            self._wake.set()

    async def ready(self, timeout: float = 30.0) -> None:
        """Wait for the first pass (the index rebuild) so the first list is complete."""
        if self._ready is None:
            self.start()
        assert self._ready is not None
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def refresh(self) -> None:
        """One pass now, awaited (after a submit, so the next list shows the new job)."""
        await self.ready()
        async with self._lock:
            rows = await asyncio.get_running_loop().run_in_executor(self.executor, self._poll, False)
            self._absorb(rows)

    @property
    def active(self) -> int:
        return sum(1 for r in self.rows if r.get("state") in ACTIVE_STATES)

    # the loop ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None and self._ready is not None
        first = True
        while True:
            try:
                async with self._lock:
                    rows = await loop.run_in_executor(self.executor, self._poll, first)
                    self._absorb(rows)
                first = False
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken store must not kill the watcher: say so, retry
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.log.warning("offload watcher: %s", self.last_error)
            self._ready.set()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass

    def _poll(self, full: bool) -> list[dict[str, Any]]:
        """Runs in a worker thread: store reads and backend calls may block here, never the loop."""
        procs.reap()  # runners this server started that have ended, however: no zombies pile up
        return self.list_jobs(full)

    def _absorb(self, rows: list[dict[str, Any]]) -> None:
        before = {r["id"]: r.get("state") for r in self.rows}
        for r in rows:
            prev = before.get(r["id"])
            if self.ticks and prev != r.get("state") and (prev is not None or r.get("state") in FINAL_STATES):
                self._seq += 1
                self.transitions.append({"seq": self._seq, "id": r["id"], "from": prev, "to": r.get("state"),
                                         "at": time.time()})
        self.transitions = self.transitions[-200:]
        self.rows = rows
        self.ticks += 1
        self.updated_at = time.time()

    def events_since(self, seq: int) -> list[dict[str, Any]]:
        return [t for t in self.transitions if t["seq"] > seq]

    @property
    def seq(self) -> int:
        return self._seq
