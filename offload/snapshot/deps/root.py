"""The project root: the folder whose files may ship with a notebook, found as a user expects.

In order: ``--project-root`` (the user said so); the nearest folder at or above the notebook with
a version-control or packaging marker (``.git``, ``pyproject.toml``, ``setup.py``/``setup.cfg``,
a requirements or environment file...); the Jupyter server's root when the notebook is opened
there; the notebook's own folder. Then ``sys.path`` literals of the notebook
(``sys.path.append('../..')``, ``os.chdir('..')``, ``%cd ..``) widen it to cover the folders the
notebook itself reaches, so a notebook in ``repo/notebooks/x/`` that imports the repo's package
gets the package shipped and scanned. A root is never the home folder or the file-system root.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from offload.snapshot.deps.scan import ScanResult, scan_cell

__all__ = ["ROOT_MARKERS", "find_project_root"]

ROOT_MARKERS = (
    ".git", ".hg", ".svn", "pyproject.toml", "setup.py", "setup.cfg", "requirements.txt",
    "environment.yml", "environment.yaml", "Pipfile", "uv.lock", "poetry.lock",
)
_PACKAGE_LEVELS = 3  # how far above the notebook the repo's own package is looked for


def _too_wide(d: Path) -> bool:
    return d == Path(d.anchor) or d == Path.home().resolve()


def _marker(d: Path) -> str | None:
    for m in ROOT_MARKERS:
        if (d / m).exists():
            return m
    try:
        hit = next(iter(sorted(d.glob("requirements*.txt"))), None)
    except OSError:
        hit = None
    return hit.name if hit else None


def find_project_root(
    nb_path: Path,
    cells: list[tuple[int, str]],
    *,
    server_root: str | os.PathLike | None = None,
    installed: Callable[[str], bool] = lambda _top: False,
) -> tuple[Path, str]:
    """(root, why) for the notebook at ``nb_path`` (absolute) with these code cells;
    ``installed(top)`` says whether the kernel's environment provides an import."""
    nb_dir = nb_path.parent
    top_dir = Path(server_root).expanduser().resolve() if server_root else None
    if top_dir is not None and (not _inside(nb_dir, top_dir) or _too_wide(top_dir)):
        top_dir = None  # (a server started in the home folder is no project)
    root, why = nb_dir, "the notebook's folder (no version-control or packaging marker above it)"
    d = nb_dir
    while not _too_wide(d):
        m = _marker(d)
        if m:
            root, why = d, f"nearest folder with {m}"
            break
        if d == top_dir or d.parent == d:
            break
        d = d.parent
    if why.startswith("the notebook's") and top_dir is not None:
        root, why = top_dir, "the Jupyter server's root"
    # sys.path literals: the folders the notebook itself puts on its import path
    result = ScanResult()
    for num, src in cells:
        scan_cell(src, f"cell {num}", str(nb_dir), result)
    reached = [(Path(p), where) for p, _front, where in result.sys_path]
    reached += [((nb_dir / p).resolve(), where) for p, where in result.chdirs]
    for p, where in reached:
        p = p.resolve()
        if p == root or root in p.parents or not p.is_dir():
            continue
        wider = Path(os.path.commonpath([root, p]))
        if _too_wide(wider) or (top_dir is not None and not _inside(wider, top_dir)):
            continue
        root, why = wider, f"{why}, widened to {wider.name or wider} by the sys.path entry in {where}"
    # the repo's own package, imported from a notebook in a subfolder (and not installed here)
    tops = {f.module.split(".")[0] for f in result.imports if not f.level and f.module}
    for top in sorted(tops):
        if (nb_dir / f"{top}.py").exists() or (nb_dir / top).is_dir() or installed(top):
            continue
        d = nb_dir
        for _ in range(_PACKAGE_LEVELS):
            d = d.parent
            if _too_wide(d) or (top_dir is not None and not _inside(d, top_dir)):
                break
            if (d / top / "__init__.py").is_file():
                if d in root.parents:
                    root, why = d, f"{why}, widened to {d.name} for its package {top}/ (imported in the notebook)"
                break
    return root, why


def _inside(d: Path, top: str | os.PathLike) -> bool:
    t = Path(top).expanduser().resolve()
    return d == t or t in d.parents
