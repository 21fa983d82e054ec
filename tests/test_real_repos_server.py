"""Issue 16 through the Jupyter server: the Run dialog's inspection finds the repo root, the data
files and their warnings; a job submitted from JupyterLab leaves the file alone; the merge plan for
an open notebook whose ids are not the job's (JupyterLab gives an nbformat 4.4 file ids of its own)
aligns cells by position and source instead of reporting every cell deleted."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.test_real_repos import _git, make_repo
from tests.test_server import call, wait_state

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_ext": True}},
        "OffloadExtensionApp": {"poll_interval": 0.2, "backends": ["local"]},
    }


async def test_inspect_finds_repo_root_and_data(jp_fetch, jp_root_dir):
    nb = make_repo(jp_root_dir / "repo", git=False)
    (jp_root_dir / "repo" / "setup.cfg").write_text("[metadata]\nname = mypkg\n")
    (nb.parent / "extra.csv").write_text("x\n")
    data = json.loads((await call(jp_fetch, "notebook", params={"path": "repo/notebooks/sub/analysis.ipynb"})).body)
    deps = data["deps"]
    assert deps["project_root"] == "repo"
    assert [d["path"] for d in deps["data_files"]] == ["notebooks/sub/data/heights.csv"]
    files = {f["path"] for f in data["files"]}
    assert {"notebooks/sub/analysis.ipynb", "mypkg/__init__.py", "notebooks/sub/data/heights.csv"} <= files
    assert "notebooks/sub/extra.csv" not in files  # only what the notebook reads
    assert deps["kernel"]["ipython"]


@pytest.mark.slow
async def test_lab_run_leaves_the_file_and_merge_plan_aligns_foreign_ids(jp_fetch, jp_root_dir):
    nb = make_repo(jp_root_dir / "repo")
    before = nb.read_bytes()
    r = await call(jp_fetch, "jobs", method="POST", body={"path": "repo/notebooks/sub/analysis.ipynb"})
    job = json.loads(r.body)
    done = await wait_state(jp_fetch, job["id"], ("succeeded", "failed", "lost"))
    assert done["state"] == "succeeded", done.get("reason")
    assert nb.read_bytes() == before and _git(jp_root_dir / "repo", "status", "--porcelain") == ""
    # the notebook as JupyterLab holds it: the file's cells, with ids the browser made up
    cells = [{"id": str(uuid.uuid4()), "source": "".join(c["source"])} for c in json.loads(before)["cells"]]
    cells[2]["source"] += "\n# edited in the browser"
    plan = json.loads((await call(jp_fetch, "jobs", job["id"], "merge-plan", method="POST",
                                  body={"cells": cells})).body)
    assert plan["edited"] == [cells[2]["id"]] and plan["deleted"] == []
    assert {m["id"] for m in plan["merged"]} == {cells[1]["id"], cells[3]["id"], cells[4]["id"]}
    assert any("rows 3" in json.dumps(m["outputs"]) for m in plan["merged"])
