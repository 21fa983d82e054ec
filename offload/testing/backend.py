"""The backend contract: what every backend must do, checked through the public API.

A backend passes only if the whole path works on it: ``offload.jobs.submit`` snapshots, stages
and launches a notebook; the runner started by the backend streams status, logs, metrics and
outputs into the store; ``offload.jobs.Job`` reconciles the runner's status with what the backend
says (``Backend.state``). Use it from a test module::

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend_under_test(self, tmp_path):
            return BackendUnderTest(
                name="mine", store=Store((tmp_path / "store").as_uri()),
                capabilities=Capabilities(invalid_resources=({"gpu": "no-such-gpu"},)),
                unknown_handle={"id": "never-launched"}, kill_runner=my_kill_9,
            )

What a backend may lack is stated, never skipped in silence: :class:`Capabilities` says which
optional behaviours it has, and for each one it lacks, why. The contract then checks the stated
behaviour both ways (a backend without machine offers must list none, not fail to list them).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from offload.backends.base import B_GONE, Backend, Machine, get_backend
from offload.config import load_config, save_config
from offload.errors import UsageError
from offload.jobs import Job, submit
from offload.spec import FINAL_STATES, JobSpec, JobState, Resources, new_job_id, parse_duration
from offload.store import Store

# Resources fields a capability may name, and the submit() argument each one comes from.
_SUBMIT_ARG = {"gpu": "gpu", "gpu_count": "gpu_count", "machine": "machine", "spot": "spot",
               "max_runtime_s": "max_runtime", "cpus": "cpus", "memory_gb": "memory_gb"}
_KILLED_STATES = (JobState.LOST, JobState.FAILED)


@dataclass(frozen=True)
class Capabilities:
    """The optional behaviours of a backend; ``why`` gives the reason for each one it lacks.

    ``machines``: ``machines()`` lists at least one offer (False: it lists none; why["machines"]).
    ``invalid_resources``: resource requests ``validate()`` must refuse with a UsageError, as
    :class:`offload.spec.Resources` fields (empty: it accepts any request; why["invalid_resources"]).
    ``killed_runner_state``: what a job whose runner was killed (``kill -9``) ends as: ``lost``
    (the backend says its process is gone) or ``failed`` (the backend itself saw the runner die
    and recorded an exit code; why["killed_runner_state"]).
    why["kill_runner"]: the reason a harness cannot kill a runner (BackendUnderTest.kill_runner None).
    """

    machines: bool = True
    invalid_resources: tuple[Mapping[str, Any], ...] = ()
    killed_runner_state: str = JobState.LOST
    why: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.killed_runner_state not in _KILLED_STATES:
            raise ValueError(f"killed_runner_state must be one of {_KILLED_STATES}, not {self.killed_runner_state!r}")
        for bad in self.invalid_resources:
            unknown = set(bad) - set(_SUBMIT_ARG)
            if unknown:
                raise ValueError(f"invalid_resources names {sorted(unknown)}: use Resources fields {sorted(_SUBMIT_ARG)}")
        lacking = {"machines": not self.machines, "invalid_resources": not self.invalid_resources,
                   "killed_runner_state": self.killed_runner_state != JobState.LOST}
        for name, lacks in lacking.items():
            if lacks:
                self.reason(name)

    def reason(self, name: str) -> str:
        text = self.why.get(name)
        if not text:
            raise ValueError(f"Capabilities: say why in why[{name!r}] (the contract states every exception)")
        return text


@dataclass
class BackendUnderTest:
    """One backend, set up for the contract by the ``backend_under_test`` fixture.

    ``options`` are the backend's options, passed to ``submit`` and written to the test's config
    (so that every later client, as a user's would, finds them). ``unknown_handle`` is a handle of
    a job this backend never ran. ``kill_runner(job)`` kills the job's runner the hard way (no
    SIGTERM, nothing flushed), as a crash or the OOM killer would. ``submit_kwargs`` go to every
    ``submit`` of the contract (a GPU, labels); ``after_each`` runs after each job-running check
    (e.g. assert that no machine is left). ``known_gaps`` maps a contract test name to the reason
    the backend fails it today: the test then runs as a strict xfail, and passing is an error.
    """

    name: str
    store: Store
    capabilities: Capabilities
    options: dict[str, Any] = field(default_factory=dict)
    unknown_handle: dict[str, Any] | None = None
    kill_runner: Callable[[Job], None] | None = None
    timeout: float = 120.0  # seconds a short job may take end to end on this backend
    submit_kwargs: dict[str, Any] = field(default_factory=dict)
    after_each: Callable[[], None] | None = None
    known_gaps: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kill_runner is None:
            self.capabilities.reason("kill_runner")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll ``predicate`` until it is true; an AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def make_notebook(path: str | Path, cells: list[str] | tuple[str, ...] = (), *, params: str | None = None) -> Path:
    """A notebook file: a markdown title, a ``parameters`` cell when ``params`` is given, then
    ``cells``. Its kernelspec names a kernel no machine has: the runner must use its own."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "some-foreign-kernel", "display_name": "Foreign", "language": "python"}
    nb.cells.append(new_markdown_cell("# contract notebook"))
    if params is not None:
        cell = new_code_cell(params)
        cell.metadata["tags"] = ["parameters"]
        nb.cells.append(cell)
    nb.cells.extend(new_code_cell(src) for src in cells)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _resources(bt: BackendUnderTest, **override: Any) -> Resources:
    """The resources the contract's jobs ask for (from ``submit_kwargs``), with ``override``."""
    kw = bt.submit_kwargs
    fields = {f: kw[arg] for f, arg in _SUBMIT_ARG.items() if f != "max_runtime_s" and arg in kw}
    if kw.get("max_runtime"):
        fields["max_runtime_s"] = parse_duration(kw["max_runtime"])
    return Resources(**{**fields, **override})


def _spec(bt: BackendUnderTest, resources: Resources) -> JobSpec:
    return JobSpec(
        id=new_job_id(), notebook="contract.ipynb", bundle_id="contract-validate", backend=bt.name,
        kind=bt.submit_kwargs.get("kind", "notebook"), labels=dict(bt.submit_kwargs.get("labels") or {}),
        resources=resources, python=sys.executable,
    )


def _submit_args(resources: Mapping[str, Any]) -> dict[str, Any]:
    return {_SUBMIT_ARG[f]: v for f, v in resources.items()}


class BackendContract:
    """The backend contract; subclass it as ``Test...`` and override ``backend_under_test``."""

    # fixtures -----------------------------------------------------------------------------------
    @pytest.fixture
    def backend_under_test(self) -> BackendUnderTest:
        raise NotImplementedError(
            f"{type(self).__name__}: override the backend_under_test fixture to return a BackendUnderTest"
        )

    @pytest.fixture(autouse=True)
    def _contract_home(self, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
        """Every check gets its own OFFLOAD_HOME (config, index, local slots), never the user's."""
        monkeypatch.setenv("OFFLOAD_HOME", str(tmp_path_factory.mktemp("offload-contract-home")))
        monkeypatch.delenv("OFFLOAD_STORE", raising=False)
        monkeypatch.delenv("OFFLOAD_BACKEND", raising=False)

    @pytest.fixture(autouse=True)
    def _known_gap(self, _contract_home: None, request: pytest.FixtureRequest, backend_under_test: BackendUnderTest) -> None:
        reason = backend_under_test.known_gaps.get(request.node.originalname)
        if reason:
            request.applymarker(pytest.mark.xfail(reason=f"{backend_under_test.name}: known gap: {reason}", strict=True))

    @pytest.fixture
    def backend(self, backend_under_test: BackendUnderTest) -> Backend:
        """The backend as every client gets it, its options in the config like a user's."""
        bt = backend_under_test
        if bt.options:
            cfg = load_config()
            cfg.setdefault("backends", {}).setdefault(bt.name, {}).update(bt.options)
            save_config(cfg)
        return get_backend(bt.name, bt.store, **bt.options)

    @pytest.fixture
    def contract_notebook(self, tmp_path: Path) -> Callable[..., Path]:
        """``contract_notebook("name.ipynb", ["code", ...], params="x = 1")`` -> Path."""

        def make(name: str, cells: list[str] | tuple[str, ...] = (), params: str | None = None) -> Path:
            return make_notebook(tmp_path / "contract-notebooks" / name, cells, params=params)

        return make

    @pytest.fixture
    def run(self, backend_under_test: BackendUnderTest, backend: Backend) -> Iterator[Callable[..., Job]]:
        """``run(notebook, **submit_kwargs)`` -> Job, submitted as users do. A job a failed check
        left running is cancelled afterwards, so one failure cannot hold the next one's machine."""
        bt = backend_under_test
        jobs: list[Job] = []

        def _submit(nb: Path, **kw: Any) -> Job:
            job = submit(nb, backend=bt.name, store=bt.store, backend_options_=bt.options, **{**bt.submit_kwargs, **kw})
            jobs.append(job)
            return job

        yield _submit
        for job in jobs:
            try:
                if job.refresh()["state"] not in FINAL_STATES:
                    job.cancel()
                    job.wait(timeout=60)
            except Exception as exc:  # the check's own failure is the one to show
                print(f"contract clean-up: job {job.id}: {exc}", file=sys.stderr)
        if bt.after_each:
            bt.after_each()

    @staticmethod
    def assert_backend_lets_go(backend: Backend, job: Job, timeout: float) -> None:
        """Once a job has ended, its backend reads it as gone (not running, not an exception)."""
        deadline = time.monotonic() + timeout
        while (state := backend.state(job.handle)).state != B_GONE:
            if time.monotonic() > deadline:
                raise AssertionError(f"{backend.name} still reads the ended job {job.id} as {state} after {timeout:.0f} s")
            time.sleep(0.2)

    # registration -------------------------------------------------------------------------------
    def test_get_backend_finds_it_by_name(self, backend_under_test: BackendUnderTest, backend: Backend) -> None:
        assert isinstance(backend, Backend)
        assert backend.name == backend_under_test.name
        assert backend.store is backend_under_test.store

    # a job's life -------------------------------------------------------------------------------
    def test_parameters_are_injected_and_logs_stream(self, run, contract_notebook, backend_under_test, backend) -> None:
        nb = contract_notebook("params.ipynb", ["print('hello from', name, lr * 2)"], params="lr = 0.1\nname = 'x'")
        job = run(nb, parameters={"lr": 0.25, "name": "contract"})
        job.wait(timeout=backend_under_test.timeout)
        assert job.state == JobState.SUCCEEDED, job.status
        assert "hello from contract 0.5" in job.logs()
        out = job.output_notebook
        injected = [c for c in out.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and "lr = 0.25" in injected[0].source
        assert job.status["n_cells"] == 3 and job.status["cell"] == 3
        self.assert_backend_lets_go(backend, job, backend_under_test.timeout)

    def test_metrics_come_back(self, run, contract_notebook, backend_under_test) -> None:
        nb = contract_notebook("metrics.ipynb", [
            "import offload\nfor s in range(3):\n    offload.log_metric('loss', 1.0 / (s + 1), step=s)",
            "offload.log_metric('acc', 0.9)",
        ])
        job = run(nb).wait(timeout=backend_under_test.timeout)
        assert job.state == JobState.SUCCEEDED, job.status
        losses = [(m["step"], m["value"]) for m in job.metrics if m["name"] == "loss"]
        assert losses == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
        assert job.last_metrics()["acc"] == 0.9
        assert job.output_notebook.metadata["offload"]["metrics"]["acc"] == 0.9

    def test_output_files_are_uploaded(self, run, contract_notebook, backend_under_test) -> None:
        nb = contract_notebook("files.ipynb", [
            "import offload\n(offload.output_dir() / 'sub').mkdir()\n"
            "(offload.output_dir() / 'sub' / 'r.txt').write_text('result 7')",
        ])
        job = run(nb).wait(timeout=backend_under_test.timeout)
        assert job.state == JobState.SUCCEEDED, job.status
        assert job.outputs() == ["sub/r.txt"]
        assert job.store.get_text(Store.job_key(job.id, "outputs/sub/r.txt")) == "result 7"

    def test_failing_cell_fails_with_traceback(self, run, contract_notebook, backend_under_test) -> None:
        nb = contract_notebook("fail.ipynb", ["print('before')", "def f():\n    raise ValueError('bad value 42')\nf()", "print('never')"])
        job = run(nb).wait(timeout=backend_under_test.timeout)
        assert job.state == JobState.FAILED, job.status
        err = job.status["error"]
        assert err["ename"] == "ValueError" and "bad value 42" in err["evalue"]
        assert any("bad value 42" in line for line in err["traceback"])
        assert "before" in job.logs() and "never" not in job.logs()

    def test_cancel_mid_run(self, run, contract_notebook, backend_under_test, backend) -> None:
        bt = backend_under_test
        nb = contract_notebook("long.ipynb", ["print('started', flush=True)", "import time\nfor i in range(600):\n    time.sleep(0.5)"])
        job = run(nb)
        wait_for(lambda: job.refresh()["state"] == JobState.RUNNING and job.status.get("cell", 0) >= 2, bt.timeout,
                 "the long cell to start")
        assert job.cancel() is True
        job.wait(timeout=60)
        assert job.state == JobState.CANCELLED, job.status
        assert "started" in job.logs()
        assert job.output_notebook is not None  # partial output saved
        assert job.cancel() is False  # an ended job: nothing to cancel
        self.assert_backend_lets_go(backend, job, bt.timeout)
        backend.cancel(job.handle)  # cancelling what has ended is not an error

    def test_killed_runner_reads_as_lost(self, run, contract_notebook, backend_under_test) -> None:
        bt = backend_under_test
        if bt.kill_runner is None:
            pytest.skip(f"{bt.name}: the harness cannot kill a runner: {bt.capabilities.reason('kill_runner')}")
        nb = contract_notebook("killed.ipynb", ["import time\nfor i in range(600):\n    time.sleep(0.5)"])
        job = run(nb)
        wait_for(lambda: job.refresh()["state"] == JobState.RUNNING, bt.timeout, "the job to run")
        bt.kill_runner(job)
        job.wait(timeout=bt.timeout)
        assert job.state in _KILLED_STATES, job.status  # never running forever
        assert job.state == bt.capabilities.killed_runner_state, job.status
        assert job.status.get("reason")

    # what the backend says about jobs ----------------------------------------------------------
    def test_state_of_a_job_it_never_ran_is_gone(self, backend_under_test, backend) -> None:
        handle = backend_under_test.unknown_handle
        assert handle is not None, "set BackendUnderTest.unknown_handle: a handle of a job this backend never ran"
        state = backend.state(handle)  # not an exception
        assert state.state == B_GONE, state

    def test_validate_refuses_resources_it_cannot_provide(self, run, contract_notebook, backend_under_test, backend) -> None:
        bt = backend_under_test
        caps = bt.capabilities
        backend.validate(_spec(bt, _resources(bt)))  # what the contract's own jobs ask for is fine
        if not caps.invalid_resources:
            # Stated: it accepts any request (why["invalid_resources"]); then it must not refuse a big one.
            backend.validate(_spec(bt, _resources(bt, gpu="a100", gpu_count=8, cpus=64, memory_gb=512.0)))
            return
        for bad in caps.invalid_resources:
            with pytest.raises(UsageError) as err:
                backend.validate(_spec(bt, _resources(bt, **bad)))
            assert str(err.value) and err.value.hint, f"{bad}: say what is wrong and how to fix it"
        nb = contract_notebook("refused.ipynb", ["print(1)"])
        before = bt.store.list_dirs("jobs")
        with pytest.raises(UsageError):
            run(nb, **_submit_args(caps.invalid_resources[0]))
        assert bt.store.list_dirs("jobs") == before  # refused before anything was staged or launched

    def test_machines_are_machine_objects(self, backend_under_test, backend) -> None:
        caps = backend_under_test.capabilities
        machines = backend.machines()
        assert isinstance(machines, list) and all(isinstance(m, Machine) for m in machines), machines
        names = [m.name for m in machines]
        assert all(isinstance(n, str) and n for n in names) and len(set(names)) == len(names), names
        for m in machines:
            d = m.to_dict()
            assert d["name"] == m.name and m.gpu_count >= 0
            assert m.price_per_hour is None or m.price_per_hour >= 0
        if caps.machines:
            assert machines, f"{backend.name} states that it lists machines, and listed none"
        else:
            assert machines == [], f"{backend.name} states it lists none ({caps.reason('machines')})"
