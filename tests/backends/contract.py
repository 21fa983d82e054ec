"""The backend contract: behaviour every backend must show, run against each one.

A backend's test module subclasses :class:`BackendContract` and provides a ``backend_under_test``
fixture returning a :class:`BackendUnderTest`. The tests go through the public API (``submit``,
``Job``) exactly as users do, so a backend passes only if the whole path works on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from offload.jobs import Job, submit
from offload.store import Store


@dataclass
class BackendUnderTest:
    name: str
    store: Store
    options: dict[str, Any] = field(default_factory=dict)
    kill_runner: Callable[[Job], None] | None = None  # kill -9 of the runner (not a polite stop)
    timeout: float = 120.0  # seconds a short job may take end to end on this backend
    submit_kwargs: dict[str, Any] = field(default_factory=dict)
    after_each: Callable[[], None] | None = None  # e.g. assert no VM is left


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class BackendContract:
    """Subclass in tests/backends/test_<name>.py (or tests/test_<name>.py) with a fixture."""

    @pytest.fixture
    def run(self, backend_under_test: BackendUnderTest):
        bt = backend_under_test

        def _submit(nb, **kw) -> Job:
            return submit(nb, backend=bt.name, store=bt.store, backend_options_=bt.options, **{**bt.submit_kwargs, **kw})

        yield _submit
        if bt.after_each:
            bt.after_each()

    def test_parameters_are_injected_and_logs_stream(self, run, notebook, backend_under_test):
        nb = notebook("params.ipynb", ["print('hello from', name, lr * 2)"], params="lr = 0.1\nname = 'x'")
        job = run(nb, parameters={"lr": 0.25, "name": "contract"})
        job.wait(timeout=backend_under_test.timeout)
        assert job.state == "succeeded", job.status
        assert "hello from contract 0.5" in job.logs()
        out = job.output_notebook
        injected = [c for c in out.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and "lr = 0.25" in injected[0].source
        assert job.status["n_cells"] == 3 and job.status["cell"] == 3

    def test_metrics_come_back(self, run, notebook, backend_under_test):
        nb = notebook("metrics.ipynb", [
            "import offload\nfor s in range(3):\n    offload.log_metric('loss', 1.0 / (s + 1), step=s)",
            "offload.log_metric('acc', 0.9)",
        ])
        job = run(nb).wait(timeout=backend_under_test.timeout)
        assert job.state == "succeeded", job.status
        losses = [(m["step"], m["value"]) for m in job.metrics if m["name"] == "loss"]
        assert losses == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
        assert job.last_metrics()["acc"] == 0.9
        assert job.output_notebook.metadata["offload"]["metrics"]["acc"] == 0.9

    def test_failing_cell_fails_with_traceback(self, run, notebook, backend_under_test):
        nb = notebook("fail.ipynb", ["print('before')", "def f():\n    raise ValueError('bad value 42')\nf()", "print('never')"])
        job = run(nb).wait(timeout=backend_under_test.timeout)
        assert job.state == "failed"
        err = job.status["error"]
        assert err["ename"] == "ValueError" and "bad value 42" in err["evalue"]
        assert any("bad value 42" in line for line in err["traceback"])
        assert "before" in job.logs() and "never" not in job.logs()

    def test_output_files_are_uploaded(self, run, notebook, backend_under_test):
        nb = notebook("files.ipynb", ["import offload\n(offload.output_dir() / 'sub').mkdir()\n(offload.output_dir() / 'sub' / 'r.txt').write_text('result 7')"])
        job = run(nb).wait(timeout=backend_under_test.timeout)
        assert job.state == "succeeded", job.status
        assert job.outputs() == ["sub/r.txt"]
        assert job.store.get_text(job._key("outputs/sub/r.txt")) == "result 7"

    def test_cancel_mid_run(self, run, notebook, backend_under_test):
        nb = notebook("long.ipynb", ["print('started', flush=True)", "import time\nfor i in range(600):\n    time.sleep(0.5)"])
        job = run(nb)
        wait_for(lambda: job.refresh()["state"] == "running" and job.status.get("cell", 0) >= 2, backend_under_test.timeout, "the long cell to start")
        assert job.cancel() is True
        job.wait(timeout=60)
        assert job.state == "cancelled", job.status
        assert "started" in job.logs()
        assert job.output_notebook is not None  # partial output saved

    def test_killed_runner_is_not_running_forever(self, run, notebook, backend_under_test):
        if backend_under_test.kill_runner is None:
            pytest.skip(f"{backend_under_test.name}: the test harness cannot kill -9 the runner")
        nb = notebook("killed.ipynb", ["import time\nfor i in range(600):\n    time.sleep(0.5)"])
        job = run(nb)
        wait_for(lambda: job.refresh()["state"] == "running", backend_under_test.timeout, "the job to run")
        backend_under_test.kill_runner(job)
        job.wait(timeout=backend_under_test.timeout)
        assert job.state in ("lost", "failed"), job.status
        assert job.status.get("reason")
