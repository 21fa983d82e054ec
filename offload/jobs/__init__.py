"""The client side of a job's life: submit (stages 1-3), watch and reconcile, collect.

``launch.launch_spec`` is the one writer of a job's spec and the one caller of ``Backend.launch``;
``submit`` and ``rerun`` build specs for it, ``Job`` follows a job through the store (and retries
a preempted one through it), ``collect`` merges outputs back, ``index`` is the local SQLite cache.
"""

from offload.jobs.collect import merge_job
from offload.jobs.job import Job, list_jobs, resolve_job_id
from offload.jobs.launch import launch_spec
from offload.jobs.submit import bundle_notebook, rerun, submit

__all__ = ["Job", "bundle_notebook", "launch_spec", "list_jobs", "merge_job", "rerun", "resolve_job_id", "submit"]
