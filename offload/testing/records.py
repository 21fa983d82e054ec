"""Synthetic job records, written through the store layout as the client and the runner write them
(``spec.json``, ``status.json``, ``metrics.jsonl``), for tests and benchmarks of listing at scale:
thousands of finished jobs without running thousands of kernels.

    from offload.testing import write_job_records
    ids = write_job_records(store, 10_000, notebooks=("a.ipynb", "b.ipynb"))
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from offload.spec import JobSpec, JobState
from offload.store import Store, layout

# Round-robin states of the synthetic jobs: mostly finished, as in a long-lived store.
DEFAULT_STATES = (JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def job_record(i: int, *, start: float, notebooks: Sequence[str], states: Sequence[str],
               kinds: Sequence[str], source_dir: str | None) -> tuple[JobSpec, dict[str, Any], str]:
    """The ``i``-th synthetic job: its spec, its final status and its metrics lines."""
    created = start + i
    nb = notebooks[i % len(notebooks)]
    state = states[i % len(states)]
    job_id = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime(created))}-{i:06x}"
    spec = JobSpec(
        id=job_id, notebook=nb, bundle_id=f"synthetic-{i % 7}", kind=kinds[i % len(kinds)], backend="local",
        parameters={"lr": round(0.001 * (1 + i % 10), 4), "seed": i}, created_at=created,
        source_path=f"{source_dir}/{nb}" if source_dir else None, labels={"synthetic": "1"},
    )
    status = {"state": state, "cell": 3, "n_cells": 3, "started_at": created + 0.5, "finished_at": created + 2.5,
              "duration_s": 2.0, "heartbeat": created + 2.5}
    if state == JobState.FAILED:
        status["reason"] = "ValueError: synthetic failure"
    metrics = "".join(json.dumps({"name": "loss", "value": 1.0 / (1 + step + i % 13), "step": step,
                                  "ts": created + 1 + step, "cell_id": "c1"}) + "\n" for step in range(3))
    return spec, status, metrics


def write_job_records(store: Store, n: int, *, start: float | None = None, notebooks: Sequence[str] = ("train.ipynb",),
                      states: Sequence[str] = DEFAULT_STATES, kinds: Sequence[str] = ("notebook",),
                      source_dir: str | None = None, threads: int = 8) -> list[str]:
    """Write ``n`` finished jobs one second apart (oldest first) and return their ids."""
    start = time.time() - n - 60 if start is None else start

    def one(i: int) -> str:
        spec, status, metrics = job_record(i, start=start, notebooks=notebooks, states=states, kinds=kinds,
                                           source_dir=source_dir)
        store.put_json(layout.job_key(spec.id, "spec.json"), spec.to_dict())
        store.put_json(layout.job_key(spec.id, "status.json"), status)
        store.put_text(layout.job_key(spec.id, "metrics.jsonl"), metrics)
        return spec.id

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(n)))
