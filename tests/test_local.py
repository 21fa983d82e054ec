"""What only the local backend does (the backend contract runs over it in
tests/contract/test_backends.py): the slot cap across every client of this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from offload.backends import procs
from offload.jobs import submit
from offload.store import Store


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
    deadline = time.monotonic() + 30
    while open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline, "the child never died"
        time.sleep(0.05)
    procs.reap()
    assert not os.path.exists(f"/proc/{child.pid}")  # waited for: no zombie left
