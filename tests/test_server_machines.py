"""Machines through the REST API (GET /machines, POST /machines/stop), on a real Jupyter server
with a real machine: a warm ``%%offload`` session on the local backend registers itself like a
gce or slurm machine does (tests/test_machines.py runs those), and Stop ends it."""

from __future__ import annotations

import asyncio
import json
import os
import time
from argparse import Namespace

import pytest

from offload.cells.session import SessionClient
from offload.store import Store, layout
from tests.test_server import call, error_of, jp_server_config, train_nb  # noqa: F401  (fixtures)

pytest_plugins = ["pytest_jupyter.jupyter_server"]


async def _until(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := await pred()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)
    return value


async def _machines(jp_fetch) -> dict:
    return json.loads((await call(jp_fetch, "machines")).body)


async def test_no_machine_says_why(jp_fetch):
    got = await _machines(jp_fetch)
    assert got["machines"] == [] and "--keep-alive" in got["why_empty"]


async def test_a_session_is_listed_with_its_countdown_and_stop_ends_it(jp_fetch, jp_root_dir):
    store = Store()  # the server's store: the default one under OFFLOAD_HOME
    opts = Namespace(backend="local", gpu=None, gpu_count=None, machine=None, spot=None, max_runtime="10m",
                     keep_alive="15m", env=None)
    session = SessionClient.start(store, opts, cwd=str(jp_root_dir))
    try:
        async def listed():
            rows = (await _machines(jp_fetch))["machines"]
            return rows if rows and rows[0]["idle_deadline"] else None

        [row] = await _until(listed, 120, "the session to register as a machine")
        assert row["role"] == "session" and row["backend"] == "local" and row["state"] == "busy"
        assert 800 < row["idle_left_s"] <= 900 and row["job"] == session.id

        r = await call(jp_fetch, "machines", "stop", method="POST", body={"names": [row["name"]]})
        assert r.code == 202
        [stopped] = json.loads(r.body)["stopped"]
        assert stopped["stopped"] and row["name"] in stopped["message"]

        async def gone():
            return (await _machines(jp_fetch))["machines"] == []

        await _until(gone, 60, "the stopped session to leave the list")
        record = store.get_json(layout.machine_key(row["name"]))
        assert record["state"] == "ended"
        status = store.get_json(layout.job_key(session.id, "status.json"))
        assert status["state"] == "succeeded" and "stopped" in status["reason"]
    finally:
        session.stop()


@pytest.mark.parametrize("body, field", [
    ({}, "names"),
    ({"names": ["a"], "all": True}, "names"),
    ({"names": ["../../etc"]}, "names"),
    ({"names": "offload-x"}, "names"),
    ({"nmes": ["offload-x"]}, "nmes"),
])
async def test_stop_refuses_bad_bodies_naming_the_field(jp_fetch, body, field):
    code, err = await error_of(jp_fetch, "machines", "stop", method="POST", body=body)
    assert code == 400 and err["field"] == field


async def test_stop_of_an_unknown_machine_is_404(jp_fetch):
    code, err = await error_of(jp_fetch, "machines", "stop", method="POST", body={"names": ["offload-nope-123456"]})
    assert code == 404 and err["field"] == "name" and "--running" in err["hint"]


async def test_keep_alive_on_the_local_backend_is_a_400_naming_it(jp_fetch, train_nb):  # noqa: F811
    for value, why in (("10m", "gce and slurm"), ("soon", "10m")):
        code, err = await error_of(jp_fetch, "jobs", method="POST",
                                   body={"path": "proj/train.ipynb", "keep_alive": value})
        assert code == 400 and err["field"] == "keep_alive" and why in err["hint"], err
    assert not os.environ.get("OFFLOAD_BACKEND")
