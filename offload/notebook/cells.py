"""Cell identity: stable ids (nbformat 4.5) and source hashes, so outputs merge back by id.

A job records ``cell_hash(source)`` of every cell at submission; merging copies an output only
into a cell whose id and hash still match, or, for a copy without those ids (an nbformat 4.4 file,
a fresh clone, a teammate's copy), into the cell at the same place with the same source (see
:mod:`offload.notebook.merge`).

Ids are given to the *submitted copy* only: the user's file is never rewritten by a run (a first
run must not dirty a git checkout).
"""

from __future__ import annotations

import hashlib
import os

import nbformat

from offload.notebook.reader import read_notebook

__all__ = ["CELL_JOB_CELLS", "cell_hash", "ensure_cell_ids", "with_cell_ids"]

# The ids of a ``%%offload`` cell job's three cells: setup, the user's cell, collect (built by
# offload.cells.notebook; a warm session runs the three as one kernel request, runner.session).
CELL_JOB_CELLS = ("offload-setup", "offload-cell", "offload-collect")


def cell_hash(source: str | list[str]) -> str:
    """Short sha256 of a cell's source (what a job records per cell id at submission)."""
    if isinstance(source, list):
        source = "".join(source)
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def ensure_cell_ids(
    notebook: nbformat.NotebookNode | str | os.PathLike,
) -> nbformat.NotebookNode:
    """The notebook with an id on every cell (nbformat 4.5), given in memory.

    A ``NotebookNode`` gets its missing ids in place; a path is read and the ids go into the
    returned copy. Nothing is ever written to disk."""
    nb = notebook if isinstance(notebook, nbformat.NotebookNode) else read_notebook(notebook)
    with_cell_ids(nb)
    return nb


def with_cell_ids(nb: nbformat.NotebookNode) -> bool:
    """Fill in missing (or repeated) ids and raise the format to 4.5, in place; True when
    anything changed. A given id is derived from the cell's position and source, so the same
    notebook always gets the same ids (the submitted copy's bytes, and its blob, stay the same
    from one run to the next)."""
    ids = [c.get("id") for c in nb.cells]
    if all(ids) and len(set(ids)) == len(ids) and (nb.nbformat, nb.nbformat_minor) >= (4, 5):
        return False
    nb.nbformat_minor = max(nb.nbformat_minor, 5)
    seen: set[str] = set()
    taken = set(ids)
    for i, cell in enumerate(nb.cells):
        cid = cell.get("id")
        if cid and cid not in seen:
            seen.add(cid)
            continue
        base = hashlib.sha256(f"{i}\0{cell_hash(cell.get('source', ''))}".encode()).hexdigest()
        new, n = base[:8], 8
        while new in taken or new in seen:
            n += 1
            new = base[:n]
        seen.add(new)
        taken.add(new)
        cell["id"] = new
    return True
