"""Small notebooks written for tests."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def make_notebook(path: Path, cells: list[str] = (), *, params: str | None = None, minor: int = 5) -> Path:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "some-foreign-kernel", "display_name": "Foreign", "language": "python"}
    nb.cells.append(new_markdown_cell("# test notebook"))
    if params is not None:
        cell = new_code_cell(params)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.extend(new_code_cell(src) for src in cells)
    path.parent.mkdir(parents=True, exist_ok=True)
    if minor < 5:
        nb.nbformat_minor = minor
        for c in nb.cells:
            c.pop("id", None)
        path.write_text(_dump_old(nb))
    else:
        nbformat.write(nb, path)
    return path


def _dump_old(nb) -> str:
    import json

    return json.dumps(nb, indent=1)
