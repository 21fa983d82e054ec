"""REST fuzz: schemathesis generates requests from jupyter_ext/openapi.yaml (valid ones and
invalid ones: wrong types, missing fields, odd strings) against a real Jupyter server, and every
answer must be no 5xx, a status the document lists for that operation, and a body that matches
the document's schema. Bounded: a few examples per operation, no shrinking, no example database.

The server is a subprocess with its own root (holding one notebook) and its own OFFLOAD_HOME, so
a generated request can at most run that notebook on the local backend.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import jupyter_ext
from tests.notebooks import make_notebook
from tests.servers import TOKEN, start_server

pytestmark = pytest.mark.slow

OPENAPI = Path(jupyter_ext.__file__).parent / "openapi.yaml"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    root = tmp / "root"
    make_notebook(root / "nb.ipynb", ["print(x)"], params="x = 1")
    env = dict(os.environ, OFFLOAD_HOME=str(tmp / "home"), JUPYTER_CONFIG_DIR=str(tmp / "cfg"),
               JUPYTER_RUNTIME_DIR=str(tmp / "rt"), JUPYTER_DATA_DIR=str(tmp / "data"))
    proc, base = start_server(root, env, extra=("--OffloadExtensionApp.backends=['local']",))
    yield base
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def api_schema(fuzz_server):
    schema = schemathesis.openapi.from_path(OPENAPI)
    schema.config.update(base_url=f"{fuzz_server}/offload/api", headers={"Authorization": f"token {TOKEN}"},
                         request_timeout=60)
    return schema


def test_every_operation_answers_as_documented(api_schema):
    failures, statuses = [], set()
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20  # the document was read
    for op in operations:
        @settings(max_examples=12, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def fuzz(case) -> None:
            statuses.add(case.call_and_validate(checks=CHECKS).status_code)

        try:
            fuzz()
        except Exception as exc:  # every operation is tried; all failures are reported together
            failures.append(f"{op.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert {200, 400, 404} <= statuses, statuses  # answers of every kind were generated and checked
