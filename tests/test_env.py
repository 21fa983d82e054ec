"""Isolated environments built from a snapshot with uv, cached by env hash; and the end-to-end
proof that a snapshot is complete: ``offload run --env isolated`` in a fresh environment."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

import offload
from offload.errors import UsageError
from offload.runner.environment import READY, EnvBuildError, env_dir, prepare_env
from offload.snapshot.deps import EnvSpec, Requirement, snapshot
from offload.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("env-cache")


def _spec(*lines: str) -> EnvSpec:
    import sys

    py = ".".join(str(v) for v in sys.version_info[:3])
    reqs = [Requirement(ln.split("==")[0], ln.split("==")[1], ["test"], spec=ln) for ln in lines]
    return EnvSpec(python=py, requirements=reqs)


def _pyyaml_version() -> str:
    from importlib.metadata import version

    return version("pyyaml")


def test_env_built_once_and_reused(env_cache):
    spec = _spec(f"pyyaml=={_pyyaml_version()}")
    py = prepare_env(spec, cache_dir=env_cache)
    out = subprocess.run(
        [
            str(py),
            "-c",
            "import yaml, ipykernel, offload; print(yaml.__version__, offload.__version__)",
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [_pyyaml_version(), offload.__version__]
    # only the snapshot's packages (plus the kernel): numpy is in this venv, not in that one
    assert subprocess.run([str(py), "-c", "import numpy"], capture_output=True).returncode != 0
    marker = env_dir(spec, env_cache) / READY
    first = json.loads(marker.read_text())
    logs: list[str] = []
    assert prepare_env(spec, cache_dir=env_cache, log=logs.append) == py
    assert json.loads(marker.read_text())["built_at"] == first["built_at"]
    assert logs == []  # nothing was built


def test_concurrent_callers_build_once(env_cache):
    spec = _spec(f"pyyaml=={_pyyaml_version()}")
    spec.requirements[0].reasons = ["other"]  # same install set: same hash, reused
    spec2 = _spec(f"pyyaml=={_pyyaml_version()}", "six==1.17.0")
    logs: list[str] = []
    results: list[Path] = []

    def call():
        results.append(prepare_env(spec2, cache_dir=env_cache, log=logs.append))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 3
    assert sum(1 for m in logs if m.startswith("building")) == 1
    assert prepare_env(spec, cache_dir=env_cache) != results[0]


def test_unbuildable_requirement_is_a_clear_error(tmp_path):
    spec = _spec("pyyaml==0.0.0.post9999")
    with pytest.raises(EnvBuildError) as err:
        prepare_env(spec, cache_dir=tmp_path)
    assert "pyyaml" in str(err.value) and "\n" not in err.value.message
    assert not (env_dir(spec, tmp_path) / READY).exists()


def _project(root: Path) -> Path:
    (root / "mypkg").mkdir(parents=True)
    (root / "mypkg" / "__init__.py").write_text("from .core import double\n")
    (root / "mypkg" / "core.py").write_text(
        "import yaml\n\ndef double(x):\n    return yaml.safe_load(str(2 * x))\n"
    )
    nb = v4.new_notebook()
    nb.cells = [
        v4.new_code_cell("try:\n    import pandas\nexcept ImportError:\n    pandas = None"),
        v4.new_code_cell("import yaml\nfrom mypkg import double\nimport offload"),
        v4.new_code_cell(
            "result = double(21)\nprint('answer', result, 'pandas', pandas is not None)\n"
            "offload.log_metric('answer', result)"
        ),
    ]
    path = root / "main.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_run_isolated_end_to_end(tmp_path, env_cache, monkeypatch):
    """A notebook with a local package, a renamed import (yaml -> pyyaml) and an optional import
    runs in a fresh environment built from its snapshot alone."""
    monkeypatch.setenv("OFFLOAD_ENV_CACHE", str(env_cache))
    nb = _project(tmp_path / "proj")
    env = snapshot(nb)
    assert [r.name for r in env.required] == ["pyyaml"]
    assert [r.name for r in env.optional] == ["pandas"]
    job = offload.submit(nb, env="isolated").wait(timeout=240)
    assert job.state == "succeeded", job.logs()
    out = job.output_notebook
    text = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []))
    assert "answer 42 pandas False" in text  # optional import absent there, and that is fine
    assert job.last_metrics()["answer"] == 42
    status = job.status
    assert str(env_cache) in str(status.get("python", ""))


def test_missing_import_reported_before_upload(tmp_path):
    nb = _project(tmp_path / "proj")
    cells = nbformat.read(str(nb), as_version=4)
    cells.cells.append(v4.new_code_cell("import not_installed_anywhere_xyz"))
    nbformat.write(cells, str(nb))
    store = Store()
    with pytest.raises(UsageError, match="not_installed_anywhere_xyz"):
        offload.submit(nb, env="isolated", store=store)
    assert store.list("blobs") == []
