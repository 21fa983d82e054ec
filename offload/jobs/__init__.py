"""The client side of a job's life: submit (stages 1-3), watch and reconcile, collect.

``launch.launch_spec`` is the one writer of a job's spec and the one caller of ``Backend.launch``;
``submit`` and ``rerun`` build specs for it, ``Job`` follows a job through the store (and retries
a preempted one through it), ``collect`` merges outputs back, ``index`` is the local SQLite cache
and ``listing`` keeps it current, a pass at a time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module defining it, imported at first use: `offload ls` needs the index and Job, not
# submit's snapshot and bundling (nor nbformat's validator)
_EXPORTS = {
    "Job": "job", "resolve_job_id": "job", "launch_spec": "launch", "merge_job": "collect",
    "list_jobs": "listing", "page_jobs": "listing", "sync_store": "listing",
    "bundle_notebook": "submit", "rerun": "submit", "submit": "submit",
}

if TYPE_CHECKING:
    from offload.jobs.collect import merge_job
    from offload.jobs.job import Job, resolve_job_id
    from offload.jobs.launch import launch_spec
    from offload.jobs.listing import list_jobs, page_jobs, sync_store
    from offload.jobs.submit import bundle_notebook, rerun, submit


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'offload.jobs' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"offload.jobs.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Job", "bundle_notebook", "launch_spec", "list_jobs", "merge_job", "page_jobs", "rerun", "resolve_job_id",
    "submit", "sync_store",
]
