"""Small notebooks written for tests: offload.testing's, optionally in an older nbformat."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from offload import testing


def make_notebook(path: Path, cells: list[str] = (), *, params: str | None = None, minor: int = 5) -> Path:
    """A markdown title, a ``parameters`` cell when ``params`` is given, then ``cells``; with
    ``minor`` < 5, saved as nbformat 4.<minor> without cell ids (as older Jupyter wrote them)."""
    path = testing.make_notebook(path, cells, params=params)
    if minor < 5:
        nb = nbformat.read(path, as_version=4)
        nb.nbformat_minor = minor
        for c in nb.cells:
            c.pop("id", None)
        path.write_text(json.dumps(nb, indent=1))
    return path
