"""A job's provenance record in the store: where its code came from (git), written once at submit.

:func:`record` stores what :func:`offload.snapshot.provenance.capture` found under
``jobs/<id>/provenance.json`` (the submitting client is its one writer). A rerun runs the same
bundle as its original, so its record is the original's, with ``rerun_of`` naming it: the code
that ran is the code of that submit, not what the checkout holds at the time of the rerun.
:func:`read` returns a job's record, following ``spec.parent`` for a job that has none of its own
(a retry after preemption runs the same bundle too), with ``inherited_from`` naming it.
"""

from __future__ import annotations

import logging
from typing import Any

from offload.snapshot import provenance as capture_mod
from offload.spec import check_job_id
from offload.store import Store, layout

log = logging.getLogger("offload")

__all__ = ["capture", "for_view", "read", "record", "record_rerun", "summary_line"]

VIEW_DIFF = 64 * 1024  # the diff a job detail view carries (it is polled); `offload show --diff` has all

summary_line = capture_mod.summary_line  # one line for `offload show`


def capture(project_root: Any) -> dict[str, Any]:
    """The project's git state at ``project_root``; never raises (a record with a ``note``)."""
    try:
        return capture_mod.capture(project_root)
    except Exception as exc:  # provenance is a record, never a reason for a submit to fail
        log.warning("could not record the project's git state: %s", exc)
        return {"git": None, "note": f"not recorded: {type(exc).__name__}: {exc}", "project_root": str(project_root)}


def record(store: Store, job_id: str, prov: dict[str, Any]) -> None:
    store.put_json(layout.job_key(job_id, layout.PROVENANCE), prov)


def record_rerun(store: Store, original_id: str, job_id: str) -> dict[str, Any] | None:
    """A rerun's record: the original's (same bundle), with ``rerun_of``; None when the original
    has none (a job submitted before provenance was recorded)."""
    orig = read(store, original_id)
    if orig is None:
        return None
    prov = {**orig, "rerun_of": original_id, "source": "the bundle of the original job"}
    record(store, job_id, prov)
    return prov


def read(store: Store, job_id: str, *, _depth: int = 0) -> dict[str, Any] | None:
    """The job's record; a job without one (a retry) reads its parent's, up to 20 levels."""
    prov = store.get_json(layout.job_key(job_id, layout.PROVENANCE), None)
    if prov is not None or _depth >= 20:
        return prov
    spec = store.get_json(layout.job_key(job_id, "spec.json"), None) or {}
    parent = spec.get("parent")
    if not parent:
        return None
    try:
        check_job_id(parent)
    except Exception:
        return None
    found = read(store, parent, _depth=_depth + 1)
    return {**found, "inherited_from": parent} if found else None


def for_view(prov: dict[str, Any] | None, *, max_diff: int = VIEW_DIFF) -> dict[str, Any] | None:
    """The record for a polled view: a diff over ``max_diff`` bytes is cut at a file boundary
    (``diff_cut: true``; ``offload show --diff JOB`` prints all of it)."""
    git = (prov or {}).get("git")
    if not git or len((git.get("diff") or "").encode()) <= max_diff:
        return prov
    kept, total = [], 0
    for patch in capture_mod.split_patches(git["diff"]):
        size = len(patch.encode())
        if total + size > max_diff:
            break
        kept.append(patch)
        total += size
    return {**prov, "git": {**git, "diff": "".join(kept), "diff_cut": True}}
