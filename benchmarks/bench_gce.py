"""gce backend timings against the fake Compute Engine and fake-gcs-server (no network).

1. Client time from ``launch`` to the insert request that succeeds, with 0 and with 3
   stocked-out zones first, measured side by side (interleaved) and reported as a ratio. The
   fake answers in ``op_delay`` (default 50 ms per operation), so the ratio shows what failover
   costs per zone in client work and round trips, not GCE's real latency (~1-10 s per insert).
2. Time from "last output stored" (the update time of ``result.json`` in the GCS emulator) to
   "delete requested" (the VM's own DELETE reaching the fake), over one real end-to-end job.

Run: ``.venv/bin/python benchmarks/bench_gce.py [--rounds 5] [--skip-e2e]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
os.environ.setdefault("NO_GCE_CHECK", "true")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from offload.backends.gce import GceBackend  # noqa: E402
from offload.spec import JobSpec, Resources, new_job_id  # noqa: E402
from offload.store import Store  # noqa: E402
from tests.fakes.gce import FakeGCE  # noqa: E402
from tests.fakes.gcs import FakeGCS  # noqa: E402


def launch_to_insert(fake: FakeGCE, store: Store, stocked_out: int) -> float:
    """Seconds from calling launch to the arrival of the insert that succeeds."""
    zones = ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"]
    for z in zones:
        fake.restock(z)
    for z in zones[:stocked_out]:
        fake.stockout(z)
    be = GceBackend(store, project=fake.project, api_endpoint=fake.url, credentials="anonymous",
                    region="us-central1")
    spec = JobSpec(id=new_job_id(), notebook="nb.ipynb", bundle_id="none", backend="gce",
                   resources=Resources(gpu="t4", max_runtime_s=3600))
    n_before = len(fake.requests)
    t0 = time.time()
    handle = be.launch(spec)
    inserts = [r for r in fake.requests[n_before:] if r["method"] == "POST" and r["path"].endswith("/instances")]
    assert handle["zone"] == zones[stocked_out], handle["zone"]
    assert len(inserts) == stocked_out + 1
    took = inserts[-1]["t"] - t0
    be.cancel(handle)
    fake.wait_gone(handle["name"], 30)
    return took


def bench_launch(rounds: int) -> None:
    gcs = FakeGCS().start()
    os.environ["STORAGE_EMULATOR_HOST"] = gcs.url
    try:
        with tempfile.TemporaryDirectory() as tmp, FakeGCE(tmp, boot_vms=False) as fake:
            store = Store(f"gs://{gcs.new_bucket()}/offload")
            launch_to_insert(fake, store, 0)  # warm-up: wheel upload, client construction
            zero, three = [], []
            for _ in range(rounds):  # interleaved so machine load hits both alike
                zero.append(launch_to_insert(fake, store, 0))
                three.append(launch_to_insert(fake, store, 3))
            m0, m3 = statistics.median(zero), statistics.median(three)
            print(f"launch -> successful insert, median of {rounds} (fake GCE, op_delay {fake.op_delay * 1000:.0f} ms):")
            print(f"  0 stocked-out zones: {m0 * 1000:8.1f} ms")
            print(f"  3 stocked-out zones: {m3 * 1000:8.1f} ms   ratio {m3 / m0:.2f}x, "
                  f"{(m3 - m0) / 3 * 1000:.1f} ms per failed zone")
    finally:
        gcs.stop()


def bench_delete(tmp: str) -> None:
    from offload.jobs import submit
    from tests.notebooks import make_notebook

    gcs = FakeGCS().start()
    os.environ["STORAGE_EMULATOR_HOST"] = gcs.url
    os.environ["OFFLOAD_HOME"] = os.path.join(tmp, "home")
    try:
        with FakeGCE(os.path.join(tmp, "gce"), vm_env={"STORAGE_EMULATOR_HOST": gcs.url,
                                                       "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}) as fake:
            store = Store(f"gs://{gcs.new_bucket()}/offload")
            nb = make_notebook(Path(tmp) / "nb.ipynb", ["print('hi')"])
            opts = {"project": fake.project, "api_endpoint": fake.url, "credentials": "anonymous"}
            t0 = time.time()
            job = submit(nb, backend="gce", store=store, backend_options_=opts, max_runtime="1h")
            t_sub = time.time() - t0
            name = job.handle["name"]
            fake.wait_gone(name, 600)
            info = store.fs.info(store.path(f"jobs/{job.id}/result.json"))
            from datetime import datetime

            stored = datetime.fromisoformat(str(info["updated"]).replace("Z", "+00:00")).timestamp()
            [dele] = [e for e in fake.events if e["what"] == "delete_requested" and e["name"] == name]
            [gone] = [e for e in fake.events if e["what"] == "deleted" and e["name"] == name]
            print(f"end to end (submit {t_sub:.1f} s, VM lifetime {gone['t'] - t0:.1f} s):")
            print(f"  last output stored -> delete requested: {(dele['t'] - stored) * 1000:8.1f} ms")
    finally:
        gcs.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--skip-e2e", action="store_true")
    a = ap.parse_args()
    bench_launch(a.rounds)
    if not a.skip_e2e:
        with tempfile.TemporaryDirectory() as d:
            bench_delete(d)
