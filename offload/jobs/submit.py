"""Stages 1-3 from the client: snapshot a notebook, stage its bundle, launch it; and rerun a job.

Both end in :func:`offload.jobs.launch.launch_spec`, the one writer of a job's spec. Every
check that can fail runs before anything is uploaded or launched, so bad input never leaves a
half-written job behind.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import nbformat

from offload._version import __version__
from offload.backends.base import get_backend
from offload.config import backend_options, backend_store, default_backend
from offload.errors import ConflictError, UsageError
from offload.jobs import recording
from offload.jobs.budget import enforce as enforce_budget
from offload.jobs.budget import parse_budget
from offload.jobs.job import Job
from offload.jobs.launch import launch_spec
from offload.notebook import (
    cell_hash,
    check_parameters,
    ensure_cell_ids,
    read_notebook,
    with_cell_ids,
)
from offload.snapshot.bundle import build_bundle, stage
from offload.snapshot.deps import snapshot
from offload.spec import (
    DataMount,
    JobSpec,
    Resources,
    duration_field,
    new_job_id,
    parse_duration,
    parse_keep_alive,
)
from offload.store import Store, as_store, layout

log = logging.getLogger("offload")

IN_MEMORY_NAME = "notebook.ipynb"  # the bundle path of a notebook submitted as an object


def submit(
    notebook: str | os.PathLike | nbformat.NotebookNode,
    *,
    parameters: dict[str, Any] | None = None,
    backend: str | None = None,
    gpu: str | None = None,
    gpu_count: int = 1,
    machine: str | None = None,
    spot: bool = False,
    max_runtime: str | int | None = None,
    keep_alive: str | int | None = None,
    cpus: int | None = None,
    memory_gb: float | None = None,
    data: list[str | os.PathLike] = (),
    include: list[str | os.PathLike] = (),
    env: str = "kernel",
    kind: str = "notebook",
    labels: dict[str, str] | None = None,
    backend_options_: dict[str, Any] | None = None,
    store: Store | str | None = None,
    project_root: str | os.PathLike | None = None,
    name: str | None = None,
    python: str | None = None,
    retries: int = 2,
    parent: str | None = None,
    allow_unresolved: bool = False,
    allow_secrets: list[str | os.PathLike] = (),
    env_spec: Any = None,
    on_progress: Any = None,
    server_root: str | os.PathLike | None = None,
    notify: str | None = None,
    budget: float | str | None = None,
    cap_runtime_to_budget: bool = False,
    stop_if_idle: str | int | None = None,
    idle_threshold: float = 5.0,
    wait_for_capacity: str | int | None = None,
) -> Job:
    """Snapshot, stage and launch ``notebook``; return the :class:`Job` at once.

    ``notebook`` is a path, or a notebook object (``nbformat.NotebookNode``) that ships from
    memory as ``name`` (default ``notebook.ipynb``) under ``project_root`` (default: the current
    folder): nothing is written into the user's folder for it. A notebook file is never
    rewritten either: cell ids it lacks go into the submitted copy. ``project_root`` (default:
    found from the notebook's place, see :func:`offload.snapshot.deps.snapshot`; ``server_root``
    is the Jupyter server's root) bounds the files that ship. ``budget`` (dollars) refuses the job
    before any cloud call when price x max runtime is over it (``cap_runtime_to_budget``: cut the
    max runtime to fit); ``stop_if_idle`` (``"20m"``) stops it when its GPUs stay under
    ``idle_threshold`` percent that long; ``wait_for_capacity`` (``"2h"``, gce) waits for a GPU. A file named in ``include`` or
    ``data`` that looks like a secret is an error unless listed in ``allow_secrets``.
    ``keep_alive`` (``"10m"``; ``0`` off; default: the backend's ``keep_alive`` setting) keeps the
    machine after the job for the next compatible one (gce, slurm; see ``offload machines``).
    """
    say = on_progress or (lambda msg: None)
    webhook = recording.check_webhook(notify)  # ``notify``: webhook URL, "off", or None for the setting

    def warn(msg: str) -> None:
        (say if on_progress else log.warning)(f"warning: {msg}")

    from_object = isinstance(notebook, nbformat.NotebookNode)
    if from_object:
        root = Path(project_root or os.getcwd()).expanduser().resolve()
        nb_path, nb = root / (name or IN_MEMORY_NAME), ensure_cell_ids(notebook)
        in_memory = nb
    else:
        nb_path = Path(notebook).expanduser().resolve()
        nb = read_notebook(nb_path)
        # Ids go into the submitted copy only: the user's file is never rewritten by a run.
        in_memory = nb if with_cell_ids(nb) else None
    params = dict(parameters or {})
    check_parameters(nb, params, notebook=nb_path.name)
    backend_name = backend or default_backend()
    store = as_store(store if store is not None else backend_store(backend_name))
    be = get_backend(backend_name, store, **{**backend_options(backend_name), **(backend_options_ or {})})
    resources = Resources(
        gpu=gpu, gpu_count=gpu_count, machine=machine, spot=spot,
        max_runtime_s=parse_duration(max_runtime) if max_runtime else Resources().max_runtime_s,
        cpus=cpus, memory_gb=memory_gb, keep_alive_s=parse_keep_alive(keep_alive),
    ).validate()
    if env_spec is None:
        env_spec = snapshot(nb_path, nb=in_memory, project_root=root if from_object else project_root,
                            python=python, server_root=server_root)
    if not from_object:
        root = Path(project_root or env_spec.project_root or nb_path.parent).expanduser().resolve()
    _check_environment(env_spec, env=env, backend_name=backend_name, python=python,
                       allow_unresolved=allow_unresolved, warn=warn)
    for line in env_spec.data_warnings():
        warn(line)
    bundle = build_bundle(root, nb_path, nb=in_memory, include=list(include), data=list(data),
                          modules=[*env_spec.local_files, *env_spec.shipped_data()],
                          allow_secrets=list(allow_secrets))
    bundle.env = env_spec.to_dict()
    for line in bundle.left_out():  # before anything is uploaded: what stays here, and why
        say(line)
    store.check_writable()
    spec = JobSpec(
        id=new_job_id(), notebook=bundle.notebook, bundle_id=bundle.id, kind=kind, backend=backend_name,
        parameters=params, resources=resources, env_mode=env, env_hash=env_spec.env_hash,
        python=python or sys.executable, source_path=None if in_memory is not None else str(nb_path),
        cell_hashes={c["id"]: cell_hash(c.source) for c in nb.cells},
        data=[DataMount(Path(d).as_posix()) for d in data], labels=dict(labels or {}),
        retries=retries, parent=parent, client_version=__version__,
        budget=parse_budget(budget), cap_runtime_to_budget=bool(cap_runtime_to_budget),
        stop_if_idle_s=duration_field(stop_if_idle, "stop_if_idle"),
        idle_threshold=float(idle_threshold),
        wait_for_capacity_s=duration_field(wait_for_capacity, "wait_for_capacity"),
    ).validate()
    be.validate(spec)
    enforce_budget(spec, backend=be, options=be.options, cut=False)  # refused before anything is uploaded
    report = stage(bundle, store)
    say(f"staged {report.files} files ({report.bytes} bytes), uploaded {report.uploaded_blobs} new blob(s)")
    handle = launch_spec(spec, store=store, env=bundle.env, backend=be)
    recording.on_submit(store, spec, project_root=root, webhook=webhook, say=say)  # git state, MLflow, notify
    return Job(spec.id, store=store, spec=spec, handle=handle)


def _check_environment(env_spec: Any, *, env: str, backend_name: str, python: str | None,
                       allow_unresolved: bool, warn: Any) -> None:
    """Before anything is uploaded: an import nothing provides is an error where the job builds
    its environment from the snapshot (isolated, or a remote backend), and a warning where it runs
    in this kernel (it fails at that cell); an import a dependency file declares but this kernel
    lacks is a warning in kernel mode (isolated installs it)."""
    kernel = python or sys.executable
    missing = [u for u in env_spec.unresolved if not u.get("optional")]
    builds = env == "isolated" or backend_name != "local"
    if missing and not allow_unresolved and builds:
        lines = "; ".join(f"{u['module']} ({u.get('where', '?')})" for u in missing)
        raise UsageError(
            f"cannot resolve import(s) to an installed package: {lines}. The "
            + ("isolated environment" if env == "isolated" else "remote environment")
            + f" is built from the packages of {kernel}, which does not have them",
            hint="install them in the notebook's kernel (pip install ...), add them to requirements.txt, "
            "or pass --allow-unresolved", field="notebook",
        )
    if env == "kernel" and backend_name == "local":
        for u in missing:
            warn(f"{u['module']} ({u.get('where', '?')}) is not installed in this kernel ({kernel}): the job runs "
                 "in this kernel and will fail at that cell; install it, or run with --env isolated")
        for m in env_spec.not_in_kernel:
            warn(f"{m['module']} ({m['where']}) is not installed in this kernel ({kernel}) although "
                 f"{m['dist']} is declared: the job runs in this kernel and will fail at that cell; "
                 f"install it (pip install {m['dist']}) or run with --env isolated")
    for u in env_spec.unresolved:
        if u.get("optional"):
            warn(f"{u['module']} ({u.get('where', '?')}) is not installed, not blocking: {u.get('why')}")


def rerun(
    job: Job | str,
    *,
    parameters: dict[str, Any] | None = None,
    store: Store | str | None = None,
    backend_options_: dict[str, Any] | None = None,
) -> Job:
    """A new job from the same bundle (same files, same environment), optionally new parameters.

    Reusing the bundle makes a rerun exact even when the notebook has changed since; changed
    parameters are checked against the bundle's own ``parameters`` cell.
    """
    old = job if isinstance(job, Job) else Job(job, store=store)
    spec = old.spec
    params = dict(spec.parameters)
    if parameters:
        check_parameters(bundle_notebook(old), parameters, notebook=spec.notebook)
        params.update(parameters)
    new = JobSpec.from_dict({**spec.to_dict(), "id": new_job_id(), "parameters": params, "parent": spec.id,
                             "created_at": time.time(), "attempt": 0})
    handle = launch_spec(new, store=old.store, env=old.store.get_json(layout.job_key(spec.id, "env.json"), None),
                         options=backend_options_)
    recording.on_rerun(old.store, spec, new)  # provenance: the original's (same bundle), rerun_of it
    return Job(new.id, store=old.store, spec=new, handle=handle)


def bundle_notebook(job: Job) -> nbformat.NotebookNode:
    """The notebook as the job's bundle holds it (what ran, not what the file says now)."""
    manifest = job.store.get_json(layout.bundle_key(job.spec.bundle_id), None)
    entry = (manifest or {}).get("files", {}).get(job.spec.notebook)
    if not entry:
        raise ConflictError(f"the bundle of job {job.id} is no longer in the store",
                            hint="run the notebook again", field="job_id")
    return nbformat.reads(job.store.get_text(layout.blob_key(entry["sha256"])), as_version=4)
