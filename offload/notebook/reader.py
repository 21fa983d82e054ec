"""The one notebook reader: a path -> an nbformat v4 ``NotebookNode``, or a NotebookError that
says what is wrong (missing, a directory, not ``.ipynb``, unreadable, not JSON, not a notebook).

Every part of offload that opens a notebook (submit, parameters, merge, dependency detection)
goes through :func:`read_notebook`, so a bad path gets the same message everywhere.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat

from offload.errors import NotebookError

__all__ = ["read_notebook", "notebook_from_json", "code_cells"]


def read_notebook(path: str | os.PathLike, *, validate: bool = True) -> nbformat.NotebookNode:
    """Read ``path`` as an nbformat v4 notebook (older formats are converted).

    ``validate`` runs nbformat's schema check, which only logs what it finds (a notebook that
    Jupyter opens is never refused); dependency detection, which reads only cell sources, skips
    it for speed.
    """
    p = Path(path)
    if not p.exists():
        raise NotebookError(
            f"notebook not found: {p}", hint="check the path (relative to the current directory)"
        )
    if p.is_dir():
        raise NotebookError(f"{p} is a directory, not a notebook", hint="pass the .ipynb file")
    if p.suffix != ".ipynb":
        raise NotebookError(f"{p.name} is not a notebook (.ipynb)", hint="pass a .ipynb file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise NotebookError(
            f"notebook {p.name} is not valid JSON (not UTF-8 text: {exc.reason})",
            hint="open it in JupyterLab and save it again, or restore it from version control",
        ) from None
    except OSError as exc:
        raise NotebookError(
            f"cannot read notebook {p}: {exc.strerror}", hint="check its permissions"
        ) from None
    return notebook_from_json(text, name=p.name, validate=validate)


def notebook_from_json(
    text: str | bytes, *, name: str = "notebook", validate: bool = True
) -> nbformat.NotebookNode:
    """Parse notebook JSON (any nbformat version) into a v4 ``NotebookNode``; ``name`` is what
    the error messages call it."""
    try:
        data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise NotebookError(
            f"notebook {name} is not valid JSON ({detail})",
            hint="open it in JupyterLab and save it again, or restore it from version control",
        ) from None
    if not isinstance(data, dict):
        raise NotebookError(
            f"{name} is not a notebook (top level is not an object)", hint="pass a .ipynb file"
        )
    if not isinstance(data.get("cells"), list) and "worksheets" not in data:
        raise NotebookError(f"{name} is not a notebook (no cells)", hint="pass a .ipynb file")
    if "nbformat" not in data:  # hand-made files: the shape says which format they are
        data["nbformat"] = 3 if "worksheets" in data else 4
    data.setdefault("metadata", {})  # (Jupyter adds what hand-made files leave out)
    for cell in data.get("cells") or []:
        if isinstance(cell, dict):
            cell.setdefault("metadata", {})
    major, minor = data["nbformat"], data.get("nbformat_minor", 0)
    try:
        nb = nbformat.versions[major].to_notebook_json(data, minor=minor)
        if major != nbformat.current_nbformat:
            nb = nbformat.convert(nb, nbformat.current_nbformat)
    except Exception as exc:  # nbformat raises a zoo of errors for malformed documents
        raise NotebookError(
            f"cannot read notebook {name}: {exc or type(exc).__name__}",
            hint="open it in JupyterLab and save it again",
        ) from None
    if validate:
        try:
            nbformat.validate(nb)
        except nbformat.ValidationError as exc:  # as nbformat.reads does: report, keep reading
            nbformat.get_logger().error("Notebook JSON is invalid: %s", exc)
    return nb


def code_cells(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(1-based position among all cells, source) of every code cell."""
    out = []
    for i, cell in enumerate(nb.cells, 1):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            src = cell.get("source", "")
            out.append((i, "".join(src) if isinstance(src, list) else str(src)))
    return out


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """Output text without terminal colour codes (tracebacks in error outputs carry them)."""
    return _ANSI.sub("", text)
