"""Shared fixtures: every test gets its own OFFLOAD_HOME (store, index, config, slots)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before anything imports gcsfs (see ../shared/notes/gcp-emulation.md, trap 1).
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

from tests.notebooks import make_notebook  # noqa: E402


@pytest.fixture(autouse=True)
def offload_home(tmp_path_factory, monkeypatch) -> Path:
    home = tmp_path_factory.mktemp("offload-home")
    monkeypatch.setenv("OFFLOAD_HOME", str(home))
    monkeypatch.delenv("OFFLOAD_STORE", raising=False)
    monkeypatch.delenv("OFFLOAD_BACKEND", raising=False)
    monkeypatch.setenv("OFFLOAD_HEARTBEAT_S", "1")
    return home


@pytest.fixture
def notebook(tmp_path):
    """Factory: ``notebook("name.ipynb", ["code", ...], params="x = 1")`` -> Path."""

    def make(name: str = "nb.ipynb", cells: list[str] = (), params: str | None = None, **kw) -> Path:
        return make_notebook(tmp_path / name, cells, params=params, **kw)

    return make
