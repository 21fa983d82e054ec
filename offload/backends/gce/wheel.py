"""Ship the client's own jupyter-offload to the VM as a wheel in the store.

The VM must run the same code as the client (the runner and the store layout evolve together),
including a development checkout that was never released. So the client packs the ``offload``
package it is running into a pure-Python wheel, deterministically (fixed timestamps, sorted
entries): unchanged code gives the same bytes, the same content address, and no upload.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import re
import zipfile
from pathlib import Path

from offload._version import __version__
from offload.store import Store, layout

DIST = "jupyter-offload"
_EPOCH = (2020, 1, 1, 0, 0, 0)
_cache: dict[str, tuple[str, bytes]] = {}


def _dist_text(name: str) -> str | None:
    try:
        return importlib.metadata.distribution(DIST).read_text(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def build_wheel() -> tuple[str, bytes]:
    """(file name, bytes) of a wheel holding the running ``offload`` package."""
    pkg = Path(__file__).resolve().parents[2]  # offload/backends/gce/wheel.py -> offload/
    version = __version__
    files: list[tuple[str, bytes]] = []
    for path in sorted(pkg.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            files.append((f"offload/{path.relative_to(pkg).as_posix()}", path.read_bytes()))
    info = f"jupyter_offload-{version}.dist-info"
    metadata = _dist_text("METADATA") or f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {version}\n"
    entry_points = _dist_text("entry_points.txt") or (
        "[offload.backends]\ngce = offload.backends.gce:GceBackend\nlocal = offload.backends.local:LocalBackend\n"
    )
    files += [
        (f"{info}/METADATA", metadata.encode()),
        (f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: offload\nRoot-Is-Purelib: true\nTag: py3-none-any\n"),
        (f"{info}/entry_points.txt", entry_points.encode()),
    ]
    record = []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            zi = zipfile.ZipInfo(name, _EPOCH)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        zi = zipfile.ZipInfo(f"{info}/RECORD", _EPOCH)
        zi.external_attr = 0o644 << 16
        zf.writestr(zi, "\n".join(record) + "\n")
    return f"jupyter_offload-{version}-py3-none-any.whl", buf.getvalue()


def ship_wheel(store: Store) -> str:
    """Store key of the client's wheel, uploading it only when the store lacks these bytes."""
    name, data = build_wheel()
    sha = hashlib.sha256(data).hexdigest()
    key = layout.wheel_key(sha[:20], name)
    cached = _cache.get(store.url)
    if cached and cached[0] == key:
        return key
    if not store.exists(key):
        store.put_bytes(key, data)
    _cache[store.url] = (key, data)
    return key


# What the runner needs on a VM: the package's dependencies without the Jupyter server and lab
# (the client's UI, never used by a runner), with the store's gs:// driver.
_NOT_ON_VMS = {"jupyter-server", "jupyterlab"}
_VM_EXTRA = ("gcsfs>=2024.2", "google-auth>=2.20")


def _name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def runner_requirements() -> list[str]:
    """Pinned requirements of the VM's runner environment: each at the version the client runs
    (the combination the user tested), or the package's own range where the client lacks it."""
    out = []
    reqs = _declared() or [r for r in (importlib.metadata.requires(DIST) or []) if "extra ==" not in r]
    for req in [*reqs, *_VM_EXTRA]:
        name = _name(req)
        if name in _NOT_ON_VMS or any(_name(o) == name for o in out):
            continue
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(req.split(";")[0].strip())
    return out


def _declared() -> list[str]:
    """The dependencies of the source tree being shipped (a development checkout's pyproject.toml
    can be newer than the metadata of its editable install); empty when not run from one."""
    pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
    try:
        import tomllib
    except ImportError:  # Python 3.10: the installed metadata is the only record
        return []
    try:
        project = tomllib.loads(pyproject.read_text()).get("project", {})
    except (OSError, ValueError):
        return []
    return list(project.get("dependencies", [])) if project.get("name") == DIST else []


def uv_version() -> str:
    """The client's uv version: the VM fetches the same one (any version when the client has none)."""
    try:
        return importlib.metadata.version("uv")
    except importlib.metadata.PackageNotFoundError:
        return ""
