"""What the REST API does, as plain synchronous functions over the ``offload`` core.

The handlers run these in a thread executor (store and cloud calls block); keeping them free of
tornado makes them testable on their own and keeps the one-way import rule obvious:
``jupyter_ext -> offload``. Every bad input raises :class:`ApiError` (status, field, hint) or an
``OffloadError`` that :func:`error_status` maps to a specific HTTP status.
"""

from __future__ import annotations

import base64
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from offload.errors import (
    BackendError,
    JobNotFound,
    NotebookError,
    OffloadError,
    ParameterError,
    StoreError,
    UsageError,
)
from offload.spec import ACTIVE_STATES, FINAL_STATES, JobSpec, check_job_id, new_job_id
from offload.store import Store

IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
MAX_TEXT = 2000  # characters of a cell's text output shown in compare


class ApiError(Exception):
    """An error with its HTTP status and, for bad input, the request field it is about."""

    def __init__(self, status: int, message: str, *, field: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field, self.hint = status, message, field, hint

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "field": self.field, "hint": self.hint, "status": self.status}


def error_status(exc: OffloadError) -> int:
    """Map the core's error classes to HTTP: the caller's fault is 4xx, the backend's 502/503."""
    if isinstance(exc, JobNotFound):
        return 404
    if isinstance(exc, (ParameterError, NotebookError, UsageError)):
        return 400
    if isinstance(exc, StoreError):
        return 503
    if isinstance(exc, BackendError):
        return 502
    return 400


def error_field(exc: OffloadError) -> str | None:
    if isinstance(exc, ParameterError):
        return "parameters"
    if isinstance(exc, NotebookError):
        return "path"
    return None


# ---------------------------------------------------------------------------------------------
# input checks


def require(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    """Field ``name`` of a JSON body, of type ``kind``; a 400 naming the field otherwise."""
    if name not in body or body[name] is None:
        if optional:
            return None
        raise ApiError(400, f"missing field {name!r}", field=name)
    value = body[name]
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ApiError(400, f"field {name!r} must be a number, not a boolean", field=name)
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ApiError(400, f"field {name!r} must be {names}, got {type(value).__name__}", field=name)
    return value


def job_id_arg(job_id: str) -> str:
    try:
        return check_job_id(job_id)
    except UsageError as exc:
        raise ApiError(400, exc.message, field="job_id", hint=exc.hint) from None


def resolve_notebook(root_dir: str, api_path: str, *, field: str = "path", must_exist: bool = True) -> Path:
    """API path (relative to the server root, as the contents manager sees it) -> OS path.

    Refuses absolute paths, ``..`` and symlinks that lead out of the root: the server must never
    read or submit a file the user could not open in JupyterLab.
    """
    if not isinstance(api_path, str) or not api_path.strip():
        raise ApiError(400, f"field {field!r} must be a notebook path relative to the server root", field=field)
    rel = api_path.strip().replace("\\", "/").lstrip("/") if not api_path.startswith("//") else api_path
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if api_path.startswith("//") or ".." in parts or "\x00" in rel or (parts and ":" in parts[0]):
        raise ApiError(400, f"{field} {api_path!r} is outside the server root", field=field,
                       hint="give a path relative to the folder JupyterLab shows")
    root = Path(root_dir).resolve()
    path = (root / "/".join(parts)).resolve()
    if path != root and root not in path.parents:
        raise ApiError(400, f"{field} {api_path!r} is outside the server root", field=field,
                       hint="give a path relative to the folder JupyterLab shows")
    if must_exist and not path.exists():
        raise ApiError(404, f"{field} {api_path!r} not found", field=field)
    return path


def api_path_of(root_dir: str, os_path: str | None) -> str | None:
    """OS path -> API path when it lies under the root (for the UI to open it), else None."""
    if not os_path:
        return None
    try:
        return Path(os_path).resolve().relative_to(Path(root_dir).resolve()).as_posix()
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# the service


class OffloadService:
    """One per server: the store, configured backends and limits, with the thread-side calls."""

    def __init__(
        self,
        *,
        root_dir: str,
        store_url: str | None = None,
        backends: list[str] | None = None,
        backend_options: dict[str, dict[str, Any]] | None = None,
        default_backend: str | None = None,
        default_machine: str | None = None,
        max_runtime: str = "4h",
        max_active_jobs: int = 0,
        budget: float | None = None,
    ):
        self.root_dir = str(Path(root_dir).resolve())
        self.store = Store(store_url)
        self.backend_names = backends
        self.backend_options = backend_options or {}
        self.default_backend = default_backend
        self.default_machine = default_machine
        self.max_runtime = max_runtime
        self.max_active_jobs = max_active_jobs
        self.budget = budget
        self._thumbs: dict[str, tuple[str, bytes] | None] = {}

    # backends and machines ------------------------------------------------------------------
    def _enabled_backends(self) -> list[str]:
        from offload.backends.base import available_backends

        names = sorted(available_backends())
        if self.backend_names:
            names = [n for n in self.backend_names if n in names]
        return names

    def _options(self, name: str) -> dict[str, Any]:
        from offload.config import backend_options

        return {**backend_options(name), **self.backend_options.get(name, {})}

    def _default_backend(self) -> str:
        if self.default_backend:
            return self.default_backend
        from offload.config import default_backend

        return default_backend()

    def backends(self) -> dict[str, Any]:
        """Every enabled backend with its machines; a backend that cannot load says why."""
        from offload.backends.base import get_backend

        out = []
        for name in self._enabled_backends():
            entry: dict[str, Any] = {"name": name, "available": True, "machines": [], "error": None}
            try:
                be = get_backend(name, self.store, **self._options(name))
                entry["machines"] = [m.to_dict() for m in be.machines()]
            except OffloadError as exc:
                entry.update(available=False, error=str(exc))
            except Exception as exc:  # a third-party backend failing must not hide the others
                entry.update(available=False, error=f"{type(exc).__name__}: {exc}")
            out.append(entry)
        return {
            "backends": out,
            "default_backend": self._default_backend(),
            "default_machine": self.default_machine,
            "max_runtime": self.max_runtime,
            "budget": self.budget,
            "store": self.store.url,
        }

    # notebook inspection -------------------------------------------------------------------
    def inspect(self, api_path: str) -> dict[str, Any]:
        """What the Run dialog shows: parameters, detected dependencies, files and their sizes."""
        from offload.notebook import declared_parameters, parameters_cell, read_notebook

        path = resolve_notebook(self.root_dir, api_path)
        if path.suffix != ".ipynb" or not path.is_file():
            raise ApiError(400, f"path {api_path!r} is not a notebook", field="path", hint="pick a .ipynb file")
        nb = read_notebook(path)
        params = declared_parameters(nb)
        result: dict[str, Any] = {
            "path": api_path,
            "has_parameters_cell": parameters_cell(nb) is not None,
            "parameters": [{"name": k, **_jsonable(v)} for k, v in params.items()],
            "deps": None,
            "files": [],
            "excluded": [],
            "total_bytes": 0,
            "notes": [],
        }
        local_files: list[str] = []
        try:
            from offload.snapshot.deps import snapshot

            env = snapshot(path, project_root=path.parent)
            env_d = env.to_dict() if hasattr(env, "to_dict") else dict(env)
            result["deps"] = {
                "python": env_d.get("python"),
                "packages": [
                    {k: r.get(k) for k in ("name", "version", "spec", "optional", "reasons", "source")}
                    for r in env_d.get("requirements") or [] if isinstance(r, dict)
                ],
                "notes": env_d.get("notes") or [],
                "local_modules": env_d.get("local_modules") or [],
                "unresolved": env_d.get("unresolved") or [],
                "source": env_d.get("source"),
                "env_hash": getattr(env, "env_hash", None) or env_d.get("env_hash"),
            }
            local_files = [str(p) for p in getattr(env, "local_files", []) or []]
        except ImportError:
            result["notes"].append("dependency detection is not available in this version")
        except OffloadError as exc:
            result["notes"].append(f"dependency detection failed: {exc}")
        try:
            from offload.snapshot.bundle import build_bundle

            bundle = build_bundle(path.parent, path, include=local_files)
            result["files"] = [
                {"path": e.path, "size": e.size} for e in sorted(bundle.files.values(), key=lambda e: (-e.size, e.path))
            ]
            result["excluded"] = [{"path": p, "why": why} for p, why in bundle.excluded]
            result["total_bytes"] = bundle.total_bytes
        except OffloadError as exc:
            result["notes"].append(f"cannot list the files to upload: {exc}")
        return result

    # submit ---------------------------------------------------------------------------------
    def submit(self, body: dict[str, Any], *, active_count: int = 0) -> dict[str, Any]:
        from offload.jobs import submit

        api_path = require(body, "path", str)
        path = resolve_notebook(self.root_dir, api_path)
        if path.suffix != ".ipynb":
            raise ApiError(400, f"path {api_path!r} is not a notebook", field="path")
        parameters = require(body, "parameters", dict, optional=True) or {}
        backend = require(body, "backend", str, optional=True) or self._default_backend()
        if backend not in self._enabled_backends():
            raise ApiError(400, f"unknown backend {backend!r}", field="backend",
                           hint=f"enabled backends: {', '.join(self._enabled_backends()) or 'none'}")
        machine = require(body, "machine", str, optional=True) or None
        gpu = require(body, "gpu", str, optional=True) or None
        if machine and "+" in machine and not gpu:  # a machine offer "n1-standard-8+t4": shape + GPU
            machine, gpu = machine.split("+", 1)
        gpu_count = require(body, "gpu_count", int, optional=True) or 1
        spot = require(body, "spot", bool, optional=True) or False
        max_runtime = require(body, "max_runtime", (str, int), optional=True) or self.max_runtime
        env = require(body, "env", str, optional=True) or "kernel"
        data = require(body, "data", list, optional=True) or []
        include = require(body, "include", list, optional=True) or []
        api_dir = "/".join(api_path.strip("/").split("/")[:-1])
        for fname, items in (("data", data), ("include", include)):
            for item in items:
                if not isinstance(item, str):
                    raise ApiError(400, f"field {fname!r} must be a list of paths", field=fname)
                # relative to the notebook's folder, and still inside the server root
                resolve_notebook(self.root_dir, f"{api_dir}/{item}" if api_dir else item, field=fname)
        from offload.spec import parse_duration

        try:
            parse_duration(max_runtime)
        except UsageError as exc:
            raise ApiError(400, exc.message, field="max_runtime", hint=exc.hint) from None
        if self.max_active_jobs and active_count >= self.max_active_jobs:
            raise ApiError(409, f"{active_count} jobs are already running (limit {self.max_active_jobs})",
                           hint="wait for one to finish or cancel one")
        labels = {"source": "jupyterlab"}
        job = submit(
            path, parameters=parameters, backend=backend, gpu=gpu, gpu_count=gpu_count, machine=machine,
            spot=spot, max_runtime=max_runtime, data=[path.parent / d for d in data],
            include=[path.parent / i for i in include], env=env, labels=labels,
            backend_options_=self.backend_options.get(backend), store=self.store,
            project_root=path.parent,
        )
        return self.job_detail(job.id)

    # jobs -----------------------------------------------------------------------------------
    def _job(self, job_id: str):
        from offload.jobs import Job

        job_id_arg(job_id)
        try:
            return Job(job_id, store=self.store)
        except JobNotFound:
            raise
        except UsageError as exc:  # ambiguous or malformed reference
            raise ApiError(404, f"no job {job_id!r}", field="job_id", hint=exc.hint) from None

    def summary_of(self, job) -> dict[str, Any]:
        """One row of the jobs panel: what a user scans for (state, progress, time, cost, metrics)."""
        s = job.summary()
        st = job.status
        spec = job.spec
        s.update(
            source_path=api_path_of(self.root_dir, spec.source_path),
            progress={"cell": st.get("cell"), "n_cells": st.get("n_cells")},
            elapsed_s=_elapsed(st, spec),
            cost=st.get("cost"),
            heartbeat=st.get("heartbeat"),
            stale_heartbeat_s=st.get("stale_heartbeat_s"),
            resources={"gpu": spec.resources.gpu, "machine": spec.resources.machine, "spot": spec.resources.spot,
                       "max_runtime_s": spec.resources.max_runtime_s},
            parent=spec.parent,
        )
        return s

    def job_summary(self, job_id: str) -> dict[str, Any]:
        return self.summary_of(self._job(job_id))

    def job_detail(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        out = self.summary_of(job)
        st = job.status
        spec = job.spec
        out.update(
            status=_jsonable(st),
            spec=spec.to_dict(),
            env=self.store.get_json(Store.job_key(job.id, "env.json"), None),
            handle=job.handle,
            zones_tried=_zones_tried(st, job.handle),
            error=st.get("error"),
            has_output=self.store.exists(Store.job_key(job.id, "output.ipynb")),
            outputs=_safe(job.outputs, []),
            cli=cli_command(spec, self.root_dir),
        )
        return out

    def list_jobs(self, *, notebook: str | None = None, state: str | None = None, limit: int | None = None,
                  refresh: bool = False) -> list[dict[str, Any]]:
        from offload.jobs import list_jobs

        rows = list_jobs(store=self.store, limit=limit, refresh=refresh)
        out = []
        for row in rows:
            row = _jsonable(dict(row))
            row["source_path"] = api_path_of(self.root_dir, row.get("source_path"))
            out.append(row)
        return filter_rows(out, notebook=notebook, state=state)

    def logs(self, job_id: str, cursor: int = 0) -> dict[str, Any]:
        """Log text after ``cursor`` (a chunk sequence number): polling that survives any proxy."""
        job = self._job(job_id)
        if cursor < 0:
            raise ApiError(400, "cursor must be >= 0", field="cursor")
        texts, nxt = [], cursor
        for n, text in self.store.iter_log_chunks(job.id, cursor):
            texts.append(text)
            nxt = n + 1
        state = job.status.get("state")
        return {"text": "".join(texts), "cursor": nxt, "state": state, "done": state in FINAL_STATES}

    def metrics(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        records = job.metrics
        return {"records": _jsonable(records), "last": _jsonable(job.last_metrics())}

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        if not job.cancel():
            raise ApiError(409, f"job {job.id} has already ended ({job.state})", hint="nothing to cancel")
        return {"id": job.id, "cancel_requested": True, "state": job.state}

    def rerun(self, job_id: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new job from the same bundle (same files, same environment), optionally new params.

        Reusing the bundle makes "rerun" exact even when the notebook has changed since; changed
        parameters are checked against the bundle's own ``parameters`` cell.
        """
        from offload.backends.base import get_backend
        from offload.jobs import Job
        from offload.notebook.params import check_parameters

        old = self._job(job_id)
        spec = old.spec
        params = dict(spec.parameters)
        if parameters:
            nb = self._bundle_notebook(spec)
            check_parameters(nb, parameters, notebook=spec.notebook)
            params.update(parameters)
        new = JobSpec.from_dict({**spec.to_dict(), "id": new_job_id(), "parameters": params, "parent": spec.id,
                                 "created_at": time.time(), "attempt": 0}).validate()
        be = get_backend(new.backend, self.store, **self._options(new.backend))
        be.validate(new)
        self.store.put_json(Store.job_key(new.id, "spec.json"), new.to_dict())
        env = self.store.get_json(Store.job_key(spec.id, "env.json"), None)
        if env is not None:
            self.store.put_json(Store.job_key(new.id, "env.json"), env)
        handle = be.launch(new)
        self.store.put_json(Store.job_key(new.id, "handle.json"), handle)
        Job(new.id, store=self.store, _spec=new).refresh()
        return self.job_detail(new.id)

    def _bundle_notebook(self, spec: JobSpec):
        import nbformat

        manifest = self.store.get_json(f"bundles/{spec.bundle_id}.json", None)
        entry = (manifest or {}).get("files", {}).get(spec.notebook)
        if not entry:
            raise ApiError(409, f"the bundle of job {spec.id} is no longer in the store", hint="run the notebook again")
        return nbformat.reads(self.store.get_text(Store.blob_key(entry["sha256"])), as_version=4)

    def executed_notebook(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        try:
            import json

            return json.loads(self.store.get_text(Store.job_key(job.id, "output.ipynb")))
        except KeyError:
            raise ApiError(409, f"job {job.id} has no executed notebook yet ({job.state})",
                           hint="it appears once the job starts running") from None

    def merge_plan(self, job_id: str, cells: list[Any]) -> dict[str, Any]:
        """Outputs to copy into the open notebook, given its cells as they are now.

        The browser applies the plan through the notebook model (undo works, no "file changed on
        disk"): a cell is updated only if its id and source hash still match what was submitted.
        """
        import nbformat

        from offload.notebook import cell_hash
        from offload.notebook.merge import SKIP_TAGS, provenance_of

        job = self._job(job_id)
        if job.state in ACTIVE_STATES:
            raise ApiError(409, f"job {job.id} is still {job.state}", hint="merge once it has finished")
        executed = job.output_notebook
        if executed is None:
            raise ApiError(409, f"job {job.id} has no executed notebook ({job.state})")
        current: dict[str, str] = {}
        for i, c in enumerate(cells):
            if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not isinstance(c.get("source"), str):
                raise ApiError(400, f"cells[{i}] must be an object with string 'id' and 'source'", field="cells")
            current[c["id"]] = c["source"]
        plan: dict[str, Any] = {"job_id": job.id, "state": job.state, "merged": [], "edited": [], "deleted": []}
        hashes = job.spec.cell_hashes
        for cell in executed.cells:
            cid = cell.get("id")
            tags = set(cell.get("metadata", {}).get("tags", []))
            if not cid or tags & SKIP_TAGS or cell.cell_type != "code":
                continue
            if cid not in current:
                plan["deleted"].append(cid)
            elif hashes.get(cid) is None or cell_hash(current[cid]) != hashes[cid]:
                plan["edited"].append(cid)
            else:
                plan["merged"].append({
                    "id": cid,
                    "outputs": nbformat.from_dict(cell.get("outputs", [])),
                    "execution_count": cell.get("execution_count"),
                })
        plan["provenance"] = _jsonable(provenance_of(job))
        return _jsonable(plan)

    def merge_file(self, job_id: str, api_path: str | None) -> dict[str, Any]:
        """Merge into the notebook file on disk (when it is not open in the browser)."""
        job = self._job(job_id)
        if job.state in ACTIVE_STATES:
            raise ApiError(409, f"job {job.id} is still {job.state}", hint="merge once it has finished")
        target = resolve_notebook(self.root_dir, api_path) if api_path else None
        if target is None:
            src = job.spec.source_path
            if not src or api_path_of(self.root_dir, src) is None:
                raise ApiError(400, "the job's source notebook is outside the server root", field="path",
                               hint="give the notebook to merge into")
            target = Path(src)
        return job.merge(into=target).to_dict() | {"path": api_path_of(self.root_dir, str(target))}

    # gallery --------------------------------------------------------------------------------
    def thumbnail(self, job_id: str) -> tuple[str, bytes] | None:
        """First image output of the executed notebook (cached once the job has ended)."""
        job_id_arg(job_id)
        if job_id in self._thumbs:
            return self._thumbs[job_id]
        try:
            import json

            nb = json.loads(self.store.get_text(Store.job_key(job_id, "output.ipynb")))
        except KeyError:
            return None
        except ValueError:
            return None
        found = _first_image(nb)
        status = self.store.get_json(Store.job_key(job_id, "status.json"), None) or {}
        if status.get("state") in FINAL_STATES:
            self._thumbs[job_id] = found
        return found

    def gallery(self, rows: list[dict[str, Any]] | None = None, *, notebook: str | None = None,
                state: str | None = None, sort: str | None = None, order: str = "desc") -> dict[str, Any]:
        """Cards of executed notebooks; ``rows`` are the watcher's cached job rows when given."""
        if rows is None:
            rows = self.list_jobs()
        rows = [r for r in filter_rows(rows, notebook=notebook, state=state) if r.get("kind") in (None, "notebook")]
        cards = []
        notebooks, metric_names = set(), set()
        for r in rows:
            if r.get("state") not in FINAL_STATES and r.get("state") != "running":
                continue
            has_output = self.store.exists(Store.job_key(r["id"], "output.ipynb"))
            metrics = r.get("metrics") or {}
            metric_names.update(k for k, v in metrics.items() if isinstance(v, (int, float)))
            notebooks.add(r.get("notebook"))
            cards.append({
                "id": r["id"], "notebook": r.get("notebook"), "source_path": r.get("source_path"),
                "state": r.get("state"), "parameters": r.get("parameters") or {}, "metrics": metrics,
                "cost": r.get("cost"), "created_at": r.get("created_at"), "finished_at": r.get("finished_at"),
                "backend": r.get("backend"), "has_output": has_output,
                "thumbnail": f"jobs/{r['id']}/thumbnail" if has_output and self.thumbnail(r["id"]) else None,
            })
        if sort:
            if sort not in ("created_at", "cost") and sort not in metric_names:
                raise ApiError(400, f"cannot sort by {sort!r}", field="sort",
                               hint=f"sort by created_at, cost or a metric: {', '.join(sorted(metric_names)) or 'none logged yet'}")
            def key(c: dict[str, Any]) -> tuple[int, float]:
                v = c["metrics"].get(sort) if sort in metric_names else c.get(sort)
                return (0, float(v)) if isinstance(v, (int, float)) else (1, 0.0)
            with_v = sorted((c for c in cards if key(c)[0] == 0), key=lambda c: key(c)[1], reverse=order != "asc")
            cards = with_v + [c for c in cards if key(c)[0] == 1]
        return {"cards": cards, "notebooks": sorted(n for n in notebooks if n), "metrics": sorted(metric_names)}

    def compare(self, a: str, b: str) -> dict[str, Any]:
        ja, jb = self._job(a), self._job(b)
        sa, sb = self.summary_of(ja), self.summary_of(jb)
        pa, pb = ja.spec.parameters, jb.spec.parameters
        ma, mb = sa.get("metrics") or {}, sb.get("metrics") or {}
        params = [{"name": k, "a": pa.get(k), "b": pb.get(k), "a_default": k not in pa, "b_default": k not in pb,
                   "same": (k in pa, pa.get(k)) == (k in pb, pb.get(k))} for k in sorted(set(pa) | set(pb))]
        metrics = [{"name": k, "a": ma.get(k), "b": mb.get(k),
                    "delta": (mb[k] - ma[k]) if isinstance(ma.get(k), (int, float)) and isinstance(mb.get(k), (int, float)) else None}
                   for k in sorted(set(ma) | set(mb))]
        na, nb_ = ja.output_notebook, jb.output_notebook
        outputs = []
        if na is not None and nb_ is not None:
            cells_b = {c.get("id"): c for c in nb_.cells if c.get("id")}
            for c in na.cells:
                if c.cell_type != "code" or not c.get("id") or c.get("id") not in cells_b:
                    continue
                ta, tb = _text_of(c), _text_of(cells_b[c["id"]])
                ia, ib = _first_image({"cells": [c]}), _first_image({"cells": [cells_b[c["id"]]]})
                if not (ta or tb or ia or ib):
                    continue
                outputs.append({
                    "cell_id": c["id"], "source": c.source[:300], "a_text": ta, "b_text": tb, "same": ta == tb,
                    "a_image": _data_uri(ia), "b_image": _data_uri(ib),
                })
        return _jsonable({"a": sa, "b": sb, "parameters": params, "metrics": metrics, "outputs": outputs})


# ---------------------------------------------------------------------------------------------
# helpers


def filter_rows(rows: list[dict[str, Any]], *, notebook: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
    from offload.spec import STATES

    if state and state not in STATES:
        raise ApiError(400, f"unknown state {state!r}", field="state", hint=f"one of {', '.join(STATES)}")
    return [r for r in rows if (not notebook or r.get("source_path") == notebook or r.get("notebook") == notebook)
            and (not state or r.get("state") == state)]


def cli_command(spec: JobSpec, root_dir: str) -> str:
    """The equivalent `offload run` command line, for "Copy CLI command"."""
    nb = api_path_of(root_dir, spec.source_path) or spec.source_path or spec.notebook
    args = ["offload", "run", nb]
    if spec.backend:
        args += ["--backend", spec.backend]
    r = spec.resources
    if r.machine:
        args += ["--machine", r.machine]
    if r.gpu:
        args += ["--gpu", r.gpu if r.gpu_count == 1 else f"{r.gpu}:{r.gpu_count}"]
    if r.spot:
        args.append("--spot")
    if r.max_runtime_s:
        args += ["--max-runtime", _fmt_duration(r.max_runtime_s)]
    for d in spec.data:
        args += ["--data", d.path]
    for k, v in spec.parameters.items():
        import json

        args += ["-p", f"{k}={v if isinstance(v, str) else json.dumps(v)}"]
    return " ".join(shlex.quote(a) for a in args)


def _fmt_duration(s: int) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % n == 0:
            return f"{s // n}{unit}"
    return f"{s}s"


def _elapsed(st: dict[str, Any], spec: JobSpec) -> float | None:
    start = st.get("started_at")
    if not start:
        return None
    end = st.get("finished_at") or (time.time() if st.get("state") in ACTIVE_STATES else None)
    return round(end - start, 1) if end else None


def _zones_tried(st: dict[str, Any], handle: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Where the backend tried to get capacity (GCE zone failover), for the job detail."""
    for src in (handle or {}, st.get("backend") or {}, st):
        z = src.get("zones_tried") or src.get("attempts")
        if isinstance(z, list):
            return [x if isinstance(x, dict) else {"zone": str(x)} for x in z]
    zone = (handle or {}).get("zone")
    return [{"zone": zone, "result": "launched"}] if zone else []


def _first_image(nb: dict[str, Any]) -> tuple[str, bytes] | None:
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            data = out.get("data") or {}
            for mime in IMAGE_MIMES:
                if mime in data:
                    raw = data[mime]
                    raw = "".join(raw) if isinstance(raw, list) else raw
                    if mime == "image/svg+xml":
                        return mime, raw.encode()
                    try:
                        return mime, base64.b64decode(raw)
                    except (ValueError, TypeError):
                        continue
    return None


def _data_uri(img: tuple[str, bytes] | None) -> str | None:
    if img is None:
        return None
    return f"data:{img[0]};base64,{base64.b64encode(img[1]).decode()}"


def _text_of(cell: Any) -> str:
    parts = []
    for out in cell.get("outputs", []) or []:
        if out.get("output_type") == "stream":
            t = out.get("text", "")
        elif out.get("output_type") == "error":
            t = f"{out.get('ename')}: {out.get('evalue')}"
        else:
            data = out.get("data") or {}
            t = "" if any(m in data for m in IMAGE_MIMES) else data.get("text/plain", "")
        parts.append("".join(t) if isinstance(t, list) else str(t))
    text = "".join(parts)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "\n..."


def _safe(fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except (OffloadError, OSError, KeyError):
        return default


def _jsonable(obj: Any) -> Any:
    """Round-trip through JSON rules: NaN/inf metrics become None, tuples lists, keys strings."""
    import json
    import math

    def clean(o: Any) -> Any:
        if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
            return None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, (str, int, float, bool)) or o is None:
            return o
        return json.loads(json.dumps(o, default=str))

    return clean(obj)
