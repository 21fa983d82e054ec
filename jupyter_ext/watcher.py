"""The job watcher: keeps the server's job index current without blocking the event loop.

Every ``interval`` seconds it runs one incremental pass (``sync``, given by the app: the service's
:func:`~jupyter_ext.service.jobs.sync`) in a worker thread: the store's job ids are listed (every
``scan_interval`` seconds; on ``gs://`` a listing is a few round trips), jobs the index has not seen
are read once, and only jobs still active are re-read and reconciled with their backend (process
gone -> lost, VM still provisioning...). A finished job is never read again, so a pass costs the
same with 10 jobs or 10,000. Handlers answer from the index (SQLite), a page at a time. After a
restart the last index answers at once while the first pass catches up; a server whose index has
never seen the store (a fresh install) waits only until the newest jobs of its first, full pass are
indexed (the first page), and the rest fills in. The store is the truth, the index a cache.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Protocol

from offload.backends import procs
from offload.spec import ACTIVE_STATES, FINAL_STATES


class PassReport(Protocol):
    """What a pass says (``offload.jobs.listing.SyncReport``)."""

    seen: dict[str, tuple[str | None, str | None]]  # job id -> (indexed state before, state now)
    active: int


class JobWatcher:
    _was_indexed = False
    _loop: asyncio.AbstractEventLoop | None = None

    def __init__(self, sync: Callable[..., PassReport], executor: Executor, *, interval: float = 1.0,
                 scan_interval: float = 0.0, indexed: Callable[[], bool] = lambda: False,
                 log: logging.Logger | None = None):
        """``sync(full=, scan=, watch=)`` runs one pass; ``indexed()`` says whether the index has
        caught up with the store before (then lists are answered before the first pass ends)."""
        self.sync = sync
        self.executor = executor
        self.interval = interval
        self.scan_interval = scan_interval
        self.indexed = indexed
        self.log = log or logging.getLogger(__name__)
        self.active = 0  # jobs queued, provisioning or running after the last pass
        self.ticks = 0
        self.last_error: str | None = None
        self.updated_at: float | None = None
        self.transitions: list[dict[str, Any]] = []  # recent state changes, newest last
        self._states: dict[str, str | None] = {}  # jobs this watcher last saw active -> state
        self._seq = 0
        self._scanned_at = 0.0
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._ready: asyncio.Event | None = None
        self._lock = asyncio.Lock()

    # lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            try:
                self._was_indexed = bool(self.indexed())
            except Exception:  # an unreadable index: wait for the first pass, which rebuilds it
                self._was_indexed = False
            self._wake = asyncio.Event()
            self._ready = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run(), name="offload-job-watcher")

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
        """Wait for the first pass when the index has never caught up with the store (a fresh
        install); otherwise the last index answers at once."""
        if self._ready is None:
            self.start()
        assert self._ready is not None
        if not self._ready.is_set() and not self._was_indexed:
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def refresh(self) -> None:
        """One pass now, awaited (after a submit, so the next list shows the new job)."""
        await self.ready()
        async with self._lock:
            report = await asyncio.get_running_loop().run_in_executor(self.executor, self._poll, False)
            self._absorb(report)

    # the loop ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None and self._ready is not None
        first = True
        while True:
            try:
                async with self._lock:
                    report = await loop.run_in_executor(self.executor, self._poll, first)
                    self._absorb(report)
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

    def _poll(self, first: bool) -> PassReport:
        """Runs in a worker thread: store reads and backend calls may block here, never the loop."""
        procs.reap()  # runners this server started that have ended, however: no zombies pile up
        now = time.monotonic()
        scan = first or now - self._scanned_at >= self.scan_interval
        if scan:
            self._scanned_at = now
        full = first and not self._was_indexed
        if not full:
            return self.sync(full=False, scan=scan, watch=list(self._states))
        # a store this index never saw: lists wait only for its newest jobs, not for all of them
        loop, ready = self._loop, self._ready
        early = (lambda: loop.call_soon_threadsafe(ready.set)) if loop is not None and ready is not None else None
        return self.sync(full=True, scan=scan, watch=list(self._states), on_first_chunk=early)

    def _absorb(self, report: PassReport) -> None:
        for job_id, (before, after) in report.seen.items():
            prev = self._states.get(job_id, before)
            if self.ticks and prev != after and (prev is not None or after in FINAL_STATES):
                self._seq += 1
                self.transitions.append({"seq": self._seq, "id": job_id, "from": prev, "to": after, "at": time.time()})
            if after is None or after in ACTIVE_STATES:
                self._states[job_id] = after
            else:
                self._states.pop(job_id, None)
        self.transitions = self.transitions[-200:]
        self.active = report.active
        self.ticks += 1
        self.updated_at = time.time()

    def events_since(self, seq: int) -> list[dict[str, Any]]:
        return [t for t in self.transitions if t["seq"] > seq]

    @property
    def seq(self) -> int:
        return self._seq
