"""A JupyterLab console on a running job's kernel, through a real Jupyter server: the console
endpoint registers the job's kernel (a subshell) as a kernel of the server, the ordinary
authenticated kernel websocket talks to it while the notebook's cell runs, interrupt and restart
are refused, and shutting the console's kernel down leaves the job running."""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid

import pytest
from tornado.httpclient import HTTPClientError

from offload.attach import execute
from offload.jobs import Job, submit
from offload.spec import JobState
from offload.store import layout
from offload.testing import wait_for
from tests.notebooks import make_notebook

pytest_plugins = ["pytest_jupyter.jupyter_server"]

LOOP = ["import time\nstep = 0", "while True:\n    step += 1\n    time.sleep(0.05)"]


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_ext": True}},
        "OffloadExtensionApp": {"poll_interval": 0.2, "backends": ["local"]},
    }


async def post(jp_fetch, *parts, body=None, **kw):
    return await jp_fetch(*parts, method="POST", body=json.dumps(body or {}), request_timeout=300, **kw)


def msg(msg_type: str, content: dict, channel: str = "shell") -> dict:
    return {"header": {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": "test", "username": "test",
                       "version": "5.4", "date": ""},
            "parent_header": {}, "metadata": {}, "content": content, "channel": channel, "buffers": []}


async def evaluate(ws, code: str, timeout: float = 120) -> str:
    """execute_request on the console's websocket; the text/plain result for it."""
    m = msg("execute_request", {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                                "allow_stdin": False, "stop_on_error": True})
    await ws.write_message(json.dumps(m))
    deadline = time.monotonic() + timeout
    result, replied, idle = None, False, False
    while time.monotonic() < deadline and not (replied and idle):  # shell reply and iopub: either order
        raw = await asyncio.wait_for(ws.read_message(), timeout=deadline - time.monotonic())
        reply = json.loads(raw)
        if reply.get("parent_header", {}).get("msg_id") != m["header"]["msg_id"]:
            continue
        if reply["msg_type"] == "execute_result":
            result = reply["content"]["data"]["text/plain"]
        if reply["msg_type"] == "error":
            raise AssertionError(reply["content"])
        replied = replied or reply["msg_type"] == "execute_reply"
        idle = idle or (reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle")
    assert replied and idle, f"no answer to {code!r}"
    return result


def running_job(root) -> Job:
    job = submit(make_notebook(root / "loop.ipynb", LOOP), backend="local")
    wait_for(lambda: job.store.exists(job.key(layout.KERNEL)), 180, "the job's kernel")
    return job


async def test_console_on_a_running_job_kernel(jp_fetch, jp_ws_fetch, jp_root_dir):
    job = running_job(jp_root_dir)
    try:
        r = await post(jp_fetch, "offload", "api", "jobs", job.id, "console")
        assert r.code == 201
        out = json.loads(r.body)
        kid = out["kernel_id"]
        assert out["job_id"] == job.id and out["route"] == "local" and out["subshell_id"]
        kernels = json.loads((await jp_fetch("api", "kernels")).body)
        assert kid in [k["id"] for k in kernels]  # a kernel of this server, for JupyterLab's console

        ws = await jp_ws_fetch("api", "kernels", kid, "channels")
        first = int(await evaluate(ws, "step"))
        assert first > 0
        wait_deadline = time.monotonic() + 120
        while int(await evaluate(ws, "step")) <= first + 5:  # the cell keeps running: the value moves
            assert time.monotonic() < wait_deadline, "the live variable did not change"
            await asyncio.sleep(0.3)

        with pytest.raises(HTTPClientError) as info:  # an interrupt would stop the job's cell
            await post(jp_fetch, "api", "kernels", kid, "interrupt")
        assert info.value.code == 409
        ws.close()

        r = await jp_fetch("api", "kernels", kid, method="DELETE", request_timeout=120)
        assert r.code == 204
        assert kid not in [k["id"] for k in json.loads((await jp_fetch("api", "kernels")).body)]
        # closing the console never stops the job's kernel: the job runs on, its cell still counting
        assert Job(job.id, store=job.store).state == JobState.RUNNING
        assert job.store.exists(job.key(layout.KERNEL))
        buf = io.StringIO()
        assert await asyncio.to_thread(execute, job.id, "print(step)", store=job.store, out=buf) == 0
        assert int(buf.getvalue().split()[-1]) > first
    finally:
        job.cancel()
        await asyncio.to_thread(job.wait, 180)

    with pytest.raises(HTTPClientError) as info:  # an ended job: 409 naming its state
        await post(jp_fetch, "offload", "api", "jobs", job.id, "console")
    assert info.value.code == 409


async def test_a_console_goes_when_its_job_ends(jp_fetch, jp_root_dir):
    job = running_job(jp_root_dir)
    try:
        kid = json.loads((await post(jp_fetch, "offload", "api", "jobs", job.id, "console")).body)["kernel_id"]
        assert kid in [k["id"] for k in json.loads((await jp_fetch("api", "kernels")).body)]
    finally:
        job.cancel()
        await asyncio.to_thread(job.wait, 180)
    deadline = time.monotonic() + 60
    while kid in [k["id"] for k in json.loads((await jp_fetch("api", "kernels")).body)]:
        assert time.monotonic() < deadline, "the ended job's console kernel is still listed"
        await asyncio.sleep(0.5)
    with pytest.raises(HTTPClientError) as info:
        await post(jp_fetch, "offload", "api", "jobs", job.id, "console")
    assert info.value.code == 409
    assert "cancelled" in json.loads(info.value.response.body)["message"]


async def test_console_endpoint_needs_auth(jp_fetch, jp_root_dir):
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("offload", "api", "jobs", "20260101-000000-abcdef", "console", method="POST", body="{}",
                       headers={"Authorization": ""})
    assert info.value.code in (401, 403)
    with pytest.raises(HTTPClientError) as info:
        await post(jp_fetch, "offload", "api", "jobs", "20260101-000000-abcdef", "console")
    assert info.value.code == 404


async def test_terminal_runs_offload_ssh_in_the_job_dir(jp_fetch, jp_ws_fetch, jp_root_dir):
    job = running_job(jp_root_dir)
    try:
        r = await post(jp_fetch, "offload", "api", "jobs", job.id, "terminal")
        assert r.code == 201
        name = json.loads(r.body)["name"]
        assert name in [t["name"] for t in json.loads((await jp_fetch("api", "terminals")).body)]
        cwd = job.store.get_json(job.key(layout.KERNEL))["cwd"]
        ws = await jp_ws_fetch("terminals", "websocket", name)
        await ws.write_message(json.dumps(["stdin", "pwd; echo JOB=$OFFLOAD_JOB_ID\r"]))
        seen, deadline = "", time.monotonic() + 120
        while f"JOB={job.id}" not in seen or cwd not in seen:
            assert time.monotonic() < deadline, seen
            message = json.loads(await asyncio.wait_for(ws.read_message(), timeout=120))
            if message[0] == "stdout":
                seen += message[1]
        ws.close()
        await jp_fetch("api", "terminals", name, method="DELETE")
        assert Job(job.id, store=job.store).state == JobState.RUNNING
    finally:
        job.cancel()
        await asyncio.to_thread(job.wait, 180)
    with pytest.raises(HTTPClientError) as info:
        await post(jp_fetch, "offload", "api", "jobs", job.id, "terminal")
    assert info.value.code == 409


async def test_debug_copy_endpoint(jp_fetch, jp_root_dir):
    failed = submit(make_notebook(jp_root_dir / "fails.ipynb", ["a = 1", "b = 2", "raise ValueError('x')"]), backend="local")
    await asyncio.to_thread(failed.wait, 300)
    with pytest.raises(HTTPClientError) as info:
        await post(jp_fetch, "offload", "api", "jobs", failed.id, "debug-copy", body={"hold_s": "long"})
    assert info.value.code == 400 and json.loads(info.value.response.body)["field"] == "hold_s"
    r = await post(jp_fetch, "offload", "api", "jobs", failed.id, "debug-copy", body={"hold_s": 600})
    assert r.code == 201
    copy = Job(json.loads(r.body)["id"], store=failed.store)
    try:
        buf = io.StringIO()
        assert await asyncio.to_thread(execute, copy.id, "print(a + b)", store=copy.store, out=buf) == 0
        assert buf.getvalue().strip() == "3"
    finally:
        copy.cancel()
        await asyncio.to_thread(copy.wait, 180)


async def debug(ws, command: str, arguments: dict, seq: int, timeout: float = 120) -> dict:
    """A DAP request as JupyterLab's debugger sends it (debug_request on the control channel)."""
    m = msg("debug_request", {"type": "request", "seq": seq, "command": command, "arguments": arguments},
            channel="control")
    await ws.write_message(json.dumps(m))
    deadline = time.monotonic() + timeout
    while True:
        raw = await asyncio.wait_for(ws.read_message(), timeout=max(0.1, deadline - time.monotonic()))
        reply = json.loads(raw)
        if reply.get("parent_header", {}).get("msg_id") == m["header"]["msg_id"] and reply["msg_type"] == "debug_reply":
            return reply["content"]


async def kernel_info(ws, timeout: float = 120) -> dict:
    m = msg("kernel_info_request", {})
    await ws.write_message(json.dumps(m))
    deadline = time.monotonic() + timeout
    while True:
        reply = json.loads(await asyncio.wait_for(ws.read_message(), timeout=max(0.1, deadline - time.monotonic())))
        if reply.get("parent_header", {}).get("msg_id") == m["header"]["msg_id"] and reply["msg_type"] == "kernel_info_reply":
            return reply["content"]


async def test_debugger_on_a_running_jobs_console(jp_fetch, jp_ws_fetch, jp_root_dir):
    """JupyterLab's debugger on a console of a running job: the kernel says it can debug, the
    debugger starts while the notebook's cell keeps the main shell busy (ipykernel would start
    debugpy through the main shell; the console does it through its subshell), its variables
    request lists the live variable with a value that moves, and the job runs on."""
    job = running_job(jp_root_dir)
    try:
        kid = json.loads((await post(jp_fetch, "offload", "api", "jobs", job.id, "console")).body)["kernel_id"]
        ws = await jp_ws_fetch("api", "kernels", kid, "channels")
        info = await kernel_info(ws)
        assert "debugger" in info.get("supported_features", [])  # what JupyterLab's debugger looks for
        init = await debug(ws, "initialize", {"clientID": "jupyterlab", "adapterID": "python", "pathFormat": "path",
                                              "linesStartAt1": True, "columnsStartAt1": True,
                                              "supportsVariableType": True, "locale": "en"}, 1)
        assert init.get("success") is True, init
        attached = await debug(ws, "attach", {}, 2)
        assert attached.get("success") is True, attached
        await debug(ws, "configurationDone", {}, 3)
        values = []
        for seq in (4, 5):
            reply = await debug(ws, "inspectVariables", {}, seq)
            found = {v["name"]: v for v in reply["body"]["variables"]}
            assert "step" in found, sorted(found)
            values.append(int(found["step"]["value"]))
            await asyncio.sleep(1.0)
        assert values[1] > values[0] > 0  # live: the notebook's cell is still counting
        assert int(await evaluate(ws, "step")) > values[1]  # the console still answers
        await debug(ws, "disconnect", {"restart": False, "terminateDebuggee": False}, 6)
        ws.close()
        await jp_fetch("api", "kernels", kid, method="DELETE", request_timeout=120)
        assert Job(job.id, store=job.store).state == JobState.RUNNING
    finally:
        job.cancel()
        await asyncio.to_thread(job.wait, 180)
