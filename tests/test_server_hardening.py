"""Hardening of the REST API (issue 15): the per-user cap on active jobs, reads that never write
to the store, and the Run dialog's inspection naming what is left out of the upload and why."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import time

import pytest
from jupyter_server.auth.identity import IdentityProvider, User

from offload.errors import StoreError
from offload.store import Store
from tests.notebooks import make_notebook
from tests.test_server import call, error_of, wait_state

pytest_plugins = ["pytest_jupyter.jupyter_server"]


class NamedUsers(IdentityProvider):
    """Token login, with the user named by a header: a server that knows its users (as
    JupyterHub's identity provider does)."""

    async def get_user(self, handler):
        user = super().get_user(handler)
        user = await user if inspect.isawaitable(user) else user
        if user is None:
            return None
        name = handler.request.headers.get("X-Test-User", "alice")
        return User(username=name, name=name)


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_ext": True},
                      "identity_provider_class": f"{__name__}.NamedUsers"},
        "OffloadExtensionApp": {"poll_interval": 0.2, "backends": ["local"], "max_active_jobs_per_user": 1},
    }


def _ext(jp_serverapp):
    return jp_serverapp.web_app.settings["offload_app"]


async def test_a_user_over_the_active_job_cap_gets_409_naming_the_setting(jp_fetch, jp_root_dir):
    make_notebook(jp_root_dir / "long.ipynb", ["import time\ntime.sleep(120)"])
    make_notebook(jp_root_dir / "short.ipynb", ["print(1)"])
    first = json.loads((await call(jp_fetch, "jobs", method="POST", body={"path": "long.ipynb"})).body)
    assert first["spec"]["labels"]["user"] == "alice"  # the job carries who submitted it
    code, err = await error_of(jp_fetch, "jobs", method="POST", body={"path": "short.ipynb"})
    assert code == 409, err
    assert "max_active_jobs_per_user = 1" in err["message"]
    assert "OffloadExtensionApp.max_active_jobs_per_user" in err["hint"]
    # another user is not held back by alice's job
    bob = json.loads((await call(jp_fetch, "jobs", method="POST", body={"path": "short.ipynb"},
                                 headers={"X-Test-User": "bob"})).body)
    assert (await wait_state(jp_fetch, bob["id"], ("succeeded", "failed")))["state"] == "succeeded"
    await call(jp_fetch, "jobs", first["id"], "cancel", method="POST")
    await wait_state(jp_fetch, first["id"], ("cancelled", "failed", "lost"))
    again = json.loads((await call(jp_fetch, "jobs", method="POST", body={"path": "short.ipynb"})).body)
    assert (await wait_state(jp_fetch, again["id"], ("succeeded", "failed")))["state"] == "succeeded"


class RefusingStore(Store):
    """The same store, refusing every write (and counting the attempts)."""

    attempts: list[str]

    def put_bytes(self, key: str, data: bytes) -> None:
        self.attempts.append(key)
        raise StoreError(f"cannot write {key}: the store is read-only (test)", reason="read-only")

    def put_file(self, local_path, key: str) -> None:
        self.put_bytes(key, b"")

    def delete(self, key: str, *, recursive: bool = False) -> None:
        self.put_bytes(key, b"")


async def test_reads_never_write_to_the_store(jp_fetch, jp_serverapp, jp_root_dir):
    """Every GET answers from a store that refuses writes, with no write tried, even for a job
    whose runner is gone (reconciling it concludes 'lost': shown, not written, by a read)."""
    make_notebook(jp_root_dir / "ok.ipynb", ["print('fine')"])
    make_notebook(jp_root_dir / "doomed.ipynb", ["import time\nprint('up', flush=True)\ntime.sleep(120)"])
    ok = json.loads((await call(jp_fetch, "jobs", method="POST", body={"path": "ok.ipynb"})).body)
    await wait_state(jp_fetch, ok["id"], ("succeeded",))
    doomed = json.loads((await call(jp_fetch, "jobs", method="POST", body={"path": "doomed.ipynb"})).body)
    running = await wait_state(jp_fetch, doomed["id"], ("running",))
    ext = _ext(jp_serverapp)
    await ext.watcher.stop()  # the watcher records conclusions; this test is about reads
    os.killpg(int(running["handle"]["pid"]), signal.SIGKILL)
    refusing = RefusingStore(ext.service.store.url)
    refusing.attempts = []
    ext.service.store = refusing
    gets = [("jobs",), ("jobs", ok["id"]), ("jobs", ok["id"], "log"), ("jobs", ok["id"], "metrics"),
            ("jobs", ok["id"], "notebook"), ("jobs", doomed["id"]), ("jobs", doomed["id"], "log"),
            ("gallery",), ("backends",), ("events",)]
    for parts in gets:
        r = await call(jp_fetch, *parts)
        assert r.code == 200, parts
    # backend reads are spaced out (state_poll_s): the runner's death shows within a few seconds
    deadline = time.monotonic() + 120
    while (detail := json.loads((await call(jp_fetch, "jobs", doomed["id"])).body))["state"] != "lost":
        assert time.monotonic() < deadline, detail
        await asyncio.sleep(0.5)
    assert refusing.attempts == []  # the conclusion is shown, and nothing was written


async def test_inspection_lists_what_is_left_out_and_why(jp_fetch, jp_root_dir):
    """The Run dialog's preview: a module with a token in it and a key file are left out, each
    with its reason, before anything is uploaded."""
    proj = jp_root_dir / "proj"
    make_notebook(proj / "train.ipynb", ["import helpers\nprint(helpers.X)"])
    (proj / "helpers.py").write_text("X = 1\nGITHUB = 'ghp_" + "x9Yb3Kq7Lm2Np5Rs8Tv1Wz4Ac6De0Fg2Hj4Kl'\n")
    r = json.loads((await call(jp_fetch, "notebook", params={"path": "proj/train.ipynb"})).body)
    why = [x["why"] for x in r["excluded"] if x["path"].endswith("helpers.py")]  # relative to the project root
    assert why == ["contains a secret (GitHub Token on line 2)"], r
    assert not [f for f in r["files"] if f["path"].endswith("helpers.py")]
