"""The client side of a job's life: submit (stages 1-3), watch and reconcile, collect.

``launch.launch_spec`` is the one writer of a job's spec and the one caller of ``Backend.launch``;
``submit`` and ``rerun`` build specs for it, ``Job`` follows a job through the store (and retries
a preempted one through it), ``collect`` merges outputs back, ``index`` is the local SQLite cache
and ``listing`` keeps it current, a pass at a time.
"""

from offload.jobs.collect import merge_job
from offload.jobs.job import Job, resolve_job_id
from offload.jobs.launch import launch_spec
from offload.jobs.listing import list_jobs, page_jobs, sync_store
from offload.jobs.submit import bundle_notebook, rerun, submit

__all__ = [
    "Job", "bundle_notebook", "launch_spec", "list_jobs", "merge_job", "page_jobs", "rerun", "resolve_job_id",
    "submit", "sync_store",
]
