"""The job index: pages, cursors and filters in SQL; incremental passes that read only new and
active jobs (a finished job is read once); jobs written through the store layout, not mocks."""

from __future__ import annotations

import time

import pytest

from offload.errors import UsageError
from offload.jobs import index
from offload.jobs.listing import list_jobs, sync_store
from offload.spec import JobState
from offload.store import Store, layout
from offload.testing.records import write_job_records


@pytest.fixture
def store(tmp_path) -> Store:
    return Store((tmp_path / "store").as_uri())


def _walk(url: str, *, limit: int, where: index.Filter | None = None, order: index.Order | None = None) -> list[dict]:
    out, cursor = [], None
    while True:
        page = index.page(url, limit=limit, cursor=cursor, where=where, order=order)
        out += page.rows
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def test_pages_walk_every_job_newest_first_once(store):
    ids = write_job_records(store, 237)
    sync_store(store)
    first = index.page(store.url, limit=50)
    assert first.total == 237 and len(first.rows) == 50 and first.next_cursor
    rows = _walk(store.url, limit=50)
    assert [r["id"] for r in rows] == ids[::-1]
    last = index.page(store.url, limit=500)
    assert last.next_cursor is None and len(last.rows) == 237


def test_a_job_created_while_paging_is_not_listed_twice(store):
    write_job_records(store, 30, start=1000.0)
    sync_store(store)
    page1 = index.page(store.url, limit=10)
    write_job_records(store, 5, start=5000.0)  # newer jobs arrive between two pages
    sync_store(store)
    page2 = index.page(store.url, limit=10, cursor=page1.next_cursor)
    seen = [r["id"] for r in page1.rows + page2.rows]
    assert len(set(seen)) == 20
    assert page2.total == 35


def test_filters_by_state_notebook_and_kind(store):
    write_job_records(store, 60, notebooks=("a.ipynb", "b.ipynb", "c.ipynb"), kinds=("notebook", "notebook", "trial"),
                      source_dir="/home/u/proj")
    sync_store(store)
    failed = _walk(store.url, limit=7, where=index.Filter(states=(JobState.FAILED,)))
    assert failed and {r["state"] for r in failed} == {"failed"} and len(failed) == 12
    both = index.page(store.url, limit=500, where=index.Filter(states=("failed", "cancelled")))
    assert both.total == 24
    by_name = index.page(store.url, limit=500, where=index.Filter(notebooks=("b.ipynb",)))
    by_path = index.page(store.url, limit=500, where=index.Filter(notebooks=("/home/u/proj/b.ipynb",)))
    assert by_name.total == by_path.total == 20
    assert {r["notebook"] for r in by_path.rows} == {"b.ipynb"}
    trials = index.page(store.url, limit=500, where=index.Filter(kinds=("trial",)))
    assert trials.total == 20 and {r["kind"] for r in trials.rows} == {"trial"}


def test_sorted_by_a_metric_with_offset_cursor(store):
    write_job_records(store, 40)
    sync_store(store)
    rows = _walk(store.url, limit=6, order=index.Order(key="loss", metric=True, descending=False))
    losses = [r["metrics"]["loss"] for r in rows]
    assert len(rows) == 40 and losses == sorted(losses)
    notebooks, metrics = index.distinct(store.url, index.Filter())
    assert notebooks == ["train.ipynb"] and metrics == ["loss"]


def test_bad_cursor_and_limit_name_the_field(store):
    write_job_records(store, 3)
    sync_store(store)
    for bad in ("garbage", "eyJ4IjoxfQ", index.encode_cursor(["z", 1])):
        with pytest.raises(UsageError) as info:
            index.page(store.url, limit=2, cursor=bad)
        assert info.value.field == "cursor"
    # a keyset cursor used with another order
    cursor = index.page(store.url, limit=1).next_cursor
    with pytest.raises(UsageError) as info:
        index.page(store.url, limit=1, cursor=cursor, order=index.Order(key="cost"))
    assert info.value.field == "cursor"
    for limit in (0, 501):
        with pytest.raises(UsageError) as info:
            index.page(store.url, limit=limit)
        assert info.value.field == "limit"


def test_a_pass_reads_only_new_and_active_jobs(store):
    ids = write_job_records(store, 120)
    first = sync_store(store)
    assert first.read == 120 and len(first.changes) == 120 and index.synced_at(store.url)
    again = sync_store(store)
    assert again.read == 0 and again.changes == []  # 120 finished jobs: nothing to re-read

    new = write_job_records(store, 3, start=time.time())  # newer than the others, launched just now
    third = sync_store(store)
    assert third.read == 3 and {c.id for c in third.changes} == set(new)

    # an active job is re-read on every pass until it ends; then never again
    running = new[0]
    store.put_json(layout.job_key(running, "status.json"), {"state": "running", "cell": 1, "n_cells": 3})
    index.upsert({**index.get(store.url, [running])[running], "state": "running"})
    assert sync_store(store).read == 1
    store.put_json(layout.job_key(running, "status.json"), {"state": "succeeded", "cell": 3, "n_cells": 3})
    ended = sync_store(store)
    # (without a launch handle the index showed it as provisioning: launching)
    assert ended.read == 1 and [(c.before, c.after) for c in ended.changes] == [("provisioning", "succeeded")]
    assert sync_store(store).read == 0

    # a job deleted from the store leaves the index on the next pass that lists the store
    store.delete(layout.job_key(ids[0]), recursive=True)
    gone = sync_store(store)
    assert gone.removed == [ids[0]] and index.page(store.url, limit=1).total == 122


def test_a_pass_without_listing_still_follows_active_jobs(store):
    (job,) = write_job_records(store, 1, states=("running",), start=time.time())  # launching, not lost
    sync_store(store)
    write_job_records(store, 2, start=time.time() + 100)
    quiet = sync_store(store, scan=False)  # remote stores list their ids less often
    assert quiet.read == 1 and not quiet.scanned
    assert sync_store(store).read == 3


def test_refresh_rereads_every_job_and_list_jobs_shows_them(store):
    write_job_records(store, 25)
    sync_store(store)
    assert sync_store(store, full=True).read == 25
    rows = list_jobs(store=store, limit=5)
    assert len(rows) == 5 and rows[0]["created_at"] > rows[-1]["created_at"]


def test_nan_metrics_do_not_break_sorting(store):
    (job,) = write_job_records(store, 1)
    store.put_text(layout.job_key(job, "metrics.jsonl"), '{"name": "loss", "value": NaN, "step": 0, "ts": 1}\n')
    sync_store(store, full=True)
    page = index.page(store.url, limit=5, order=index.Order(key="loss", metric=True))
    assert page.rows[0]["metrics"]["loss"] is None
