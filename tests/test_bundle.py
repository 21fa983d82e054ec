"""Bundles: content addressing, dedupe, ignore rules, secrets never included."""

from __future__ import annotations

import pytest

from offload.errors import UsageError
from offload.snapshot.bundle import build_bundle, materialize, stage
from offload.store import Store


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
    before = set(store.list("blobs"))
    second = stage(build_bundle(project, project / "train.ipynb", include=["utils"], data=["data"]), store)
    assert second.uploaded_blobs == 0 and second.bundle_id == first.bundle_id
    assert set(store.list("blobs")) == before
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
    }
    for rel, text in planted.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    store = Store((tmp_path / "store").as_uri())
    bundle = build_bundle(project, project / "train.ipynb", data=["data", ".env"])
    shipped = set(bundle.files)
    assert not shipped & set(planted), shipped & set(planted)
    stage(bundle, store)
    blobs = b"".join(store.get_bytes(k) for k in store.list("blobs"))
    for secret in (b"sekrit", b"PRIVATE KEY", b"private_key_id"):
        assert secret not in blobs
    excluded = dict(bundle.excluded)
    assert excluded["data/renamed_key.txt"] == "contains a private key or credential"
    assert "secret" in excluded[".env"]
    assert "data/renamed_key.txt" in bundle.report()


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
    import os
    import time

    from offload.snapshot.bundle import collect_garbage

    store = Store((tmp_path / "store").as_uri())
    used = build_bundle(project, project / "train.ipynb", data=["data"])
    stage(used, store)
    store.put_json("jobs/20261122-000000-aaaaaa/spec.json", {"bundle_id": used.id})
    (project / "data" / "part1.csv").write_text("only in an abandoned bundle\n")
    abandoned = build_bundle(project, project / "train.ipynb", data=["data"])
    stage(abandoned, store)
    store.put_bytes("envs/wheels/abc/jupyter_offload-0.1.0-py3-none-any.whl", b"wheel")
    assert collect_garbage(store) == []  # everything is younger than the grace period
    old = time.time() - 3 * 86400
    for key in store.list(""):
        os.utime(store.path(key), (old, old))
    orphan_blob = {e.sha256 for e in abandoned.files.values()} - {e.sha256 for e in used.files.values()}
    preview = collect_garbage(store, dry_run=True)
    assert sorted(preview) == sorted([f"bundles/{abandoned.id}.json", *(f"blobs/{s}" for s in orphan_blob),
                                      "envs/wheels/abc/jupyter_offload-0.1.0-py3-none-any.whl"])
    assert store.exists(f"bundles/{abandoned.id}.json")  # dry run removed nothing
    assert sorted(collect_garbage(store)) == sorted(preview)
    assert store.exists(f"bundles/{used.id}.json") and store.exists("jobs/20261122-000000-aaaaaa/spec.json")
    assert all(store.exists(store.blob_key(e.sha256)) for e in used.files.values())
    assert collect_garbage(store) == []
