"""The environment that runs the notebook: its installed distributions, read from metadata.

``load_environment(python)`` runs the probe (:mod:`offload.snapshot.deps.probe`) in that
interpreter, never importing user packages, and indexes the result (import name ->
distribution). The index is cached on disk by a cheap fingerprint of the interpreter's
``sys.path`` directories, so a warm call costs a few stats whatever the environment's size.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from offload.errors import UsageError
from offload.paths import data_dir
from offload.snapshot.deps import probe
from offload.snapshot.deps.conda import pypi_name
from offload.snapshot.deps.model import canonicalize_name

__all__ = ["EnvIndex", "load_environment", "forget_environments"]


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
            [python, probe.__file__, mode], capture_output=True, text=True, timeout=120
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
            if d.get("conda_name"):  # conda-only package: its PyPI name, or none (not Python)
                pname = pypi_name(d["conda_name"])
                if pname is None:
                    continue
                d = {**d, "name": pname}
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
        for depth in range(min(len(parts), probe.MAX_DEPTH), 0, -1):
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
    fp = probe.fingerprint() if same else _run_probe(exe, "fingerprint")
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
        info = probe.probe() if same else _run_probe(exe, "probe")
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


def forget_environments() -> None:
    """Drop the in-process memo, so the next load works as in a fresh process (the on-disk
    cache stays)."""
    _ENV_MEMO.clear()


_PROBE_VERSION: str | None = None


def _probe_version() -> str:
    global _PROBE_VERSION
    if _PROBE_VERSION is None:
        _PROBE_VERSION = hashlib.sha256(Path(probe.__file__).read_bytes()).hexdigest()[:12]
    return _PROBE_VERSION
