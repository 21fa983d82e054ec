"""The REST API of the server extension, through a real Jupyter server (pytest-jupyter's jp_fetch).

What a user of the lab extension relies on: nothing answers without a token, bad input is a 400
that names the field, paths cannot escape the server root, and a job's life (submit, progress,
log, metrics, merge plan, gallery, cancel, rerun) is visible through the API. Jobs run for real on
the local backend.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_ext.routes import ROUTES
from jupyter_ext.service import ApiError, OffloadService
from jupyter_ext.service.jobs import cli_command
from jupyter_ext.service.models import JobRequest, SweepRequest
from offload.spec import JobSpec, Resources
from tests.notebooks import make_notebook
from tests.servers import TOKEN, start_server

pytest_plugins = ["pytest_jupyter.jupyter_server"]

# 1x1 red PNG, so a notebook can have an image output without matplotlib
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
IMAGE_CELL = (
    "import base64\nfrom IPython.display import Image, display\n"
    f"display(Image(data=base64.b64decode('{PNG_B64}'), format='png'))"
)


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_ext": True}},
        "OffloadExtensionApp": {"poll_interval": 0.2, "backends": ["local"]},
    }


@pytest.fixture
def train_nb(jp_root_dir: Path) -> Path:
    return make_notebook(
        jp_root_dir / "proj" / "train.ipynb",
        [
            "import offload\nfor step in range(3):\n    offload.log_metric('loss', 1.0 / (step + 1) * lr, step=step)\nprint('trained with lr', lr)",
            IMAGE_CELL,
            "print('done', epochs)",
        ],
        params="lr = 0.1  # learning rate\nepochs = 2",
    )


async def call(jp_fetch, *parts, method="GET", body=None, params=None, headers=None):
    kw = {"method": method, "params": params or {}, "headers": headers or {}}
    if method != "GET":
        kw["body"] = body if isinstance(body, (str, bytes)) else json.dumps(body if body is not None else {})
    # jp_fetch gives up after 20 s by default: too short for a submit on a loaded 2-core machine
    return await jp_fetch("offload", "api", *parts, request_timeout=300, **kw)


async def error_of(jp_fetch, *parts, **kw) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as info:
        await call(jp_fetch, *parts, **kw)
    err = info.value
    payload = json.loads(err.response.body) if err.response is not None and err.response.body else {}
    return err.code, payload


async def wait_state(jp_fetch, job_id: str, states: tuple[str, ...], timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = await call(jp_fetch, "jobs", job_id)
        except HTTPClientError as exc:  # say what the server said, not only its status
            pytest.fail(f"GET jobs/{job_id}: {exc.code} {exc.response.body if exc.response else ''}")
        job = json.loads(r.body)
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job stayed {job['state']}: {job.get('reason')}"
        await asyncio.sleep(0.3)


FAKE_ID = "20260101-000000-abcdef"


def _route_requests():
    """Every route, with the method(s) it serves and a concrete URL."""
    for pattern, handler in ROUTES:
        path = pattern.replace("(?P<job_id>[^/]+)", FAKE_ID)
        for method in ("GET", "POST"):
            if method.lower() in handler.__dict__:
                yield method, path


@pytest.mark.parametrize(("method", "path"), list(_route_requests()))
async def test_every_endpoint_refuses_a_request_without_token(jp_fetch, method, path):
    code, _ = await error_of(jp_fetch, *path.split("/"), method=method, body={}, headers={"Authorization": ""})
    assert code == 403


async def test_backends_lists_local_backend_with_its_machine(jp_fetch):
    data = json.loads((await call(jp_fetch, "backends")).body)
    names = [b["name"] for b in data["backends"]]
    assert names == ["local"]
    local = data["backends"][0]
    assert local["available"] and local["machines"][0]["name"] == "local"
    assert local["machines"][0]["price_per_hour"] == 0.0


async def test_jupyterlab_cache_buster_is_not_an_unknown_field(jp_fetch):
    """JupyterLab's ServerConnection appends ``?<milliseconds>`` to every GET (cache 'no-store'):
    the side panel's and the gallery's requests must not be refused for it; a misspelt argument
    still is."""
    page = json.loads((await call(jp_fetch, "jobs", params={"1796440560418": "", "limit": "5"})).body)
    assert page["jobs"] == []
    gallery = json.loads((await call(jp_fetch, "gallery", params={"1796440560418": ""})).body)
    assert gallery["cards"] == []
    code, err = await error_of(jp_fetch, "jobs", params={"limt": "5"})
    assert (code, err["field"]) == (400, "limt")


def test_internal_backends_are_never_offered(tmp_path, train_nb):
    """The sweep driver's sweep-pack backend is not a user's choice: not listed, not accepted."""
    assert "sweep-pack" not in OffloadService(root_dir=str(tmp_path)).enabled_backends()
    service = OffloadService(root_dir=str(train_nb.parents[1]), backends=["local", "sweep-pack"])
    assert service.enabled_backends() == ["local"]
    with pytest.raises(ApiError) as info:
        JobRequest.parse(service, {"path": "proj/train.ipynb", "backend": "sweep-pack"})
    assert (info.value.http_status, info.value.field) == (400, "backend")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"path": "proj/train.ipynb", "max_runtime": True}, "max_runtime"),
        ({"path": "proj/train.ipynb", "gpu_count": 0}, "gpu_count"),
        ({"path": "proj/train.ipynb", "env": "conda"}, "env"),
        ({"path": "proj/train.ipynb", "machine": 8}, "machine"),
    ],
)
def test_run_request_fields_shared_by_jobs_and_sweeps(train_nb, body, field):
    """Job submit and sweep start read their common fields through one model (RunRequest)."""
    service = OffloadService(root_dir=str(train_nb.parents[1]), backends=["local"])
    with pytest.raises(ApiError) as info:
        JobRequest.parse(service, body)
    assert (info.value.http_status, info.value.field) == (400, field)
    if field != "gpu_count" and field != "env":  # the sweep's own request shares the rest
        with pytest.raises(ApiError) as info:
            SweepRequest.parse(service, {**body, "space": {"lr": {"type": "float", "low": 0.1, "high": 1}},
                                         "objective": "loss", "trials": 2})
        assert info.value.field == field
    ok = JobRequest.parse(service, {"path": "/proj/train.ipynb", "machine": "n1-standard-8+t4"})
    assert (ok.notebook, ok.backend, ok.machine, ok.gpu, ok.max_runtime) == (train_nb.resolve(), "local", "n1-standard-8", "t4", "4h")


async def test_inspect_shows_parameters_deps_and_files(jp_fetch, train_nb, jp_root_dir):
    (train_nb.parent / "helper.py").write_text("X = 1\n")
    (train_nb.parent / ".env").write_text("SECRET=1\n")
    data = json.loads((await call(jp_fetch, "notebook", params={"path": "proj/train.ipynb"})).body)
    params = {p["name"]: p for p in data["parameters"]}
    assert params["lr"]["default"] == 0.1 and params["lr"]["type"] == "float"
    assert params["lr"]["help"] == "learning rate"
    assert params["epochs"]["default"] == 2 and params["epochs"]["type"] == "int"
    files = {f["path"]: f["size"] for f in data["files"]}
    # the project root is the server's root here (no marker folder above the notebook): issue 16
    assert data["deps"]["project_root"] == "." and files["proj/train.ipynb"] == train_nb.stat().st_size
    assert ".env" not in files and "proj/.env" not in files
    assert data["total_bytes"] >= files["proj/train.ipynb"]
    assert data["deps"] is not None and data["deps"]["python"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "path"),
        ({"path": 3}, "path"),
        ({"path": "proj/train.ipynb", "parameters": [1]}, "parameters"),
        ({"path": "proj/train.ipynb", "parameters": {"lrr": 0.2}}, "parameters"),
        ({"path": "proj/train.ipynb", "parameters": {"lr": "fast"}}, "parameters"),
        ({"path": "proj/train.ipynb", "max_runtime": "soon"}, "max_runtime"),
        ({"path": "proj/train.ipynb", "backend": "nowhere"}, "backend"),
        ({"path": "proj/train.ipynb", "spot": "yes"}, "spot"),
        ({"path": "proj/train.ipynb", "data": ["missing-dir"]}, "data"),
        ({"path": "proj/missing.ipynb"}, "path"),
        ({"path": "proj/train.ipynb", "parametrs": {"lr": 0.2}}, "parametrs"),  # misspelt: never the defaults
        ({"path": "proj/train.ipynb", "max_runtime": 0}, "max_runtime"),  # not "the default"
        ({"path": "proj/train.ipynb", "max_runtime": "30d"}, "max_runtime"),  # beyond the server's limit
    ],
)
async def test_submit_rejects_bad_input_naming_the_field(jp_fetch, train_nb, body, field):
    code, err = await error_of(jp_fetch, "jobs", method="POST", body=body)
    assert code in (400, 404)
    assert err["field"] == field, err
    assert err["message"]


async def test_an_unknown_field_is_refused_with_the_close_name(jp_fetch, train_nb):
    code, err = await error_of(jp_fetch, "jobs", method="POST", body={"path": "proj/train.ipynb", "parametrs": {}})
    assert code == 400 and err["field"] == "parametrs" and "'parameters'" in err["hint"]
    code, err = await error_of(jp_fetch, "jobs", FAKE_ID, "rerun", method="POST", body={"params": {}})
    assert code == 400 and err["field"] == "params"


async def test_bodies_that_would_break_the_server_are_refused(jp_fetch, train_nb):
    """A lone surrogate, JSON nested thousands deep and an oversized body: 4xx, never a 500."""
    surrogate = '{"path": "proj/train.ipynb", "parameters": {"lr": "\\ud800"}}'
    code, err = await error_of(jp_fetch, "jobs", method="POST", body=surrogate)
    assert (code, err["field"]) == (400, "parameters") and "surrogate" in err["message"]
    code, err = await error_of(jp_fetch, "jobs", method="POST", body='{"path": ' + "[" * 5000 + "]" * 5000 + "}")
    assert (code, err["field"]) == (400, "body") and "nests deeper" in err["message"]
    code, err = await error_of(jp_fetch, "jobs", method="POST", body='{"path": ' + "[" * 100 + "]" * 100 + "}")
    assert (code, err["field"]) == (400, "path") and "nests deeper" in err["message"]
    big = json.dumps({"path": "proj/train.ipynb", "parameters": {"blob": "x" * (17 << 20)}})
    code, err = await error_of(jp_fetch, "jobs", method="POST", body=big)
    assert (code, err["field"]) == (413, "body") and "max_request_bytes" in err["hint"]


async def test_unknown_parameter_error_suggests_the_close_name(jp_fetch, train_nb):
    code, err = await error_of(jp_fetch, "jobs", method="POST", body={"path": "proj/train.ipynb", "parameters": {"lrr": 1}})
    assert code == 400 and "lrr" in err["message"] and "lr" in (err["hint"] or "")


async def test_other_bad_requests_are_specific(jp_fetch, train_nb):
    assert (await error_of(jp_fetch, "jobs", method="POST", body="{not json"))[1]["field"] == "body"
    assert (await error_of(jp_fetch, "jobs", "NOT_AN_ID"))[0] == 400
    code, err = await error_of(jp_fetch, "jobs", FAKE_ID)
    assert code == 404 and err["field"] == "job_id", err
    assert (await error_of(jp_fetch, "jobs", FAKE_ID, "log", params={"cursor": "x"}))[1]["field"] == "cursor"
    assert (await error_of(jp_fetch, "jobs", params={"state": "sleeping"}))[1]["field"] == "state"
    assert (await error_of(jp_fetch, "gallery", params={"sort": "nonsense"}))[1]["field"] == "sort"
    assert (await error_of(jp_fetch, "compare", params={"a": FAKE_ID}))[1]["field"] == "b"
    assert (await error_of(jp_fetch, "notebook"))[1]["field"] == "path"
    assert (await error_of(jp_fetch, "jobs", FAKE_ID, "merge-plan", method="POST", body={}))[1]["field"] == "cells"


@pytest.mark.parametrize("path", ["../outside.ipynb", "proj/../../outside.ipynb", "link/outside.ipynb", "//outside.ipynb"])
async def test_paths_outside_the_root_are_refused(jp_fetch, jp_root_dir, tmp_path, train_nb, path):
    outside = jp_root_dir.parent / "outside.ipynb"
    make_notebook(outside, ["print(1)"])
    (jp_root_dir / "link").symlink_to(jp_root_dir.parent, target_is_directory=True)
    for endpoint, kw in (("notebook", {"params": {"path": path}}), ("jobs", {"method": "POST", "body": {"path": path}})):
        code, err = await error_of(jp_fetch, endpoint, **kw)
        assert code == 400 and err["field"] == "path", (endpoint, err)
        assert "outside the server root" in err["message"]


async def test_absolute_paths_are_read_relative_to_the_root(jp_fetch, jp_root_dir, train_nb):
    """As in the contents API, "/x" means the root's x. A path that only exists as an OS path
    outside the root (/etc/passwd) is refused as outside (400), not "not found"; an OS path
    inside the root, as pasted from a terminal, is the file it names."""
    code, err = await error_of(jp_fetch, "notebook", params={"path": "/etc/passwd"})
    assert code == 400 and err["field"] == "path" and "outside the server root" in err["message"]
    code, err = await error_of(jp_fetch, "notebook", params={"path": "/no/such/notebook.ipynb"})
    assert code == 404 and err["field"] == "path"
    for path in ("/proj/train.ipynb", str(train_nb.resolve())):
        data = json.loads((await call(jp_fetch, "notebook", params={"path": path})).body)
        assert [p["name"] for p in data["parameters"]] == ["lr", "epochs"]


@pytest.mark.slow
async def test_job_life_through_the_api(jp_fetch, train_nb):
    r = await call(jp_fetch, "jobs", method="POST", body={"path": "proj/train.ipynb", "parameters": {"lr": 0.5}})
    assert r.code == 201
    job = json.loads(r.body)
    assert job["source_path"] == "proj/train.ipynb" and job["parameters"] == {"lr": 0.5}
    assert "offload run proj/train.ipynb" in job["cli"] and "-p lr=0.5" in job["cli"]

    # the list shows it (this notebook's filter included) while it is active or right after
    listed = json.loads((await call(jp_fetch, "jobs", params={"notebook": "proj/train.ipynb"})).body)["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]

    done = await wait_state(jp_fetch, job["id"], ("succeeded", "failed", "lost"))
    assert done["state"] == "succeeded", done.get("reason")
    assert done["progress"]["n_cells"] and done["progress"]["cell"] == done["progress"]["n_cells"]

    # log with a cursor: everything once, then nothing new
    log = json.loads((await call(jp_fetch, "jobs", job["id"], "log")).body)
    assert "trained with lr 0.5" in log["text"] and log["done"]
    again = json.loads((await call(jp_fetch, "jobs", job["id"], "log", params={"cursor": log["cursor"]})).body)
    assert again["text"] == "" and again["cursor"] == log["cursor"]

    metrics = json.loads((await call(jp_fetch, "jobs", job["id"], "metrics")).body)
    assert [m["step"] for m in metrics["records"] if m["name"] == "loss"] == [0, 1, 2]
    assert metrics["last"]["loss"] == pytest.approx(0.5 / 3)

    # merge plan against the notebook as the browser has it, with one cell edited since submit
    nb = json.loads(train_nb.read_text())
    cells = [{"id": c["id"], "source": "".join(c["source"])} for c in nb["cells"]]
    edited = cells[-1]["id"]
    cells[-1]["source"] += "\n# changed after submit"
    plan = json.loads((await call(jp_fetch, "jobs", job["id"], "merge-plan", method="POST", body={"cells": cells})).body)
    assert plan["edited"] == [edited]
    merged = {m["id"]: m for m in plan["merged"]}
    assert any("trained with lr 0.5" in json.dumps(m["outputs"]) for m in merged.values())
    assert plan["provenance"]["parameters"] == {"lr": 0.5}

    # gallery card with the first image output as thumbnail (the gallery is the watcher's view:
    # wait for the pass that has seen the job end before sorting by its metric)
    deadline = time.monotonic() + 300
    while "loss" not in json.loads((await call(jp_fetch, "gallery")).body)["metrics"]:
        assert time.monotonic() < deadline, "the gallery never listed the job's metrics"
        await asyncio.sleep(0.2)
    gallery = json.loads((await call(jp_fetch, "gallery", params={"sort": "loss", "order": "asc"})).body)
    card = next(c for c in gallery["cards"] if c["id"] == job["id"])
    assert card["thumbnail"] and card["metrics"]["loss"] == pytest.approx(0.5 / 3)
    thumb = await call(jp_fetch, "jobs", job["id"], "thumbnail")
    assert thumb.headers["Content-Type"] == "image/png" and thumb.body.startswith(b"\x89PNG")

    # cancelling a finished job is a conflict, not a silent success
    code, err = await error_of(jp_fetch, "jobs", job["id"], "cancel", method="POST")
    assert code == 409 and "already ended" in err["message"]

    # rerun with a changed parameter: same bundle, new job, parent recorded; compare the two
    r2 = await call(jp_fetch, "jobs", job["id"], "rerun", method="POST", body={"parameters": {"lr": 0.25}})
    job2 = json.loads(r2.body)
    assert job2["parent"] == job["id"] and job2["parameters"] == {"lr": 0.25}
    assert job2["spec"]["bundle_id"] == done["spec"]["bundle_id"]
    code, err = await error_of(jp_fetch, "jobs", job["id"], "rerun", method="POST", body={"parameters": {"nope": 1}})
    assert code == 400 and err["field"] == "parameters"
    done2 = await wait_state(jp_fetch, job2["id"], ("succeeded", "failed", "lost"))
    assert done2["state"] == "succeeded", done2.get("reason")
    cmp = json.loads((await call(jp_fetch, "compare", params={"a": job["id"], "b": job2["id"]})).body)
    assert {p["name"]: (p["a"], p["b"]) for p in cmp["parameters"]}["lr"] == (0.5, 0.25)
    assert any("trained with lr" in o["a_text"] and not o["same"] for o in cmp["outputs"])


@pytest.mark.slow
async def test_cancel_a_long_job(jp_fetch, jp_root_dir):
    make_notebook(jp_root_dir / "long.ipynb", ["import time\nprint('started', flush=True)\ntime.sleep(120)"])
    job = json.loads((await call(jp_fetch, "jobs", method="POST", body={"path": "long.ipynb"})).body)
    await wait_state(jp_fetch, job["id"], ("running",))
    r = await call(jp_fetch, "jobs", job["id"], "cancel", method="POST")
    assert r.code == 202
    done = await wait_state(jp_fetch, job["id"], ("cancelled", "failed", "lost", "succeeded"))
    assert done["state"] == "cancelled", done


@pytest.fixture
def launched_before_start(jp_root_dir):
    """Two jobs submitted before the server starts, as by a server that was then killed -9:
    one keeps running, the other's runner is killed too."""
    from offload.jobs import submit

    alive = submit(make_notebook(jp_root_dir / "r.ipynb", ["import time\ntime.sleep(2)\nprint('survived')"]))
    dead = submit(make_notebook(jp_root_dir / "d.ipynb", ["import time\ntime.sleep(120)"]))
    deadline = time.monotonic() + 300  # readiness, with a generous deadline for a loaded machine
    while dead.refresh()["state"] != "running":
        assert time.monotonic() < deadline, dead.status
        time.sleep(0.1)
    os.killpg(int(dead.handle["pid"]), signal.SIGKILL)
    return alive, dead


@pytest.mark.slow
async def test_restart_reconciles_jobs_from_the_store(launched_before_start, jp_fetch):
    """The server (started after the jobs) follows the live one to the end and marks the one
    whose runner died as lost: the store is the truth, the server only a cache."""
    alive, dead = launched_before_start
    rows = {j["id"]: j for j in json.loads((await call(jp_fetch, "jobs")).body)["jobs"]}
    assert set(rows) == {alive.id, dead.id}
    assert (await wait_state(jp_fetch, dead.id, ("lost", "failed")))["state"] == "lost"
    assert (await wait_state(jp_fetch, alive.id, ("succeeded", "failed", "lost")))["state"] == "succeeded"
    assert rows[alive.id]["source_path"] == "r.ipynb"


def test_openapi_file_describes_every_route():
    import yaml

    spec = yaml.safe_load((Path(__file__).parent.parent / "jupyter_ext" / "openapi.yaml").read_text())
    documented = set(spec["paths"])
    routed = {"/" + p.replace("(?P<job_id>[^/]+)", "{job_id}") for p, _ in ROUTES}
    assert documented == routed
    for pattern, handler in ROUTES:
        path = "/" + pattern.replace("(?P<job_id>[^/]+)", "{job_id}")
        served = {m for m in ("get", "post") if m in handler.__dict__}
        assert served == set(spec["paths"][path]) - {"parameters"}, path


def _start_server(root: Path, env: dict, port: int):
    proc, base = start_server(root, env, port=port, extra=("--OffloadExtensionApp.poll_interval=0.3",))
    return proc, base, TOKEN


def _api(base: str, token: str, path: str, body: dict | None = None) -> dict:
    import urllib.request

    req = urllib.request.Request(f"{base}/offload/api/{path}", method="POST" if body is not None else "GET",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:  # a generous deadline: tests run on loaded machines
        return json.loads(r.read())


@pytest.mark.slow
def test_server_killed_with_sigkill_picks_its_jobs_up_again(tmp_path, offload_home):
    """A real server process submits a job and dies by SIGKILL; the next server follows the job
    (still running in its own session) to the end from the store."""
    import socket

    root = tmp_path / "root"
    make_notebook(root / "slow.ipynb", ["import time\ntime.sleep(3)\nprint('outlived the server')"])
    env = dict(os.environ, OFFLOAD_HOME=str(offload_home), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    first, base, token = _start_server(root, env, port)
    try:
        job = _api(base, token, "jobs", {"path": "slow.ipynb"})
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=120)
    second, base, token = _start_server(root, env, port)
    try:
        ids = [j["id"] for j in _api(base, token, "jobs")["jobs"]]
        assert job["id"] in ids
        deadline = time.monotonic() + 300
        while (state := _api(base, token, f"jobs/{job['id']}")["state"]) not in ("succeeded", "failed", "lost"):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert state == "succeeded"
        assert "outlived the server" in _api(base, token, f"jobs/{job['id']}/log")["text"]
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=120)


async def test_machine_offer_with_gpu_is_split_into_shape_and_gpu(jp_fetch, train_nb):
    """The dialog sends machine offers as listed ("n1-standard-8+t4"): the job asks for both,
    and a backend that has neither (local, here) refuses it naming the field, before staging."""
    service = OffloadService(root_dir=str(train_nb.parents[1]), backends=["local"])
    body = {"path": "proj/train.ipynb", "machine": "n1-standard-8+t4", "max_runtime": "30m"}
    req = JobRequest.parse(service, body)
    assert (req.machine, req.gpu, req.max_runtime) == ("n1-standard-8", "t4", "30m")
    spec = JobSpec(id="20260101-000000-abcdef", notebook="train.ipynb", bundle_id="b", backend="gce",
                   resources=Resources(machine=req.machine, gpu=req.gpu, max_runtime_s=1800))
    assert "--machine n1-standard-8 --gpu t4 --max-runtime 30m" in cli_command(spec, service.root_dir)
    code, err = await error_of(jp_fetch, "jobs", method="POST", body=body)
    assert (code, err["field"]) == (400, "machine"), err
