"""Backend options in `offload config set` are checked against what each backend reads: a
misspelt option or backend is an error naming the closest known one, a value of the wrong type
is refused, and nothing is written when one pair is refused."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from offload.backends.options import BUILTIN, COMMON, check_option, known_options
from offload.config import load_config, set_values
from offload.errors import UsageError


@pytest.mark.parametrize(
    ("pairs", "field", "hint"),
    [
        (["backends.local.max_job", "4"], "backends.local.max_job", "did you mean backends.local.max_jobs?"),
        (["backend", "slurm", "partiton", "gpu"], "backends.slurm.partiton", "did you mean backends.slurm.partition?"),
        (["backends.gce.zoen", "us-central1-a"], "backends.gce.zoen", "did you mean backends.gce.zone?"),
        (["backends.locl.max_jobs", "2"], "backends.locl.max_jobs", "did you mean 'local'?"),
        (["backends.local.max_jobs", "0"], "backends.local.max_jobs", "backends.local.max_jobs 4"),
        (["backends.local.max_jobs", "four"], "backends.local.max_jobs", "backends.local.max_jobs 4"),
        (["backends.gce.spot_fallback", "yes"], "backends.gce.spot_fallback", "true"),
        (["backends.gce.boot_timeout", "soon"], "backends.gce.boot_timeout", "backends.gce.boot_timeout 15m"),
        (["backends.slurm.keep_alive", "a while"], "backends.slurm.keep_alive", "backends.slurm.keep_alive 10m"),
    ],
)
def test_an_unknown_option_or_a_bad_value_is_refused_naming_the_key(pairs, field, hint):
    with pytest.raises(UsageError) as info:
        set_values(["store", "file:///tmp/elsewhere", *pairs], check=check_option)
    assert info.value.field == field and hint in info.value.hint, (info.value.message, info.value.hint)
    assert load_config() == {}  # nothing written, not even the good pair before it


def test_every_documented_option_is_accepted():
    set_values(["backends.local.max_jobs", "4", "backend", "gce", "project", "p", "zone", "us-central1-a",
                "bucket", "gs://b/offload", "spot_fallback", "true", "boot_timeout", "15m", "keep_alive", "10m"],
               check=check_option)
    set_values(["backend", "slurm", "partition", "gpu", "account", "lab", "python", "/usr/bin/python3",
                "ssh_host", "login1"], check=check_option)
    cfg = load_config()
    assert cfg["backends"]["local"] == {"max_jobs": 4}
    assert cfg["backends"]["gce"]["spot_fallback"] is True and cfg["backends"]["slurm"]["ssh_host"] == "login1"


def test_options_every_backend_reads_are_known_to_each():
    for name in BUILTIN:
        assert COMMON <= known_options(name)
    check_option("local", "store", "file:///x")  # no error


def test_the_cli_refuses_it_and_writes_nothing(offload_home):
    r = subprocess.run([sys.executable, "-m", "offload.cli", "config", "set", "backends.local.max_job", "4"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "unknown option 'max_job' for backend 'local'" in r.stderr
    assert "backends.local.max_jobs" in r.stderr
    shown = subprocess.run([sys.executable, "-m", "offload.cli", "config", "show", "--json"],
                           capture_output=True, text=True, check=True)
    assert "backends.local.max_job" not in json.loads(shown.stdout)
