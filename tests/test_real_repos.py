"""Real notebooks on the first try (issue 16): repo-shaped fixtures like the public ML repositories
where the first isolated runs failed. A notebook in a subfolder of a git repository imports the
repo's package through ``sys.path.append('../..')``; the package has the Python 2 fallback import
and uses ``IPython.display``; the notebook reads a data file by a literal path (and ``!head``s it)
and is an nbformat 4.4 file without cell ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

import offload
from offload.jobs import submit
from offload.snapshot.deps import render, snapshot

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "deps-corpus"


def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@e")
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout


def _old_notebook(path: Path, cells: list[str]) -> Path:
    """An nbformat 4.4 notebook without cell ids, as older Jupyter (and many repos) have them."""
    nb = v4.new_notebook()
    nb.cells = [v4.new_markdown_cell("# Analysis")] + [v4.new_code_cell(c) for c in cells]
    data = json.loads(nbformat.writes(nb))
    data["nbformat_minor"] = 4
    for c in data["cells"]:
        c.pop("id", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def make_repo(root: Path, *, git: bool = True) -> Path:
    """repo/{.git, setup.py, mypkg/, notebooks/sub/analysis.ipynb, notebooks/sub/data/heights.csv}"""
    (root / "mypkg").mkdir(parents=True)
    (root / "setup.py").write_text("from setuptools import setup\nsetup(name='mypkg', packages=['mypkg'])\n")
    (root / "mypkg" / "__init__.py").write_text(
        "try:\n    from io import StringIO\nexcept ImportError:\n    from StringIO import StringIO\n"
        "import yaml\nfrom IPython.display import display\n\n"
        "def load(text):\n    return yaml.safe_load(StringIO(text))\n\n"
        "def unused_plot():\n    import seaborn_not_installed_here\n"
    )
    nb = _old_notebook(root / "notebooks" / "sub" / "analysis.ipynb", [
        "import sys\nsys.path.append('../..')\nfrom mypkg import load",
        "import IPython\nprint('ipython', IPython.__version__)",
        "!head -n 2 data/heights.csv",
        "rows = open('data/heights.csv').read().splitlines()\nprint('rows', len(rows), load('a: 1'))",
    ])
    (nb.parent / "data").mkdir()
    (nb.parent / "data" / "heights.csv").write_text("name,height\nwashington,189\nadams,170\n")
    if git:
        _git(root, "init", "-q")
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", "repo")
    return nb


def test_repo_root_data_py2_fallback_and_kernel_versions(tmp_path):
    nb = make_repo(tmp_path / "repo")
    env = snapshot(nb)
    assert Path(env.project_root) == (tmp_path / "repo").resolve()
    assert env.project_root_why == "nearest folder with .git"
    assert "mypkg/__init__.py" in env.local_files
    assert [r.name for r in env.required] == ["pyyaml"]
    # the py2 fallback and the import inside a function nobody calls never block
    blocking = [u for u in env.unresolved if not u.get("optional")]
    assert blocking == []
    dead = next(u for u in env.unresolved if u["module"] == "seaborn_not_installed_here")
    assert "unused_plot()" in dead["why"] and "never calls" in dead["why"]
    assert any("StringIO" in n and "Python 2 fallback" in n for n in env.notes)
    # the data file read by a literal path ships, and the kernel's versions are recorded/pinned
    assert env.data_files == [{"path": "notebooks/sub/data/heights.csv", "where": "cell 4", "call": "!head",
                               "size": 37, "status": "ship", "kind": "file"}]
    assert env.kernel["ipython"] == version("ipython")
    assert f"ipython=={version('ipython')}" in env.kernel_pins
    assert f"ipykernel=={version('ipykernel')}" in env.kernel_pins
    text = render(env)
    assert "Project root:" in text and "notebooks/sub/data/heights.csv" in text and "shipped" in text


def test_explicit_project_root_still_wins(tmp_path):
    nb = make_repo(tmp_path / "repo", git=False)
    env = snapshot(nb, project_root=nb.parent)
    assert Path(env.project_root) == nb.parent.resolve()
    assert [u["module"] for u in env.unresolved if not u.get("optional")] == ["mypkg"]


def test_conda_names_map_to_pypi(tmp_path):
    (tmp_path / "environment.yml").write_text(
        "dependencies:\n  - python=3.11\n  - python-graphviz=0.20.1\n  - graphviz\n  - pytorch\n"
    )
    nb = tmp_path / "a.ipynb"
    nbformat.write(v4.new_notebook(cells=[v4.new_code_cell("import graphviz\nimport torch")]), nb)
    env = snapshot(nb)
    assert not [u for u in env.unresolved if not u.get("optional")]
    specs = {r.name: r.spec for r in env.required}
    assert specs["graphviz"] == "graphviz==0.20.1" and "torch" in specs
    nb2 = tmp_path / "b" / "b.ipynb"
    nb2.parent.mkdir()
    nbformat.write(v4.new_notebook(cells=[v4.new_code_cell("%conda install -y python-graphviz\nimport graphviz")]), nb2)
    env2 = snapshot(nb2)
    assert "graphviz" in {r.name for r in env2.required} and not env2.unresolved


def test_data_too_large_missing_and_outside_are_warned(tmp_path):
    proj = tmp_path / "proj"
    (proj / "data").mkdir(parents=True)
    (proj / ".git").mkdir()
    with open(proj / "data" / "big.npy", "wb") as fh:  # sparse: 60 MiB that cost nothing
        fh.truncate(60 * 1024 * 1024)
    (tmp_path / "elsewhere.csv").write_text("x\n1\n")
    nb = proj / "a.ipynb"
    nbformat.write(v4.new_notebook(cells=[v4.new_code_cell(
        "import numpy as np, pandas as pd\nBIG = 'data/big.npy'\narr = np.load(BIG)\n"
        "df = pd.read_csv('data/not_here.csv')\nother = pd.read_csv('../elsewhere.csv')\n"
        "with open('out.txt', 'w') as f:\n    f.write('x')\n"
    )]), nb)
    env = snapshot(nb)
    status = {d["path"]: d["status"] for d in env.data_files}
    assert status == {"data/big.npy": "large", "data/not_here.csv": "missing",
                      str((tmp_path / "elsewhere.csv").resolve()): "outside"}
    warnings = env.data_warnings()
    assert any("--data data/big.npy" in w for w in warnings)
    assert any("data/not_here.csv" in w and "does not exist here" in w for w in warnings)
    assert env.shipped_data() == []
    said: list[str] = []
    job = submit(nb, on_progress=said.append, allow_unresolved=True)
    job.wait(timeout=120)
    assert any(m.startswith("warning: data/big.npy") for m in said)
    staged = next(i for i, m in enumerate(said) if m.startswith("staged"))
    assert all(i < staged for i, m in enumerate(said) if m.startswith("warning:"))  # before upload


def test_missing_in_kernel_is_a_warning_in_kernel_mode(tmp_path):
    (tmp_path / "requirements.txt").write_text("notinstalled-pkg-xyz==1.0\n")
    nb = tmp_path / "a.ipynb"
    nbformat.write(v4.new_notebook(cells=[v4.new_code_cell("import notinstalled_pkg_xyz")]), nb)
    said: list[str] = []
    job = submit(nb, on_progress=said.append)
    assert any("notinstalled_pkg_xyz" in m and "not installed in this kernel" in m for m in said)
    job.wait(timeout=120)


def test_run_does_not_dirty_a_git_checkout_and_merges_into_a_clone(tmp_path):
    repo = tmp_path / "repo"
    nb = make_repo(repo)
    before = nb.read_bytes()
    job = offload.submit(nb).wait(timeout=180)
    assert job.state == "succeeded", job.logs()
    assert _git(repo, "status", "--porcelain") == ""  # the first run leaves the checkout clean
    assert nb.read_bytes() == before
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    target = clone / "notebooks" / "sub" / "analysis.ipynb"
    report = job.merge(into=target)
    assert len(report.merged) == 4 and report.by_position == 4 and not report.edited
    assert "merged outputs of 4 cell(s)" in report.describe()
    merged = nbformat.read(target, as_version=4)
    text = "".join(o.get("text", "") for c in merged.cells for o in c.get("outputs", []))
    assert "rows 3 {'a': 1}" in text and "washington,189" in text
    assert _git(repo, "status", "--porcelain") == ""


@pytest.mark.slow
def test_isolated_run_of_a_repo_notebook_with_no_flags(tmp_path, monkeypatch):
    """The issue's failures, together: runs --env isolated end to end with no flag at all."""
    monkeypatch.setenv("OFFLOAD_ENV_CACHE", str(tmp_path / "envs"))
    nb = make_repo(tmp_path / "repo")
    job = offload.submit(nb, env="isolated").wait(timeout=400)
    assert job.state == "succeeded", job.logs()
    out = job.output_notebook
    text = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []))
    assert f"ipython {version('ipython')}" in text  # the kernel's IPython, not today's
    assert "rows 3 {'a': 1}" in text
    logs = job.logs()
    assert "building environment (uv):" in logs and "uv: Installed" in logs
    assert job.status["timings"]["env_s"] > 0 and job.status.get("notebook_started_at")
    assert _git(tmp_path / "repo", "status", "--porcelain") == ""


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the deps corpus is not next to this checkout")
@pytest.mark.parametrize("nb_id,package", [("19", "homemade"), ("32", "clip"), ("34", "whisper")])
def test_corpus_repo_packages_found_with_the_default_root(nb_id, package):
    row = next(r for r in (CORPUS / "corpus.tsv").read_text().splitlines()[1:] if r.split("\t")[0] == nb_id)
    nb = CORPUS / "notebooks" / nb_id / row.split("\t")[3]
    env = snapshot(nb)
    assert any(f.startswith(f"{package}/") for f in env.local_files)
    assert package not in {u["module"] for u in env.unresolved}


def test_cli_deps_shows_root_data_and_kernel(tmp_path):
    nb = make_repo(tmp_path / "repo", git=False)
    out = subprocess.run([sys.executable, "-m", "offload.cli", "deps", str(nb)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Project root:" in out.stdout and "heights.csv" in out.stdout and "Kernel: ipython" in out.stdout


def test_final_line_shows_the_environment_build_phase():
    from offload.cli.run import _phases

    # the job: 315 s, nearly all of it the environment build, used to read "failed in 0:06"
    st = {"timings": {"env_s": 309.0}, "notebook_started_at": 1000.0, "finished_at": 1006.0}
    assert _phases(st) == " (environment build 5:09, notebook 0:06)"
    assert _phases({"timings": {"env_s": 0.01}}) == ""  # a reused environment is not worth a word


def test_missing_in_kernel_is_an_error_before_upload_for_isolated(tmp_path):
    from offload.errors import UsageError
    from offload.store import Store

    nb = tmp_path / "a.ipynb"
    nbformat.write(v4.new_notebook(cells=[v4.new_code_cell("import numpy_not_in_this_kernel")]), nb)
    store = Store()
    with pytest.raises(UsageError) as err:
        submit(nb, env="isolated", store=store)
    assert "numpy_not_in_this_kernel (cell 1)" in err.value.message
    assert f"built from the packages of {sys.executable}" in err.value.message
    assert store.list("blobs") == []  # nothing was uploaded
