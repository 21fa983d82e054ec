"""Executed outputs and metrics -> the source notebook, matched by cell id and source hash.

A cell the user edited (or deleted) since submission is reported, never overwritten: losing an
edit to a merge is worse than a missing output. Cells papermill adds (injected parameters, error
banner) are never copied into the user's notebook.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from offload.notebook.cells import cell_hash

__all__ = ["SKIP_TAGS", "MergeReport", "merge_notebooks", "provenance_of"]

SKIP_TAGS = {"injected-parameters", "papermill-error-cell-tag"}


@dataclass
class MergeReport:
    path: str | None = None
    merged: list[str] = field(default_factory=list)  # cell ids whose outputs were copied
    edited: list[str] = field(default_factory=list)  # changed since submission: left alone
    deleted: list[str] = field(default_factory=list)  # gone from the target notebook
    unchanged_without_output: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def describe(self) -> str:
        parts = [f"merged outputs of {len(self.merged)} cell(s)"]
        if self.edited:
            parts.append(f"left {len(self.edited)} edited cell(s) alone: {', '.join(self.edited)}")
        if self.deleted:
            parts.append(f"{len(self.deleted)} cell(s) no longer in the notebook: {', '.join(self.deleted)}")
        return "; ".join(parts)


def merge_notebooks(target: Any, executed: Any, cell_hashes: dict[str, str], *, provenance: dict | None = None) -> MergeReport:
    """Copy outputs from ``executed`` into ``target`` in place (both nbformat v4 notebooks)."""
    report = MergeReport()
    by_id = {c.get("id"): c for c in target.cells if c.get("id")}
    for cell in executed.cells:
        cid = cell.get("id")
        tags = set(cell.get("metadata", {}).get("tags", []))
        if not cid or tags & SKIP_TAGS or cell.cell_type != "code":
            continue
        tcell = by_id.get(cid)
        if tcell is None:
            report.deleted.append(cid)
            continue
        submitted = cell_hashes.get(cid)
        if submitted is None or cell_hash(tcell.source) != submitted:
            report.edited.append(cid)
            continue
        tcell.outputs = copy.deepcopy(cell.get("outputs", []))
        tcell.execution_count = cell.get("execution_count")
        report.merged.append(cid)
    if provenance is not None:
        target.metadata.setdefault("offload", {})["last_run"] = provenance
    return report


def provenance_of(job: Any) -> dict[str, Any]:
    """What ``metadata.offload.last_run`` records about the job whose outputs were merged
    (``job`` is any object with a Job's attributes: nothing here imports the jobs layer)."""
    st = job.status
    return {
        "job_id": job.id,
        "state": st.get("state"),
        "backend": job.spec.backend,
        "parameters": job.spec.parameters,
        "metrics": job.last_metrics(),
        "env_hash": job.spec.env_hash,
        "bundle_id": job.spec.bundle_id,
        "finished_at": st.get("finished_at"),
        "merged_at": time.time(),
    }
