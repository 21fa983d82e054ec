"""How an installed distribution becomes one pip requirement line that rebuilds it remotely.

PyPI installs pin their version (a local build label such as ``+cpu`` is dropped: the remote
picks the build for its accelerator); VCS installs pin their commit; editable and local-folder
installs inside the project ship as source; outside it they are pinned to a clean git commit
when there is one, and reported when there is not. A lock file's version wins over the local one.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

from offload.snapshot.deps.declared import Declared
from offload.snapshot.deps.model import Requirement, canonicalize_name, relative_to

__all__ = ["requirement_from_dist", "apply_lock"]


def requirement_from_dist(info: dict, root: Path, notes: list[str]) -> Requirement:
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
        rel = relative_to(path, root)
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
    if url.startswith("file:"):
        return unquote(urlparse(url).path)
    return url


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


def apply_lock(r: Requirement, dec: Declared, notes: list[str]) -> None:
    locked = any(f.endswith("uv.lock") for f in dec.file.split(", "))
    if locked and dec.version and r.source == "pypi":
        if r.version and r.version.split("+")[0] != dec.version.split("+")[0]:
            notes.append(
                f"{r.name}: installed {r.version}, uv.lock pins {dec.version}; using the lock"
            )
        r.version = dec.version
        r.spec = f"{r.name}=={dec.version.split('+')[0]}"
