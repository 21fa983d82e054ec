"""End-of-run webhooks against a real local HTTP server: one Slack-compatible message per job end,
whoever and however many processes watch it; retried when the webhook fails; refused before launch
when the URL is bad; the config's default and `--notify off`; a sweep says it once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from offload.errors import UsageError
from offload.jobs import recording, submit, sync_store
from offload.store import Store, layout
from tests.notebooks import make_notebook


class Hook:
    """A webhook receiver: records every POSTed JSON body; answers ``fail_first`` 503s first."""

    def __init__(self, fail_first: int = 0):
        self.bodies: list[dict] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hook.lock:
                    if hook.fail_first > 0:
                        hook.fail_first -= 1
                        self.send_response(503)
                        self.end_headers()
                        return
                    hook.bodies.append({"body": body, "type": self.headers["Content-Type"]})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T000/B000"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        with self.lock:
            return [b["body"]["text"] for b in self.bodies]


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.server.shutdown()


def offload(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "offload.cli", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def test_cli_run_sends_one_message_however_many_watch(hook, tmp_path):
    store = Store((tmp_path / "store").as_uri())
    nb = make_notebook(tmp_path / "train.ipynb", ["import offload, time\ntime.sleep(2)\noffload.log_metric('acc', 0.91)"])
    job_id = offload("--store", store.url, "run", str(nb), "--notify", hook.url, "--detach").stdout.strip()
    # Three clients watch the same job at once (two `offload logs -f`, one `offload run`-style wait),
    # then a server's watcher pass sees it end too: one message in all.
    followers = [subprocess.Popen([sys.executable, "-m", "offload.cli", "--store", store.url, "logs", "-f", job_id],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    from offload.jobs import Job
    job = Job(job_id, store=store).wait(timeout=600)
    for p in followers:
        assert p.wait(timeout=600) == 0
    recording.observe_pass(store, {job_id: ("running", "succeeded")})
    assert job.state == "succeeded"
    texts = hook.texts()
    assert len(texts) == 1, texts
    assert "train.ipynb succeeded" in texts[0] and job_id in texts[0] and "acc=0.91" in texts[0]
    assert hook.bodies[0]["type"] == "application/json"
    sent = store.get_json(layout.job_key(job_id, layout.NOTIFIED))
    assert sent["ok"] is True and sent["status"] == 200


def test_failed_job_says_why_and_a_failing_webhook_is_retried(tmp_path):
    hook = Hook(fail_first=1)
    try:
        store = Store((tmp_path / "store").as_uri())
        nb = make_notebook(tmp_path / "bad.ipynb", ["raise RuntimeError('disk full')"])
        job = submit(nb, store=store, notify=hook.url).wait(timeout=600)
        assert job.state == "failed"
        texts = hook.texts()
        assert len(texts) == 1 and "bad.ipynb failed" in texts[0] and "disk full" in texts[0]
    finally:
        hook.server.shutdown()


def test_server_watcher_pass_announces_a_detached_job(hook, tmp_path):
    """Nobody waits on the job: the Jupyter server's watcher pass (sync_store + observe_pass,
    what jupyter_ext.service.jobs.sync runs) sees it end and sends the message."""
    store = Store((tmp_path / "store").as_uri())
    nb = make_notebook(tmp_path / "quiet.ipynb", ["print('done')"])
    job = submit(nb, store=store, notify=hook.url)
    seen: dict = {}
    for _ in range(6000):
        report = sync_store(store, full=False, scan=True, watch=[job.id])
        seen.update(report.seen)
        recording.observe_pass(store, report.seen)
        if report.seen.get(job.id, (None, None))[1] == "succeeded":
            break
        threading.Event().wait(0.1)
    assert len(hook.texts()) == 1 and "quiet.ipynb succeeded" in hook.texts()[0]


def test_config_default_off_switch_and_bad_url(hook, tmp_path):
    store = Store((tmp_path / "store").as_uri())
    nb = make_notebook(tmp_path / "nb.ipynb", ["print(1)"])
    assert offload("config", "set", "notify.webhook", hook.url).returncode == 0
    assert "notify.webhook" in (shown := offload("config", "show").stdout) and hook.url in shown
    bad = offload("config", "set", "notify.webhok", hook.url)
    assert bad.returncode != 0 and "notify.webhook" in bad.stderr  # the error names the known key
    assert offload("--store", store.url, "run", str(nb), "-q").returncode == 0
    assert len(hook.texts()) == 1  # the setting applies to every job
    assert offload("--store", store.url, "run", str(nb), "-q", "--notify", "off").returncode == 0
    assert len(hook.texts()) == 1  # switched off for that job
    r = offload("--store", store.url, "run", str(nb), "--notify", "ftp://example.com/x")
    assert r.returncode != 0 and "notify" in r.stderr and "http(s)" in r.stderr
    with pytest.raises(UsageError) as exc:
        submit(nb, store=store, notify="not a url")
    assert exc.value.field == "notify"
    assert len(store.list_dirs("jobs")) == 2  # the refused submit left nothing behind


@pytest.mark.timeout(900)
def test_sweep_end_is_one_message_with_the_best_trial(hook, tmp_path):
    pytest.importorskip("optuna")
    from offload.sweeps import sweep

    store = Store((tmp_path / "store").as_uri())
    nb = make_notebook(tmp_path / "tune.ipynb", ["import offload\noffload.log_metric('score', x)"], params="x = 1.0")
    space = Path(tmp_path / "space.yaml")
    space.write_text("x: {type: float, low: 0.0, high: 1.0}\n")
    res = sweep(nb, space=str(space), objective="score", trials=3, parallel=2, sampler="random", seed=3,
                store=store, quiet=True, notify=hook.url)
    texts = hook.texts()
    assert len(texts) == 1, texts  # the sweep's, not one per trial
    assert f"sweep {res.id} of tune.ipynb completed" in texts[0] and "3 complete" in texts[0]
    assert f"score={res.best_value:.4g}" in texts[0]


@pytest.mark.parametrize("where", ["file", "gs"])
def test_the_claim_is_won_once_among_racing_observers(where, tmp_path, request):
    """notified.json is created exclusively: of 8 threads claiming one end at once, on a local
    store and on gs:// (the GCS emulator: a create-only upload), exactly one wins."""
    from offload.jobs.notify import _claim

    store = Store((tmp_path / "store").as_uri()) if where == "file" else request.getfixturevalue("gcs_env")()
    key = layout.job_key("20260101-000000-abcdef", layout.NOTIFIED)
    barrier = threading.Barrier(8)
    wins: list[bool] = []

    def claim(i: int) -> None:
        barrier.wait()
        wins.append(_claim(store, key, {"by": i}))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]
    assert store.get_json(key)["by"] in range(8)
