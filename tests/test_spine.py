"""The spine: one launch path, one program table, a notebook submitted from memory."""

from __future__ import annotations

from typing import Any

import nbformat.v4 as v4
import pytest

from offload.backends.base import Backend, BackendState, get_backend
from offload.errors import BackendError, UsageError
from offload.jobs import Job, launch_spec, submit
from offload.runner.programs import PROGRAMS, program_kind
from offload.spec import KINDS, JobSpec, JobState, Resources
from offload.store import Store, layout


def _spec(**kw: Any) -> JobSpec:
    return JobSpec(id="20261205-000000-abcdef", notebook="nb.ipynb", bundle_id="b" * 24, **kw)


def test_every_job_kind_has_a_runner_program():
    assert set(PROGRAMS) == set(KINDS)


def test_specs_written_by_0_1_find_their_program_by_label():
    assert program_kind(_spec(kind="cell", labels={"role": "session"})) == "session"
    assert program_kind(_spec(kind="trial", labels={"role": "sweep-pack"})) == "pack"
    assert program_kind(_spec(kind="trial", labels={"sweep": "s"})) == "trial"


class _Refusing(Backend):
    """A backend whose launch fails the way a cloud API does."""

    name = "local"

    def launch(self, spec: JobSpec) -> dict[str, Any]:
        raise BackendError("no capacity in any zone tried", hint="try again later")

    def state(self, handle: dict[str, Any]) -> BackendState:
        raise AssertionError("never launched")

    def cancel(self, handle: dict[str, Any]) -> None:
        raise AssertionError("never launched")


def test_a_failed_launch_leaves_a_failed_job_with_the_backends_reason(tmp_path):
    store = Store((tmp_path / "s").as_uri())
    spec = _spec()
    with pytest.raises(BackendError):
        launch_spec(spec, store=store, env={"python": "3"}, backend=_Refusing(store))
    assert store.get_json(layout.job_key(spec.id, "spec.json"))["id"] == spec.id
    assert store.get_json(layout.job_key(spec.id, "env.json")) == {"python": "3"}
    assert not store.exists(layout.job_key(spec.id, "handle.json"))
    job = Job(spec.id, store=store)
    assert job.state == JobState.FAILED and "no capacity" in job.status["reason"]


def test_a_spec_that_fails_validation_writes_nothing(tmp_path):
    store = Store((tmp_path / "s").as_uri())
    spec = _spec(resources=Resources(gpu_count=0))
    with pytest.raises(UsageError):
        launch_spec(spec, store=store, backend=get_backend("local", store))
    assert store.list("jobs") == []


@pytest.mark.slow
def test_a_notebook_object_runs_without_a_file_in_the_users_folder(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "helper.py").write_text("ANSWER = 42\n")
    before = sorted(p.name for p in project.iterdir())
    nb = v4.new_notebook()
    nb.cells = [v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                v4.new_code_cell("import helper\nprint('answer', helper.ANSWER * x)")]
    job = submit(nb, parameters={"x": 2}, project_root=project, store=Store((tmp_path / "s").as_uri()))
    job.wait(timeout=300)
    assert job.state == JobState.SUCCEEDED, job.status
    assert "answer 84" in job.logs()
    assert sorted(p.name for p in project.iterdir()) == before  # nothing written next to the user's files
    assert job.spec.source_path is None and job.spec.notebook == "notebook.ipynb"
