"""JobSpec validation and JSON round trip; what only a file:// store does (the store contract on
every store is tests/contract/test_stores.py)."""

from __future__ import annotations

import json

import pytest

from offload.errors import StoreError, UsageError
from offload.spec import JobSpec, Resources, new_job_id, parse_duration
from offload.store import Store


def _spec(**kw) -> JobSpec:
    return JobSpec(**{"id": new_job_id(), "notebook": "dir/train.ipynb", "bundle_id": "abc", **kw})


def test_spec_round_trips_through_json():
    spec = _spec(parameters={"lr": 0.01, "layers": [64, 64]}, resources=Resources(gpu="l4", spot=True, max_runtime_s=3600), labels={"sweep": "s1"})
    again = JobSpec.from_json(spec.to_json())
    assert again == spec
    assert json.loads(spec.to_json())["version"] == 1


def test_spec_from_a_newer_client_keeps_what_it_understands():
    data = _spec().to_dict()
    data["version"] = 99
    data["something_new"] = {"x": 1}
    data["resources"]["future_field"] = True
    assert JobSpec.from_dict(data).notebook == "dir/train.ipynb"


@pytest.mark.parametrize("bad", [
    {"kind": "movie"},
    {"env_mode": "conda"},
    {"notebook": "../outside.ipynb"},
    {"notebook": "/abs/train.ipynb"},
    {"notebook": "train.py"},
    {"parameters": {"f": object()}},
    {"resources": Resources(max_runtime_s=0)},
    {"id": "../../etc"},
])
def test_invalid_specs_are_refused(bad):
    with pytest.raises(UsageError):
        _spec(**bad).validate()


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("30m", 1800), ("4h", 14400), ("1d", 86400), ("4:00:00", 14400), ("1-00:00:00", 86400), (120, 120), ("10:30", 630)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_duration_says_how_to_write_it():
    with pytest.raises(UsageError, match="4h"):
        parse_duration("four hours")


def test_local_writes_leave_no_temp_files(tmp_path):
    store = Store((tmp_path / "root").as_uri())
    for i in range(5):
        store.put_text("jobs/a/status.json", str(i))
    assert [p.name for p in (tmp_path / "root/jobs/a").iterdir()] == ["status.json"]


def test_store_on_a_file_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    store = Store((blocker / "store").as_uri())
    with pytest.raises(StoreError, match="OFFLOAD_STORE"):
        store.check_writable()
