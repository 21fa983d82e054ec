"""Saving the notebook being executed: changed cells only, debounced by time and size.

The monitor thread calls :meth:`LiveOutput.save` every tick with the live notebook and the index
of the cell running now. Only cells from the first one not yet saved in its final form up to the
running one are looked at (a cheap fingerprint each), and only the blocks holding a changed cell
are written (``offload.store`` ``_live``: blocks of 50 cells). A save waits at least
``MIN_INTERVAL_S`` after the last one, longer after a big one (``bytes / BYTES_PER_S``), so a cell
streaming output fast costs a bounded write rate. The final, complete ``output.ipynb`` is written
once at the end. Bytes written therefore grow with the notebook's length, not its square.
"""

from __future__ import annotations

import json
import time
from typing import Any

from offload.store import Store
from offload.store._live import BLOCK, block_key, live_key

MIN_INTERVAL_S = 1.0  # at most one save a second
BYTES_PER_S = 2 << 20  # and, averaged, at most about 2 MiB/s of live saves


def _fingerprint(cell: Any) -> tuple:
    """Changes when an output is added, a stream grows or a display is updated in place."""
    outs = cell.get("outputs") or ()
    return (cell.get("execution_count"), len(outs),
            tuple(len(o.get("text") or "") if o.get("output_type") == "stream" else id(o.get("data")) for o in outs))


class LiveOutput:
    """The live notebook of one job under ``jobs/<id>/live/`` (the runner is its one writer)."""

    def __init__(self, store: Store, job_id: str, *, clock: Any = time.monotonic):
        self.store = store
        self.job_id = job_id
        self.clock = clock
        self.started = False
        self.low = 0  # cells before this one are saved as they ended
        self.fingerprints: dict[int, tuple] = {}
        self.next_at = 0.0
        self.writes = 0  # store objects written
        self.bytes = 0  # and their size

    def save(self, nb: Any, current: int, *, force: bool = False) -> bool:
        """Write the blocks whose cells changed; ``current`` is the index (in ``nb.cells``) of the
        cell running now. False when it was not time yet or nothing changed."""
        now = self.clock()
        if not force and now < self.next_at:
            return False
        cells = nb.cells
        n = len(cells)
        if not self.started:
            head = {"metadata": nb.get("metadata", {}), "nbformat": nb.get("nbformat", 4),
                    "nbformat_minor": nb.get("nbformat_minor", 5), "n_cells": n, "block": BLOCK}
            dirty = set(range((n + BLOCK - 1) // BLOCK))
            seen = {i: _fingerprint(cells[i]) for i in range(min(current + 1, n))}
            self._put(live_key(self.job_id, "notebook.json"), json.dumps(head, default=str).encode())
        else:
            seen, dirty = {}, set()
            for i in range(self.low, min(current + 1, n)):
                fp = _fingerprint(cells[i])
                if fp != self.fingerprints.get(i):
                    seen[i] = fp
                    dirty.add(i // BLOCK)
        written = 0
        for k in sorted(dirty):
            data = json.dumps({"cells": cells[k * BLOCK:(k + 1) * BLOCK]}, default=str).encode()
            self._put(block_key(self.job_id, k), data)
            written += len(data)
        # only now that every block is stored: a failed write is tried again next tick
        self.started = True
        self.fingerprints.update(seen)
        self.low = max(self.low, min(current, n))
        for i in [i for i in self.fingerprints if i < self.low]:
            del self.fingerprints[i]
        self.next_at = now + max(MIN_INTERVAL_S, written / BYTES_PER_S)
        return bool(dirty)

    def _put(self, key: str, data: bytes) -> None:
        self.store.put_bytes(key, data)
        self.writes += 1
        self.bytes += len(data)

    def discard(self) -> None:
        """Remove the live copy once the final ``output.ipynb`` is stored."""
        if self.started:
            self.store.delete(live_key(self.job_id), recursive=True)

    def stats(self) -> dict[str, int]:
        return {"writes": self.writes, "bytes": self.bytes}
