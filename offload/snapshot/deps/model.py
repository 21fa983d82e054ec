"""The data model of a dependency snapshot: ``Requirement`` and ``EnvSpec``, and the small name
and path rules every other module of the package shares."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement as _PackagingInvalid
from packaging.requirements import Requirement as _PackagingRequirement

from offload.errors import UsageError

__all__ = [
    "SPEC_VERSION",
    "Requirement",
    "EnvSpec",
    "InvalidRequirement",
    "canonicalize_name",
    "parse_requirement",
    "relative_to",
    "dedupe",
]

SPEC_VERSION = 1


def canonicalize_name(name: str) -> str:
    """PEP 503 normalized distribution name (the rule of ``packaging.utils``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


class InvalidRequirement(ValueError):
    pass


def parse_requirement(line: str) -> _PackagingRequirement:
    """Parse a PEP 508 requirement line (InvalidRequirement when it is not one)."""
    try:
        return _PackagingRequirement(line)
    except _PackagingInvalid as exc:
        raise InvalidRequirement(str(exc)) from exc


def relative_to(path: Path, root: Path) -> str | None:
    """``path`` as a POSIX path relative to ``root``, or None when it is outside."""
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return None


def dedupe(items: list[str]) -> list[str]:
    """``items`` without repeats, first occurrence kept."""
    return list(dict.fromkeys(items))


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


def _mib(n: int | None) -> str:
    return f"{(n or 0) / 1024 / 1024:.1f} MiB"


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
    project_root: str = ""  # the folder local files are relative to (absolute, on the client)
    project_root_why: str = ""  # how it was found: --project-root, a marker, sys.path literals
    data_files: list[dict] = field(default_factory=list)  # {path, status, size, where, call}
    kernel: dict[str, str] = field(default_factory=dict)  # the kernel's own distributions: version
    kernel_pins: list[str] = field(default_factory=list)  # installed with them in isolated envs
    not_in_kernel: list[dict] = field(default_factory=list)  # {module, where, dist}: declared, not installed

    # ---------------------------------------------------------------------------------------
    def shipped_data(self) -> list[str]:
        """Data paths (relative to the project root) that ship with the job by themselves."""
        return [d["path"] for d in self.data_files if d.get("status") == "ship"]

    def data_warnings(self) -> list[str]:
        """What to tell the user before submit about the data the notebook reads."""
        out = []
        for d in self.data_files:
            where = f"{d.get('where')} ({d.get('call')})"
            if d.get("status") == "large":
                out.append(
                    f"{d['path']} ({_mib(d.get('size'))}) is read by {where} but is too large to ship "
                    f"by itself: pass --data {d['path']} to ship it, or make it available remotely"
                )
            elif d.get("status") == "missing":
                out.append(
                    f"{d['path']} is read by {where} but does not exist here: the job will fail "
                    "there unless the notebook creates or downloads it first"
                )
            elif d.get("status") == "outside":
                out.append(
                    f"{d['path']} is read by {where} but is outside the project root "
                    f"{self.project_root}: it does not ship; move it under the project or pass "
                    "--project-root"
                )
        return out

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
        canon: dict[str, Any] = {"python": major_minor, "install": self.requirement_lines()}
        if self.kernel_pins:  # (absent from older snapshots: their hashes stay what they were)
            canon["kernel"] = sorted(self.kernel_pins)
        payload = json.dumps(canon, sort_keys=True)
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
