"""What only the local backend does (the backend contract runs over it in
tests/contract/test_backends.py): the slot cap across every client of this machine, and the
machine and GPUs it offers (this machine's, nothing else)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from offload.backends import procs
from offload.backends.local import LocalBackend, local_gpus
from offload.errors import UsageError
from offload.jobs import submit
from offload.spec import JobSpec, Resources, new_job_id
from offload.store import Store, layout


def test_twenty_jobs_with_a_cap_of_four_all_finish(notebook, tmp_path):
    """No kernel-port race losses, and never more than four running at once."""
    store = Store((tmp_path / "store").as_uri())
    nb = notebook("quick.ipynb", ["import time\ntime.sleep(0.3)\nprint('ok', n)"], params="n = 0")
    jobs = [submit(nb, parameters={"n": i}, store=store, backend_options_={"max_jobs": 4}) for i in range(20)]
    for job in jobs:
        job.wait(timeout=600)
    assert [j.state for j in jobs] == ["succeeded"] * 20, [(j.id, j.status.get("reason")) for j in jobs if j.state != "succeeded"]
    for i, job in enumerate(jobs):
        assert f"ok {i}" in job.logs()
    spans = sorted((j.status["started_at"], j.status["finished_at"]) for j in jobs)
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak <= 4


def test_ended_children_are_reaped_not_left_as_zombies():
    """A long-lived client (the Jupyter server) starts runners; however they end (a kill -9
    included), the next pass reaps them instead of leaving zombies behind."""
    child = subprocess.Popen(["sleep", "60"])
    procs.track(child)
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child never died"
        time.sleep(0.05)
    procs.reap()
    assert not os.path.exists(f"/proc/{child.pid}")  # waited for: no zombie left


@pytest.fixture
def gpus(tmp_path, monkeypatch):
    """``gpus("NVIDIA L4", ...)``: the GPUs ``nvidia-smi -L`` lists on this machine (an
    executable of that name first on PATH; none at all for ``gpus()``)."""
    def make(*models: str) -> None:
        local_gpus.cache_clear()
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        smi = bin_dir / "nvidia-smi"
        smi.unlink(missing_ok=True)
        if models:
            lines = "".join(f"GPU {i}: {m} (UUID: GPU-{i:08d})\\n" for i, m in enumerate(models))
            smi.write_text(f"#!/bin/sh\nprintf '{lines}'\n")
            smi.chmod(0o755)
            monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        else:
            monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                                       if not (Path(p) / "nvidia-smi").exists()))
    yield make
    local_gpus.cache_clear()


def _refusal(backend: LocalBackend, **resources) -> UsageError | None:
    spec = JobSpec(id=new_job_id(), notebook="nb.ipynb", bundle_id="b", backend="local",
                   resources=Resources(**resources))
    try:
        backend.validate(spec)
    except UsageError as exc:
        return exc
    return None


def test_the_local_backend_refuses_a_machine_or_gpu_it_does_not_have(gpus, tmp_path):
    be = LocalBackend(Store((tmp_path / "store").as_uri()))
    gpus()  # a machine without GPUs
    assert _refusal(be) is None and _refusal(be, machine="local") is None
    err = _refusal(be, machine="n1-standard-8")
    assert err.field == "machine" and "n1-standard-8" in err.message and err.hint
    err = _refusal(be, gpu="a100")
    assert err.field == "gpu" and "no GPU" in err.message
    assert be.machines()[0].gpu_count == 0
    gpus("NVIDIA L4", "NVIDIA L4")  # two L4s
    assert _refusal(be, gpu="l4") is None and _refusal(be, gpu="L4", gpu_count=2) is None
    assert _refusal(be, gpu="a100,l4") is None and _refusal(be, gpu="local") is None  # a fallback list
    err = _refusal(be, gpu="a100")
    assert err.field == "gpu" and "NVIDIA L4" in err.message
    err = _refusal(be, gpu="l4", gpu_count=4)
    assert err.field == "gpu_count" and "2 GPU" in err.message
    assert (be.machines()[0].gpu_count, "NVIDIA L4" in be.machines()[0].description) == (2, True)
    gpus("NVIDIA L40S")
    assert _refusal(be, gpu="l4").field == "gpu"  # l4 is not an L40S


def test_a_refused_request_stages_nothing(gpus, notebook, tmp_path):
    gpus()
    store = Store((tmp_path / "store").as_uri())
    nb = notebook("nb.ipynb", ["print(1)"])
    with pytest.raises(UsageError) as info:
        submit(nb, store=store, gpu="h100")
    assert info.value.field == "gpu"
    assert store.list_dirs(layout.JOBS) == [] and store.list(layout.BUNDLES) == []
