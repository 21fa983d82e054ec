"""Jobs as MLflow runs: created at submit, fed from the store by the client side while they run.

When ``MLFLOW_TRACKING_URI`` (or the config's ``mlflow.tracking_uri``) is set, a submit of a
notebook or a sweep trial creates an MLflow run (:func:`start_job_run`): the job's parameters as
params; tags for the job id, backend, machine, GPU, spot, env hash and MLflow's own source tags
(notebook, git commit, branch, repository) from the job's provenance; ``jobs/<id>/mlflow.json``
records the run. A sweep is a parent run (:func:`start_sweep_run`, by the sweep driver) and its
trials child runs (``mlflow.parentRunId``), all in one experiment.

Who talks to the tracking server: the client side, never the machine. The runner streams
``log_metric`` lines to the store (``metrics.jsonl``) as it always does; whichever client process
watches the job (the Jupyter server's watcher, ``offload run`` or ``Job.wait()`` waiting, the
sweep driver for its trials) calls :func:`mirror`, which sends the new metric points with their
steps and original timestamps, and at the end the executed notebook and the output files as
artifacts, the cost and the final status. The machine (a GCE VM in its own network, a SLURM
compute node) often cannot reach the tracking server, and the tracking server's credentials stay
on the user's side. Metrics therefore reach MLflow about a second after the runner stores them.
Two observers of one job are harmless: a point is sent with its own timestamp, and MLflow's SQL
stores drop a point identical to one they hold; artifacts are overwritten with the same files.

mlflow is an optional extra (``pip install 'jupyter-offload[mlflow]'``): it is imported inside
:func:`_client` only, because it is heavy (a second or more) and only needed when a tracking URI
is set.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nbformat

from offload.backends.base import Ability
from offload.config import load_config
from offload.errors import BackendError, UsageError
from offload.notebook import declared_parameters
from offload.spec import FINAL_STATES, JobSpec, JobState
from offload.store import Store, layout

log = logging.getLogger("offload")

__all__ = ["TRACKED_KINDS", "end_sweep_run", "job_run", "mirror", "run_url", "start_job_run", "start_sweep_run",
           "tracking_uri"]

TRACKED_KINDS = ("notebook", "trial")  # %%offload cells and warm sessions are interactive, not runs
RECORD_WAIT_S = 120.0  # a job this young may still get its mlflow.json from its submitter
_BATCH = 500  # metrics per log_batch call (MLflow's limit is 1000)
_lock = threading.Lock()
_sent: dict[tuple[str, str], int] = {}  # (store, job) -> metric lines this process has sent
_ended: set[tuple[str, str]] = set()  # jobs whose end this process has sent
_records: dict[tuple[str, str], dict[str, Any] | None] = {}


def tracking_uri() -> str | None:
    """``MLFLOW_TRACKING_URI``, else the config's ``mlflow.tracking_uri``; None: no tracking."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or (load_config().get("mlflow") or {}).get("tracking_uri")
    return str(uri).strip() or None if uri else None


def _experiment_name(spec_notebook: str) -> str:
    return (os.environ.get("MLFLOW_EXPERIMENT_NAME") or (load_config().get("mlflow") or {}).get("experiment")
            or Path(spec_notebook).stem or "offload")


def _clean_uri(uri: str) -> str:
    """The URI without user name and password (the record is in the store; credentials stay here)."""
    if "://" not in uri or "@" not in uri.split("://", 1)[1].split("/", 1)[0]:
        return uri
    p = urlsplit(uri)
    host = (p.hostname or "") + (f":{p.port}" if p.port else "")
    return urlunsplit((p.scheme, host, p.path, p.query, ""))


def run_url(uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page in the MLflow UI, for an http(s) tracking server."""
    if not uri.startswith(("http://", "https://")):
        return None
    return f"{_clean_uri(uri).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


_HEALTH_TTL_S = 30.0  # a tracking server's reachability is checked at most this often
_health: dict[str, tuple[float, str | None]] = {}  # uri -> (checked at, why unreachable or None)


def _check_reachable(uri: str) -> None:
    """Fail fast, with the reason, when an http(s) tracking server does not answer: MLflow's own
    client retries a refused connection for minutes, which would hold up a submit or the server's
    watcher. Any HTTP answer (even 401 or 404) counts as reachable."""
    if not uri.startswith(("http://", "https://")):
        return
    now = time.monotonic()
    with _lock:
        hit = _health.get(uri)
    if hit is not None and now - hit[0] < _HEALTH_TTL_S:
        why = hit[1]
    else:
        why = None
        try:
            with urllib.request.urlopen(f"{_clean_uri(uri).rstrip('/')}/health", timeout=5):  # noqa: S310
                pass
        except urllib.error.HTTPError:
            pass  # it answered
        except (urllib.error.URLError, OSError) as exc:
            why = str(getattr(exc, "reason", exc))
        with _lock:
            _health[uri] = (now, why)
    if why:
        raise BackendError(f"the MLflow tracking server {_clean_uri(uri)} is not reachable: {why}",
                           hint="start it, or fix MLFLOW_TRACKING_URI / mlflow.tracking_uri; the job runs either way")


def _client(uri: str) -> Any:
    # Closing a run prints "View run ... at" to stdout; our own line says it where it belongs.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    try:  # heavy and optional: imported only when a tracking URI is set
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UsageError(
            f"MLflow tracking is configured ({uri}) but mlflow is not installed",
            hint="pip install 'jupyter-offload[mlflow]', or unset MLFLOW_TRACKING_URI / mlflow.tracking_uri",
            field="mlflow.tracking_uri",
        ) from None
    _check_reachable(uri)
    return MlflowClient(tracking_uri=uri)


def _client_for(rec: dict[str, Any]) -> Any:
    """A client for a recorded run: this process's URI when it names the same server (it may carry
    credentials the record left out), else the record's."""
    mine = tracking_uri()
    uri = mine if mine and _clean_uri(mine) == rec["tracking_uri"] else rec["tracking_uri"]
    return _client(uri)


def _experiment_id(client: Any, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # created meanwhile by another client
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _source_tags(provenance: dict[str, Any] | None) -> dict[str, str]:
    git = (provenance or {}).get("git") or {}
    tags = {}
    if git.get("commit"):
        tags["mlflow.source.git.commit"] = git["commit"]
    if git.get("branch"):
        tags["mlflow.source.git.branch"] = git["branch"]
    if git.get("remote"):
        tags["mlflow.source.git.repoURL"] = git["remote"]["url"]
    if git:
        tags["offload.git_dirty"] = str(bool(git.get("dirty"))).lower()
    return tags


def start_job_run(store: Store, spec: JobSpec, *, provenance: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Create the job's MLflow run and record it; None when tracking is off or the kind is not tracked."""
    uri = tracking_uri()
    if not uri or spec.kind not in TRACKED_KINDS:
        return None
    from mlflow.entities import Param  # optional extra: present, _client checked it

    client = _client(uri)
    parent = None
    sweep = (spec.labels or {}).get("sweep")
    if sweep:
        parent = store.get_json(layout.sweep_key(sweep, layout.MLFLOW), None)
    exp_id = parent["experiment_id"] if parent else _experiment_id(client, _experiment_name(spec.notebook))
    r = spec.resources
    tags = {
        "offload.job_id": spec.id, "offload.backend": spec.backend, "offload.kind": spec.kind,
        "offload.machine": r.machine or "", "offload.gpu": f"{r.gpu_count}x {r.gpu}" if r.gpu else "",
        "offload.spot": str(bool(r.spot)).lower(), "offload.env_hash": spec.env_hash or "",
        "offload.store": store.url, "mlflow.source.name": spec.notebook, "mlflow.source.type": "NOTEBOOK",
        "mlflow.user": os.environ.get("USER", ""), **_source_tags(provenance),
    }
    if spec.parent:
        tags["offload.parent_job"] = spec.parent
    if parent:
        tags["mlflow.parentRunId"] = parent["run_id"]
        tags["offload.sweep_id"] = sweep
        tags["offload.trial"] = str(spec.labels.get("trial", ""))
    name = f"trial {spec.labels['trial']}" if parent and "trial" in spec.labels else f"{Path(spec.notebook).stem} {spec.id}"
    run = client.create_run(exp_id, start_time=int(spec.created_at * 1000), tags={k: v for k, v in tags.items() if v},
                            run_name=name)
    params = [Param(str(k)[:250], _param_value(v)) for k, v in _effective_parameters(store, spec).items()]
    for i in range(0, len(params), 100):
        client.log_batch(run.info.run_id, params=params[i:i + 100])
    rec = {"tracking_uri": _clean_uri(uri), "experiment_id": exp_id, "run_id": run.info.run_id,
           "url": run_url(uri, exp_id, run.info.run_id), "parent_run_id": parent["run_id"] if parent else None}
    store.put_json(layout.job_key(spec.id, layout.MLFLOW), rec)
    with _lock:
        _records[(store.url, spec.id)] = rec
    return rec


def _effective_parameters(store: Store, spec: JobSpec) -> dict[str, Any]:
    """The notebook's declared defaults (its ``parameters`` cell, as the bundle holds it) with the
    job's values over them: what the run used, not only what was overridden."""
    out: dict[str, Any] = {}
    try:
        manifest = store.get_json(layout.bundle_key(spec.bundle_id), None) or {}
        entry = (manifest.get("files") or {}).get(spec.notebook)
        if entry:
            nb = nbformat.reads(store.get_text(layout.blob_key(entry["sha256"])), as_version=4)
            out = {k: (d.get("default") if d.get("default") is not None else d.get("source"))
                   for k, d in declared_parameters(nb).items()}
    except Exception as exc:  # the overrides alone, then
        log.debug("declared parameters of %s: %s", spec.id, exc)
    return {**out, **(spec.parameters or {})}


def _param_value(v: Any) -> str:
    import json

    text = v if isinstance(v, str) else json.dumps(v, default=str)
    return text[:6000]


def job_run(store: Store, job_id: str, *, created_at: Any = None) -> dict[str, Any] | None:
    """The job's recorded run (cached). ``created_at`` (a number, or a function giving it): a
    job younger than that may still get its record from its submitter, so it is asked again."""
    key = (store.url, job_id)
    with _lock:
        if key in _records:
            return _records[key]
    rec = store.get_json(layout.job_key(job_id, layout.MLFLOW), None)
    if rec is None and callable(created_at):
        created_at = created_at()
    if rec is not None or created_at is None or time.time() - created_at > RECORD_WAIT_S:
        with _lock:
            _records[key] = rec
    return rec


_MLFLOW_STATUS = {JobState.SUCCEEDED: "FINISHED", JobState.CANCELLED: "KILLED"}


def mirror(job: Any, status: dict[str, Any] | None = None) -> bool:
    """Send what the store holds about ``job`` (an :class:`offload.jobs.Job`) that this process
    has not sent: new metric points, and once the job has ended its artifacts and final status.
    Returns whether the job has a run. Errors are the caller's to log (a watcher goes on)."""
    key = (job.store.url, job.id)
    rec = job_run(job.store, job.id, created_at=lambda: job.spec.created_at)
    if rec is None:
        return False
    st = status or job.last_status or job.status
    final = st.get("state") in FINAL_STATES
    with _lock:
        if key in _ended:
            return True
    client = _client_for(rec)
    run_id = rec["run_id"]
    if final and key not in _sent and client.get_run(run_id).info.status != "RUNNING":
        with _lock:  # closed by another observer before this process saw the job (a restarted server)
            _ended.add(key)
        return True
    _send_metrics(client, run_id, key, job.metrics)
    if final:
        _send_end(client, run_id, job, st)
        with _lock:
            _ended.add(key)
    return True


def _send_metrics(client: Any, run_id: str, key: tuple[str, str], records: list[dict[str, Any]]) -> None:
    from mlflow.entities import Metric  # optional extra: present, _client checked it

    with _lock:
        start = _sent.get(key, 0)
    new = records[start:]
    if not new:
        return
    points = []
    for m in new:
        try:
            value = float(m.get("value"))
        except (TypeError, ValueError):
            continue
        step = m.get("step")
        points.append(Metric(str(m.get("name"))[:250], value, int(float(m.get("ts") or time.time()) * 1000),
                             int(step) if step is not None else 0))
    for i in range(0, len(points), _BATCH):
        client.log_batch(run_id, metrics=points[i:i + _BATCH])
    with _lock:
        _sent[key] = max(_sent.get(key, 0), start + len(new))


def _send_end(client: Any, run_id: str, job: Any, st: dict[str, Any]) -> None:
    store = job.store
    with tempfile.TemporaryDirectory(prefix="offload-mlflow-") as tmp:
        try:
            nb = Path(tmp) / Path(job.spec.notebook).name  # the executed notebook, at the run's root
            nb.write_text(store.get_text(job.key("output.ipynb")))
            client.log_artifact(run_id, str(nb))
        except KeyError:
            pass  # the job never produced an executed notebook (it failed before the first cell)
        outputs = job.outputs()
        if outputs:
            out = Path(tmp) / "outputs"
            for rel in outputs:
                store.get_file(job.key(f"outputs/{rel}"), out / rel)
            client.log_artifacts(run_id, str(out), artifact_path="outputs")
    tags = {"offload.state": str(st.get("state"))}
    if st.get("reason"):
        tags["offload.reason"] = str(st["reason"])[:5000]
    if st.get("duration_s") is not None:
        tags["offload.duration_s"] = f"{float(st['duration_s']):.1f}"
    usd = _actual_cost(job, st)
    if usd is not None:
        tags["offload.cost_usd"] = f"{usd:.4f}"
    for k, v in tags.items():
        client.set_tag(run_id, k, v)
    end = st.get("finished_at")
    client.set_terminated(run_id, status=_MLFLOW_STATUS.get(st.get("state"), "FAILED"),
                          end_time=int(float(end) * 1000) if end else None)


def _actual_cost(job: Any, st: dict[str, Any]) -> float | None:
    """Billed time x price where the backend knows it (GCE), else None (local, SLURM)."""
    handle = job.handle or {}
    try:
        be = job.backend()
        if be.can(Ability.JOB_COST):
            usd = (be.job_cost(handle, st) or {}).get("actual_cost")
            return float(usd) if usd is not None else None
    except Exception as exc:  # a cost we cannot compute is left out, the run is still closed
        log.debug("cost of %s: %s", job.id, exc)
    return None


# sweeps ----------------------------------------------------------------------------------------
def start_sweep_run(store: Store, sweep_id: str, rec: dict[str, Any]) -> dict[str, Any] | None:
    """The sweep's parent run, created once (the driver's first start) and recorded in
    ``sweeps/<id>/mlflow.json``; a resumed driver finds it there."""
    key = layout.sweep_key(sweep_id, layout.MLFLOW)
    found = store.get_json(key, None)
    if found is not None:
        return found
    uri = tracking_uri()
    if not uri:
        return None
    from mlflow.entities import Param  # optional extra: present, _client checked it

    client = _client(uri)
    exp_id = _experiment_id(client, _experiment_name(Path(rec["notebook"]).name))
    tags = {"offload.sweep_id": sweep_id, "offload.kind": "sweep", "mlflow.source.name": Path(rec["notebook"]).name,
            "offload.objectives": ",".join(rec.get("objectives") or []),
            "offload.directions": ",".join(rec.get("directions") or [])}
    run = client.create_run(exp_id, start_time=int(float(rec.get("created_at") or time.time()) * 1000), tags=tags,
                            run_name=f"sweep {sweep_id}")
    params = [Param("sweep.trials", str(rec.get("trials"))), Param("sweep.parallel", str(rec.get("parallel"))),
              Param("sweep.sampler", str(rec.get("sampler"))), Param("sweep.pruner", str(rec.get("pruner")))]
    params += [Param(f"space.{k}"[:250], _param_value(v)) for k, v in (rec.get("space") or {}).items()]
    client.log_batch(run.info.run_id, params=params[:100])
    out = {"tracking_uri": _clean_uri(uri), "experiment_id": exp_id, "run_id": run.info.run_id,
           "url": run_url(uri, exp_id, run.info.run_id)}
    store.put_json(key, out)
    return out


def end_sweep_run(store: Store, sweep_id: str, *, state: str, best: dict[str, Any] | None = None,
                  counts: dict[str, Any] | None = None) -> None:
    """Close the parent run: the best trial's values as metrics, the counts as tags."""
    rec = store.get_json(layout.sweep_key(sweep_id, layout.MLFLOW), None)
    if rec is None:
        return
    client = _client_for(rec)
    run_id = rec["run_id"]
    for name, value in ((best or {}).get("values") or {}).items():
        try:
            client.log_metric(run_id, f"best_{name}", float(value))
        except (TypeError, ValueError):
            pass
    for k, v in (best or {}).get("params", {}).items():
        client.set_tag(run_id, f"best.{k}"[:250], _param_value(v))
    for k, v in (counts or {}).items():
        client.set_tag(run_id, f"offload.{k}", str(v))
    client.set_tag(run_id, "offload.state", state)
    client.set_terminated(run_id, status="FINISHED" if state == "completed" else
                          ("KILLED" if state == "stopped" else "FAILED"))
