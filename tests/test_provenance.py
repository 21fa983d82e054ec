"""Provenance: the run record holds the project's git commit, branch, remote (no credentials) and a
bounded, secret-scanned diff of its uncommitted changes; `offload show` prints it; a rerun keeps
the original's record (same bundle) and says so. Everything against a real git checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from offload.jobs import provenance as job_provenance
from offload.jobs import rerun, submit
from offload.snapshot.provenance import capture, clean_remote_url
from offload.store import Store, layout
from tests.notebooks import make_notebook

AWS_SECRET = "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    """A committed project (notebook + module) with a remote whose URL carries a token, then
    edited: a changed module line, a new untracked file and a settings file holding a secret."""
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    make_notebook(root / "train.ipynb", ["import helpers\nprint('scale', helpers.SCALE * lr)"], params="lr = 0.5")
    (root / "helpers.py").write_text("SCALE = 1\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first model")
    git(root, "remote", "add", "origin", "https://alice:ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/lab/proj.git")
    (root / "helpers.py").write_text("SCALE = 2  # tuned\n")
    (root / "notes.txt").write_text("try a larger batch\n")
    (root / "settings.ini").write_text(f"[aws]\n{AWS_SECRET}\n")
    return root


def offload_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "offload.cli", *args], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ))


def test_dirty_checkout_is_recorded_shown_and_kept_by_rerun(repo, tmp_path):
    store = Store((tmp_path / "store").as_uri())
    head = git(repo, "rev-parse", "HEAD")
    job = submit(repo / "train.ipynb", store=store).wait(timeout=300)
    assert job.state == "succeeded", job.status.get("reason")
    assert "scale 1.0" in job.logs()  # the edited module ran (SCALE = 2 * lr 0.5)

    prov = store.get_json(layout.job_key(job.id, layout.PROVENANCE))
    g = prov["git"]
    assert g["commit"] == head and g["branch"] == "main" and g["subject"] == "first model"
    assert g["remote"] == {"name": "origin", "url": "https://github.com/lab/proj.git"}  # the token is gone
    assert g["dirty"] is True
    assert {f["path"]: f["status"] for f in g["files"]} == {
        "helpers.py": "modified", "notes.txt": "untracked", "settings.ini": "untracked"}
    assert "+SCALE = 2  # tuned" in g["diff"] and "-SCALE = 1" in g["diff"] and "+try a larger batch" in g["diff"]
    # The settings file's patch is withheld: the secret never reaches the store through the diff.
    assert [w["path"] for w in g["withheld"]] == ["settings.ini"] and "contains a secret" in g["withheld"][0]["why"]
    raw = (tmp_path / "store" / layout.job_key(job.id, layout.PROVENANCE)).read_text()
    assert "wJalrXUtnFEMI" not in raw and "ghp_" not in raw and "alice" not in raw

    show = offload_cli("--store", store.url, "show", job.id)
    assert show.returncode == 0, show.stderr
    assert f"git        {head[:12]} on main (uncommitted: 3 files, +4 -1) origin https://github.com/lab/proj.git" in show.stdout
    assert "withheld settings.ini" in show.stdout
    as_json = json.loads(offload_cli("--store", store.url, "show", job.id, "--json").stdout)
    assert as_json["provenance"]["git"]["commit"] == head
    diff = offload_cli("--store", store.url, "show", job.id, "--diff")
    assert diff.stdout.startswith("diff --git a/helpers.py b/helpers.py") and "withheld: settings.ini" in diff.stderr

    # The checkout moves on; a rerun runs the original bundle, so its record is the original's.
    git(repo, "add", "helpers.py")
    git(repo, "commit", "-q", "-m", "tuned scale")
    (repo / "helpers.py").write_text("SCALE = 3\n")
    again = rerun(job).wait(timeout=300)
    assert again.state == "succeeded" and "scale 1.0" in again.logs()
    p2 = job_provenance.read(store, again.id)
    assert p2["rerun_of"] == job.id and p2["git"]["commit"] == head and p2["git"]["diff"] == g["diff"]
    show2 = offload_cli("--store", store.url, "show", again.id)
    assert f"rerun of {job.id}" in show2.stdout and head[:12] in show2.stdout


def test_diff_is_bounded_per_file_and_in_total(tmp_path):
    root = tmp_path / "big"
    root.mkdir()
    git(root, "init", "-q", "-b", "work")
    for name in ("a.py", "b.py", "c.py"):
        (root / name).write_text("x = 0\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "base")
    (root / "a.py").write_text("".join(f"x = {i}\n" for i in range(3000)))  # ~30 KB of patch
    (root / "b.py").write_text("x = 1\n")
    (root / "c.py").write_text("x = 2\n")
    rec = capture(root, max_diff=700, max_file_diff=20_000)["git"]
    assert [o["path"] for o in rec["omitted"]][0] == "a.py" and rec["omitted"][0]["why"] == "over the per-file limit"
    assert "+x = 1" in rec["diff"]  # b.py fits
    assert len(rec["diff"].encode()) <= 700
    assert rec["diff_bytes"] > 20_000  # the full size is still said
    assert {f["path"] for f in rec["files"]} == {"a.py", "b.py", "c.py"}  # every change is listed


def test_secret_named_file_and_first_commit_and_detached_head(tmp_path):
    root = tmp_path / "fresh"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "model.py").write_text("print(1)\n")
    (root / ".env").write_text("TOKEN=abc\n")  # a name the bundle never ships, whatever its content
    rec = capture(root)["git"]
    assert rec["commit"] is None and rec["branch"] == "main" and rec["dirty"]
    assert [w["path"] for w in rec["withheld"]] == [".env"] and "abc" not in rec["diff"]
    git(root, "add", "model.py")
    git(root, "commit", "-q", "-m", "one")
    git(root, "checkout", "-q", "--detach")
    rec = capture(root)["git"]
    assert rec["branch"] is None and rec["commit"] and rec["remote"] is None


def test_not_a_checkout_is_said_not_fatal(tmp_path, notebook):
    store = Store((tmp_path / "store").as_uri())
    outside = tmp_path / "plain"
    outside.mkdir()
    assert capture(outside)["git"] is None and "not a git checkout" in capture(outside)["note"]
    nb = make_notebook(outside / "nb.ipynb", ["print('hi')"])
    job = submit(nb, store=store, project_root=outside).wait(timeout=300)
    assert job.state == "succeeded"
    assert job_provenance.read(store, job.id)["git"] is None
    assert "not a git checkout" in offload_cli("--store", store.url, "show", job.id).stdout


@pytest.mark.parametrize(("url", "clean"), [
    ("https://user:tok@github.com/a/b.git", "https://github.com/a/b.git"),
    ("https://ghp_token@github.com/a/b.git", "https://github.com/a/b.git"),
    ("https://oauth2:glpat-x@gitlab.example.com:8443/a/b?private_token=x", "https://gitlab.example.com:8443/a/b"),
    ("ssh://git:pw@host.example/repo.git", "ssh://git@host.example/repo.git"),
    ("git@github.com:a/b.git", "git@github.com:a/b.git"),
    ("/srv/git/repo.git", "/srv/git/repo.git"),
])
def test_remote_urls_lose_credentials(url, clean):
    assert clean_remote_url(url) == clean
