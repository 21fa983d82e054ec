"""Dependency snapshot: what a notebook needs installed remotely, and why.

``snapshot(notebook)`` reads every code cell (and the project's local modules it reaches),
maps each import to the distribution that provides it *in the environment that runs the
notebook* (read from installed metadata, never by importing user packages), and returns an
``EnvSpec``: the Python version, pinned requirements with the reason for each, the local files
to ship, and what it could not resolve, with a hint. A remote run that dies after a ten-minute VM
boot because one import was missed is the most expensive bug a user can hit, so every decision
here favours an explicit report over a silent guess; in particular an import that no installed
distribution provides is *never* turned into a package-index name (dependency confusion).

Static analysis handles: imports at any depth in every cell, each cell parsed on its own;
IPython magics and shell lines (``%pip``/``!pip install`` including VCS URLs and flags,
``%load_ext``, ``%run file.py`` followed, ``%%writefile`` modules treated as local);
``importlib.import_module("x")`` / ``__import__("x")`` literals; ``try/except ImportError``
imports reported as optional; local modules and packages (next to the notebook, in ``sys.path``
additions, under the project root) followed recursively; namespace packages; import names that
differ from distribution names; editable and VCS installs; local version labels (``+cpu``); the
live kernel's loaded modules; and ``requirements.txt`` / ``pyproject.toml`` / ``environment.yml``
/ ``uv.lock`` files next to the notebook, reconciled with the imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from offload.errors import NotebookError, UsageError
from offload.notebook import code_cells, read_notebook
from offload.snapshot.deps import probe as _deps_probe
from offload.snapshot.deps.scan import Found, PipLine, ScanResult, scan_cell, scan_python

__all__ = ["Requirement", "EnvSpec", "snapshot", "render", "load_environment", "FORMATS"]

FORMATS = ("text", "requirements", "pyproject", "json")


def canonicalize_name(name: str) -> str:
    """PEP 503 normalized distribution name (same rule as ``packaging.utils``; kept local so that
    importing this module, e.g. in the runner, stays cheap)."""
    return re.sub(r"[-_.]+", "-", name).lower()


class InvalidRequirement(ValueError):
    pass


def _PkgReq(line: str):  # noqa: N802 - stands in for packaging's Requirement class
    """Parse a PEP 508 requirement line (packaging imported on first use: it is the slow part)."""
    from packaging.requirements import InvalidRequirement as _Invalid
    from packaging.requirements import Requirement

    try:
        return Requirement(line)
    except _Invalid as exc:
        raise InvalidRequirement(str(exc)) from exc


SPEC_VERSION = 1

# Provided by whatever kernel runs the notebook (the runner installs ipykernel): never listed.
NEUTRAL_TOP = {"IPython", "ipykernel", "ipython_genutils", "offload", "jupyter_offload"}
NEUTRAL_PREFIX = ("google.colab",)  # Colab-only helpers: reported in notes, never installed
IPYTHON_EXTENSIONS = {"autoreload", "storemagic", "sympyprinting", "cythonmagic", "rmagic"}
# Distributions whose accelerator build is chosen by the index they come from, not their name.
ACCELERATOR_DISTS = {
    "torch",
    "torchvision",
    "torchaudio",
    "triton",
    "xformers",
    "torchtext",
    "torchdata",
    "pytorch-triton",
    "jax",
    "jaxlib",
}
DEPENDENCY_FILES = (
    "uv.lock",
    "requirements.txt",
    "pyproject.toml",
    "environment.yml",
    "environment.yaml",
)
# Import names whose distribution is named differently. Used ONLY to recognise an entry the user
# declared (requirements.txt, a pip line) for a module that is not installed here; never to put
# a name on the install list by itself (that would be guessing on the package index).
_DECLARED_ALIASES = {
    "sklearn": ["scikit-learn"],
    "cv2": [
        "opencv-python",
        "opencv-contrib-python",
        "opencv-python-headless",
        "opencv-contrib-python-headless",
    ],
    "PIL": ["pillow"],
    "yaml": ["pyyaml"],
    "bs4": ["beautifulsoup4"],
    "skimage": ["scikit-image"],
    "osgeo": ["gdal"],
    "dateutil": ["python-dateutil"],
    "attr": ["attrs"],
    "OpenSSL": ["pyopenssl"],
    "Crypto": ["pycryptodome"],
    "jwt": ["pyjwt"],
    "dotenv": ["python-dotenv"],
    "git": ["gitpython"],
    "zmq": ["pyzmq"],
    "fitz": ["pymupdf"],
    "docx": ["python-docx"],
    "serial": ["pyserial"],
    "magic": ["python-magic"],
}
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


# ============================================================================================
# Data model


@dataclass
class Requirement:
    """One distribution to install remotely, with why it is there."""

    name: str
    version: str | None = None
    reasons: list[str] = field(default_factory=list)
    optional: bool = False
    source: str = "pypi"  # pypi | vcs | url | editable | file | declared
    spec: str = ""  # one pip requirement line, e.g. "torch==2.3.0" or "pkg @ git+https://...@sha"
    local_label: str | None = None  # "+cpu", "+cu121": the local build's label (dropped in spec)
    declared_in: list[str] = field(default_factory=list)  # dependency files that list it

    def __post_init__(self) -> None:
        if not self.spec:
            self.spec = f"{self.name}=={self.version}" if self.version else self.name


@dataclass
class EnvSpec:
    """The environment a notebook needs; JSON round-trips through ``to_dict``/``from_dict``."""

    python: str
    requirements: list[Requirement] = field(default_factory=list)
    local_files: list[str] = field(default_factory=list)
    unresolved: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = "detected"
    local_modules: list[dict] = field(default_factory=list)  # {module, path, kind, where}
    neutral: list[str] = field(default_factory=list)  # provided by the kernel (IPython, ...)
    platform: str = ""
    conda: bool = False
    version: int = SPEC_VERSION

    # ---------------------------------------------------------------------------------------
    def requirement_lines(self, include_optional: bool = False) -> list[str]:
        """pip requirement lines of the install set (sorted, one per distribution)."""
        reqs = [r for r in self.requirements if include_optional or not r.optional]
        return sorted({r.spec for r in reqs}, key=str.lower)

    @property
    def required(self) -> list[Requirement]:
        return [r for r in self.requirements if not r.optional]

    @property
    def optional(self) -> list[Requirement]:
        return [r for r in self.requirements if r.optional]

    @property
    def env_hash(self) -> str:
        """Identity of the environment to build: the canonical install set + Python major.minor.
        Reasons, notes and local files do not change what gets installed, so they are left out."""
        major_minor = ".".join(self.python.split(".")[:2])
        payload = json.dumps(
            {"python": major_minor, "install": self.requirement_lines()}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["env_hash"] = self.env_hash
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnvSpec:
        if not isinstance(d, dict) or "python" not in d:
            raise UsageError(
                "not an environment spec (no 'python' field)",
                hint="pass the dict produced by EnvSpec.to_dict()",
            )
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        req_fields = set(Requirement.__dataclass_fields__)
        kw["requirements"] = [
            Requirement(**{k: v for k, v in r.items() if k in req_fields})
            for r in d.get("requirements", [])
        ]
        return cls(**kw)


# ============================================================================================
# The environment that runs the notebook (read from metadata, cached by a cheap fingerprint)


def _resolve_python(python: str | os.PathLike | None) -> str:
    if python is None:
        return sys.executable
    p = Path(python).expanduser()
    if p.is_dir():
        for cand in (p / "bin" / "python", p / "Scripts" / "python.exe", p / "python"):
            if cand.exists():
                return str(cand)
    if p.exists():
        return str(p)
    raise UsageError(
        f"python interpreter not found: {python}",
        hint="pass the kernel's interpreter path, e.g. /path/to/venv/bin/python",
    )


def _run_probe(python: str, mode: str) -> dict:
    try:
        out = subprocess.run(
            [python, _deps_probe.__file__, mode], capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(
            f"cannot inspect the environment of {python}: {exc}",
            hint="check that the interpreter runs",
        ) from exc
    if out.returncode != 0:
        tail = (out.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise UsageError(
            f"cannot inspect the environment of {python}: {tail[0]}",
            hint="check that the interpreter runs (Python >= 3.8)",
        )
    return json.loads(out.stdout)


def _cache_dir() -> Path:
    from offload.paths import data_dir

    return data_dir() / "cache" / "deps"


class EnvIndex:
    """Import name -> distribution lookup over one environment's installed metadata."""

    def __init__(self, info: dict):
        self.info = info
        self.python: str = info["python"]
        self.stdlib = set(info.get("stdlib", ())) | {"__future__", "__main__", "builtins"}
        self.path: list[str] = info.get("path", [])
        self.dists: dict[str, dict] = {}
        self.modules: dict[str, list[tuple[str, int]]] = {}
        for d in info.get("dists", []):
            key = canonicalize_name(d["name"])
            if key in self.dists:  # shadowed duplicate (earlier path entry wins, as for import)
                continue
            self.dists[key] = d
            for mod, own in d.get("modules", {}).items():
                self.modules.setdefault(mod, []).append((key, own))

    def is_stdlib(self, module: str) -> bool:
        return module.split(".")[0] in self.stdlib

    def resolve(self, dotted: str) -> tuple[list[str], str]:
        """Distributions providing ``dotted``: (names, status) where status is ``ok``,
        ``ambiguous`` (a namespace shared by several), ``stub`` (only typing stubs) or ``none``."""
        parts = dotted.split(".")
        for depth in range(min(len(parts), _deps_probe.MAX_DEPTH), 0, -1):
            prefix = ".".join(parts[:depth])
            providers = self.modules.get(prefix)
            if not providers:
                continue
            owners = sorted({k for k, own in providers if own == 1})
            if owners:
                return owners, "ok"
            if depth == len(parts) or depth < len(parts):
                names = sorted({k for k, _ in providers})
                if len(names) == 1 and any(own != 2 for _, own in providers):
                    return names, "ok"
                if all(own == 2 for _, own in providers):
                    return names, "stub"
                if depth == len(parts):
                    return names, "ambiguous"
        return [], "none"

    def find_on_path(self, top: str) -> str | None:
        """A module file or package directory on the interpreter's sys.path that no distribution
        declares (e.g. copied by hand, or PYTHONPATH). Only stats files: imports nothing."""
        for entry in self.path:
            base = Path(entry)
            if not base.is_dir():
                continue
            for cand in (base / f"{top}.py", base / top / "__init__.py"):
                if cand.exists():
                    return str(cand)
            try:
                for so in base.glob(f"{top}.*.so"):
                    return str(so)
            except OSError:
                pass
        return None


_ENV_MEMO: dict[str, tuple[str, EnvIndex]] = {}


def load_environment(python: str | os.PathLike | None = None) -> EnvIndex:
    """Index of the interpreter's installed distributions, cached on disk by a fingerprint of its
    ``sys.path`` directories (so a warm call costs a few stats, whatever the environment's size)."""
    exe = _resolve_python(python)
    same = os.path.realpath(exe) == os.path.realpath(sys.executable) and python in (
        None,
        sys.executable,
    )
    fp = _deps_probe.fingerprint() if same else _run_probe(exe, "fingerprint")
    key = hashlib.sha256(json.dumps([fp, _probe_version()], sort_keys=True).encode()).hexdigest()[
        :32
    ]
    memo = _ENV_MEMO.get(exe)
    if memo and memo[0] == key:
        return memo[1]
    cache = _cache_dir() / f"{key}.json"
    info = None
    if cache.exists():
        try:
            info = json.loads(cache.read_text())
        except (OSError, ValueError):
            info = None
    if info is None:
        info = _deps_probe.probe() if same else _run_probe(exe, "probe")
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(info))
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only data dir only costs speed
    idx = EnvIndex(info)
    _ENV_MEMO[exe] = (key, idx)
    return idx


_PROBE_VERSION: str | None = None


def _probe_version() -> str:
    global _PROBE_VERSION
    if _PROBE_VERSION is None:
        _PROBE_VERSION = hashlib.sha256(Path(_deps_probe.__file__).read_bytes()).hexdigest()[:12]
    return _PROBE_VERSION


# ============================================================================================
# Declared dependency files


@dataclass
class _Declared:
    name: str  # canonical
    spec: str  # requirement line as declared (or pinned from a lock)
    file: str  # relative path of the file that declares it
    version: str | None = None  # exact version when the file pins/locks it
    source: str = "pypi"
    conda: bool = False


def _parse_req_line(line: str, file: str, base: Path, seen: set[Path]) -> list[_Declared]:
    line = line.split(" #")[0].strip()
    if not line or line.startswith("#"):
        return []
    if line.startswith(("-r ", "--requirement ", "-c ", "--constraint ")):
        if line.startswith(("-c ", "--constraint ")):
            return []
        sub = (base / line.split(None, 1)[1].strip()).resolve()
        return _parse_requirements_file(sub, file, seen)
    if line.startswith(("-e ", "--editable ")):
        target = line.split(None, 1)[1].strip()
        m = re.search(r"#egg=([\w.\-]+)", target)
        name = m.group(1) if m else Path(target.rstrip("/")).name
        return [_Declared(canonicalize_name(name), line, file, source="editable")]
    if line.startswith("-"):
        return []
    try:
        r = _PkgReq(line)
    except InvalidRequirement:
        m = re.search(r"#egg=([\w.\-]+)", line)
        if m and re.match(r"^(git|hg|svn|bzr)\+", line):
            return [
                _Declared(
                    canonicalize_name(m.group(1)), f"{m.group(1)} @ {line}", file, source="vcs"
                )
            ]
        return []
    version = None
    for s in r.specifier:
        if s.operator in ("==", "===") and "*" not in s.version:
            version = s.version
    src = (
        "vcs" if r.url and re.match(r"^(git|hg|svn|bzr)\+", r.url) else ("url" if r.url else "pypi")
    )
    return [_Declared(canonicalize_name(r.name), line, file, version, src)]


def _parse_requirements_file(path: Path, label: str, seen: set[Path]) -> list[_Declared]:
    if path in seen or not path.is_file():
        return []
    seen.add(path)
    out: list[_Declared] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        out += _parse_req_line(line, label, path.parent, seen)
    return out


def _load_toml(path: Path) -> dict:
    try:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except Exception:
        return {}


_CONDA_TO_PYPI = {
    "pytorch": "torch",
    "py-opencv": "opencv-python",
    "pytorch-cuda": None,
    "cudatoolkit": None,
    "python": None,
    "pip": None,
    "libgdal": None,
    "tensorflow-gpu": "tensorflow",
    "pytables": "tables",
    "graphviz": None,
    "nodejs": None,
    "cudnn": None,
    "mkl": None,
    "blas": None,
}


def _declared_from(path: Path, label: str) -> tuple[list[_Declared], dict]:
    """Entries a dependency file declares; and for pyproject, its [tool.offload.deps] table."""
    name = path.name
    if name == "requirements.txt":
        return _parse_requirements_file(path, label, set()), {}
    if name == "pyproject.toml":
        data = _load_toml(path)
        out: list[_Declared] = []
        for line in (data.get("project") or {}).get("dependencies") or []:
            out += _parse_req_line(str(line), label, path.parent, set())
        poetry = ((data.get("tool") or {}).get("poetry") or {}).get("dependencies") or {}
        for pname, pspec in poetry.items():
            if pname.lower() == "python":
                continue
            ver = pspec if isinstance(pspec, str) else (pspec or {}).get("version", "")
            line = pname + (ver if ver and ver[0] in "=<>!~" else "")
            out += _parse_req_line(line, label, path.parent, set())
        overrides = ((data.get("tool") or {}).get("offload") or {}).get("deps") or {}
        return out, overrides
    if name in ("environment.yml", "environment.yaml"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except Exception:
            return [], {}
        out = []
        for dep in data.get("dependencies") or []:
            if isinstance(dep, dict):
                for line in dep.get("pip") or []:
                    out += _parse_req_line(str(line), label, path.parent, set())
                continue
            dep = str(dep).split("::")[-1].strip()
            m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", dep)
            if not m:
                continue
            cname, rest = m.group(1).lower(), m.group(2).strip()
            pname = _CONDA_TO_PYPI.get(cname, cname)
            if pname is None:
                continue
            version = None
            vm = re.match(r"^=+\s*([\w.]+)", rest)
            if vm and "*" not in vm.group(1):
                version = vm.group(1)
            out.append(
                _Declared(
                    canonicalize_name(pname),
                    f"{pname}=={version}" if version else pname,
                    label,
                    version,
                    "pypi",
                    conda=True,
                )
            )
        return out, {}
    if name == "uv.lock":
        data = _load_toml(path)
        out = []
        for pkg in data.get("package") or []:
            pname, ver = pkg.get("name"), pkg.get("version")
            if not pname:
                continue
            src = pkg.get("source") or {}
            if "git" in src:
                url = src["git"]
                out.append(
                    _Declared(canonicalize_name(pname), f"{pname} @ git+{url}", label, ver, "vcs")
                )
            elif "editable" in src or "virtual" in src:
                continue
            else:
                out.append(_Declared(canonicalize_name(pname), f"{pname}=={ver}", label, ver))
        return out, {}
    return [], {}


# ============================================================================================
# Notebook reading


def _read_cells(nb_path: Path) -> list[tuple[int, str]]:
    """(1-based cell number, source) of every code cell."""
    return code_cells(read_notebook(nb_path, validate=False))


def _rel(path: Path, root: Path) -> str | None:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return None


# ============================================================================================
# Snapshot


class _Snapshot:
    """One detection run: walks the notebook and every local file it reaches."""

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

    # ------------------------------------------------------------------ scanning
    def scan_notebook(self, path: Path, where_prefix: str = "") -> None:
        result = ScanResult()
        for num, src in _read_cells(path):
            where = f"{where_prefix}cell {num}"
            scan_cell(src, where, str(self.nb_dir), result)
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
        for path_arg, body, where in result.written:
            target = self.nb_dir / path_arg
            if target.suffix == ".py":
                mod = target.stem
                self.written[mod] = where
                self.local_modules.setdefault(
                    mod,
                    {
                        "module": mod,
                        "path": _rel(target, self.root) or path_arg,
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
        rel = _rel(cand, self.root)
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
        rel = _rel(path, self.root) or str(path)
        if path.suffix == ".ipynb":
            result = ScanResult()
            for num, src in _read_cells(path):
                scan_cell(src, f"{rel} cell {num}", str(self.nb_dir), result)
            self._absorb(result, None)
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
        rel = _rel(found, self.root)
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
                "path": _rel(src, self.root) or rel,
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
                d for d in dirnames
                if d not in _SKIP_DIRS and not d.startswith(".") and not (skip_suffixes and d.endswith(skip_suffixes))
            )
            for fn in sorted(filenames):
                if fn.endswith((".pyc", ".pyo")) or fn.startswith("."):
                    continue
                p = Path(dirpath) / fn
                r = _rel(p, self.root)
                if r:
                    self.local_files.add(r)
                if fn.endswith(".py"):
                    self._scan_file(p.resolve())

    # ------------------------------------------------------------------ resolution
    def resolve_all(self) -> None:
        while self.pending:
            f, importer = self.pending.pop(0)
            self._resolve(f, importer)

    def _where(self, f: Found) -> str:
        return f.where

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
                rel = _rel(c, self.root)
                if rel:
                    self.local_files.add(rel)
                self._scan_file(c.resolve())

    missing: dict[str, list[Found]]


def _norm_import(name: str) -> str:
    return canonicalize_name(name.replace("_", "-"))


def snapshot(
    notebook: str | os.PathLike,
    *,
    project_root: str | os.PathLike | None = None,
    python: str | os.PathLike | None = None,
    kernel_modules: Iterable[str] | None = None,
    overrides: dict | None = None,
) -> EnvSpec:
    """Detect what ``notebook`` needs.

    ``project_root`` (default: the notebook's directory) bounds the local files that ship;
    ``python`` is the interpreter whose environment runs the notebook (default: this one);
    ``kernel_modules`` are ``sys.modules`` names from a live kernel, merged with the static
    result; ``overrides`` (merged over ``[tool.offload.deps]`` of the project's pyproject.toml):
    ``map`` {import: distribution}, ``add`` [requirement lines], ``ignore`` [import names].
    """
    t0 = time.perf_counter()
    nb_path = Path(notebook).expanduser()
    if nb_path.suffix != ".ipynb" and nb_path.is_file():
        raise NotebookError(f"{nb_path.name} is not a notebook (.ipynb)", hint="pass a .ipynb file")
    nb_path = nb_path.resolve() if nb_path.exists() else nb_path
    root = Path(project_root).expanduser().resolve() if project_root else nb_path.parent
    if project_root and not root.is_dir():
        raise UsageError(
            f"project root is not a directory: {project_root}",
            hint="pass the folder that holds the notebook and its modules",
        )
    if nb_path.exists() and root not in nb_path.parents:
        raise UsageError(
            f"the notebook {nb_path} is not inside the project root {root}",
            hint="pass a project root that contains the notebook",
        )
    cells_check = _read_cells(nb_path)  # raises NotebookError early for bad input
    del cells_check
    env = load_environment(python)

    # dependency files next to the notebook, then up to the project root: nearest wins
    declared: dict[str, _Declared] = {}
    declared_files: list[str] = []
    file_overrides: dict = {}
    d = nb_path.parent
    search = []
    while True:
        search.append(d)
        if d == root or d.parent == d or root not in d.parents:
            break
        d = d.parent
    for dirp in search:
        for fname in DEPENDENCY_FILES:
            p = dirp / fname
            if not p.is_file():
                continue
            label = _rel(p, root) or p.name
            entries, ov = _declared_from(p, label)
            if ov and not file_overrides:
                file_overrides = ov
            if not entries:
                continue
            declared_files.append(label)
            for e in entries:
                if e.name in declared:
                    prev = declared[e.name]
                    if prev.version is None and e.version:  # a lock pins what a list allows
                        prev.version = e.version
                    if e.file not in prev.file.split(", "):
                        prev.file += f", {e.file}"
                    continue
                declared[e.name] = e
    ov = dict(file_overrides)
    ov.update(overrides or {})

    snap = _Snapshot(nb_path, root, env, ov)
    snap.missing = {}
    snap.scan_notebook(nb_path)
    snap.resolve_all()

    # pip lines in the notebook: named distributions the user chose (not guesses)
    pip_named: dict[str, tuple[str, str, str]] = {}  # canonical -> (spec, where, source)
    for pl in snap.pip_lines:
        if pl.uninstall:
            continue
        for raw in pl.requirements:
            name, spec, src = _pip_token(raw)
            if name:
                pip_named.setdefault(name, (spec, pl.where, src))
        for ed in pl.editables:
            p = (snap.nb_dir / ed).resolve()
            rel = _rel(p, root)
            if rel is not None and p.is_dir():
                snap.notes.append(
                    f"{pl.where} installs {ed} in editable mode: shipped as project files"
                )
        for rf in pl.requirement_files:
            p = (snap.nb_dir / rf).resolve()
            for e in _parse_requirements_file(p, _rel(p, root) or rf, set()):
                pip_named.setdefault(e.name, (e.spec, pl.where, e.source))

    reqs: dict[str, Requirement] = {}

    def add_installed(key: str, sites: list[Found], optional: bool) -> None:
        info = env.dists.get(key)
        if info is None:  # mapped by the user to a distribution not installed here
            dec = declared.get(key)
            spec = dec.spec if dec else key
            reqs[key] = Requirement(
                key,
                dec.version if dec else None,
                [_reason(s) for s in sites],
                optional,
                "declared",
                spec,
            )
            return
        r = _requirement_from_dist(info, root, snap.notes)
        r.reasons = _dedupe([_reason(s) for s in sites])
        r.optional = optional
        if key in declared:
            r.declared_in = declared[key].file.split(", ")
        reqs[key] = r

    # editable / local-folder installs from inside the project ship as source: scan them too
    shipped: set[str] = set()
    while True:
        todo = [k for k in snap.uses if k not in shipped and k in env.dists]
        if not todo:
            break
        for key in todo:
            shipped.add(key)
            r = _requirement_from_dist(env.dists[key], root, [])
            if r.source in ("editable", "file") and r.spec.startswith(("-e ", ".")):
                snap.ship_project_source(key, r.spec.split()[-1], snap.uses[key][0].where)

    for key, sites in snap.uses.items():
        optional = all(s.optional for s in sites)
        add_installed(key, sites, optional)

    # imports nothing installed provides: declared by the user, or unresolved (never guessed)
    for module, sites in snap.missing.items():
        top = module.split(".")[0]
        optional = all(s.optional for s in sites)
        cands = [_norm_import(module), _norm_import(top)]
        cands += [canonicalize_name(a) for a in _DECLARED_ALIASES.get(top, [])]
        hit = None
        for c in cands:
            if c in declared:
                hit = ("declared", declared[c])
                break
            if c in pip_named:
                hit = ("pip", pip_named[c])
                break
        if hit is None:
            # a pip line with a VCS/URL whose egg name differs: match by the repo name
            for name, (spec, where, src) in pip_named.items():
                if src in ("vcs", "url") and name in cands:
                    hit = ("pip", (spec, where, src))
        if hit is not None:
            kind, val = hit
            if kind == "declared":
                dec = val
                r = reqs.get(dec.name) or Requirement(
                    dec.name,
                    dec.version,
                    [],
                    optional,
                    "declared" if dec.source == "pypi" else dec.source,
                    dec.spec,
                )
                r.reasons = _dedupe(r.reasons + [_reason(s) for s in sites])
                r.declared_in = dec.file.split(", ")
                r.optional = r.optional and optional
                reqs[dec.name] = r
                snap.notes.append(
                    f"'{module}' is not installed in {env.info.get('executable')}; "
                    f"using {dec.spec!r} from {dec.file}"
                )
            else:
                spec, where, src = val
                name = _norm_import(top)
                r = Requirement(
                    name,
                    None,
                    _dedupe([_reason(s) for s in sites] + [f"pip install in {where}"]),
                    optional,
                    src if src != "pypi" else "declared",
                    spec,
                )
                reqs[name] = r
            continue
        where = sites[0].where
        if optional:
            snap.optional_unresolved.setdefault(module, []).append(where)
            continue
        on_path = env.find_on_path(top)
        if on_path:
            hint = (
                f"found at {on_path} but no installed distribution declares it; install it "
                "as a package or move it into the project"
            )
        else:
            hint = (
                f"not installed in {env.info.get('executable')} and not a project file; "
                "install it where the kernel runs, or map it in pyproject.toml "
                f'[tool.offload.deps] map = {{{top} = "<distribution>"}}'
            )
        snap.unresolved.setdefault(module, {"module": module, "where": where, "hint": hint})

    # pip-line entries the imports did not use: the notebook installs them itself at run time
    for name, (spec, where, src) in pip_named.items():
        if name in reqs:
            r = reqs[name]
            r.reasons = _dedupe(r.reasons + [f"pip install in {where}"])
            continue
        info = env.dists.get(name)
        r = (
            _requirement_from_dist(info, root, snap.notes)
            if info
            else Requirement(name, None, [], True, src if src != "pypi" else "declared", spec)
        )
        r.reasons = [f"pip install in {where} (not imported; the cell installs it at run time)"]
        r.optional = True
        reqs[name] = r

    # live kernel: modules loaded there that the static scan did not explain
    if kernel_modules:
        _merge_kernel(snap, env, reqs, kernel_modules)

    # user additions
    for line in ov.get("add") or []:
        try:
            pr = _PkgReq(str(line))
        except InvalidRequirement:
            snap.notes.append(f"ignored override {line!r}: not a requirement line")
            continue
        key = canonicalize_name(pr.name)
        reqs[key] = Requirement(
            key, None, ["added in [tool.offload.deps] add"], False, "declared", str(line)
        )

    # declared entries never imported: reported, not installed (they may be tools or leftovers)
    source = "detected"
    if declared_files:
        source = Path(declared_files[0]).name
        missing_from_files = sorted(
            k for k, r in reqs.items() if not r.optional and k not in declared
        )
        if missing_from_files:
            snap.notes.append(
                f"{', '.join(declared_files)} do not list {', '.join(missing_from_files)} "
                "(imported by the notebook): add them there"
            )
        for key, dec in declared.items():
            if key in reqs:
                if not reqs[key].declared_in:
                    reqs[key].declared_in = dec.file.split(", ")
                reqs[key].reasons = _dedupe(reqs[key].reasons + [f"declared in {dec.file}"])
                _apply_lock(reqs[key], dec, snap.notes)
                continue
            info = env.dists.get(key)
            r = (
                _requirement_from_dist(info, root, [])
                if info
                else Requirement(key, dec.version, [], True, "declared", dec.spec)
            )
            r.optional = True
            r.declared_in = dec.file.split(", ")
            r.reasons = [f"declared in {dec.file} (not imported by the notebook)"]
            reqs[key] = r

    if env.info.get("conda"):
        conda_dists = sorted(
            k
            for k, r in reqs.items()
            if not r.optional and (env.dists.get(k) or {}).get("installer") == "conda"
        )
        snap.notes.append(
            f"the kernel runs in a conda environment ({env.info.get('prefix')})"
            + (
                f"; installed by conda, installed from PyPI remotely: {', '.join(conda_dists)}"
                if conda_dists
                else ""
            )
        )
    if snap.neutral:
        snap.notes.append(
            f"provided by the kernel, not installed: {', '.join(sorted(snap.neutral))}"
        )
    for module, wheres in sorted(snap.optional_unresolved.items()):
        snap.notes.append(
            f"optional import '{module}' ({wheres[0]}) is not installed here; the "
            "notebook runs without it"
        )
    accel = sorted(r.name for r in reqs.values() if r.local_label and not r.optional)
    if accel:
        snap.notes.append(
            "local build labels dropped for "
            + ", ".join(f"{reqs[a].name} {reqs[a].version}" for a in accel)
            + ": the remote installs the build that matches its accelerator (CUDA on a GPU)"
        )
    nb_rel = _rel(nb_path, root)
    local_files = sorted(f for f in snap.local_files if f != nb_rel)
    spec = EnvSpec(
        python=env.python,
        requirements=sorted(reqs.values(), key=lambda r: r.name),
        local_files=local_files,
        unresolved=sorted(snap.unresolved.values(), key=lambda u: u["module"]),
        notes=_dedupe(snap.notes),
        source=source,
        local_modules=sorted(snap.local_modules.values(), key=lambda m: m["path"]),
        neutral=sorted(snap.neutral),
        platform=env.info.get("platform", ""),
        conda=bool(env.info.get("conda")),
    )
    spec._elapsed = time.perf_counter() - t0  # type: ignore[attr-defined]
    return spec


def _apply_lock(r: Requirement, dec: _Declared, notes: list[str]) -> None:
    locked = any(f.endswith("uv.lock") for f in dec.file.split(", "))
    if locked and dec.version and r.source == "pypi":
        if r.version and r.version.split("+")[0] != dec.version.split("+")[0]:
            notes.append(
                f"{r.name}: installed {r.version}, uv.lock pins {dec.version}; using the lock"
            )
        r.version = dec.version
        r.spec = f"{r.name}=={dec.version.split('+')[0]}"


def _dedupe(items: list[str]) -> list[str]:
    seen, out = set(), []
    for i in items:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def _reason(f: Found) -> str:
    verb = {
        "load_ext": "%load_ext",
        "dynamic": "imported dynamically",
        "matplotlib": "%matplotlib",
    }.get(f.kind, "imported")
    place = f"in {f.where}" if f.where.startswith("cell") else f"by {f.where}"
    if f.kind == "load_ext":
        return f"%load_ext {f.module} {place}"
    if f.kind == "matplotlib":
        return f"%matplotlib {place}"
    extra = " (optional: under try/except ImportError)" if f.optional else ""
    return f"{verb} {place}{extra}"


def _pip_token(raw: str) -> tuple[str | None, str, str]:
    """(canonical name or None, requirement line, source) for one ``pip install`` argument."""
    raw = raw.strip().strip("'\"")
    if re.match(r"^(git|hg|svn|bzr)\+", raw):
        m = re.search(r"#egg=([\w.\-]+)", raw)
        if m:
            name = m.group(1)
        else:
            path = re.sub(r"[@#].*$", "", raw.split("://", 1)[-1]).rstrip("/")
            name = path.rsplit("/", 1)[-1]
            name = name[:-4] if name.endswith(".git") else name
        return canonicalize_name(name), f"{name} @ {raw}", "vcs"
    if raw.startswith(("http://", "https://")):
        fname = raw.rsplit("/", 1)[-1]
        m = re.match(r"^([A-Za-z0-9_.]+?)-\d", fname)
        return (canonicalize_name(m.group(1)) if m else None), raw, "url"
    if raw.startswith((".", "/", "~")) or raw.endswith((".whl", ".tar.gz", ".zip")):
        return None, raw, "file"
    try:
        r = _PkgReq(raw)
    except InvalidRequirement:
        return None, raw, "pypi"
    src = (
        "vcs" if r.url and re.match(r"^(git|hg|svn|bzr)\+", r.url) else ("url" if r.url else "pypi")
    )
    return canonicalize_name(r.name), raw, src


def _git_pin(path: Path) -> str | None:
    """``git+<origin>@<HEAD>`` for a clean checkout, else None (uncommitted work cannot be
    reproduced from a URL)."""
    try:

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", "-C", str(path), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()

        if git("status", "--porcelain", "--untracked-files=no"):
            return None
        url, sha = git("config", "--get", "remote.origin.url"), git("rev-parse", "HEAD")
        if url and sha:
            if url.startswith("git@"):
                url = "ssh://" + url.replace(":", "/", 1)
            return f"git+{url}@{sha}"
    except (OSError, subprocess.SubprocessError):
        return None
    return None


def _requirement_from_dist(info: dict, root: Path, notes: list[str]) -> Requirement:
    """Pinned requirement for an installed distribution (VCS commit, URL, editable, PyPI)."""
    name = canonicalize_name(info["name"])
    version = info.get("version")
    du = info.get("direct_url") or {}
    url = du.get("url", "")
    if du.get("vcs_info"):
        vi = du["vcs_info"]
        ref = vi.get("commit_id") or vi.get("requested_revision")
        sub = du.get("subdirectory")
        spec = f"{name} @ {vi.get('vcs', 'git')}+{url}" + (f"@{ref}" if ref else "")
        if sub:
            spec += f"#subdirectory={sub}"
        return Requirement(name, version, [], False, "vcs", spec)
    if du.get("dir_info") is not None:
        path = Path(_file_url_path(url))
        editable = bool(du["dir_info"].get("editable"))
        rel = _rel(path, root)
        if rel is not None:
            spec = f"-e ./{rel}" if editable else f"./{rel}"
            if rel == ".":
                spec = "-e ." if editable else "."
            notes.append(
                f"{name} is installed from the project folder {rel or '.'}: shipped as "
                "source and installed from it remotely"
            )
            return Requirement(name, version, [], False, "editable" if editable else "file", spec)
        pin = _git_pin(path) if path.exists() else None
        if pin:
            notes.append(
                f"{name} is an {'editable' if editable else 'local'} install from "
                f"{path}: pinned to its git commit"
            )
            return Requirement(name, version, [], False, "vcs", f"{name} @ {pin}")
        notes.append(
            f"{name} is installed from {path}, outside the project, with uncommitted "
            "changes or no git remote: the remote cannot rebuild it; move it into the "
            "project or commit and push it"
        )
        return Requirement(
            name, version, [], False, "editable" if editable else "file", f"{name}=={version}"
        )
    if du.get("archive_info") is not None or url:
        if url.startswith("file:"):
            notes.append(
                f"{name} was installed from a local file ({url}); pinned by version, "
                "which needs it on the package index"
            )
            return Requirement(name, version, [], False, "file", f"{name}=={version}")
        return Requirement(name, version, [], False, "url", f"{name} @ {url}")
    label = None
    base = version or ""
    if version and "+" in version:
        base, label = version.split("+", 1)
        label = "+" + label
    spec = f"{name}=={base}" if base else name
    return Requirement(name, version, [], False, "pypi", spec, local_label=label)


def _file_url_path(url: str) -> str:
    from urllib.parse import unquote, urlparse

    if url.startswith("file:"):
        return unquote(urlparse(url).path)
    return url


def _merge_kernel(
    snap: _Snapshot, env: EnvIndex, reqs: dict[str, Requirement], kernel_modules: Iterable[str]
) -> None:
    """Add distributions behind modules the live kernel loaded that neither the static scan nor
    the closure of what it found explains (e.g. ``exec``'d imports, packages a local module
    loads by computed name). The kernel's own machinery is left out."""
    closure = _closure(
        env,
        set(reqs)
        | _closure(
            env,
            {
                "ipykernel",
                "ipython",
                "jupyter-client",
                "pyzmq",
                "tornado",
                "traitlets",
                "jupyter-core",
                "comm",
                "debugpy",
                "jupyter-offload",
            },
        ),
    )
    tops = sorted({m.split(".")[0] for m in kernel_modules if m and not m.startswith("_")})
    found: dict[str, str] = {}  # distribution -> the top-level module that brought it
    for top in tops:
        if env.is_stdlib(top) or top in NEUTRAL_TOP or top in snap.local_modules:
            continue
        dists, status = env.resolve(top)
        if status != "ok":
            continue
        for d in dists:
            if d not in closure and d not in reqs:
                found.setdefault(d, top)
    # keep only the roots: numpy loaded because pandas was is pandas' business
    for d, top in sorted(found.items()):
        if d in _closure(env, {o for o in found if o != d}):
            continue
        r = _requirement_from_dist(env.dists[d], snap.root, snap.notes)
        r.reasons = [f"loaded in the live kernel ({top})"]
        reqs[d] = r


def _closure(env: EnvIndex, names: set[str]) -> set[str]:
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
                stack.append(canonicalize_name(_PkgReq(line).name))
            except InvalidRequirement:
                continue
    return seen


# ============================================================================================
# Rendering


def render(env: EnvSpec, fmt: str = "text") -> str:
    """The snapshot as text for people, or as a requirements file, pyproject table or JSON."""
    if fmt == "json":
        return json.dumps(env.to_dict(), indent=2, sort_keys=True)
    if fmt == "requirements":
        lines = [f"# generated by offload deps (python {env.python}, env {env.env_hash[:12]})"]
        for r in env.requirements:
            if r.optional:
                continue
            lines.append(f"{r.spec}  # {'; '.join(r.reasons[:2])}" if r.reasons else r.spec)
        opt = [r for r in env.requirements if r.optional]
        if opt:
            lines.append("# optional (not installed by default):")
            lines += [f"# {r.spec}  # {'; '.join(r.reasons[:1])}" for r in opt]
        for u in env.unresolved:
            lines.append(f"# UNRESOLVED {u['module']} ({u['where']}): {u['hint']}")
        return "\n".join(lines) + "\n"
    if fmt == "pyproject":
        mm = ".".join(env.python.split(".")[:2])
        deps = ",\n".join(f"  {json.dumps(r.spec)}" for r in env.requirements if not r.optional)
        opt = [r for r in env.requirements if r.optional]
        out = f'[project]\nrequires-python = ">={mm}"\ndependencies = [\n{deps}\n]\n'
        if opt:
            out += (
                "\n[project.optional-dependencies]\noptional = [\n"
                + ",\n".join(f"  {json.dumps(r.spec)}" for r in opt)
                + "\n]\n"
            )
        return out
    if fmt != "text":
        raise UsageError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
    out = [
        f"Python {env.python}"
        + (" (conda)" if env.conda else "")
        + f"   source: {env.source}   env hash: {env.env_hash[:12]}"
    ]
    req = [r for r in env.requirements if not r.optional]
    opt = [r for r in env.requirements if r.optional]
    out.append(f"\nRequired ({len(req)}):")
    for r in req:
        out.append(f"  {r.spec}")
        for why in r.reasons[:4]:
            out.append(f"      - {why}")
        if len(r.reasons) > 4:
            out.append(f"      - ... and {len(r.reasons) - 4} more")
    if opt:
        out.append(f"\nOptional, not installed by default ({len(opt)}):")
        for r in opt:
            out.append(f"  {r.spec}   - {r.reasons[0] if r.reasons else ''}")
    if env.local_files:
        out.append(f"\nLocal files shipped ({len(env.local_files)}):")
        out += [f"  {f}" for f in env.local_files[:50]]
        if len(env.local_files) > 50:
            out.append(f"  ... and {len(env.local_files) - 50} more")
    if env.unresolved:
        out.append(f"\nUnresolved ({len(env.unresolved)}):")
        for u in env.unresolved:
            out.append(f"  {u['module']} ({u['where']}): {u['hint']}")
    if env.notes:
        out.append("\nNotes:")
        out += [f"  - {n}" for n in env.notes]
    return "\n".join(out) + "\n"
