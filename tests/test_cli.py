"""End to end through the `offload` command, the way a user works in a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from offload.store import Store

pytestmark = pytest.mark.slow


def offload(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "offload.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=dict(os.environ))


@pytest.fixture
def train(notebook):
    return notebook("train.ipynb", [
        "import offload\nprint('training with', lr, epochs)\nfor e in range(epochs):\n    offload.log_metric('loss', lr / (e + 1), step=e)",
        "offload.log_metric('val_acc', 0.5 + lr)\nprint('finished')",
    ], params="lr = 0.1\nepochs = 2")


def test_run_ls_show_logs_merge(train, offload_home):
    r = offload("run", str(train), "-p", "lr=0.25", "-p", "epochs=3")
    assert r.returncode == 0, r.stderr
    assert "succeeded" in r.stdout and "val_acc=0.75" in r.stdout
    ls = offload("ls")
    assert ls.returncode == 0
    row = ls.stdout.splitlines()[1].split()
    job_id = row[0]
    assert row[1:4] == ["train.ipynb", "succeeded", "4/4"] and "val_acc=0.75" in ls.stdout
    show = json.loads(offload("show", job_id[-6:], "--json").stdout)  # a unique suffix is enough
    assert show["parameters"] == {"lr": 0.25, "epochs": 3}
    assert show["metrics"] == {"loss": pytest.approx(0.25 / 3), "val_acc": 0.75}
    assert show["state"] == "succeeded" and show["timings"]["duration_s"] > 0
    assert "training with 0.25 3" in offload("logs", job_id).stdout
    merged = offload("merge", job_id)
    assert merged.returncode == 0 and "merged outputs of 3 cell(s)" in merged.stdout
    nb = nbformat.read(train, as_version=4)
    assert "training with 0.25 3" in nb.cells[2].outputs[0]["text"]
    assert nb.metadata["offload"]["last_run"]["metrics"]["val_acc"] == 0.75


def test_failing_cell_shows_the_traceback(notebook):
    nb = notebook("bad.ipynb", ["x = 1", "1 / 0"])
    r = offload("run", str(nb))
    assert r.returncode == 6 and "failed" in r.stdout and "ZeroDivisionError" in r.stdout
    job_id = json.loads(offload("ls", "--json").stdout)[0]["id"]
    show = offload("show", job_id)
    assert "ZeroDivisionError" in show.stdout and "1 / 0" in show.stdout


@pytest.mark.parametrize("case,expect", [
    ("missing", "not found"),
    ("invalid", "not valid JSON"),
    ("unknown-param", "did you mean lr"),
    ("bad-data", "does not exist"),
])
def test_bad_input_is_one_line_with_a_fix(case, expect, train, tmp_path):
    args = {
        "missing": ["run", str(tmp_path / "nope.ipynb")],
        "invalid": ["run", str(tmp_path / "broken.ipynb")],
        "unknown-param": ["run", str(train), "-p", "lrr=1"],
        "bad-data": ["run", str(train), "--data", "missing-dir"],
    }[case]
    (tmp_path / "broken.ipynb").write_text("{oops")
    r = offload(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert expect in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and "hint: " in r.stderr
    assert Store().list_dirs("jobs") == []  # nothing half-written


def test_unknown_job_and_unknown_backend(train):
    r = offload("show", "nosuchjob")
    assert r.returncode == 3 and "offload ls" in r.stderr
    r = offload("run", str(train), "--backend", "nosuch")
    assert r.returncode == 2 and "available backends" in r.stderr
    r = offload("run", str(train), "--backend", "sweep-pack")  # internal: never offered to users
    assert r.returncode == 2 and "unknown backend 'sweep-pack'" in r.stderr and "local" in r.stderr


def test_output_into_a_closed_pipe_is_no_error(train):
    """`offload ls --json | head -1`: the reader stops early; no BrokenPipeError traceback."""
    assert offload("run", str(train)).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "offload.cli", "ls", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ))
    proc.stdout.close()  # like `head` exiting before the command has written (it starts in ~0.2 s)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in err, err


def test_detach_then_cancel(notebook):
    nb = notebook("slow.ipynb", ["print('begin', flush=True)", "import time\ntime.sleep(300)"])
    r = offload("run", str(nb), "--detach")
    job_id = r.stdout.strip()
    assert r.returncode == 0 and job_id
    deadline = time.time() + 120
    while "begin" not in offload("logs", job_id).stdout:
        assert time.time() < deadline, "job never started"
        time.sleep(0.5)
    c = offload("cancel", job_id)
    assert c.returncode == 0 and "cancelled" in c.stdout
    follow = offload("logs", "-f", job_id, timeout=60)
    assert "cancelled by the user" in follow.stdout


def test_second_submission_of_unchanged_project_uploads_no_blob(train):
    store = Store()
    assert offload("run", str(train), "--detach").returncode == 0
    blobs = set(store.list("blobs"))
    r = offload("run", str(train), "--detach")
    assert r.returncode == 0
    assert set(store.list("blobs")) == blobs and len(store.list("bundles")) == 1
    assert "uploaded 0 new blob(s)" in r.stderr
    for job_id in store.list_dirs("jobs"):
        from offload.jobs import Job

        Job(job_id).wait(timeout=300)


def test_ls_refresh_rebuilds_the_index_from_the_store(train, offload_home):
    assert offload("run", str(train)).returncode == 0
    (offload_home / "index.sqlite").unlink()
    for extra in ("index.sqlite-wal", "index.sqlite-shm"):
        (offload_home / extra).unlink(missing_ok=True)
    r = offload("ls", "--refresh")
    assert "train.ipynb" in r.stdout and "succeeded" in r.stdout
