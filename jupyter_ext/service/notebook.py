"""What the Run dialog shows of a notebook before it runs: its parameters, the dependencies
detected, and the files that would be uploaded (with what was left out, and why)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_ext.service.core import OffloadService, jsonable
from jupyter_ext.service.errors import ApiError
from jupyter_ext.service.paths import api_path_of, resolve_notebook
from offload.errors import OffloadError
from offload.notebook import declared_parameters, parameters_cell, read_notebook
from offload.snapshot.bundle import build_bundle
from offload.snapshot.deps import load_environment, snapshot

_PACKAGE_KEYS = ("name", "version", "spec", "optional", "reasons", "source")


def warm(service: OffloadService) -> None:
    """The Run dialog's first-time work, done once at server start (in the thread pool): the
    index of installed distributions that dependency detection reads, and backend discovery
    (entry points, backend modules, machine lists). The first dialog then opens as fast as the
    next ones. Failures are left for the dialog to report."""
    try:
        load_environment()
    except Exception:  # noqa: BLE001 (warming only; the dialog's own call reports the error)
        pass
    try:
        service.backends()
    except Exception:  # noqa: BLE001
        pass


def inspect(service: OffloadService, api_path: str) -> dict[str, Any]:
    """Parameters, detected dependencies, files and their sizes; a step that fails adds a note."""
    path = resolve_notebook(service.root_dir, api_path)
    if path.suffix != ".ipynb" or not path.is_file():
        raise ApiError(400, f"path {api_path!r} is not a notebook", field="path", hint="pick a .ipynb file")
    nb = read_notebook(path)
    params = declared_parameters(nb)
    result: dict[str, Any] = {
        "path": api_path,
        "has_parameters_cell": parameters_cell(nb) is not None,
        "parameters": [{"name": k, **jsonable(v)} for k, v in params.items()],
        "deps": None,
        "files": [],
        "excluded": [],
        "total_bytes": 0,
        "notes": [],
    }
    local_files: list[str] = []
    root = path.parent
    try:
        env = snapshot(path, server_root=service.root_dir)
        env_d = env.to_dict()
        root = Path(env.project_root or path.parent)
        result["deps"] = {
            "python": env_d.get("python"),
            "packages": [{k: r.get(k) for k in _PACKAGE_KEYS} for r in env_d.get("requirements") or []
                         if isinstance(r, dict)],
            "notes": env_d.get("notes") or [],
            "local_modules": env_d.get("local_modules") or [],
            "unresolved": env_d.get("unresolved") or [],
            "source": env_d.get("source"),
            "env_hash": env.env_hash,
            "project_root": api_path_of(service.root_dir, str(root)),
            "data_files": env_d.get("data_files") or [],
            "kernel": env_d.get("kernel") or {},
        }
        local_files = [str(p) for p in env.local_files] + env.shipped_data()
        result["notes"] += env.data_warnings()
    except OffloadError as exc:
        result["notes"].append(f"dependency detection failed: {exc}")
    try:
        bundle = build_bundle(root, path, modules=local_files)
        result["files"] = [{"path": e.path, "size": e.size}
                           for e in sorted(bundle.files.values(), key=lambda e: (-e.size, e.path))]
        result["excluded"] = [{"path": p, "why": why} for p, why in bundle.excluded]
        result["total_bytes"] = bundle.total_bytes
    except OffloadError as exc:
        result["notes"].append(f"cannot list the files to upload: {exc}")
    return result
