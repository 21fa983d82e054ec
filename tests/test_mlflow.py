"""Jobs and sweeps as MLflow runs, against a real `mlflow server` (SQLite backend store, local
artifact root) started once for this module: params, metrics with their steps arriving while the
job runs, tags, the executed notebook and output files as artifacts, a sweep as a parent run with
its trials as child runs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("mlflow", reason="the mlflow extra: pip install 'jupyter-offload[mlflow]'")
from mlflow.tracking import MlflowClient  # noqa: E402

from offload.jobs import submit  # noqa: E402
from offload.store import Store, layout  # noqa: E402
from tests.notebooks import make_notebook  # noqa: E402

pytest_plugins = ["pytest_jupyter.jupyter_server"]

READY_DEADLINE_S = 300  # a loaded 2-core machine can take a minute or more to import and migrate


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    exe = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(
        [exe, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", (root / "artifacts").as_uri()],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_DEADLINE_S
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("mlflow server did not start:\n" + (root / "server.log").read_text()[-3000:])
        time.sleep(0.5)
    yield url
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
    log.close()


@pytest.fixture
def tracking(mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "offload-tests")
    return MlflowClient(tracking_uri=mlflow_server)


def _wait_for(what, fn, timeout=180.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_job_is_a_run_with_params_stepped_metrics_tags_and_artifacts(tracking, tmp_path):
    store = Store((tmp_path / "store").as_uri())
    go = tmp_path / "go"
    nb = make_notebook(tmp_path / "train.ipynb", [
        "import offload, time, pathlib\nfor step in range(3):\n    offload.log_metric('loss', lr / (step + 1), step=step)",
        # the job waits here until the test has seen the first metrics in MLflow: they arrive live
        f"while not pathlib.Path({str(go)!r}).exists():\n    time.sleep(0.1)",
        "(offload.output_dir() / 'model.txt').write_text('weights')\noffload.log_metric('val_acc', 0.5 + lr)",
    ], params="lr = 0.3\nepochs = 2")
    job = submit(nb, parameters={"lr": 0.4}, store=store)
    rec = store.get_json(layout.job_key(job.id, layout.MLFLOW))
    run_id = rec["run_id"]
    assert rec["url"].endswith(f"/#/experiments/{rec['experiment_id']}/runs/{run_id}")
    run = tracking.get_run(run_id)
    assert run.data.params == {"lr": "0.4", "epochs": "2"}
    assert run.data.tags["offload.job_id"] == job.id and run.data.tags["offload.backend"] == "local"
    assert run.data.tags["offload.env_hash"] == job.spec.env_hash and run.data.tags["offload.spot"] == "false"
    assert run.info.status == "RUNNING"

    waiter = threading.Thread(target=job.wait, kwargs={"timeout": 600})  # the client waiting mirrors
    waiter.start()
    try:
        history = _wait_for("live loss points", lambda: len(h := tracking.get_metric_history(run_id, "loss")) == 3 and h)
        assert sorted((m.step, m.value) for m in history) == [(0, 0.4), (1, 0.2), (2, pytest.approx(0.4 / 3))]
        assert job.refresh()["state"] == "running"  # seen in MLflow while the job still runs
    finally:
        go.write_text("go")
        waiter.join(timeout=600)
    assert job.state == "succeeded", job.status.get("reason")
    run = tracking.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.end_time is not None
    assert run.data.metrics["val_acc"] == pytest.approx(0.9)
    assert run.data.tags["offload.state"] == "succeeded"
    arts = {a.path for a in tracking.list_artifacts(run_id)} | {a.path for a in tracking.list_artifacts(run_id, "outputs")}
    assert {"train.ipynb", "outputs/model.txt"} <= arts
    executed = Path(tracking.download_artifacts(run_id, "train.ipynb", str(tmp_path / "nb"))).read_text()
    assert "val_acc" in executed and '"lr = 0.4' in executed  # the executed copy, parameters injected
    local = tracking.download_artifacts(run_id, "outputs/model.txt", str(tmp_path / "dl"))
    assert Path(local).read_text() == "weights"

    # Another observer later (a restarted server) sends nothing twice: the points stay three.
    from offload.jobs import tracking as offload_tracking
    from offload.jobs.job import Job
    offload_tracking._sent.clear()
    offload_tracking._ended.clear()
    offload_tracking._records.clear()
    again = Job(job.id, store=store)
    offload_tracking.mirror(again, again.status)
    assert len(tracking.get_metric_history(run_id, "loss")) == 3


def test_git_commit_tag_and_failed_job_status(tracking, tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    nb = make_notebook(root / "broken.ipynb", ["raise ValueError('bad data')"])
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    for cmd in (["init", "-q", "-b", "dev"], ["add", "."], ["commit", "-q", "-m", "c"]):
        subprocess.run(["git", *cmd], cwd=root, env=env, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    store = Store((tmp_path / "store").as_uri())
    job = submit(nb, store=store).wait(timeout=600)
    assert job.state == "failed"
    run = tracking.get_run(store.get_json(layout.job_key(job.id, layout.MLFLOW))["run_id"])
    assert run.data.tags["mlflow.source.git.commit"] == head and run.data.tags["mlflow.source.git.branch"] == "dev"
    assert run.data.tags["offload.git_dirty"] == "false"
    assert run.info.status == "FAILED" and "bad data" in run.data.tags["offload.reason"]


def test_unreachable_tracking_server_is_a_warning_and_the_job_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")  # nothing listens
    store = Store((tmp_path / "store").as_uri())
    said: list[str] = []
    nb = make_notebook(tmp_path / "nb.ipynb", ["import offload\noffload.log_metric('x', 1.0)"])
    job = submit(nb, store=store, on_progress=said.append).wait(timeout=600)
    assert job.state == "succeeded"
    warning = [m for m in said if "not recorded in MLflow" in m]
    assert warning and "is not reachable" in warning[0], said
    assert not store.exists(layout.job_key(job.id, layout.MLFLOW))


@pytest.mark.timeout(900)
def test_sweep_is_a_parent_run_with_trials_as_children(tracking, tmp_path):
    pytest.importorskip("optuna")
    from offload.sweeps import sweep

    store = Store((tmp_path / "store").as_uri())
    nb = make_notebook(tmp_path / "tune.ipynb", [
        "import offload\nfor s in range(2):\n    offload.log_metric('score', x * (s + 1), step=s)",
    ], params="x = 1.0")
    space = tmp_path / "space.yaml"
    space.write_text("x: {type: float, low: 0.0, high: 1.0}\n")
    res = sweep(nb, space=str(space), objective="score", trials=2, parallel=2, sampler="random", seed=1,
                store=store, quiet=True)
    parent = store.get_json(layout.sweep_key(res.id, layout.MLFLOW))
    prun = tracking.get_run(parent["run_id"])
    assert prun.info.status == "FINISHED" and prun.data.tags["offload.sweep_id"] == res.id
    assert prun.data.metrics["best_score"] == pytest.approx(res.best_value)
    children = tracking.search_runs([prun.info.experiment_id],
                                    filter_string=f"tags.mlflow.parentRunId = '{parent['run_id']}'")
    assert len(children) == 2
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["offload.sweep_id"] == res.id
        x = float(child.data.params["x"])
        steps = sorted((m.step, m.value) for m in tracking.get_metric_history(child.info.run_id, "score"))
        assert steps == [(0, pytest.approx(x)), (1, pytest.approx(2 * x))]


# Through the Jupyter server: nobody waits on the job, the server's watcher mirrors it ----------
@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_ext": True}},
        "OffloadExtensionApp": {"poll_interval": 0.2, "backends": ["local"]},
    }


async def test_server_detail_and_gallery_link_the_run_and_the_watcher_closes_it(tracking, jp_fetch, jp_root_dir):
    import asyncio
    import json

    root = jp_root_dir / "proj"
    root.mkdir()
    make_notebook(root / "train.ipynb", [
        "import offload\nfor s in range(3):\n    offload.log_metric('loss', lr / (s + 1), step=s)",
    ], params="lr = 0.1")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    for cmd in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "c"]):
        subprocess.run(["git", *cmd], cwd=root, env=env, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()

    async def api(*parts, method="GET", body=None):
        kw = {"method": method}
        if body is not None:
            kw["body"] = json.dumps(body)
        return json.loads((await jp_fetch("offload", "api", *parts, **kw)).body)

    job = await api("jobs", method="POST", body={"path": "proj/train.ipynb", "parameters": {"lr": 0.2}})
    run_id = job["mlflow"]["run_id"]
    assert job["mlflow"]["url"].endswith(f"/runs/{run_id}")
    assert job["provenance"]["git"]["commit"] == head and job["provenance"]["git"]["branch"] == "main"
    deadline = time.monotonic() + 300
    while tracking.get_run(run_id).info.status == "RUNNING":  # the watcher closes it; nobody waits here
        assert time.monotonic() < deadline, "the server's watcher never closed the MLflow run"
        await asyncio.sleep(0.3)
    assert tracking.get_run(run_id).info.status == "FINISHED"
    steps = sorted((m.step, m.value) for m in tracking.get_metric_history(run_id, "loss"))
    assert steps == [(0, 0.2), (1, 0.1), (2, pytest.approx(0.2 / 3))]
    cards = (await api("gallery"))["cards"]
    assert [c["mlflow"]["url"] for c in cards if c["id"] == job["id"]] == [job["mlflow"]["url"]]
