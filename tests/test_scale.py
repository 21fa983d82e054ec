"""Thousands of jobs: the REST job list and gallery page and filter on the server, `offload ls`
pages from the index, and a restarted server answers from its last index at once.

The jobs are synthetic records written through the store layout (spec, status, metrics) as the
client and the runner write them; the server and the CLI are the real ones. Speed is measured in
benchmarks/bench_scale.py, not here.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from jupyter_ext.watcher import JobWatcher
from offload.cli import main
from offload.jobs import index, sync_store
from offload.jobs.listing import CHUNK, SyncReport
from offload.store import Store
from offload.testing.records import write_job_records
from tests.test_server import call, error_of

pytest_plugins = ["pytest_jupyter.jupyter_server"]
N = 3000


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_ext": True}},
        "OffloadExtensionApp": {"poll_interval": 0.2, "backends": ["local"]},
    }


@pytest.fixture
def many_jobs(offload_home, jp_root_dir) -> list[str]:
    """N finished jobs in the default store, written before the server starts."""
    return write_job_records(Store(), N, notebooks=("a.ipynb", "sub/b.ipynb", "c.ipynb"),
                             kinds=("notebook", "notebook", "notebook", "trial"), source_dir=str(jp_root_dir))


async def _walk(jp_fetch, path: str, key: str, **params) -> list[dict]:
    out, cursor = [], None
    while True:
        q = {**params, **({"cursor": cursor} if cursor else {})}
        page = json.loads((await call(jp_fetch, path, params=q)).body)
        out += page[key]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


async def _caught_up(jp_fetch) -> None:
    """The server answers once the newest jobs are indexed; wait for all N (readiness, no timing)."""
    for _ in range(1200):
        if json.loads((await call(jp_fetch, "jobs", params={"limit": "1"})).body)["total"] == N:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the first pass never indexed every job")


async def test_job_list_pages_and_filters_thousands_of_jobs(many_jobs, jp_fetch):
    await _caught_up(jp_fetch)
    first = json.loads((await call(jp_fetch, "jobs", params={"limit": "100"})).body)
    assert first["total"] == N and len(first["jobs"]) == 100 and first["next_cursor"]
    assert first["jobs"][0]["id"] == many_jobs[-1]  # newest first
    everything = await _walk(jp_fetch, "jobs", "jobs", limit="500")
    assert [j["id"] for j in everything] == many_jobs[::-1]

    failed = await _walk(jp_fetch, "jobs", "jobs", state="failed", limit="250")
    assert len(failed) == N // 5 and {j["state"] for j in failed} == {"failed"}
    b = json.loads((await call(jp_fetch, "jobs", params={"notebook": "sub/b.ipynb", "limit": "5"})).body)
    assert b["total"] == N // 3 and {j["source_path"] for j in b["jobs"]} == {"sub/b.ipynb"}
    trials = json.loads((await call(jp_fetch, "jobs", params={"kind": "trial", "state": "failed,cancelled"})).body)
    assert trials["total"] == len([i for i in range(N) if i % 4 == 3 and i % 5 in (3, 4)])
    assert json.loads((await call(jp_fetch, "jobs")).body)["jobs"].__len__() == 50  # the default page

    for params, field in (({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"), ({"limit": "501"}, "limit"),
                          ({"cursor": "not-a-cursor"}, "cursor"), ({"state": "running,sleeping"}, "state"),
                          ({"kind": "nope"}, "kind"), ({"limt": "5"}, "limt")):
        code, err = await error_of(jp_fetch, "jobs", params=params)
        assert (code, err["field"]) == (400, field), params


async def test_gallery_pages_sorted_by_a_metric(many_jobs, jp_fetch):
    await _caught_up(jp_fetch)
    cards = await _walk(jp_fetch, "gallery", "cards", sort="loss", order="asc", limit="400", notebook="a.ipynb")
    notebook_kind = [i for i in range(N) if i % 3 == 0 and i % 4 != 3]
    assert len(cards) == len(notebook_kind)
    losses = [c["metrics"]["loss"] for c in cards]
    assert losses == sorted(losses)
    page = json.loads((await call(jp_fetch, "gallery", params={"limit": "10"})).body)
    assert page["metrics"] == ["loss"] and page["notebooks"] == ["a.ipynb", "c.ipynb", "sub/b.ipynb"]
    assert len(page["cards"]) == 10 and page["total"] == len([i for i in range(N) if i % 4 != 3])
    code, err = await error_of(jp_fetch, "gallery", params={"sort": "accuracy"})
    assert (code, err["field"]) == (400, "sort")


def test_offload_ls_pages_from_the_index(many_jobs, capsys):
    assert main(["ls", "-n", "7", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == many_jobs[::-1][:7]
    assert main(["ls", "-n", "600", "--state", "failed", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == N // 5 and {r["state"] for r in rows} == {"failed"}
    assert main(["ls", "--state", "sleeping"]) == 2
    assert "unknown state" in capsys.readouterr().err


async def test_a_restarted_server_answers_from_its_last_index_while_it_catches_up(many_jobs):
    """The first pass after a restart may take long (a slow store); lists do not wait for it when
    the index has caught up with the store before."""
    store = Store()
    await asyncio.get_running_loop().run_in_executor(None, sync_store, store)  # the last server's index
    release = threading.Event()

    def slow_sync(**kw) -> SyncReport:
        release.wait(30)
        return sync_store(store, **kw)

    with ThreadPoolExecutor(2) as pool:
        watcher = JobWatcher(slow_sync, pool, indexed=lambda: index.synced_at(store.url) is not None)
        watcher.start()
        await asyncio.wait_for(watcher.ready(), 5)  # at once, though the first pass is still blocked
        assert index.page(store.url, limit=5).total == N
        release.set()
        await watcher.stop()

    fresh = JobWatcher(slow_sync, ThreadPoolExecutor(1), indexed=lambda: False)
    release.clear()
    fresh.start()
    waiting = asyncio.ensure_future(fresh.ready())
    await asyncio.sleep(0.3)
    assert not waiting.done()  # a server whose index never saw the store waits for the first pass
    release.set()
    await asyncio.wait_for(waiting, 60)
    await fresh.stop()


async def test_a_fresh_server_answers_once_the_newest_jobs_are_indexed(many_jobs):
    """A store the index never saw: the first list waits for the newest CHUNK jobs of the first
    pass, not for all of them; the rest fills in."""
    store = Store()
    hold = threading.Event()

    def sync_holding_after_first_chunk(**kw) -> SyncReport:
        first = kw.pop("on_first_chunk", None)

        def then_hold() -> None:
            if first is not None:
                first()
            hold.wait(30)

        return sync_store(store, on_first_chunk=then_hold, **kw)

    with ThreadPoolExecutor(2) as pool:
        watcher = JobWatcher(sync_holding_after_first_chunk, pool, indexed=lambda: False)
        watcher.start()
        await asyncio.wait_for(watcher.ready(), 60)  # while the pass is held after its first chunk
        page = index.page(store.url, limit=50)
        assert page.total == CHUNK and [r["id"] for r in page.rows] == many_jobs[::-1][:50]
        hold.set()
        for _ in range(600):
            if index.page(store.url, limit=1).total == N:
                break
            await asyncio.sleep(0.1)
        assert index.page(store.url, limit=1).total == N
        await watcher.stop()
