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
    assert excluded["data/renamed_key.txt"] == "contains a secret (Private Key)"
    assert excluded[".env"] == "its name looks like a credential"
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
    assert "deploy.txt" not in quiet.files and dict(quiet.excluded)["deploy.txt"].startswith("contains a secret")


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
        assert excluded.get(rel) == "contains a secret (Private Key)", (rel, excluded)
    assert "data/fine.log" in bundle.files and "train.ipynb" in bundle.files


# Credentials planted under names no name rule knows: the content scan finds each one. Tokens are
# assembled here so this file holds none verbatim.
_AWS_ID = "AKIA" + "Q3EGXRZ7T2LMNP4K"
_AWS_SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCY" + "9q8w7e6r5t4y"
_GH_TOKEN = "ghp_" + "x9Yb3Kq7Lm2Np5Rs8Tv1Wz4Ac6De0Fg2Hj4Kl"
_PYPI_TOKEN = "pypi-AgEIcHlwaS5vcmc" + "Qk3x" * 20
PLANTED_CONTENT = {
    # package-manager and registry credentials
    "data/build/npm-settings": "registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=npm_"
                               + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8\n",
    "data/ci/registry.json": '{"auths": {"ghcr.io": {"auth": "dXNlcjpnaHBfOXhZYjNLcTdMbTJOcDVSczhUdjE="}}}',
    "data/ci/publish.cfg": f"[pypi]\nusername = __token__\npassword = {_PYPI_TOKEN}\n",
    "data/ci/pip-index.txt": "--index-url https://deploy:Zq8v2LmXw9Rt4Kp7@pypi.corp.example/simple\n",
    "data/notes/gh.txt": f"token used by the release job: {_GH_TOKEN}\n",
    "data/ci/machines": "machine api.corp.example login deploy password Zq8v2LmXw9Rt4Kp7\n",
    # direnv / env-style files under other names
    "data/local_vars": "export DB_HOST=db.internal\nexport DB_PASSWORD=Xk9vq2LmP0wzR7\n",
    "data/staging.vars": "SERVICE_API_KEY=4f9c2b7e1a8d6f3c9e2b5a7d\n",
    # YAML / INI holding cloud keys; a service account's JSON under a plain name
    "data/conf/cloud.yaml": f"storage:\n  aws_access_key_id: {_AWS_ID}\n  region: eu-west-1\n",
    "data/conf/boto.ini": f"[default]\nregion = eu-west-1\naws_secret_access_key = {_AWS_SECRET}\n",
    "data/conf/settings.json": '{"type": "service_account", "project_id": "p", "private_key": '
                               '"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----\\n"}',
}


def test_secrets_in_content_are_left_out_whatever_the_file_is_named(project, tmp_path):
    for rel, text in PLANTED_CONTENT.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    # a key inside a notebook that is not the one being run, in a cell's source
    nb = v4.new_notebook(cells=[v4.new_code_cell(f"s3 = boto3.client('s3', aws_access_key_id='{_AWS_ID}')")])
    nbformat.write(nb, project / "data" / "explore.ipynb")
    store = Store((tmp_path / "store").as_uri())
    bundle = build_bundle(project, project / "train.ipynb", data=["data"])
    excluded = dict(bundle.excluded)
    for rel in [*PLANTED_CONTENT, "data/explore.ipynb"]:
        assert rel not in bundle.files, rel
        assert excluded.get(rel, "").startswith("contains a secret ("), (rel, excluded.get(rel))
    assert "AWS Access Key" in excluded["data/explore.ipynb"] and "line" in excluded["data/conf/cloud.yaml"]
    stage(bundle, store)
    blobs = b"".join(store.get_bytes(k) for k in store.list(layout.BLOBS))
    for token in (_AWS_ID, _AWS_SECRET, _GH_TOKEN, "Xk9vq2LmP0wzR7", "Zq8v2LmXw9Rt4Kp7", "BEGIN PRIVATE KEY"):
        assert token.encode() not in blobs
    report = bundle.report()
    assert "data/conf/boto.ini" in report and "contains a secret" in report


def test_a_token_deep_in_a_large_file_is_found(project):
    """Any size: a token after many MiB of data, and one on a very long line (minified, base64)."""
    (project / "data" / "dump.csv").write_bytes(b"0.125,0.5,abc\n" * 400_000 + f"key,{_GH_TOKEN}\n".encode())
    (project / "data" / "blob.txt").write_bytes(b"QUJD" * 2_000_000 + f" {_AWS_ID} ".encode() + b"QUJD" * 1000)
    bundle = build_bundle(project, project / "train.ipynb", data=["data"])
    excluded = dict(bundle.excluded)
    assert excluded["data/dump.csv"] == "contains a secret (GitHub Token on line 400001)"
    assert "AWS Access Key" in excluded["data/blob.txt"]


def test_ordinary_notebooks_and_data_are_not_taken_for_secrets(project):
    """No false positives on what a project ships: images in outputs (base64), hashes and ids in
    data, code that reads a password from the environment, placeholders in settings."""
    import base64
    import hashlib

    png = base64.b64encode(os.urandom(300_000)).decode()
    nb = v4.new_notebook(cells=[
        v4.new_code_cell("password = os.environ['DB_PASSWORD']\ntoken = getpass()\nurl = 'https://pypi.org/simple'",
                         outputs=[v4.new_output("display_data", data={"image/png": png})]),
    ])
    nbformat.write(nb, project / "data" / "report.ipynb")
    (project / "data" / "hashes.csv").write_text("".join(f"{i},{hashlib.sha256(str(i).encode()).hexdigest()},"
                                                         f"{hashlib.md5(str(i).encode()).hexdigest()}\n" for i in range(20000)))
    (project / "data" / "weights.bin").write_bytes(b"\x00\x01" + os.urandom(1 << 20))
    (project / "data" / "settings.yaml").write_text("db:\n  password: ${DB_PASSWORD}\n  user: admin\n"
                                                    "api_key: <your key here>\nsecret_name: prod-db\n")
    (project / "data" / "urls.txt").write_text("https://user:pass@example.com/\nhttps://example.com/a?b=c\n")
    bundle = build_bundle(project, project / "train.ipynb", data=["data"])
    assert not bundle.excluded, bundle.excluded
    assert {"data/report.ipynb", "data/hashes.csv", "data/weights.bin", "data/settings.yaml"} <= set(bundle.files)


def test_the_notebook_being_run_ships_with_a_secret_named_explicitly_refused(project):
    (project / "data" / "conf").mkdir(parents=True)
    (project / "data" / "conf" / "boto.ini").write_text(PLANTED_CONTENT["data/conf/boto.ini"])
    with pytest.raises(UsageError) as info:
        build_bundle(project, project / "train.ipynb", data=["data/conf/boto.ini"])
    assert "AWS" in info.value.message and "--allow-secret data/conf/boto.ini" in info.value.hint
    ok = build_bundle(project, project / "train.ipynb", data=["data/conf/boto.ini"], allow_secrets=["data/conf/boto.ini"])
    assert "data/conf/boto.ini" in ok.files


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
