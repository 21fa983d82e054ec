"""Collect a finished job's results into the user's files: merge its executed notebook back.

The merge itself is pure and lives in :mod:`offload.notebook.merge`; this module finds the two
notebooks (the job's executed output, the user's source) and writes the result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat

from offload.errors import UsageError
from offload.notebook import MergeReport, merge_notebooks, provenance_of, read_notebook

__all__ = ["merge_job"]


def merge_job(job: Any, *, into: str | os.PathLike | None = None, write: bool = True) -> MergeReport:
    """Merge ``job``'s executed outputs into its source notebook (or ``into``); save it unless
    ``write`` is false. Edited and deleted cells are reported, never overwritten."""
    target_path = Path(into or job.spec.source_path or "")
    if not str(target_path) or not target_path.exists():
        raise UsageError(
            f"cannot merge job {job.id}: target notebook {target_path} not found",
            hint="pass --into PATH to merge into another copy",
        )
    executed = job.output_notebook
    if executed is None:
        raise UsageError(
            f"job {job.id} has no executed notebook yet ({job.state})",
            hint="wait for it: offload logs -f " + job.id,
        )
    target = read_notebook(target_path)
    report = merge_notebooks(target, executed, job.spec.cell_hashes, provenance=provenance_of(job))
    report.path = str(target_path)
    if write:
        tmp = target_path.with_name(f".{target_path.name}.offload-merge")
        nbformat.write(target, tmp)
        os.replace(tmp, target_path)
    return report
