from offload.jobs.job import Job, cell_hash, ensure_cell_ids, list_jobs, submit  # noqa: F401
