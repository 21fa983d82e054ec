"""Waiting for capacity (``--wait-for-capacity``, offload/backends/gce/capacity.py) on the fake
Compute Engine: zones that recover after N attempts, DWS flex-start requests shaped as the real API,
the wait's end, and a cancel while waiting."""

from __future__ import annotations

import threading

import pytest

from offload.backends.gce.capacity import CancelledWhileWaiting
from offload.cli import main
from offload.errors import BackendError
from offload.jobs import Job
from offload.testing import wait_for
from tests.fakes.gcs import binary

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(binary() is None, reason="fake-gcs-server binary missing"),
]

T4_ZONES = ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f")
FAST = {"capacity_backoff_s": 0.2}


def _inserts(gce):
    return gce.fake.requests_for("POST", "/instances$")


def test_zones_that_recover_after_two_rounds_get_the_job(gce, notebook, capsys):
    for zone in T4_ZONES:
        gce.fake.stockout(zone, attempts=2)  # no capacity for two rounds, then there is
    nb = notebook("w.ipynb", ["import time\ntime.sleep(600)"])
    job = gce.submit(nb, gpu="t4", wait_for_capacity="10m", backend_options_=FAST)
    try:
        h = job.handle
        assert h["capacity"]["rounds"] == 3 and h["capacity"]["flex_start"] is False
        assert [(a["round"], a["zone"], a["outcome"]) for a in h["attempts"]] == [
            *[(1, z, "capacity") for z in T4_ZONES], *[(2, z, "capacity") for z in T4_ZONES],
            (3, "us-central1-a", "created")]
        recorded = gce.store.get_json(f"jobs/{job.id}/attempts.json")
        assert recorded["placed"]["zone"] == "us-central1-a" and recorded["waiting"] is None
        assert len(recorded["attempts"]) == 9
        assert {i["body"]["scheduling"]["provisioningModel"] for i in _inserts(gce)} == {"STANDARD"}
        capsys.readouterr()
        assert main(["show", job.id]) == 0
        assert "capacity   waits up to 10 min for a machine; placed after 3 round(s)" in capsys.readouterr().out
    finally:
        job.cancel()


def test_an_a100_waits_as_a_dws_flex_start_request(gce, notebook):
    gce.fake.stockout("us-central1-a", attempts=1)
    nb = notebook("f.ipynb", ["import time\ntime.sleep(600)"])
    job = gce.submit(nb, gpu="a100", max_runtime="3h", wait_for_capacity="2h", backend_options_=FAST)
    try:
        ins = _inserts(gce)[-1]["body"]
        sched = ins["scheduling"]
        assert sched["provisioningModel"] == "FLEX_START"
        assert sched["maxRunDuration"] == {"seconds": str(3 * 3600)}
        assert sched["instanceTerminationAction"] == "DELETE" and sched["onHostMaintenance"] == "TERMINATE"
        assert sched["automaticRestart"] is False
        assert ins["reservationAffinity"] == {"consumeReservationType": "NO_RESERVATION"}
        assert ins["machineType"].endswith("/a2-highgpu-1g")
        assert job.handle["capacity"]["flex_start"] is True and job.handle["zone"] == "us-central1-b"
    finally:
        job.cancel()


def test_the_wait_ends_with_what_was_tried(gce, notebook):
    for zone in T4_ZONES:
        gce.fake.stockout(zone)
    nb = notebook("e.ipynb", ["print(1)"])
    with pytest.raises(BackendError) as err:
        gce.submit(nb, gpu="t4", wait_for_capacity="3s", backend_options_={"capacity_backoff_s": 0.5})
    assert "no capacity within --wait-for-capacity" in err.value.message
    assert "round(s) over us-central1-a" in err.value.message and "--wait-for-capacity" in err.value.hint
    assert len(_inserts(gce)) >= 8  # at least two rounds over the four zones
    assert not gce.fake.live()


def test_quota_is_not_waited_for(gce, notebook):
    gce.fake.quota_exceeded("us-central1", "NVIDIA_T4_GPUS")
    nb = notebook("q.ipynb", ["print(1)"])
    with pytest.raises(BackendError, match="quota NVIDIA_T4_GPUS"):
        gce.submit(nb, gpu="t4", wait_for_capacity="10m", backend_options_=FAST)
    assert len(_inserts(gce)) == 1


def test_cancel_while_waiting_ends_the_wait(gce, notebook):
    for zone in T4_ZONES:
        gce.fake.stockout(zone)
    nb = notebook("c.ipynb", ["print(1)"])
    outcome: dict = {}

    def run():
        try:
            gce.submit(nb, gpu="t4", wait_for_capacity="1h", backend_options_={"capacity_backoff_s": 30})
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            outcome["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    wait_for(lambda: gce.store.list_dirs("jobs"), 60, "the job to be written")
    [job_id] = gce.store.list_dirs("jobs")
    job = Job(job_id, store=gce.store)
    wait_for(lambda: (job.refresh().get("waiting") or {}).get("round") == 1, 120, "the first round to end")
    st = job.status
    assert st["state"] == "provisioning" and st["reason"].startswith("waiting for capacity: round 1 found none")
    assert "next round at" in st["reason"]
    job.cancel()
    t.join(30)
    assert isinstance(outcome.get("error"), CancelledWhileWaiting)
    assert Job(job_id, store=gce.store).state == "cancelled"
    assert len(_inserts(gce)) == 4  # one round, then nothing more
