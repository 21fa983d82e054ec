"""Data files a notebook reads by literal paths: found, sized, and sorted into what ships.

``pd.read_csv('data/x.csv')``, ``open('cfg.json')``, ``np.load(...)``, ``Image.open(...)``,
``Path('data')``, ``!head data/x.csv``: a literal that names an existing file or folder under the
project root ships with the job (it lands at the same relative path, and the notebook runs in
its own folder there, as here). Above ``AUTO_SHIP_BYTES`` it is suggested instead (``--data PATH``
ships it on purpose); a path outside the project root, or read by a call that fails without it
but missing here, is a warning before submit: never a FileNotFoundError after the job started.
"""

from __future__ import annotations

import os
from pathlib import Path

from offload.snapshot.deps.model import relative_to
from offload.snapshot.deps.scan import DataRef

__all__ = ["AUTO_SHIP_BYTES", "DataStatus", "data_files"]

AUTO_SHIP_BYTES = 50 * 1024 * 1024  # a referenced path up to this size ships by itself
_SKIP_DIRS = {".git", "__pycache__", ".ipynb_checkpoints", "node_modules", ".venv", "venv"}
_CODE_SUFFIXES = (".py", ".ipynb", ".pyc")


class DataStatus:
    SHIP = "ship"  # shipped with the job
    LARGE = "large"  # above the automatic limit: suggested (--data PATH)
    MISSING = "missing"  # read by the notebook, not here
    OUTSIDE = "outside"  # exists, but outside the project root: cannot ship


def _size(p: Path, limit: int) -> int:
    """Bytes under ``p``; stops counting past ``limit`` (a huge folder is not walked to the end)."""
    if p.is_file():
        return p.stat().st_size
    total = 0
    for dirpath, dirnames, filenames in os.walk(p):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        for fn in filenames:
            try:
                total += (Path(dirpath) / fn).stat().st_size
            except OSError:
                continue
            if total > limit:
                return total
    return total


def _target(value: str, base: Path) -> Path | None:
    """The path a literal names, relative to the kernel's folder; a glob names its folder."""
    if any(c in value for c in "*?["):
        head = []
        for part in Path(value).parts:
            if any(c in part for c in "*?["):
                break
            head.append(part)
        if not head:
            return None
        value = os.path.join(*head)
    p = Path(os.path.expanduser(value))
    return Path(os.path.normpath(p if p.is_absolute() else base / p))


def data_files(
    refs: list[DataRef], *, nb_dir: Path, root: Path, shipped: set[str], limit: int = AUTO_SHIP_BYTES
) -> list[dict]:
    """One entry per referenced path: ``{path, status, size, where, call}`` (``path`` relative
    to the root when inside it). ``shipped``: files that ship anyway (notebook, local modules)."""
    out: dict[str, dict] = {}
    for ref in refs:
        p = _target(ref.value, nb_dir)
        if p is None or p.suffix in _CODE_SUFFIXES or p == root or p in root.parents or p in nb_dir.parents:
            continue
        if p == nb_dir:
            continue
        exists = p.exists()
        if not exists and not ref.strong:
            continue
        rel = relative_to(p, root)
        if rel is not None and rel in shipped:
            continue
        key = rel if rel is not None else str(p)
        entry = out.get(key)
        if entry is None:
            entry = out[key] = {"path": key, "where": ref.where, "call": ref.call, "size": None}
            if not exists:
                entry["status"] = DataStatus.MISSING
            elif rel is None:
                entry["status"] = DataStatus.OUTSIDE
            else:
                size = _size(p, limit)
                entry["size"] = size
                entry["status"] = DataStatus.SHIP if size <= limit else DataStatus.LARGE
                entry["kind"] = "folder" if p.is_dir() else "file"
    # a file inside a folder that ships anyway is not listed twice
    folders = [e["path"] for e in out.values() if e.get("kind") == "folder" and e["status"] == DataStatus.SHIP]
    return sorted(
        (e for e in out.values()
         if not (e.get("kind") == "file" and any(e["path"].startswith(f + "/") for f in folders))),
        key=lambda e: e["path"],
    )
