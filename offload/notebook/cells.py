"""Cell identity: stable ids (nbformat 4.5) and source hashes, so outputs merge back by id.

A job records ``cell_hash(source)`` of every cell at submission; merging copies an output only
into a cell whose id and hash still match (see :mod:`offload.notebook.merge`).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

import nbformat

from offload.notebook.reader import read_notebook

__all__ = ["cell_hash", "ensure_cell_ids"]


def cell_hash(source: str) -> str:
    """Short sha256 of a cell's source (what a job records per cell id at submission)."""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def ensure_cell_ids(
    notebook: nbformat.NotebookNode | str | os.PathLike,
) -> nbformat.NotebookNode:
    """Give every cell an id (nbformat 4.5) so outputs can be merged back by id.

    A ``NotebookNode`` gets its missing ids in memory and nothing is written; a path is read, and
    when ids were missing the file is saved with them (atomically). Returns the notebook.
    """
    if isinstance(notebook, nbformat.NotebookNode):
        _give_ids(notebook)
        return notebook
    path = Path(notebook)
    nb = read_notebook(path)
    if _give_ids(nb):
        tmp = path.with_name(f".{path.name}.offload-tmp")
        nbformat.write(nb, tmp)
        os.replace(tmp, path)
    return nb


def _give_ids(nb: nbformat.NotebookNode) -> bool:
    """Fill in missing ids (and raise the format to 4.5); True when anything changed."""
    if all(c.get("id") for c in nb.cells) and (nb.nbformat, nb.nbformat_minor) >= (4, 5):
        return False
    nb.nbformat_minor = max(nb.nbformat_minor, 5)
    taken = {c.get("id") for c in nb.cells}
    for cell in nb.cells:
        if not cell.get("id"):
            new = secrets.token_hex(4)
            while new in taken:
                new = secrets.token_hex(4)
            taken.add(new)
            cell["id"] = new
    return True
