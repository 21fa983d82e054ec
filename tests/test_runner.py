"""The runner's ways to end: each leaves the truth in the store, none hangs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

import offload
from offload.jobs import submit
from offload.store import Store

pytestmark = pytest.mark.slow


def test_a_dying_kernel_fails_the_job_with_the_reason(notebook):
    nb = notebook("oom.ipynb", ["print('about to die', flush=True)", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "print('never')"])
    job = submit(nb).wait(timeout=300)
    assert job.state == "failed"
    assert "kernel died" in job.status["reason"] and "SIGKILL" in job.status["reason"]
    assert "about to die" in job.logs()


def test_max_runtime_stops_the_job(notebook):
    nb = notebook("forever.ipynb", ["import time\nwhile True:\n    time.sleep(0.2)"])
    job = submit(nb, max_runtime="3s").wait(timeout=300)
    assert job.state == "failed"
    assert "max runtime" in job.status["reason"]


def test_cancel_while_queued_never_starts_the_notebook(notebook, tmp_path):
    store = Store((tmp_path / "s").as_uri())
    blocker = submit(notebook("block.ipynb", ["import time\ntime.sleep(300)"]), store=store, backend_options_={"max_jobs": 1})
    queued = submit(notebook("q.ipynb", ["print('ran')"]), store=store, backend_options_={"max_jobs": 1})
    import time

    deadline = time.time() + 120
    while blocker.refresh()["state"] != "running":
        assert time.time() < deadline
        time.sleep(0.2)
    assert queued.refresh()["state"] == "queued"
    queued.cancel()
    queued.wait(timeout=60)
    assert queued.state == "cancelled" and "ran" not in queued.logs()
    blocker.cancel()
    blocker.wait(timeout=60)


def test_queued_jobs_start_in_submission_order(notebook, tmp_path):
    """One slot, a running job and three waiting: they start first-submitted first, even though
    their runners all start at once and race for the slot."""
    store = Store((tmp_path / "s").as_uri())
    opts = {"max_jobs": 1}
    blocker = submit(notebook("block.ipynb", ["import time\ntime.sleep(4)"]), store=store, backend_options_=opts)
    waiting = [submit(notebook(f"w{i}.ipynb", ["print('hello')"]), store=store, backend_options_=opts)
               for i in range(3)]
    for job in [blocker, *waiting]:
        job.wait(timeout=300)
        assert job.state == "succeeded", job.status
    starts = [job.status["started_at"] for job in [blocker, *waiting]]
    assert starts == sorted(starts), starts
    ends = [job.status["finished_at"] for job in [blocker, *waiting]]
    assert all(end <= start for end, start in zip(ends[:-1], starts[1:], strict=True)), "a slot was shared"
    assert not list((offload.paths.data_dir() / "local" / "slots" / "queue").iterdir())  # no ticket left


def test_a_dead_jobs_place_in_the_queue_is_given_up(notebook, tmp_path):
    """A ticket left by a runner killed while waiting must not hold the queue."""
    from offload.paths import data_dir

    queue = data_dir() / "local" / "slots" / "queue"
    queue.mkdir(parents=True, exist_ok=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (queue / f"{1:020d}-20200101-000000-dead00").write_text(f"{int(dead.stdout)} ")
    job = submit(notebook("ok.ipynb", ["print('fine')"]), store=Store((tmp_path / "s").as_uri()),
                 backend_options_={"max_jobs": 1}).wait(timeout=300)
    assert job.state == "succeeded"
    assert not list(queue.iterdir())


def test_sigterm_after_completion_is_not_a_preemption(notebook, tmp_path):
    """A VM deleting itself SIGTERMs the finished runner: the job must stay succeeded."""
    store = Store((tmp_path / "s").as_uri())
    nb = notebook("ok.ipynb", ["print('fine')"])
    job = submit(nb, store=store)
    job.wait(timeout=300)
    # Re-run the same job's runner in the foreground with a hook that SIGTERMs it at exit.
    store.delete(job.key("status.json"))
    code = (
        "import os, signal, sys\n"
        "from offload.backends.base import Backend\n"
        "Backend.on_runner_exit = classmethod(lambda cls, spec, store, state: os.kill(os.getpid(), signal.SIGTERM))\n"
        "from offload.runner.programs import run_job\n"
        f"sys.exit(run_job({store.url!r}, {job.id!r}))\n"
    )
    env = dict(os.environ, OFFLOAD_LOCAL_MAX_JOBS="0")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert store.get_json(job.key("status.json"))["state"] == "succeeded"
    assert proc.returncode != -signal.SIGTERM


def test_log_metric_outside_a_job_is_harmless(monkeypatch):
    monkeypatch.delenv("OFFLOAD_METRICS_FILE", raising=False)
    offload.log_metric("x", 1.5, step=2)
    with pytest.raises(ValueError, match="not a number"):
        offload.log_metric("x", "abc")
    assert offload.output_dir().is_dir() and offload.checkpoint_dir().is_dir()
