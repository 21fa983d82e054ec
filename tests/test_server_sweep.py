"""The sweep panel's REST API through a real Jupyter server (pytest-jupyter's jp_fetch).

What the panel relies on: nothing answers without a token, a bad search space is a 400 naming
the parameter, and a sweep started over HTTP runs for real on the local backend (its driver a
detached subprocess, its trials real jobs with kernels) while the panel reads trials, history and
importances, then applies the best parameters to the notebook (model or file).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import nbformat
import pytest
from tornado.httpclient import HTTPClientError

pytest.importorskip("optuna")

from jupyter_ext.routes import ROUTES  # noqa: E402

pytest_plugins = ["pytest_jupyter.jupyter_server"]

FAKE_ID = "20260101-000000-abcdef"
QUADRATIC = "import offload\nscore = -(x - 1.0) ** 2 - (k - 2) ** 2 + (0.5 if opt == 'adam' else 0.0)\n" \
            "offload.log_metric('score', score)\nprint('score', score)"


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_ext": True}},
        "OffloadExtensionApp": {"poll_interval": 0.3, "backends": ["local"]},
    }


@pytest.fixture
def quad_nb(jp_root_dir: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("x = 0.0  # position\nk = 1\nopt = 'sgd'\nseed = 0")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(QUADRATIC)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = jp_root_dir / "proj" / "quad.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


SPACE = {
    "x": {"type": "float", "low": -2.0, "high": 3.0},
    "k": {"type": "int", "low": 1, "high": 3},
    "opt": {"type": "categorical", "choices": ["adam", "sgd"]},
    "seed": 0,
}


async def call(jp_fetch, *parts, method="GET", body=None, params=None, headers=None):
    kw = {"method": method, "params": params or {}, "headers": headers or {}}
    if method != "GET":
        kw["body"] = json.dumps(body if body is not None else {})
    # jp_fetch gives up after 20 s by default: too short for a sweep start on a loaded 2-core machine
    return await jp_fetch("offload", "api", *parts, request_timeout=300, **kw)


async def error_of(jp_fetch, *parts, **kw) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await call(jp_fetch, *parts, **kw)
    err = info.value
    return err.code, (json.loads(err.response.body) if err.response is not None and err.response.body else {})


@pytest.mark.parametrize(
    ("method", "path"),
    [(m, p.replace("(?P<job_id>[^/]+)", FAKE_ID)) for p, h in ROUTES for m in ("GET", "POST")
     if p.startswith("sweeps") and m.lower() in h.__dict__],
)
async def test_sweep_endpoints_refuse_a_request_without_token(jp_fetch, method, path):
    code, _ = await error_of(jp_fetch, *path.split("/"), method=method, body={}, headers={"Authorization": ""})
    assert code == 403


def _body(**over):
    return {"path": "proj/quad.ipynb", "space": SPACE, "objective": "score", "direction": "maximize",
            "trials": 2, **over}


@pytest.mark.parametrize(
    ("over", "field", "words"),
    [
        ({"space": "x: {type: float, low: 0, high: 1}"}, "space", "must be an object"),
        ({"space": {}}, "space", "empty"),
        ({"space": {"x": {"type": "float", "low": 2.0, "high": 1.0}}}, "space.x", "x"),
        ({"space": {"x": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}}, "space.x", "log"),
        ({"space": {"lr": {"type": "float", "low": 0.1, "high": 1.0}}}, "space.lr", "parameters cell"),
        ({"space": {"opt": {"type": "categorical", "choices": []}}}, "space.opt", "opt"),
        ({"space": {"x": {"type": "flaot", "low": 0, "high": 1}}}, "space.x", "flaot"),
        ({"trials": 0}, "trials", "trials"),
        ({"parallel": "2"}, "parallel", "parallel"),
        ({"objective": None}, "objective", "objective"),
        ({"direction": "up"}, "direction", "up"),
        ({"backend": "nowhere"}, "backend", "nowhere"),
        ({"max_runtime": "soon"}, "max_runtime", "soon"),
        ({"path": "../outside.ipynb"}, "path", "outside"),
        ({"trials": 10**12}, "trials", "more than this server allows (1000)"),  # capped, not started
        ({"parallel": 10**9}, "parallel", "more than this server allows (64)"),
        ({"per_gpu": 17}, "per_gpu", "more than this server allows (16)"),
        ({"trails": 5}, "trails", "unknown field"),
    ],
)
async def test_start_rejects_a_bad_request_naming_the_field(jp_fetch, quad_nb, over, field, words):
    code, err = await error_of(jp_fetch, "sweeps", method="POST", body=_body(**over))
    assert code == 400, err
    assert err["field"] == field, err
    assert words.lower() in err["message"].lower(), err


async def test_unknown_sweep_is_404(jp_fetch):
    code, err = await error_of(jp_fetch, "sweeps", FAKE_ID)
    assert code == 404 and "sweep" in err["message"] and err["field"] == "sweep_id"


async def _wait_sweep(jp_fetch, sid: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    seen_running = False
    while True:
        data = json.loads((await call(jp_fetch, "sweeps", sid)).body)
        seen_running |= any(t["state"] == "RUNNING" for t in data["trials"])
        if data["summary"]["state"] in ("completed", "failed", "stopped", "interrupted"):
            data["seen_running"] = seen_running
            return data
        assert time.monotonic() < deadline, data["summary"]
        await asyncio.sleep(0.5)


async def test_a_sweep_started_over_http_runs_its_trials_and_applies_the_best(jp_fetch, quad_nb):
    r = await call(jp_fetch, "sweeps", method="POST",
                   body=_body(trials=4, parallel=2, sampler="random", seed=3, backend="local"))
    assert r.code == 201
    started = json.loads(r.body)
    sid = started["summary"]["id"]
    assert started["summary"]["source_path"] == "proj/quad.ipynb"
    assert started["summary"]["state"] in ("created", "running")

    listed = json.loads((await call(jp_fetch, "sweeps", params={"notebook": "proj/quad.ipynb"})).body)["sweeps"]
    assert [s["id"] for s in listed] == [sid]
    assert json.loads((await call(jp_fetch, "sweeps", params={"notebook": "other.ipynb"})).body)["sweeps"] == []

    data = await _wait_sweep(jp_fetch, sid)
    assert data["summary"]["state"] == "completed", data["summary"]
    trials = data["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 4
    values = [t["value"] for t in trials]
    assert values == sorted(values, reverse=True)  # best first
    for t in trials:
        assert t["job_id"] and t["duration_s"] is not None and t["duration_s"] > 0
        assert set(t["params"]) == {"x", "k", "opt", "seed"} and t["params"]["seed"] == 0
        p = t["params"]
        assert t["value"] == pytest.approx(-(p["x"] - 1) ** 2 - (p["k"] - 2) ** 2 + (0.5 if p["opt"] == "adam" else 0))
    assert len(data["history"]) == 4
    assert data["history"][-1]["best"] == pytest.approx(values[0])
    assert set(data["importances"]) == {"x", "k", "opt"}  # 4 complete trials: enough for fANOVA
    assert data["summary"]["best"]["number"] == trials[0]["number"]

    # each trial is a normal job of kind trial, listed with the others (once the watcher's next
    # pass has seen the last ones end)
    deadline = time.monotonic() + 300
    while True:
        jobs = {j["id"]: j for j in json.loads((await call(jp_fetch, "jobs")).body)["jobs"]}
        seen = [jobs.get(t["job_id"], {}) for t in trials]
        if all(j.get("state") == "succeeded" for j in seen) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.3)
    assert [(j.get("kind"), j.get("state")) for j in seen] == [("trial", "succeeded")] * 4

    # the open notebook: the server rewrites the cell's source, the file stays as it is
    before = quad_nb.read_text()
    source = "x = 0.0  # position\nk = 1\nopt = 'sgd'\nseed = 0"
    out = json.loads((await call(jp_fetch, "sweeps", sid, "apply-best", method="POST", body={"source": source})).body)
    best = trials[0]["params"]
    assert out["params"] == best and out["trial"] == trials[0]["number"] and out["written"] is None
    assert f"x = {best['x']!r}  # position" in out["source"] and f"opt = {best['opt']!r}" in out["source"]
    assert quad_nb.read_text() == before

    # a chosen trial, written into the file
    other = trials[-1]
    out = json.loads((await call(jp_fetch, "sweeps", sid, "apply-best", method="POST",
                                 body={"path": "proj/quad.ipynb", "trial": other["number"]})).body)
    assert out["written"] == "proj/quad.ipynb"
    cell = nbformat.read(quad_nb, as_version=4).cells[0].source
    assert f"x = {other['params']['x']!r}  # position" in cell and f"k = {other['params']['k']!r}" in cell

    code, err = await error_of(jp_fetch, "sweeps", sid, "apply-best", method="POST", body={"trial": 99})
    assert code == 400 and err["field"] == "trial"


async def test_stop_cancels_running_trials(jp_fetch, jp_root_dir):
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("t = 0.5")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell("import time, offload\ntime.sleep(120)\noffload.log_metric('m', t)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, jp_root_dir / "slow.ipynb")
    r = await call(jp_fetch, "sweeps", method="POST", body={
        "path": "slow.ipynb", "space": {"t": {"type": "float", "low": 0, "high": 1}}, "objective": "m",
        "trials": 4, "parallel": 2})
    sid = json.loads(r.body)["summary"]["id"]
    deadline = time.monotonic() + 300
    while True:
        data = json.loads((await call(jp_fetch, "sweeps", sid)).body)
        if sum(bool(t["state"] == "RUNNING" and t["job_id"]) for t in data["trials"]) == 2:
            break
        assert time.monotonic() < deadline, data
        await asyncio.sleep(0.5)
    running = [t["job_id"] for t in data["trials"] if t["state"] == "RUNNING"]
    r = await call(jp_fetch, "sweeps", sid, "stop", method="POST", body={})
    assert r.code == 202 and json.loads(r.body)["state"] == "stopped"
    data = json.loads((await call(jp_fetch, "sweeps", sid)).body)
    assert data["summary"]["state"] == "stopped"
    assert not any(t["state"] == "RUNNING" for t in data["trials"])
    counts = data["summary"]["counts"]  # stopped trials are re-queued, not failures
    assert (counts["n_fail"], counts["n_requeued"]) == (0, 2), counts
    for jid in running:
        job = json.loads((await call(jp_fetch, "jobs", jid)).body)
        assert job["state"] == "cancelled" or job.get("status", {}).get("cancel_requested"), job["state"]

    # resume from the panel: a new driver runs the re-queued points first; a second resume is a 409
    r = await call(jp_fetch, "sweeps", sid, "resume", method="POST", body={})
    assert r.code == 202 and json.loads(r.body)["summary"]["state"] in ("created", "running")
    code, err = await error_of(jp_fetch, "sweeps", sid, "resume", method="POST", body={})
    assert code == 409 and "driver" in err["message"], err
    deadline = time.monotonic() + 300
    while True:
        data = json.loads((await call(jp_fetch, "sweeps", sid)).body)
        again = [t for t in data["trials"] if t["state"] == "RUNNING" and t["job_id"] and t["job_id"] not in running]
        if len(again) == 2:
            break
        assert time.monotonic() < deadline, data
        await asyncio.sleep(0.5)
    requeued = sorted(t["params"]["t"] for t in data["trials"] if t.get("requeued"))
    assert sorted(t["params"]["t"] for t in again) == requeued and len(requeued) == 2, data["trials"]
    r = await call(jp_fetch, "sweeps", sid, "stop", method="POST", body={})
    assert json.loads((await call(jp_fetch, "sweeps", sid)).body)["summary"]["state"] == "stopped"

    code, err = await error_of(jp_fetch, "sweeps", sid, "resume", method="POST", body={"trials": 0})
    assert code == 400 and err["field"] == "trials"
