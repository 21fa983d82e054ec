"""Inspect a Python environment's installed distributions WITHOUT importing any of them.

This file is run as a standalone script by the interpreter that will execute the notebook
(``python probe.py``), so it must import nothing from ``offload`` and only the standard
library. It prints one JSON document: the interpreter's version, ``sys.path``, stdlib module
names, and for every installed distribution its name, version, the dotted module prefixes it
provides (read from ``RECORD`` / ``top_level.txt`` / editable finders) and its ``direct_url.json``.
Reading metadata never executes package code, which is the point: detection must not import user
packages (slow, side effects, and it may not even work on this machine).
"""

from __future__ import annotations

import json
import os
import re
import sys

MAX_DEPTH = 4
_MOD_SUFFIX = re.compile(r"\.(py|pyc|pyi|so|pyd)$")
_EXT_TAG = re.compile(r"\.(cpython|cp\d+|abi3|pypy)[^.]*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _module_parts(path: str) -> tuple[list[str], bool] | None:
    """Dotted parts of a module file path (relative to site-packages), and whether it is a
    module/package *itself* (``__init__`` or a module file) rather than a directory member."""
    if path.startswith("..") or path.startswith("/"):
        return None
    if not _MOD_SUFFIX.search(path):
        return None
    parts = path.split("/")
    if any(p == "__pycache__" or p.endswith((".dist-info", ".egg-info", ".data")) for p in parts):
        return None
    last = _MOD_SUFFIX.sub("", parts[-1])
    last = _EXT_TAG.sub("", last)
    parts = parts[:-1] + [last]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or not all(_IDENT.match(p) for p in parts):
        return None
    return parts, True


def _editable_modules(dist, files: list[str]) -> dict[str, int]:
    """Modules of an editable install: PEP 660 finder mappings or .pth directory entries."""
    mods: dict[str, int] = {}
    base = str(dist.locate_file(""))
    for f in files:
        name = f.rsplit("/", 1)[-1]
        full = os.path.join(base, f)
        try:
            if name.startswith("__editable__") and name.endswith("finder.py"):
                text = open(full, encoding="utf-8").read()
                m = re.search(r"MAPPING\s*(?::[^=]*)?=\s*(\{[^}]*\})", text)
                if m:
                    for key in re.findall(r"['\"]([A-Za-z_][\w.]*)['\"]\s*:", m.group(1)):
                        mods[key] = 1
            elif name.endswith(".pth"):
                for line in open(full, encoding="utf-8").read().splitlines():
                    line = line.strip()
                    if not line or line.startswith(("#", "import ")) or not os.path.isdir(line):
                        continue
                    for entry in os.listdir(line):
                        p = os.path.join(line, entry)
                        if entry.endswith(".py") and _IDENT.match(entry[:-3]):
                            if entry[:-3] not in ("setup", "conftest"):
                                mods[entry[:-3]] = 1
                        elif (
                            _IDENT.match(entry)
                            and os.path.isfile(os.path.join(p, "__init__.py"))
                            and entry not in ("tests", "test", "docs", "examples")
                        ):
                            mods[entry] = 1
        except OSError:
            continue
    return mods


def probe() -> dict:
    """Collect what detection needs from the running interpreter."""
    # Imported here, not at the top: the fingerprint mode, run before every detection, must
    # start as fast as the interpreter does.
    from importlib import metadata

    dists = []
    seen: set[tuple[str, str]] = set()
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
        except Exception:
            name = None
        if not name:
            continue
        location = str(dist.locate_file(""))
        key = (name.lower(), location)
        if key in seen:  # the same distribution listed twice through duplicate path entries
            continue
        seen.add(key)
        mods: dict[str, int] = {}
        files: list[str] = []
        try:
            files = [str(f).replace("\\", "/") for f in (dist.files or [])]
        except Exception:
            files = []
        for f in files:
            res = _module_parts(f)
            if res is None:
                continue
            parts, _ = res
            for depth in range(1, min(len(parts), MAX_DEPTH) + 1):
                prefix = ".".join(parts[:depth])
                # 1: this dist provides the module itself; 2: only a typing stub for it
                # (never the real owner); 0: it only provides something underneath.
                val = (2 if f.endswith(".pyi") else 1) if depth == len(parts) else 0
                cur = mods.get(prefix)
                if cur is None or val == 1 or (val == 2 and cur == 0):
                    mods[prefix] = val
        direct_url = None
        try:
            text = dist.read_text("direct_url.json")
            if text:
                direct_url = json.loads(text)
        except Exception:
            direct_url = None
        # Keep only what resolution needs: a prefix whose ancestors this dist does not own
        # (``sklearn`` yes, ``sklearn.base`` no; ``google.cloud.storage`` yes, under namespaces).
        mods = {
            k: v
            for k, v in mods.items()
            if not any(
                mods.get(".".join(k.split(".")[:i])) == 1 for i in range(1, k.count(".") + 1)
            )
        }
        if direct_url and (direct_url.get("dir_info") or {}).get("editable"):
            mods.update(_editable_modules(dist, files))
        if not mods:
            try:
                top = dist.read_text("top_level.txt") or ""
            except Exception:
                top = ""
            for line in top.split():
                if _IDENT.match(line.replace("/", "_")):
                    mods[line.replace("/", ".")] = 1
        try:
            requires = list(dist.requires or [])
        except Exception:
            requires = []
        try:
            installer = (dist.read_text("INSTALLER") or "").strip()
        except Exception:
            installer = ""
        dists.append(
            {
                "name": name,
                "version": dist.version,
                "modules": mods,
                "direct_url": direct_url,
                "requires": requires,
                "installer": installer,
                "location": location,
            }
        )
    dists += _conda_only(sys.prefix)
    stdlib = sorted(getattr(sys, "stdlib_module_names", ()))
    if not stdlib:  # Python < 3.10: list the stdlib directory
        import sysconfig  # (only needed on old interpreters)

        std = sysconfig.get_paths()["stdlib"]
        for entry in os.listdir(std):
            if entry.endswith(".py"):
                stdlib.append(entry[:-3])
            elif os.path.isdir(os.path.join(std, entry)) and entry != "site-packages":
                stdlib.append(entry)
        stdlib += list(sys.builtin_module_names)
    prefix = sys.prefix
    return {
        "python": ".".join(str(v) for v in sys.version_info[:3]),
        "executable": sys.executable,
        "platform": sys.platform,
        "prefix": prefix,
        "conda": os.path.isdir(os.path.join(prefix, "conda-meta")),
        "path": [p for p in sys.path if p],
        "stdlib": stdlib,
        "dists": dists,
    }


def _conda_only(prefix: str) -> list[dict]:
    """Packages conda installed without Python metadata (no dist-info): their modules, read from
    ``conda-meta/*.json`` file lists, under the conda name (mapped to PyPI's by the caller)."""
    meta = os.path.join(prefix, "conda-meta")
    if not os.path.isdir(meta):
        return []
    out = []
    site = re.compile(r"^(?:lib/python\d+\.\d+|Lib)/site-packages/(.+)$")
    for fn in sorted(os.listdir(meta)):
        if not fn.endswith(".json"):
            continue
        try:
            with open(os.path.join(meta, fn), encoding="utf-8") as fh:
                rec = json.load(fh)
        except (OSError, ValueError):
            continue
        inside = [m.group(1) for f in rec.get("files") or [] if (m := site.match(f))]
        if not inside or any(".dist-info/" in f or ".egg-info" in f for f in inside):
            continue  # no Python modules, or metadata that importlib already read
        mods: dict[str, int] = {}
        for f in inside:
            res = _module_parts(f)
            if res:
                mods.setdefault(res[0][0], 1)
        if mods:
            out.append({"name": rec.get("name", fn), "version": rec.get("version", ""), "modules": mods,
                        "direct_url": None, "requires": [], "installer": "conda", "location": prefix,
                        "conda_name": rec.get("name", fn)})
    return out


def fingerprint() -> dict:
    """Cheap identity of the environment: sys.path entries and their directory mtimes.

    Installing, removing or upgrading a distribution adds or removes a ``*.dist-info`` directory,
    which changes the mtime of the directory holding it; so this changes whenever ``probe()``'s
    answer could."""
    stamps = []
    for p in sys.path:
        if not p:
            continue
        try:
            stamps.append([p, os.stat(p).st_mtime_ns])
        except OSError:
            stamps.append([p, None])
    return {
        "python": ".".join(str(v) for v in sys.version_info[:3]),
        "executable": sys.executable,
        "stamps": stamps,
        "conda": os.path.isdir(os.path.join(sys.prefix, "conda-meta")),
    }


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "probe"
    # sys.path[0] is this script's directory (offload/): drop it so it never shadows anything.
    sys.path[:] = [
        p
        for p in sys.path
        if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))
    ]
    out = fingerprint() if mode == "fingerprint" else probe()
    sys.stdout.write(json.dumps(out))
