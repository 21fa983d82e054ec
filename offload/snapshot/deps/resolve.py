"""Import -> what provides it: local code (shipped with the job), an installed distribution,
the kernel itself, or nothing (reported, never guessed).

:class:`ImportWalk` scans the notebook, follows the project's local modules, packages,
``%run`` files and ``%%writefile`` modules it reaches (each scanned for its own imports), and
sorts every import; :func:`closure` is an installed distribution's dependency closure.
"""

from __future__ import annotations

import os
from pathlib import Path

from offload.notebook import code_cells, read_notebook
from offload.snapshot.deps.environment import EnvIndex
from offload.snapshot.deps.model import (
    InvalidRequirement,
    canonicalize_name,
    parse_requirement,
    relative_to,
)
from offload.snapshot.deps.pip import PipLine
from offload.snapshot.deps.scan import DataRef, Found, ScanResult, scan_cell, scan_python

__all__ = ["ImportWalk", "closure", "NEUTRAL_TOP", "NEUTRAL_PREFIX", "IPYTHON_EXTENSIONS"]

# Provided by whatever kernel runs the notebook (the runner installs ipykernel): never listed.
NEUTRAL_TOP = {"IPython", "ipykernel", "ipython_genutils", "offload", "jupyter_offload"}
NEUTRAL_PREFIX = ("google.colab",)  # Colab-only helpers: reported in notes, never installed
IPYTHON_EXTENSIONS = {"autoreload", "storemagic", "sympyprinting", "cythonmagic", "rmagic"}
_SKIP_DIRS = {
    "__pycache__",
    ".ipynb_checkpoints",
    ".git",
    "node_modules",
    ".venv",
    "venv",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
}


class ImportWalk:
    """One detection run: walks the notebook and every local file it reaches, and sorts each
    import into local code (shipped), an installed distribution (``uses``), provided by the
    kernel (``neutral``), not installed here (``missing``) or ``unresolved``."""

    def __init__(self, nb_path: Path, root: Path, env: EnvIndex, overrides: dict):
        self.nb_path = nb_path
        self.nb_dir = nb_path.parent
        self.root = root
        self.env = env
        self.overrides = overrides
        self.sys_path_front: list[Path] = []
        self.sys_path_back: list[Path] = []
        self.scanned: set[Path] = set()
        self.local_modules: dict[str, dict] = {}
        self.local_files: set[str] = set()
        self.written: dict[str, str] = {}  # module name -> where (%%writefile)
        self.uses: dict[str, list[Found]] = {}  # canonical dist -> import sites
        self.neutral: set[str] = set()
        self.unresolved: dict[str, dict] = {}
        self.optional_unresolved: dict[str, list[str]] = {}
        self.notes: list[str] = []
        self.pip_lines: list[PipLine] = []
        self.pending: list[tuple[Found, Path | None]] = []  # (import, importing file or None)
        self.missing: dict[str, list[Found]] = {}  # module no installed distribution provides
        self.refs: set[str] = set()  # names read or called anywhere (notebook and local code)
        self.entry_points: set[str] = set()
        self.data_refs: list[DataRef] = []
        self.kernel_imports: set[str] = set()  # kernel-provided modules the code imports
        self.not_in_kernel: list[dict] = []  # imports a dependency file declares, not installed here

    # ------------------------------------------------------------------ scanning
    def scan_cells(self, cells: list[tuple[int, str]], where_prefix: str = "") -> None:
        """Scan the notebook's code cells: (1-based cell number, source)."""
        result = ScanResult()
        for num, src in cells:
            scan_cell(src, f"{where_prefix}cell {num}", str(self.nb_dir), result)
        self._absorb(result, None)

    def _absorb(self, result: ScanResult, file: Path | None) -> None:
        for p, front, _where in result.sys_path:
            (self.sys_path_front if front else self.sys_path_back).append(Path(p))
        for p, _where in result.chdirs:
            d = (self.nb_dir / p).resolve()
            if d.is_dir() and d not in self.sys_path_front:
                self.sys_path_front.append(d)
        self.pip_lines += result.pip_lines
        self.notes += result.errors
        self.refs |= result.refs
        self.entry_points |= result.entry_points
        self.data_refs += result.data
        for path_arg, body, where in result.written:
            target = self.nb_dir / path_arg
            if target.suffix == ".py":
                mod = target.stem
                self.written[mod] = where
                self.local_modules.setdefault(
                    mod,
                    {
                        "module": mod,
                        "path": relative_to(target, self.root) or path_arg,
                        "kind": "written",
                        "where": where,
                    },
                )
                sub = scan_python(
                    body, f"{path_arg} (written in {where})", str(self.nb_dir), str(target.parent)
                )
                self._absorb(sub, target)
        for path_arg, where in result.runs:
            self._follow_run(path_arg, where)
        for f in result.imports:
            self.pending.append((f, file))

    def _follow_run(self, path_arg: str, where: str) -> None:
        cand = self.nb_dir / path_arg
        if not cand.suffix and not cand.exists():
            for ext in (".py", ".ipynb"):
                if cand.with_suffix(ext).exists():
                    cand = cand.with_suffix(ext)
                    break
        if not cand.is_file():
            self.unresolved.setdefault(
                f"%run {path_arg}",
                {
                    "module": f"%run {path_arg}",
                    "where": where,
                    "hint": "the file run by %run does not exist next to the notebook; "
                    "create it or fix the path",
                },
            )
            return
        rel = relative_to(cand, self.root)
        if rel is None:
            self.unresolved.setdefault(
                f"%run {path_arg}",
                {
                    "module": f"%run {path_arg}",
                    "where": where,
                    "hint": "the file is outside the project root; pass a project root that "
                    "contains it",
                },
            )
            return
        self.local_files.add(rel)
        self.local_modules.setdefault(
            rel, {"module": cand.stem, "path": rel, "kind": "run", "where": where}
        )
        self._scan_file(cand.resolve())

    def _scan_file(self, path: Path) -> None:
        if path in self.scanned:
            return
        self.scanned.add(path)
        rel = relative_to(path, self.root) or str(path)
        if path.suffix == ".ipynb":
            self.scan_cells(code_cells(read_notebook(path, validate=False)), f"{rel} ")
            return
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return
        self._absorb(scan_python(text, rel, str(self.nb_dir), str(path.parent)), path)

    # ------------------------------------------------------------------ local modules
    def _search_dirs(self, importer: Path | None) -> list[Path]:
        dirs = list(self.sys_path_front) + [self.nb_dir] + list(self.sys_path_back)
        if importer is not None and not (importer.parent / "__init__.py").exists():
            dirs.append(importer.parent)  # scripts next to each other import each other
        seen, out = set(), []
        for d in dirs:
            d = d.resolve()
            if d not in seen:
                seen.add(d)
                out.append(d)
        return out

    @staticmethod
    def _local_in(top: str, d: Path) -> Path | None:
        f = d / f"{top}.py"
        if f.is_file():
            return f
        pkg = d / top
        if pkg.is_dir() and (
            (pkg / "__init__.py").exists() or any(pkg.glob("*.py")) or any(pkg.glob("*/*.py"))
        ):
            return pkg
        return None

    def _ship_local(self, top: str, found: Path, where: str) -> None:
        rel = relative_to(found, self.root)
        if rel is None:
            self.unresolved.setdefault(
                top,
                {
                    "module": top,
                    "where": where,
                    "hint": f"local module {found} is outside the project root {self.root}; pass "
                    "--project-root to a directory that contains it",
                },
            )
            return
        kind = "package" if found.is_dir() else "module"
        if top in self.local_modules:
            return
        self.local_modules[top] = {"module": top, "path": rel, "kind": kind, "where": where}
        if found.is_dir():
            # The whole package ships (any submodule may be imported at run time), so every
            # Python file in it is scanned, and its data files travel too.
            self._ship_tree(found)
        else:
            self.local_files.add(rel)
            self._scan_file(found.resolve())

    def ship_project_source(self, dist: str, rel: str, where: str) -> None:
        """An editable/local install from inside the project: its source ships as files (and
        its own imports count), and the remote imports it from there."""
        src = (self.root / rel).resolve()
        if not src.is_dir():
            return
        self.local_modules.setdefault(
            dist,
            {
                "module": dist,
                "path": relative_to(src, self.root) or rel,
                "kind": "editable",
                "where": where,
            },
        )
        self._ship_tree(src, skip_suffixes=(".egg-info", ".dist-info"))
        self.resolve_all()

    def _ship_tree(self, top: Path, *, skip_suffixes: tuple[str, ...] = ()) -> None:
        """Ship every file under ``top`` and scan its Python files for their own imports."""
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(
                d
                for d in dirnames
                if d not in _SKIP_DIRS
                and not d.startswith(".")
                and not (skip_suffixes and d.endswith(skip_suffixes))
            )
            for fn in sorted(filenames):
                if fn.endswith((".pyc", ".pyo")) or fn.startswith("."):
                    continue
                p = Path(dirpath) / fn
                r = relative_to(p, self.root)
                if r:
                    self.local_files.add(r)
                if fn.endswith(".py"):
                    self._scan_file(p.resolve())

    # ------------------------------------------------------------------ resolution
    def resolve_all(self) -> None:
        while self.pending:
            f, importer = self.pending.pop(0)
            self._resolve(f, importer)

    def _resolve(self, f: Found, importer: Path | None) -> None:
        if f.level:
            self._resolve_relative(f, importer)
            return
        if not f.module:
            return
        top = f.module.split(".")[0]
        if f.kind == "load_ext":
            if top in IPYTHON_EXTENSIONS or f.module.startswith("IPython"):
                self.neutral.add(f.module)
                return
        if top in self.overrides.get("ignore", []) or f.module in self.overrides.get("ignore", []):
            return
        if self.env.is_stdlib(f.module):
            return
        if top in NEUTRAL_TOP or f.module.startswith(NEUTRAL_PREFIX):
            self.neutral.add(top if top in NEUTRAL_TOP else f.module)
            if top in NEUTRAL_TOP:
                self.kernel_imports.add(top)
            return
        if top in self.written:
            return
        # 1. local code that shadows installed packages: next to the notebook / sys.path inserts
        for d in self._search_dirs(importer):
            hit = self._local_in(top, d)
            if hit is not None:
                self._ship_local(top, hit, f.where)
                return
        # 2. user's explicit mapping
        mapping = {k: v for k, v in (self.overrides.get("map") or {}).items()}
        if f.module in mapping or top in mapping:
            dist = mapping.get(f.module) or mapping[top]
            self.uses.setdefault(canonicalize_name(dist), []).append(f)
            return
        # 3. installed distributions (from-import names may be submodules: google.cloud.storage)
        targets = [f"{f.module}.{n}" for n in f.names if n != "*"] or [f.module]
        resolved_any = False
        for t in targets:
            dists, status = self.env.resolve(t)
            if status == "ok" and dists:
                for d in dists[:1] if len(dists) == 1 else self._pick(dists, t):
                    self.uses.setdefault(d, []).append(f)
                resolved_any = True
        if resolved_any:
            return
        dists, status = self.env.resolve(f.module)
        if status == "ambiguous":
            if f.optional:
                self.optional_unresolved.setdefault(f.module, []).append(f.where)
                return
            self.unresolved.setdefault(
                f.module,
                {
                    "module": f.module,
                    "where": f.where,
                    "hint": f"'{f.module}' is a namespace shared by {', '.join(dists)}; import the "
                    "submodule you use, or map it in [tool.offload.deps] map",
                },
            )
            return
        # 4. local code under the project root (e.g. sibling package of the notebook's folder)
        for d in self._root_dirs():
            hit = self._local_in(top, d)
            if hit is not None:
                self._ship_local(top, hit, f.where)
                return
        # 5. declared by the user (dependency files, pip lines): safe to name, not a guess
        self.missing.setdefault(f.module, []).append(f)

    def unreachable(self, f: Found) -> str | None:
        """The function ``f`` sits in when the code never calls or names it (so the import never
        runs), else None."""
        for fn in f.scope:
            if fn not in self.refs and fn not in self.entry_points:
                return fn
        return None

    def _pick(self, dists: list[str], module: str) -> list[str]:
        """Several distributions own the same module (opencv-python and opencv-contrib-python):
        keep the one the import system would load first (earliest on sys.path) and say so."""
        loc = {d: self.env.dists[d].get("location", "") for d in dists}
        order = {p: i for i, p in enumerate(self.env.path)}
        best = sorted(dists, key=lambda d: (order.get(loc[d], 1 << 30), d))[0]
        self.notes.append(
            f"'{module}' is provided by several installed distributions "
            f"({', '.join(dists)}); using {best}"
        )
        return [best]

    def _root_dirs(self) -> list[Path]:
        dirs = []
        d = self.nb_dir.resolve()
        while True:
            dirs.append(d)
            if d == self.root or d.parent == d or self.root not in d.parents:
                break
            d = d.parent
        if self.root not in dirs:
            dirs.append(self.root)
        return dirs

    def _resolve_relative(self, f: Found, importer: Path | None) -> None:
        if importer is None:
            return
        base = importer.parent
        for _ in range(f.level - 1):
            base = base.parent
        parts = f.module.split(".") if f.module else []
        target = base.joinpath(*parts) if parts else base
        cands = []
        if parts:
            cands += [target.with_suffix(".py"), target / "__init__.py"]
        for n in f.names:
            cands += [target / f"{n}.py", target / n / "__init__.py"]
        if not parts:
            cands.append(target / "__init__.py")
        for c in cands:
            if c.is_file():
                rel = relative_to(c, self.root)
                if rel:
                    self.local_files.add(rel)
                self._scan_file(c.resolve())


def closure(env: EnvIndex, names: set[str]) -> set[str]:
    """Installed dependency closure of ``names`` (Requires-Dist without extras/markers)."""
    seen: set[str] = set()
    stack = [canonicalize_name(n) for n in names]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        info = env.dists.get(n)
        if not info:
            continue
        for line in info.get("requires") or []:
            if "extra ==" in line or "extra==" in line:
                continue
            try:
                stack.append(canonicalize_name(parse_requirement(line).name))
            except InvalidRequirement:
                continue
    return seen
