"""Executed outputs and metrics -> the source notebook, matched by cell id and source hash.

A cell the user edited (or deleted) since submission is reported, never overwritten: losing an
edit to a merge is worse than a missing output. Cells papermill adds (injected parameters, error
banner) are never copied into the user's notebook.

Cells are matched by id first. The user's file may not carry the ids the job ran with (an nbformat
4.4 notebook, whose ids were given to the submitted copy only; a fresh clone; a teammate's copy
saved by another Jupyter): the remaining cells are then aligned by position and source hash (a
longest-common-subsequence alignment, so inserted or deleted cells elsewhere do not shift the
match), and a cell whose source changed at that place is reported as edited.
"""

from __future__ import annotations

import copy
import difflib
import time
from dataclasses import dataclass, field
from typing import Any

from offload.notebook.cells import cell_hash

__all__ = ["SKIP_TAGS", "CellMatch", "MergeReport", "align_cells", "merge_notebooks", "provenance_of"]

SKIP_TAGS = {"injected-parameters", "papermill-error-cell-tag"}


@dataclass
class CellMatch:
    """What to do with one executed cell: copy its outputs into ``target`` (an index into the
    target's cells), or report it as edited (``target`` set) or deleted (``target`` None)."""

    executed: Any
    target: int | None
    action: str  # merge | edited | deleted
    by: str  # id | position


def _label(cells: list[Any], index: int) -> str:
    return cells[index].get("id") or f"cell {index + 1}"


def align_cells(target_cells: list[Any], executed_cells: list[Any], cell_hashes: dict[str, str]) -> list[CellMatch]:
    """Match every executed code cell to a cell of ``target_cells`` (dicts with ``id``, ``source``,
    ``cell_type``): by id, then by position and source hash for those the ids do not match."""
    executed = [
        c for c in executed_cells
        if c.get("id") and c.get("cell_type") == "code" and not set(c.get("metadata", {}).get("tags", [])) & SKIP_TAGS
    ]
    code = [i for i, c in enumerate(target_cells) if c.get("cell_type") == "code"]
    by_id = {target_cells[i].get("id"): i for i in code if target_cells[i].get("id")}
    out: list[CellMatch] = []
    pending: list[Any] = []
    claimed: set[int] = set()
    for cell in executed:
        i = by_id.get(cell["id"])
        if i is None:
            pending.append(cell)
            continue
        claimed.add(i)
        same = cell_hashes.get(cell["id"]) == cell_hash(target_cells[i].get("source", ""))
        out.append(CellMatch(cell, i, "merge" if same else "edited", "id"))
    if not pending:
        return out
    ran_ids = {c["id"] for c in executed}
    free = [i for i in code if i not in claimed and target_cells[i].get("id") not in ran_ids]
    old = [cell_hashes.get(c["id"]) or "?" for c in pending]
    new = [cell_hash(target_cells[i].get("source", "")) for i in free]
    sm = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, a0, a1, b0, b1 in sm.get_opcodes():
        for k in range(a1 - a0):
            cell = pending[a0 + k]
            if tag == "equal":
                out.append(CellMatch(cell, free[b0 + k], "merge", "position"))
            elif tag == "replace" and b0 + k < b1:
                out.append(CellMatch(cell, free[b0 + k], "edited", "position"))
            else:  # delete, or a replace with fewer cells on the target's side
                out.append(CellMatch(cell, None, "deleted", "position"))
    return out


@dataclass
class MergeReport:
    path: str | None = None
    merged: list[str] = field(default_factory=list)  # cells whose outputs were copied (id or "cell N")
    edited: list[str] = field(default_factory=list)  # changed since submission: left alone
    deleted: list[str] = field(default_factory=list)  # gone from the target notebook (the job's ids)
    unchanged_without_output: list[str] = field(default_factory=list)
    by_position: int = 0  # of ``merged``: matched by position and source, not by id

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def describe(self) -> str:
        parts = [f"merged outputs of {len(self.merged)} cell(s)"]
        if self.by_position:
            parts[0] += (f" ({self.by_position} matched by position and source: the notebook does not "
                         "carry the cell ids the job ran with)")
        if self.edited:
            parts.append(f"left {len(self.edited)} edited cell(s) alone: {', '.join(self.edited)}")
        if self.deleted:
            parts.append(f"{len(self.deleted)} cell(s) no longer in the notebook: {', '.join(self.deleted)}")
        return "; ".join(parts)


def merge_notebooks(target: Any, executed: Any, cell_hashes: dict[str, str], *, provenance: dict | None = None) -> MergeReport:
    """Copy outputs from ``executed`` into ``target`` in place (both nbformat v4 notebooks)."""
    report = MergeReport()
    for m in align_cells(target.cells, executed.cells, cell_hashes):
        if m.action == "deleted":
            report.deleted.append(m.executed["id"])
            continue
        label = _label(target.cells, m.target)
        if m.action == "edited":
            report.edited.append(label)
            continue
        tcell = target.cells[m.target]
        tcell.outputs = copy.deepcopy(m.executed.get("outputs", []))
        tcell.execution_count = m.executed.get("execution_count")
        report.merged.append(label)
        report.by_position += m.by == "position"
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
