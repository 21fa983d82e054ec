"""Store faults, for real: the runner writes to the GCS emulator through a proxy that fails
requests (tests/fakes/gcs_proxy.py), with the real gcsfs client on both sides.

A 503 storm loses nothing (the store and gcsfs retry); a store that stops taking writes mid-run
ends the job ``failed`` with "store not writable: <reason>" as soon as the store takes writes
again, with every log line written before, during and after the outage.
"""

from __future__ import annotations

import re
import time

import pytest

from offload.errors import StoreError
from offload.jobs import Job, submit
from offload.store import Store, layout
from tests.fakes.gcs_proxy import FaultProxy
from tests.notebooks import make_notebook

pytestmark = pytest.mark.slow


@pytest.fixture
def proxy(gcs_server, gcs_env, monkeypatch):
    """The proxy, and the environment that sends every runner's store traffic through it."""
    p = FaultProxy(gcs_server.url).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", p.url)  # runners inherit it from the launcher
    yield p
    p.stop()


def _stores(gcs_server, proxy):
    """The same bucket seen through the proxy and straight from the emulator (distinct fsspec
    instances: ``endpoint_url`` is part of their cache key)."""
    bucket = gcs_server.new_bucket()
    url = f"gs://{bucket}/offload"
    return Store(url, endpoint_url=proxy.url), Store(url, endpoint_url=gcs_server.url)


def _wait(what: str, check, timeout: float = 180.0):
    """Wait on a condition (readiness), with a generous deadline for a loaded machine."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_a_gcs_503_storm_loses_nothing(gcs_server, proxy, tmp_path):
    via_proxy, direct = _stores(gcs_server, proxy)
    nb = make_notebook(tmp_path / "storm.ipynb", [
        "import offload, time\nfor i in range(20):\n    print('line', i, flush=True)\n"
        "    offload.log_metric('x', i, step=i)\n    time.sleep(0.05)",
        "import os\nd = os.environ['OFFLOAD_OUTPUT_DIR']\nos.makedirs(d, exist_ok=True)\n"
        "open(os.path.join(d, 'result.txt'), 'w').write('ok')",
    ])
    proxy.storm_every = 3  # one request in three, reads and writes, submit and runner alike
    job = submit(nb, store=via_proxy, max_runtime="10m")
    job.wait(timeout=300)
    proxy.storm_every = 0
    assert proxy.failed > 10, proxy.failed  # the storm happened
    seen = Job(job.id, store=direct)
    assert seen.state == "succeeded", seen.status
    log = seen.logs()
    assert [int(n) for n in re.findall(r"^line (\d+)$", log, re.M)] == list(range(20)), log
    assert [m["value"] for m in seen.metrics if m.get("name") == "x"] == list(range(20))
    assert direct.get_text(layout.job_key(job.id, "outputs/result.txt")) == "ok"


def test_a_store_that_stops_taking_writes_fails_the_job_and_says_why(gcs_server, proxy, tmp_path, monkeypatch):
    monkeypatch.setenv("OFFLOAD_STORE_GRACE_S", "1")  # the runner's patience, short for the test
    monkeypatch.setenv("OFFLOAD_STORE_RETRIES", "1")
    via_proxy, direct = _stores(gcs_server, proxy)
    nb = make_notebook(tmp_path / "long.ipynb", [
        "import time\nfor i in range(1200):\n    print('tick', i, flush=True)\n    time.sleep(0.1)",
    ])
    job = submit(nb, store=via_proxy, max_runtime="10m")
    seen = Job(job.id, store=direct)
    _wait("the job to log", lambda: "tick 3\n" in seen.logs())
    proxy.refuse_writes = True
    # the runner stops the job and tries to record why: wait for that write, refused
    _wait("the runner to try to record the failure", lambda: proxy.refused(b"store not writable"))
    assert seen.refresh()["state"] == "running"  # nothing recorded while the store refuses
    proxy.refuse_writes = False
    _wait("the job to end", lambda: seen.refresh()["state"] != "running")
    st = seen.status
    assert st["state"] == "failed", st
    assert st["reason"].startswith("store not writable: ") and "Forbidden" in st["reason"], st["reason"]
    ticks = [int(n) for n in re.findall(r"^tick (\d+)$", seen.logs(), re.M)]
    assert ticks == list(range(len(ticks))) and len(ticks) > 4, ticks  # no line lost in the outage
    assert "store not writable" in seen.logs()


def test_a_write_the_store_refuses_is_a_store_error_with_the_reason(gcs_server, proxy, monkeypatch):
    monkeypatch.setenv("OFFLOAD_STORE_RETRIES", "2")
    via_proxy, _ = _stores(gcs_server, proxy)
    via_proxy.put_text("a.txt", "before")
    proxy.refuse_writes = True
    with pytest.raises(StoreError) as info:
        via_proxy.put_text("a.txt", "after")
    assert "Forbidden" in info.value.reason and "a.txt" in info.value.message
    assert len(proxy.refused_bodies) == 3  # tried, then retried twice with backoff
    assert via_proxy.get_text("a.txt") == "before"  # reads still work


def test_a_client_reading_a_read_only_store_shows_what_it_cannot_record(tmp_path, notebook):
    """The CLI's reads conclude (a runner gone is 'lost') and record it; on a store that refuses
    writes the conclusion is shown, with why it was not recorded, instead of an error."""
    import os
    import signal

    from tests.test_server_hardening import RefusingStore

    store = Store((tmp_path / "store").as_uri())
    job = submit(notebook("sleep.ipynb", ["import time\ntime.sleep(120)"]), store=store)
    _wait("the job to run", lambda: job.refresh()["state"] == "running")
    os.killpg(int(job.handle["pid"]), signal.SIGKILL)
    refusing = RefusingStore(store.url)
    refusing.attempts = []
    seen = _wait("the runner to be gone", lambda: (st := Job(job.id, store=refusing).status)["state"] == "lost" and st)
    assert "not recorded" in seen["store_note"] and refusing.attempts == [layout.job_key(job.id, "reconciled.json")]
    assert not store.exists(layout.job_key(job.id, "reconciled.json"))
    assert Job(job.id, store=store).status["state"] == "lost"  # a client that can write records it
    assert store.exists(layout.job_key(job.id, "reconciled.json"))
