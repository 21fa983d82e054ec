"""A running job's executed notebook, saved a block of cells at a time.

The runner writes ``jobs/<id>/output.ipynb`` once, complete, when the job ends. While it runs it
keeps the notebook under ``jobs/<id>/live/`` instead, so saving costs what changed, not the whole
notebook each time (a 2,000-cell notebook saved whole at every cell is quadratic):

```
live/notebook.json      the notebook without its cells: metadata, nbformat, n_cells, block (once)
live/<k>.json           cells [k*block, (k+1)*block) as they are now: rewritten while one changes
```

The runner is the one writer of both (and deletes ``live/`` after ``output.ipynb`` is stored).
:func:`read_output` is the one reader: the final notebook when there is one, else the live one
assembled from its blocks.
"""

from __future__ import annotations

import json
from typing import Any

from offload.store import layout
from offload.store._store import Store

LIVE = "live"
BLOCK = 50  # cells per live block


def live_key(job_id: str, name: str = "") -> str:
    return layout.job_key(job_id, f"{LIVE}/{name}" if name else LIVE)


def block_key(job_id: str, k: int) -> str:
    return live_key(job_id, f"{k:06d}.json")


def read_output(store: Store, job_id: str) -> dict[str, Any] | None:
    """The executed notebook as JSON: complete once the job has ended, else as far as it has run
    (None before the runner saved anything)."""
    try:
        return json.loads(store.get_bytes(layout.job_key(job_id, "output.ipynb")))
    except KeyError:
        pass
    head = store.get_json(live_key(job_id, "notebook.json"), None)
    if head is None:
        return None
    block = int(head.get("block") or BLOCK)
    n = int(head.get("n_cells") or 0)
    cells: list[Any] = []
    for k in range((n + block - 1) // block):
        part = store.get_json(block_key(job_id, k), None)
        if part is None:  # the job ended between two reads: the final notebook is there now
            try:
                return json.loads(store.get_bytes(layout.job_key(job_id, "output.ipynb")))
            except KeyError:
                return None
        cells += part["cells"]
    return {"cells": cells, "metadata": head.get("metadata", {}), "nbformat": head.get("nbformat", 4),
            "nbformat_minor": head.get("nbformat_minor", 5)}


def has_output(store: Store, job_id: str) -> bool:
    """Is there an executed notebook (final or live) to show?"""
    return store.exists(layout.job_key(job_id, "output.ipynb")) or store.exists(live_key(job_id, "notebook.json"))
