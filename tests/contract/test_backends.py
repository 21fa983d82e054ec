"""The backend contract (offload.testing.BackendContract) over every backend we ship.

* local: the runner as a subprocess of this machine;
* slurm: a real private single-node SLURM cluster (tests/slurm_cluster.py), skipped only where
  SLURM cannot run at all;
* gce: the real google-cloud-compute client against the fake Compute Engine, a gs:// store on
  fake-gcs-server, each "VM" running the real startup script, runner and self-delete;
* sweep-pack: trial jobs run by a pack job (kind pack) that itself runs on the local backend.

What a backend lacks is stated in its Capabilities, with the reason; nothing is skipped in silence.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess

import pytest

from offload.jobs import Job, submit
from offload.spec import FINAL_STATES, new_job_id
from offload.store import Store
from offload.testing import BackendContract, BackendUnderTest, Capabilities, make_notebook, wait_for

BACKENDS = ["local", "slurm", "gce", "sweep-pack"]


def _kill_runner_pid(job: Job) -> None:
    """kill -9 of the runner process the job's own status names (it runs on this machine)."""
    status = job.store.get_json(Store.job_key(job.id, "status.json"))
    os.kill(int(status["pid"]), signal.SIGKILL)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# local ------------------------------------------------------------------------------------------
@pytest.fixture
def local_backend(tmp_path):
    return BackendUnderTest(
        name="local", store=Store((tmp_path / "store").as_uri()),
        kill_runner=lambda job: os.kill(int(job.handle["pid"]), signal.SIGKILL),
        unknown_handle={"pid": _dead_pid(), "start_time": "0", "host": socket.gethostname()},
        # it runs on this machine as it is: another machine type, or a GPU it lacks, is refused
        capabilities=Capabilities(invalid_resources=({"gpu": "h900"}, {"machine": "n9-imaginary-4"})),
    )


# slurm ------------------------------------------------------------------------------------------
@pytest.fixture
def slurm_backend(slurm_cluster, tmp_path):
    def no_job_left() -> None:  # every job a check started has ended in SLURM too
        wait_for(lambda: not _squeue(slurm_cluster), 60, "the SLURM queue to drain")

    return BackendUnderTest(
        name="slurm", store=Store((tmp_path / "store").as_uri()), options={"partition": slurm_cluster.partition},
        kill_runner=_kill_runner_pid, timeout=180, after_each=no_job_left,
        unknown_handle={"slurm_job_id": "999999", "job_id": new_job_id()},
        capabilities=Capabilities(
            invalid_resources=({"gpu": "t4,l4"}, {"gpu": "a100!"}, {"memory_gb": -1.0}),
            killed_runner_state="failed",
            why={"killed_runner_state": "the batch script outlives its runner and records the exit code "
                                        "(-9), so SLURM reports the job failed rather than vanished"},
        ),
    )


def _squeue(cluster) -> str:
    proc = subprocess.run(["squeue", "-h", "-o", "%i"], env=cluster.env, capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


# gce --------------------------------------------------------------------------------------------
@pytest.fixture
def gce_backend(gce):
    def crash_vm(job: Job) -> None:  # the host dies: the VM's processes vanish and so does the VM
        vm = gce.fake.vm(job.handle["name"])
        os.killpg(vm.proc.pid, signal.SIGKILL)
        gce.fake.delete(job.handle["zone"], job.handle["name"])

    return BackendUnderTest(
        name="gce", store=gce.store, options=gce.options, kill_runner=crash_vm, timeout=300,
        submit_kwargs={"gpu": "l4", "max_runtime": "1h"},
        unknown_handle={"project": gce.fake.project, "zone": "us-central1-a", "name": "offload-never-launched"},
        capabilities=Capabilities(
            invalid_resources=({"gpu": "h900"}, {"machine": "n9-imaginary-4"}, {"max_runtime_s": 10}),
        ),
    )


# sweep-pack -------------------------------------------------------------------------------------
@pytest.fixture
def sweep_pack_backend(tmp_path):
    """A pack job with two slots on the local backend, as a sweep driver starts one; the checks'
    jobs are its trials (backend sweep-pack, labels sweep and pack)."""
    store = Store((tmp_path / "store").as_uri())
    sweep = "contract-sweep"
    nb = make_notebook(tmp_path / "pack" / "pack.ipynb", ["pass"])
    pack = submit(nb, backend="local", store=store, kind="pack", labels={"sweep": sweep, "pack_slots": "2"})
    wait_for(lambda: pack.refresh()["state"] == "running", 120, "the pack job to run")

    def pack_still_serves() -> None:
        assert pack.refresh()["state"] == "running", f"the pack did not outlive its trials: {pack.status}"

    yield BackendUnderTest(
        name="sweep-pack", store=store, kill_runner=_kill_runner_pid, after_each=pack_still_serves,
        submit_kwargs={"kind": "trial", "labels": {"sweep": sweep, "pack": pack.id}},
        unknown_handle={"sweep": sweep, "pack": new_job_id(), "job": new_job_id()},
        capabilities=Capabilities(
            machines=False, invalid_resources=(),
            why={"machines": "a trial runs on its pack's machine; the pack's own backend lists machines",
                 "invalid_resources": "a trial runs on its pack's machine, whose backend validated the pack's resources"},
        ),
    )
    if pack.refresh()["state"] not in FINAL_STATES:
        pack.cancel()
    pack.wait(timeout=90)
    assert pack.state in ("cancelled", "succeeded"), pack.status


class TestBackendContract(BackendContract):
    @pytest.fixture(params=BACKENDS)
    def backend_under_test(self, request) -> BackendUnderTest:
        return request.getfixturevalue(f"{request.param.replace('-', '_')}_backend")
