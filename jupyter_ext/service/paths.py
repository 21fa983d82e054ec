"""Notebook paths: API paths (relative to the server root, as the contents manager shows them)
to OS paths and back. Nothing outside the root is ever read or submitted."""

from __future__ import annotations

from pathlib import Path

from jupyter_ext.service.errors import ApiError

_OUTSIDE_HINT = "give a path relative to the folder JupyterLab shows"


def resolve_notebook(root_dir: str, api_path: str, *, field: str = "path", must_exist: bool = True) -> Path:
    """API path -> OS path.

    Refuses ``//`` paths, ``..``, drive letters and symlinks that lead out of the root: the server
    must never read or submit a file the user could not open in JupyterLab. A leading ``/`` means
    the root, as in the contents API; an absolute OS path is taken as such when no file has that
    path under the root (inside the root it is used, outside it is a 400, not a 404).
    """
    if not isinstance(api_path, str) or not api_path.strip():
        raise ApiError(400, f"field {field!r} must be a notebook path relative to the server root", field=field)
    rel = api_path.strip().replace("\\", "/").lstrip("/") if not api_path.startswith("//") else api_path
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if api_path.startswith("//") or ".." in parts or "\x00" in rel or (parts and ":" in parts[0]):
        raise ApiError(400, f"{field} {api_path!r} is outside the server root", field=field, hint=_OUTSIDE_HINT)
    root = Path(root_dir).resolve()
    path = (root / "/".join(parts)).resolve()
    if path != root and root not in path.parents:
        raise ApiError(400, f"{field} {api_path!r} is outside the server root", field=field, hint=_OUTSIDE_HINT)
    if must_exist and not path.exists():
        if api_path.startswith("/"):  # perhaps an OS path, as pasted from a terminal
            os_path = Path(api_path).resolve()
            if os_path == root or root in os_path.parents:
                return os_path if os_path.exists() else _missing(field, api_path)
            if os_path.exists():
                raise ApiError(400, f"{field} {api_path!r} is outside the server root", field=field,
                               hint=_OUTSIDE_HINT)
        _missing(field, api_path)
    return path


def _missing(field: str, api_path: str) -> Path:
    raise ApiError(404, f"{field} {api_path!r} not found", field=field)


def api_path_of(root_dir: str, os_path: str | None) -> str | None:
    """OS path -> API path when it lies under the root (for the UI to open it), else None."""
    if not os_path:
        return None
    try:
        return Path(os_path).resolve().relative_to(Path(root_dir).resolve()).as_posix()
    except ValueError:
        return None
