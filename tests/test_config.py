"""`offload config set`: the keys the README documents reach the backend that reads them."""

from __future__ import annotations

import pytest

from offload.backends.base import get_backend
from offload.config import backend_options, effective_config, load_config, set_values
from offload.errors import UsageError
from offload.store import Store


def test_the_dotted_key_of_the_readme_reaches_the_local_backend(tmp_path):
    set_values(["backends.local.max_jobs", "3"])
    assert backend_options("local") == {"max_jobs": 3}
    assert get_backend("local", Store((tmp_path / "s").as_uri()), **backend_options("local")).max_jobs == 3


def test_pairs_after_backend_go_to_that_backends_section():
    set_values(["backend", "local", "max_jobs", "5"])
    cfg = load_config()
    assert cfg["backend"] == "local" and cfg["backends"]["local"] == {"max_jobs": 5} and "max_jobs" not in cfg


@pytest.mark.parametrize("key", ["backends.local", "backends..max_jobs", "backend.local.max_jobs", "storage.url"])
def test_a_key_that_cannot_be_placed_is_an_error_naming_it(key):
    with pytest.raises(UsageError) as info:
        set_values([key, "1"])
    assert info.value.field == key and "backends.<backend>.<option>" in (info.value.hint or "") + info.value.message
    assert load_config() == {}  # nothing written


def test_show_lists_every_setting_in_force_with_its_source(monkeypatch):
    rows = {key: (value, source) for key, value, source in effective_config()}
    assert rows["backend"] == ("local", "default") and rows["store"][1] == "default"
    assert rows["backends.local.max_jobs"][1] == "default: the CPU count"
    monkeypatch.setenv("OFFLOAD_BACKEND", "slurm")
    set_values(["backends.local.max_jobs", "3"])
    rows = {key: (value, source) for key, value, source in effective_config()}
    assert rows["backend"] == ("slurm", "env OFFLOAD_BACKEND") and rows["backends.local.max_jobs"] == (3, "file")
