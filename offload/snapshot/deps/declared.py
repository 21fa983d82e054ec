"""Dependency files the user wrote: ``requirements.txt``, ``pyproject.toml`` (PEP 621 and
Poetry), ``environment.yml`` and ``uv.lock``, next to the notebook and up to the project root.

What a file declares is a name the user chose, so detection may use it for an import that is
not installed here (never a guess on the package index); a lock file pins versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from offload.snapshot.deps.conda import pypi_name
from offload.snapshot.deps.model import (
    InvalidRequirement,
    canonicalize_name,
    parse_requirement,
    relative_to,
)

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

__all__ = [
    "DEPENDENCY_FILES",
    "Declared",
    "DeclaredFiles",
    "collect_declared",
    "declared_from",
    "parse_requirements_file",
]

DEPENDENCY_FILES = (
    "uv.lock",
    "requirements.txt",
    "pyproject.toml",
    "environment.yml",
    "environment.yaml",
)
_VCS = re.compile(r"^(git|hg|svn|bzr)\+")
_EGG = re.compile(r"#egg=([\w.\-]+)")


@dataclass
class Declared:
    """One entry of a dependency file."""

    name: str  # canonical
    spec: str  # requirement line as declared (or pinned from a lock)
    file: str  # relative path of the file that declares it ("a, b" when several do)
    version: str | None = None  # exact version when the file pins/locks it
    source: str = "pypi"
    conda: bool = False


@dataclass
class DeclaredFiles:
    """Everything the dependency files around a notebook declare, nearest file first."""

    entries: dict[str, Declared] = field(default_factory=dict)  # canonical name -> entry
    files: list[str] = field(default_factory=list)  # relative paths of the files that declare
    overrides: dict = field(default_factory=dict)  # pyproject [tool.offload.deps]


def collect_declared(nb_dir: Path, root: Path) -> DeclaredFiles:
    """Dependency files in ``nb_dir``, then each parent up to ``root``: the nearest wins."""
    out = DeclaredFiles()
    search, d = [], nb_dir
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
            label = relative_to(p, root) or p.name
            entries, overrides = declared_from(p, label)
            if overrides and not out.overrides:
                out.overrides = overrides
            if not entries:
                continue
            out.files.append(label)
            for e in entries:
                prev = out.entries.get(e.name)
                if prev is None:
                    out.entries[e.name] = e
                    continue
                if prev.version is None and e.version:  # a lock pins what a list allows
                    prev.version = e.version
                if e.file not in prev.file.split(", "):
                    prev.file += f", {e.file}"
    return out


def declared_from(path: Path, label: str) -> tuple[list[Declared], dict]:
    """Entries a dependency file declares; and for pyproject, its [tool.offload.deps] table."""
    name = path.name
    if name == "requirements.txt":
        return parse_requirements_file(path, label, set()), {}
    if name == "pyproject.toml":
        return _from_pyproject(path, label)
    if name in ("environment.yml", "environment.yaml"):
        return _from_environment_yml(path, label), {}
    if name == "uv.lock":
        return _from_uv_lock(path, label), {}
    return [], {}


# --------------------------------------------------------------------------------------------
# requirements.txt (and requirement lines anywhere)


def parse_requirements_file(path: Path, label: str, seen: set[Path]) -> list[Declared]:
    """Entries of a requirements file, following ``-r`` includes (each file read once)."""
    if path in seen or not path.is_file():
        return []
    seen.add(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out: list[Declared] = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        out += _parse_req_line(line, label, path.parent, seen)
    return out


def _parse_req_line(line: str, file: str, base: Path, seen: set[Path]) -> list[Declared]:
    line = line.split(" #")[0].strip()
    if not line or line.startswith("#"):
        return []
    if line.startswith(("-c ", "--constraint ")):
        return []
    if line.startswith(("-r ", "--requirement ")):
        sub = (base / line.split(None, 1)[1].strip()).resolve()
        return parse_requirements_file(sub, file, seen)
    if line.startswith(("-e ", "--editable ")):
        target = line.split(None, 1)[1].strip()
        m = _EGG.search(target)
        name = m.group(1) if m else Path(target.rstrip("/")).name
        return [Declared(canonicalize_name(name), line, file, source="editable")]
    if line.startswith("-"):
        return []
    try:
        r = parse_requirement(line)
    except InvalidRequirement:
        m = _EGG.search(line)
        if m and _VCS.match(line):
            name = m.group(1)
            return [Declared(canonicalize_name(name), f"{name} @ {line}", file, source="vcs")]
        return []
    version = None
    for s in r.specifier:
        if s.operator in ("==", "===") and "*" not in s.version:
            version = s.version
    src = "vcs" if r.url and _VCS.match(r.url) else ("url" if r.url else "pypi")
    return [Declared(canonicalize_name(r.name), line, file, version, src)]


# --------------------------------------------------------------------------------------------
# pyproject.toml, environment.yml, uv.lock


def _load_toml(path: Path) -> dict:
    if tomllib is None:  # pragma: no cover - Python 3.10 without tomli
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def _from_pyproject(path: Path, label: str) -> tuple[list[Declared], dict]:
    data = _load_toml(path)
    out: list[Declared] = []
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


def _from_environment_yml(path: Path, label: str) -> list[Declared]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    if not isinstance(data, dict):
        return []
    out: list[Declared] = []
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
        pname = pypi_name(cname)
        if pname is None:
            continue
        version = None
        vm = re.match(r"^=+\s*([\w.]+)", rest)
        if vm and "*" not in vm.group(1):
            version = vm.group(1)
        spec = f"{pname}=={version}" if version else pname
        out.append(Declared(canonicalize_name(pname), spec, label, version, "pypi", conda=True))
    return out


def _from_uv_lock(path: Path, label: str) -> list[Declared]:
    out: list[Declared] = []
    for pkg in _load_toml(path).get("package") or []:
        pname, ver = pkg.get("name"), pkg.get("version")
        if not pname:
            continue
        src = pkg.get("source") or {}
        if "git" in src:
            spec = f"{pname} @ git+{src['git']}"
            out.append(Declared(canonicalize_name(pname), spec, label, ver, "vcs"))
        elif "editable" in src or "virtual" in src:
            continue
        else:
            out.append(Declared(canonicalize_name(pname), f"{pname}=={ver}", label, ver))
    return out
