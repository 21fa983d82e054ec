"""What is left out of an upload, and why, is printed before anything is uploaded: by
`offload run` (before "staged") and by `offload deps` (text, and JSON's left_out)."""

from __future__ import annotations

import json

from tests.test_cli import offload

AWS_SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCY" + "9q8w7e6r5t4y"


def test_run_and_deps_list_what_is_left_out_and_why(notebook):
    nb = notebook("nb.ipynb", ["print('ok')"])
    data = nb.parent / "data"
    data.mkdir()
    (data / "boto.ini").write_text(f"[default]\naws_secret_access_key = {AWS_SECRET}\n")
    (data / "table.csv").write_text("a,b\n1,2\n")
    why = "left out data/boto.ini: contains a secret (AWS secret access key on line 2)"

    deps = offload("deps", str(nb), "--data", "data", cwd=nb.parent)
    assert deps.returncode == 0, deps.stderr
    assert why in deps.stdout and "files to ship: 2" in deps.stdout
    as_json = json.loads(offload("deps", str(nb), "--data", "data", "--format", "json", cwd=nb.parent).stdout)
    assert {"path": "data/boto.ini", "why": why.split(": ", 1)[1]} in as_json["left_out"]
    assert {f["path"] for f in as_json["files"]} == {"nb.ipynb", "data/table.csv"}

    run = offload("run", str(nb), "--data", "data", "--detach", cwd=nb.parent)
    assert run.returncode == 0, run.stderr
    assert why in run.stderr and run.stderr.index(why) < run.stderr.index("staged")  # before the upload

    named = offload("run", str(nb), "--data", "data/boto.ini", cwd=nb.parent)
    assert named.returncode == 2 and "--allow-secret data/boto.ini" in named.stderr
