"""The store contract (offload.testing.StoreContract) over file://, memory:// and gs:// (the
gs:// store runs the real gcsfs against fake-gcs-server, one bucket per check)."""

from __future__ import annotations

import uuid

import pytest

from offload.store import Store
from offload.testing import StoreContract

STORES = ["file", "memory", "gs"]


class TestStoreContract(StoreContract):
    @pytest.fixture(params=STORES)
    def store(self, request, tmp_path) -> Store:
        if request.param == "file":
            return Store((tmp_path / "root").as_uri())
        if request.param == "memory":
            return Store(f"memory://offload-test-{uuid.uuid4().hex}")
        return request.getfixturevalue("gcs_env")()
