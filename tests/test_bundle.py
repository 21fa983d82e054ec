"""Bundles: content addressing, dedupe, ignore rules, secrets never included."""

from __future__ import annotations

import os
import time

import nbformat
import pytest
from nbformat import v4

from offload.errors import UsageError
from offload.snapshot.bundle import build_bundle, collect_garbage, materialize, stage
from offload.store import Store, layout

JOB = "20261122-000000-aaaaaa"
WHEEL = layout.wheel_key("abc", "jupyter_offload-0.1.0-py3-none-any.whl")


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    (root / "utils").mkdir(parents=True)
    (root / "train.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    (root / "utils" / "__init__.py").write_text("")
    (root / "utils" / "data.py").write_text("import numpy\n")
    (root / "data").mkdir()
    for i in range(5):
        (root / "data" / f"part{i}.csv").write_text(f"a,b\n{i},{i}\n")
    return root


def test_second_stage_of_unchanged_project_uploads_nothing(project, tmp_path):
    store = Store((tmp_path / "store").as_uri())
    first = stage(build_bundle(project, project / "train.ipynb", include=["utils"], data=["data"]), store)
    assert first.uploaded_blobs == first.files == 8
    before = set(store.list(layout.BLOBS))
    second = stage(build_bundle(project, project / "train.ipynb", include=["utils"], data=["data"]), store)
    assert second.uploaded_blobs == 0 and second.bundle_id == first.bundle_id
    assert set(store.list(layout.BLOBS)) == before
    (project / "data" / "part3.csv").write_text("changed\n")
    third = stage(build_bundle(project, project / "train.ipynb", include=["utils"], data=["data"]), store)
    assert third.uploaded_blobs == 1 and third.uploaded_bytes == len("changed\n")
    assert third.bundle_id != first.bundle_id


def test_identical_files_are_stored_once(project, tmp_path):
    (project / "data" / "copy.csv").write_text((project / "data" / "part1.csv").read_text())
    store = Store((tmp_path / "store").as_uri())
    report = stage(build_bundle(project, project / "train.ipynb", data=["data"]), store)
    assert report.files == 7 and report.uploaded_blobs == 6


def test_planted_secrets_never_leave(project, tmp_path):
    planted = {
        ".env": "API_KEY=sekrit", ".env.production": "X=1", "data/id_rsa": "k", "data/gcp-credentials.json": "{}",
        "data/server.pem": "p", "data/.git/config": "[core]", "data/.ssh/known_hosts": "h",
        "data/renamed_key.txt": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n",
        "data/sa.json": '{"type": "service_account", "private_key_id": "1"}',
        "data/__pycache__/x.pyc": "c", "data/.ipynb_checkpoints/a.ipynb": "{}",
        "data/node_modules/p/index.js": "j", "data/venv/pyvenv.cfg": "home=/usr",
        "data/.npmrc": "//registry.npmjs.org/:_authToken=sekrit", "data/.docker/config.json": '{"auths": {}}',
        "data/.envrc": "export TOKEN=sekrit", "data/prod.env": "DB_PASSWORD=sekrit", "data/infra.tfstate": "{}",
        "data/.cargo/credentials.toml": "token = 1", "data/.pgpass": "h:5432:*:u:p",
        "data/.config/gcloud/application_default_credentials.json": "{}",
    }
    for rel, text in planted.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    store = Store((tmp_path / "store").as_uri())
    bundle = build_bundle(project, project / "train.ipynb", data=["data", "."])
    shipped = set(bundle.files)
    assert not shipped & set(planted), shipped & set(planted)
    stage(bundle, store)
    blobs = b"".join(store.get_bytes(k) for k in store.list(layout.BLOBS))
    for secret in (b"sekrit", b"PRIVATE KEY", b"private_key_id"):
        assert secret not in blobs
    excluded = dict(bundle.excluded)
    assert excluded["data/renamed_key.txt"] == "contains a private key or credential"
    assert "secret" in excluded[".env"]
    assert "data/renamed_key.txt" in bundle.report()


def test_a_secret_named_explicitly_is_an_error_unless_allowed(project):
    """--data .env or --include a key file is never dropped in silence: it is refused with the
    way to ship it on purpose, and shipped when the user says so."""
    (project / ".env").write_text("TOKEN=sekrit\n")
    (project / "deploy.txt").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    for field, path in (("data", ".env"), ("include", "deploy.txt")):
        with pytest.raises(UsageError) as info:
            build_bundle(project, project / "train.ipynb", **{field: [path]})
        assert info.value.field == field and f"--allow-secret {path}" in info.value.hint
    bundle = build_bundle(project, project / "train.ipynb", data=[".env"], include=["deploy.txt"],
                          allow_secrets=[".env", "deploy.txt"])
    assert {".env", "deploy.txt"} <= set(bundle.files)
    # a secret found by detection (not named by the user) is still left out, and listed
    quiet = build_bundle(project, project / "train.ipynb", modules=["deploy.txt"])
    assert "deploy.txt" not in quiet.files and dict(quiet.excluded)["deploy.txt"] == "contains a private key or credential"


def test_a_key_anywhere_in_a_file_or_in_another_notebook_is_left_out(project):
    """The content check reads the whole file (a key after the first MiB, one split across two
    reads) and every notebook but the one being run."""
    (project / "data").mkdir(exist_ok=True)
    marker = b"-----BEGIN OPENSSH PRIVATE KEY-----"
    (project / "data" / "big.log").write_bytes(b"x" * (3 << 20) + marker)
    (project / "data" / "split.log").write_bytes(b"y" * ((1 << 20) - 10) + marker)  # across the 1 MiB read
    (project / "data" / "old.ipynb").write_text('{"cells": [], "note": "-----BEGIN PRIVATE KEY-----"}')
    (project / "data" / "fine.log").write_bytes(b"z" * (2 << 20))
    bundle = build_bundle(project, project / "train.ipynb", data=["data"])
    excluded = dict(bundle.excluded)
    for rel in ("data/big.log", "data/split.log", "data/old.ipynb"):
        assert excluded.get(rel) == "contains a private key or credential", (rel, excluded)
    assert "data/fine.log" in bundle.files and "train.ipynb" in bundle.files


def test_offloadignore_adds_rules(project):
    (project / ".offloadignore").write_text("data/part1.csv\n*.tmp\n")
    (project / "data" / "x.tmp").write_text("t")
    bundle = build_bundle(project, project / "train.ipynb", data=["data"])
    assert "data/part1.csv" not in bundle.files and "data/x.tmp" not in bundle.files
    assert "data/part2.csv" in bundle.files


def test_data_outside_the_project_or_missing_is_refused(project, tmp_path):
    (tmp_path / "elsewhere.csv").write_text("x")
    with pytest.raises(UsageError, match="outside the project"):
        build_bundle(project, project / "train.ipynb", data=[tmp_path / "elsewhere.csv"])
    with pytest.raises(UsageError, match="does not exist"):
        build_bundle(project, project / "train.ipynb", data=["nope/"])


def test_materialize_recreates_the_tree(project, tmp_path):
    store = Store((tmp_path / "store").as_uri())
    bundle = build_bundle(project, project / "train.ipynb", include=["utils"], data=["data"])
    stage(bundle, store)
    dest = tmp_path / "remote"
    manifest = materialize(store, bundle.id, dest)
    assert manifest["notebook"] == "train.ipynb"
    assert (dest / "utils" / "data.py").read_text() == "import numpy\n"
    assert (dest / "data" / "part4.csv").read_text() == "a,b\n4,4\n"


def test_report_lists_sizes(project):
    text = build_bundle(project, project / "train.ipynb", data=["data"]).report()
    assert text.startswith("6 files") and "data/part0.csv" in text


def test_gc_removes_only_staging_no_job_uses(project, tmp_path):
    store = Store((tmp_path / "store").as_uri())
    used = build_bundle(project, project / "train.ipynb", data=["data"])
    stage(used, store)
    store.put_json(layout.job_key(JOB, "spec.json"), {"bundle_id": used.id})
    (project / "data" / "part1.csv").write_text("only in an abandoned bundle\n")
    abandoned = build_bundle(project, project / "train.ipynb", data=["data"])
    stage(abandoned, store)
    store.put_bytes(WHEEL, b"wheel")
    assert collect_garbage(store) == []  # everything is younger than the grace period
    old = time.time() - 3 * 86400
    for key in store.list(""):
        os.utime(store.path(key), (old, old))
    orphan_blob = {e.sha256 for e in abandoned.files.values()} - {e.sha256 for e in used.files.values()}
    preview = collect_garbage(store, dry_run=True)
    assert sorted(preview) == sorted([layout.bundle_key(abandoned.id), *(layout.blob_key(s) for s in orphan_blob), WHEEL])
    assert store.exists(layout.bundle_key(abandoned.id))  # dry run removed nothing
    assert sorted(collect_garbage(store)) == sorted(preview)
    assert store.exists(layout.bundle_key(used.id)) and store.exists(layout.job_key(JOB, "spec.json"))
    assert all(store.exists(layout.blob_key(e.sha256)) for e in used.files.values())
    assert collect_garbage(store) == []


def _in_memory_notebook():
    nb = v4.new_notebook()
    nb.cells = [v4.new_code_cell("from utils.data import load\nprint(load)"), v4.new_markdown_cell("# notes")]
    return nb


def test_in_memory_notebook_stages_and_materializes_without_touching_the_project(project, tmp_path):
    before = sorted(p.relative_to(project) for p in project.rglob("*"))
    nb = _in_memory_notebook()
    bundle = build_bundle(project, "experiments/draft.ipynb", nb=nb, include=["utils"])
    assert bundle.notebook == "experiments/draft.ipynb"
    body = nbformat.writes(nb).encode()
    assert bundle.contents == {"experiments/draft.ipynb": body}
    assert bundle.files["experiments/draft.ipynb"].size == len(body)
    store = Store((tmp_path / "store").as_uri())
    report = stage(bundle, store)
    assert report.uploaded_blobs == report.files == 3
    dest = tmp_path / "remote"
    manifest = materialize(store, bundle.id, dest)
    assert manifest["notebook"] == "experiments/draft.ipynb"
    assert (dest / "experiments" / "draft.ipynb").read_bytes() == body
    assert nbformat.reads(body.decode(), as_version=4).cells[0].source == nb.cells[0].source
    assert (dest / "utils" / "data.py").read_text() == "import numpy\n"
    assert sorted(p.relative_to(project) for p in project.rglob("*")) == before  # nothing written
    # the same notebook again is the same bundle: nothing new to upload
    again = stage(build_bundle(project, project / "experiments" / "draft.ipynb", nb=nb, include=["utils"]), store)
    assert again.bundle_id == bundle.id and again.uploaded_blobs == 0


def test_in_memory_notebook_shadows_a_file_at_its_path(project, tmp_path):
    nb = _in_memory_notebook()
    bundle = build_bundle(project, "train.ipynb", nb=nb, data=["."])
    assert bundle.contents["train.ipynb"] == nbformat.writes(nb).encode()
    assert (project / "train.ipynb").read_text().startswith('{"cells": []')  # the file is untouched
    with pytest.raises(UsageError, match="outside the project"):
        build_bundle(project, tmp_path / "elsewhere.ipynb", nb=nb)
