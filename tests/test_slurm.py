"""The slurm backend on a real single-node SLURM cluster (munged + slurmctld + slurmd, 2 fake GPUs).

The cluster is private to this test session (the ``slurm_cluster`` fixture of tests/conftest.py,
tests/slurm_cluster.py): its own munge key, ports, state and ``SLURM_CONF``. Tests skip only where
SLURM cannot run at all (not installed and not installable, or not root); a cluster that is
installed but fails to start is a test failure. The backend contract runs over SLURM in
tests/contract/test_backends.py; here is what only SLURM does.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from offload.backends.base import B_GONE, B_PENDING, B_RUNNING, get_backend
from offload.backends.slurm import SlurmBackend, format_time, gpu_request
from offload.errors import BackendError, UsageError
from offload.jobs import Job, submit
from offload.spec import JobSpec, Resources
from offload.store import Store
from offload.testing import wait_for
from tests.slurm_cluster import SlurmCluster


def _sh(cluster: SlurmCluster, *cmd: str) -> str:
    proc = subprocess.run(list(cmd), env=cluster.env, capture_output=True, text=True, timeout=20, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture
def store(tmp_path) -> Store:
    return Store((tmp_path / "store").as_uri())


@pytest.fixture
def clean_queue(slurm_cluster):
    """Leave the cluster empty after the test, whatever happened, so one failure cannot cascade."""
    yield
    subprocess.run(["scancel", "--full", "--partition", "debug,urgent,restricted"], env=slurm_cluster.env,
                   capture_output=True, timeout=20, check=False)
    wait_for(lambda: not _sh(slurm_cluster, "squeue", "-h", "-o", "%i"), 90, "the SLURM queue to drain")


# ------------------------------------------------------------------ what only SLURM does
def _block_gpus(cluster: SlurmCluster, n: int = 2) -> list[str]:
    """Other users' jobs holding every fake GPU."""
    ids = [_sh(cluster, "sbatch", "--parsable", "--gres=gpu:1", "--output=/dev/null", "--wrap", "sleep 300") for _ in range(n)]
    running = lambda: sorted(_sh(cluster, "squeue", "-h", "-t", "R", "-o", "%i").split())  # noqa: E731
    wait_for(lambda: running() == sorted(ids), 60, "the blockers to run")
    return ids


def test_job_waits_queued_while_gpus_are_busy_then_runs(slurm_cluster, store, notebook, clean_queue):
    blockers = _block_gpus(slurm_cluster)
    try:
        nb = notebook("gpu.ipynb", ["import os\nprint('visible', os.environ.get('CUDA_VISIBLE_DEVICES'))"])
        pending = submit(nb, backend="slurm", store=store, gpu="1")
        # SLURM's own reason once its scheduler has looked at the job: the GPUs are taken.
        wait_for(lambda: "Resources" in (pending.refresh().get("reason") or ""), 60, "SLURM's pending reason")
        st = pending.refresh()
        assert st["state"] == "queued" and st["backend_state"] == B_PENDING
        assert st["reason"] == "waiting in the SLURM queue (Resources)"

        # Cancel while pending: it never ran, and says cancelled (not lost).
        assert pending.cancel() is True
        pending.wait(timeout=60)
        assert pending.state == "cancelled", pending.status

        job = submit(nb, backend="slurm", store=store, gpu="1")
        wait_for(lambda: job.refresh().get("backend_state") == B_PENDING, 60, "the second job to queue")
        assert job.state == "queued"
    finally:
        _sh(slurm_cluster, "scancel", *blockers)
    job.wait(timeout=180)
    assert job.state == "succeeded", job.status
    assert "visible 0" in job.logs() or "visible 1" in job.logs()  # a fake GPU was allotted


def test_slurm_time_limit_kills_the_job_and_says_why(slurm_cluster, store, notebook, clean_queue):
    """SLURM (not the runner) enforces its --time: the job fails with that reason.

    SLURM counts time limits in whole minutes and checks them every 30 s, so this test takes
    60-90 s of waiting (no CPU).
    """
    nb = notebook("slow.ipynb", ["print('working', flush=True)", "import time\nfor i in range(600):\n    time.sleep(0.5)"])
    job = submit(nb, backend="slurm", store=store, backend_options_={"extra_sbatch": ["--time=1"]})
    job.wait(timeout=240)
    assert job.state == "failed", job.status
    assert "SLURM time limit" in job.status["reason"]
    assert "working" in job.logs()
    assert job.output_notebook is not None  # the partial notebook was saved


def test_preempted_job_is_preempted_then_retried_as_a_new_slurm_job(slurm_cluster, store, notebook, clean_queue):
    """A higher-priority partition's job takes the GPUs: SLURM preempts ours, it says so, and
    the retry (a new SLURM job, queued behind the urgent one) runs once the GPUs are free."""
    nb = notebook("victim.ipynb", ["print('working', flush=True)", "import time\nfor i in range(600):\n    time.sleep(0.5)"])
    job = submit(nb, backend="slurm", store=store, gpu="2", retries=1)
    wait_for(lambda: job.refresh()["state"] == "running" and job.status.get("cell", 0) >= 2, 120, "the long cell to start")
    _sh(slurm_cluster, "sbatch", "-p", "urgent", "--gres=gpu:1", "--output=/dev/null", "--wrap", "sleep 1")
    wait_for(lambda: job.refresh().get("retried_as"), 120, "the preempted job to be retried")
    assert job.status["state"] == "preempted" and "preempted" in job.status["reason"]
    assert job.output_notebook is not None  # what it had done was saved
    retry = job.latest()
    assert retry.id != job.id and retry.spec.attempt == 1
    assert retry.handle["slurm_job_id"] != job.handle["slurm_job_id"]
    wait_for(lambda: retry.refresh()["state"] == "running" and retry.status.get("cell", 0) >= 2, 120, "the retry to run")
    assert retry.cancel() is True
    retry.wait(timeout=60)
    assert retry.state == "cancelled", retry.status


def test_cancel_running_job_stops_its_slurm_job(slurm_cluster, store, notebook, clean_queue):
    nb = notebook("long.ipynb", ["import time\nfor i in range(600):\n    time.sleep(0.5)"])
    job = submit(nb, backend="slurm", store=store, gpu="1")
    wait_for(lambda: job.refresh()["state"] == "running", 120, "the job to run")
    sid = job.handle["slurm_job_id"]
    assert job.cancel() is True
    job.wait(timeout=60)
    assert job.state == "cancelled", job.status
    wait_for(lambda: not _sh(slurm_cluster, "squeue", "-h", "-j", sid, "-o", "%i"), 60, "the SLURM job to end")
    record = store.get_json(f"jobs/{job.id}/slurm-exit.json")
    assert record["slurm_job_id"] == sid


# ------------------------------------------------------------------ clear errors
def test_invalid_partition_is_refused_before_staging(slurm_cluster, store, notebook):
    nb = notebook("x.ipynb", ["print(1)"])
    with pytest.raises(BackendError) as err:
        submit(nb, backend="slurm", store=store, backend_options_={"partition": "nope"})
    assert "Invalid partition name specified" in str(err.value)  # SLURM's own words
    assert "debug" in err.value.hint and "partition NAME" in err.value.hint  # what to change
    assert store.list_dirs("jobs") == []  # nothing launched or half-written


def test_rejected_account_shows_slurms_message_and_the_fix(slurm_cluster, store, notebook):
    nb = notebook("x.ipynb", ["print(1)"])
    with pytest.raises(BackendError) as err:
        submit(nb, backend="slurm", store=store, max_runtime="30m",
               backend_options_={"partition": "restricted", "account": "other-lab"})
    assert "Invalid account or account/partition combination specified" in str(err.value)
    assert "account NAME" in err.value.hint


def test_time_over_the_partition_limit_is_refused(slurm_cluster, store, notebook):
    nb = notebook("x.ipynb", ["print(1)"])
    with pytest.raises(BackendError) as err:
        submit(nb, backend="slurm", store=store, max_runtime="2h", backend_options_={"partition": "restricted"})
    assert "Requested time limit is invalid" in str(err.value)
    assert "--max-runtime" in err.value.hint


def test_too_many_gpus_is_refused(slurm_cluster, store, notebook):
    nb = notebook("x.ipynb", ["print(1)"])
    with pytest.raises(BackendError) as err:
        submit(nb, backend="slurm", store=store, gpu="3")
    assert "Requested node configuration is not available" in str(err.value)
    assert "GPUs" in err.value.hint


def test_sbatch_missing_is_a_clear_error(store, notebook, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    nb = notebook("x.ipynb", ["print(1)"])
    with pytest.raises(BackendError) as err:
        submit(nb, backend="slurm", store=store)
    assert "sbatch not found" in str(err.value)
    assert "login node" in err.value.hint


def test_python_missing_on_the_node_fails_with_a_pointer_to_slurms_output(slurm_cluster, store, notebook, clean_queue):
    nb = notebook("x.ipynb", ["print(1)"])
    job = submit(nb, backend="slurm", store=store, backend_options_={"python": "/nonexistent/bin/python"})
    job.wait(timeout=60)
    assert job.state == "failed", job.status
    assert "exit code 127" in job.status["reason"] and job.handle["output"] in job.status["reason"]
    wait_for(lambda: "python PATH" in open(job.handle["output"]).read(), 30, "SLURM's output file")


def test_state_of_a_job_slurm_has_forgotten(slurm_cluster, store):
    be = get_backend("slurm", store)
    st = be.state({"slurm_job_id": "999999", "job_id": "20261122-000000-aaaaaa"})
    assert st.state == B_GONE and "without recording an exit code" in st.reason
    store.put_json("jobs/20261122-000000-aaaaaa/slurm-exit.json", {"exit_code": 3})
    st = be.state({"slurm_job_id": "999999", "job_id": "20261122-000000-aaaaaa"})
    assert st.state == B_GONE and "exit code 3" in st.reason


def test_machines_lists_partitions_with_their_gpus(slurm_cluster, store):
    machines = {m.name: m for m in get_backend("slurm", store).machines()}
    assert machines["debug"].gpu_count == 2 and machines["debug"].vcpus == 8
    assert "restricted" in machines


def test_running_state_while_the_runner_runs(slurm_cluster, store, notebook, clean_queue):
    be = get_backend("slurm", store)
    nb = notebook("long.ipynb", ["import time\nfor i in range(600):\n    time.sleep(0.5)"])
    job = submit(nb, backend="slurm", store=store)
    wait_for(lambda: be.state(job.handle).state == B_RUNNING, 120, "SLURM to run it")
    be.cancel(job.handle)
    be.cancel(job.handle)  # idempotent: a second scancel of an ended job is not an error
    job.wait(timeout=60)
    assert job.state in ("cancelled", "failed", "lost")


# ------------------------------------------------------------------ the script (no cluster)
def _spec(**res) -> JobSpec:
    return JobSpec(id="20261122-000000-abcdef", notebook="a.ipynb", bundle_id="b", backend="slurm", resources=Resources(**res))


def test_batch_script_maps_resources_and_options(tmp_path):
    be = SlurmBackend(Store(tmp_path.as_uri()), partition="gpu", account="lab-a", qos="high",
                      extra_sbatch="--constraint=a100; --exclusive", modules=["cuda/12.2"])
    script = be.batch_script(_spec(gpu="a100", gpu_count=2, cpus=4, memory_gb=1.5, max_runtime_s=4 * 3600 + 30))
    for line in ("#SBATCH --partition=gpu", "#SBATCH --account=lab-a", "#SBATCH --qos=high",
                 "#SBATCH --cpus-per-task=4", "#SBATCH --mem=1536M", "#SBATCH --gres=gpu:a100:2",
                 "#SBATCH --time=0-04:00:30", "#SBATCH --constraint=a100", "#SBATCH --exclusive",
                 "module load cuda/12.2"):
        assert line in script.splitlines()
    assert f"export OFFLOAD_ENV_CACHE={tmp_path}/envs" in script  # isolated envs: on the shared store
    assert "#SBATCH --gpus=3" in SlurmBackend(Store(tmp_path.as_uri()), gpu_flag="gpus").batch_script(_spec(gpu="3"))


def test_user_strings_never_reach_a_shell(tmp_path):
    """A store path full of shell syntax reaches the runner and the exit record as one intact word."""
    fake = tmp_path / "py"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" >> "$(dirname "$0")/argv"\nexit 3\n')
    fake.chmod(0o755)
    be = SlurmBackend(Store((tmp_path / "it's a $(store) `x`").as_uri()), python=str(fake))
    proc = subprocess.run(["bash", "-c", be.batch_script(_spec())], timeout=30, env={**os.environ, "SLURM_JOB_ID": "77"})
    assert proc.returncode == 3  # the runner's exit code is the job's
    args = (tmp_path / "argv").read_text().splitlines()
    assert args[:4] == ["-m", "offload.runner", be.store.url, "20261122-000000-abcdef"]
    assert args[-4:] == [be.store.url, "20261122-000000-abcdef", "3", "77"]  # the exit record's argv
    missing = SlurmBackend(Store(tmp_path.as_uri()), python=str(tmp_path / "no-such-python"))
    proc = subprocess.run(["bash", "-c", missing.batch_script(_spec())], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 127 and "python PATH" in proc.stderr  # said in SLURM's output file
    for bad in ({"partition": "gpu\n#SBATCH --uid=0"}, {"account": "a;rm -rf /"}, {"extra_sbatch": ["--x=1\nrm -rf /"]},
                {"extra_sbatch": ["rm"]}, {"modules": ["cuda; rm -rf /"]}, {"python": "python3"}):
        with pytest.raises(UsageError):
            SlurmBackend(Store(tmp_path.as_uri()), **bad).batch_script(_spec())


@pytest.mark.parametrize(("gpu", "count", "want"), [(None, 1, None), ("1", 1, "1"), ("2", 1, "2"), ("a100", 2, "a100:2"), ("A100:4", 1, "a100:4")])
def test_gpu_request(gpu, count, want):
    assert gpu_request(gpu, count) == want


def test_termination_reason_from_scontrol():
    """What scontrol shows at SIGTERM time (SLURM 22.05), for each cause."""
    from offload.backends.slurm import _parse_scontrol, termination_from_scontrol

    timeout = _parse_scontrol("JobId=1 JobName=x JobState=COMPLETING Reason=TimeLimit Dependency=(null) PreemptTime=None")
    preempt = _parse_scontrol("JobId=3 JobState=COMPLETING Reason=None PreemptTime=2026-11-22T22:38:36 SuspendTime=None")
    plain = _parse_scontrol("JobId=4 JobState=COMPLETING Reason=None PreemptTime=None")
    assert termination_from_scontrol(timeout) == "SLURM time limit"
    assert termination_from_scontrol(preempt) == "preempted"
    assert termination_from_scontrol(plain) is None


def test_gpu_fallback_lists_are_refused():
    with pytest.raises(UsageError, match="fall back"):
        gpu_request("t4,l4")


def test_format_time():
    assert format_time(90) == "0-00:01:30"
    assert format_time(86400 + 3600) == "1-01:00:00"


def test_memory_store_is_refused(tmp_path):
    with pytest.raises(UsageError, match="cannot see it"):
        SlurmBackend(Store("memory://x")).validate(_spec())


def test_entry_point_is_registered():
    from offload.backends.base import available_backends

    assert "slurm" in available_backends()


def test_preemption_reason_is_the_one_the_runner_understands():
    """The runner maps the SIGTERM reason "preempted" to the preempted job state."""
    from offload.backends import slurm

    assert slurm._TERMINATION["PREEMPTED"] == "preempted"


# ------------------------------------------------------------------ sweeps
def test_small_sweep_runs_its_trials_as_slurm_jobs(slurm_cluster, store, notebook, clean_queue):
    """Three trials, two at a time on the two fake GPUs, each its own SLURM job."""
    pytest.importorskip("optuna")
    import offload

    nb = notebook("quad.ipynb", ["import offload\noffload.log_metric('score', -(x - 1.0) ** 2)"], params="x = 0.0")
    res = offload.sweep(nb, space={"x": {"type": "float", "low": -2, "high": 2}}, objective="score",
                        direction="maximize", trials=3, parallel=2, sampler="random", seed=1,
                        backend="slurm", gpu="1", store=store, quiet=True)
    assert res.state == "completed"
    rows = res.trials()
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3
    assert res.best_value == max(r["value"] for r in rows)
    handles = [store.get_json(f"jobs/{j}/handle.json") for j in store.list_dirs("jobs")]
    assert len({h["slurm_job_id"] for h in handles}) == 3  # one SLURM job per trial


def test_sweep_packs_per_gpu_trials_inside_one_slurm_allocation(slurm_cluster, store, notebook, clean_queue):
    """--per-gpu 2: one SLURM job holding one fake GPU runs two trials at a time, then ends."""
    pytest.importorskip("optuna")
    import offload

    nb = notebook("sleepy.ipynb", ["import time, offload\ntime.sleep(2)\noffload.log_metric('v', x)"], params="x = 0.0")
    res = offload.sweep(nb, space={"x": {"type": "float", "low": 0, "high": 1}}, objective="v", trials=3,
                        parallel=2, per_gpu=2, sampler="random", seed=0, backend="slurm", gpu="1",
                        store=store, quiet=True)
    assert res.state == "completed"
    specs = [store.get_json(f"jobs/{j}/spec.json") for j in store.list_dirs("jobs")]
    packs = [s for s in specs if s["kind"] == "pack"]
    trials = [s for s in specs if s["kind"] == "trial"]
    assert len(packs) == 1 and packs[0]["backend"] == "slurm"  # one allocation
    assert len(trials) == 3 and {s["backend"] for s in trials} == {"sweep-pack"}
    spans = sorted((st["started_at"], st["finished_at"]) for st in
                   (store.get_json(f"jobs/{s['id']}/status.json") for s in trials))
    assert spans[1][0] < spans[0][1]  # two trials shared the GPU at the same time
    pack = Job(packs[0]["id"], store=store)
    wait_for(lambda: pack.refresh()["state"] == "succeeded", 120, "the pack job to end when the sweep needs no more")
    assert "--gres=gpu:1" in open(pack.handle["script"]).read()


def test_machines_says_why_when_slurm_cannot_be_asked(tmp_path, monkeypatch):
    """No SLURM tools on this machine: a clear error (the Run dialog shows the backend as
    unavailable with it), not an empty list that reads as a cluster without partitions."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackendError) as info:
        SlurmBackend(Store((tmp_path / "s").as_uri())).machines()
    assert "sinfo not found" in info.value.message and "login node" in info.value.hint
