"""A SLURM controller that cannot be reached is a clear error with the right fix, from the real
SLURM client tools (a slurm.conf naming a controller host that does not resolve), instead of
SLURM's getaddrinfo lines and a hint about job options."""

from __future__ import annotations

import shutil

import pytest

from offload.backends.base import BackendPhase, get_backend
from offload.errors import BackendError
from offload.jobs import submit
from offload.store import Store, layout

pytestmark = pytest.mark.skipif(shutil.which("sbatch") is None, reason="SLURM client tools not installed")


@pytest.fixture
def unresolvable_controller(tmp_path, monkeypatch):
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=gone\nSlurmctldHost=ctl.no-such-host.invalid\nAuthType=auth/none\n"
                    "NodeName=n1 CPUs=1 State=UNKNOWN\nPartitionName=p Nodes=n1 Default=YES State=UP\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    return conf


def test_submit_to_an_unresolvable_controller_says_so(unresolvable_controller, notebook, tmp_path):
    store = Store((tmp_path / "store").as_uri())
    nb = notebook("x.ipynb", ["print(1)"])
    with pytest.raises(BackendError) as err:
        submit(nb, backend="slurm", store=store)
    msg, hint = err.value.message, err.value.hint
    assert msg == "cannot reach the SLURM controller: its host name 'ctl.no-such-host.invalid' does not resolve from this machine"
    assert "getaddrinfo" not in msg and "No error" not in msg  # not SLURM's raw DNS lines
    assert str(unresolvable_controller) in hint and "SlurmctldHost" in hint and "scontrol ping" in hint
    assert "partition" not in hint  # nothing about the job's options is wrong
    assert store.list_dirs(layout.JOBS) == []


def test_listing_and_state_say_the_controller_is_unreachable(unresolvable_controller, tmp_path):
    be = get_backend("slurm", Store((tmp_path / "store").as_uri()))
    with pytest.raises(BackendError) as err:
        be.machines()
    assert "does not resolve" in err.value.message and "SlurmctldHost" in err.value.hint
    st = be.state({"slurm_job_id": "12", "job_id": "20261122-000000-aaaaaa"})
    assert st.state == BackendPhase.UNKNOWN and "cannot reach the SLURM controller" in st.reason
