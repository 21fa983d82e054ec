"""Warm machines (``--keep-alive``) and ``%%offload`` sessions as machines, end to end.

On the fake Compute Engine (tests/fakes/gce.py: the real google-cloud-compute client over REST,
each VM a fresh process running the real startup script) and on the real single-node SLURM
cluster (tests/slurm_cluster.py). What a user notices: the second job starts on the same
machine (one insert, one sbatch), the idle machine deletes itself after its window, `offload
machines --running` lists it and `stop` ends it, and nothing is left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from offload.cli import main as cli
from offload.errors import UsageError
from offload.jobs import submit
from offload.jobs.machines import list_machines, stop_all
from offload.spec import machine_name
from offload.store import Store, layout
from offload.testing import wait_for
from tests.fakes.gcs import binary

gce_only = pytest.mark.skipif(binary() is None, reason="fake-gcs-server binary missing")


@pytest.fixture
def gce(gce):
    """The gce fixture, and whatever warm machine a failing test kept is stopped before the
    fixture checks that no VM is left."""
    yield gce
    stop_all(store=gce.store)


def _record(store: Store, name: str) -> dict:
    return store.get_json(layout.machine_key(name), None) or {}


def _idle(store: Store, name: str) -> bool:
    return _record(store, name).get("state") == "idle"


# GCE ------------------------------------------------------------------------------------------
@pytest.mark.slow
@gce_only
def test_two_keep_alive_jobs_share_one_vm_that_deletes_itself_when_idle(gce, notebook, capsys):
    first = gce.submit(notebook("one.ipynb", ["print('first on', __import__('socket').gethostname())"]),
                       keep_alive="5m")
    first.wait(timeout=300)
    assert first.state == "succeeded", first.status
    vm = first.handle["name"]
    assert vm == machine_name(first.id)
    wait_for(lambda: _idle(gce.store, vm), 60, "the machine to say it is idle")

    [row], why = list_machines(store=gce.store)
    assert why == "" and row["name"] == vm and row["state"] == "idle" and row["zone"] == first.handle["zone"]
    assert row["machine"] == first.handle["machine"] and 250 < row["idle_left_s"] <= 300
    assert row["cost_so_far"] is not None and row["cost_so_far"] >= 0
    assert cli(["--store", gce.store.url, "machines", "--running"]) == 0
    assert vm in capsys.readouterr().out

    # The second job asks for a 3 s window: after it the machine waits 3 s, then deletes itself.
    second = gce.submit(notebook("two.ipynb", ["print('second ran')"]), keep_alive="3s")
    assert second.handle["on_machine"] == vm and second.handle["name"] == vm
    second.wait(timeout=300)
    assert second.state == "succeeded", second.status
    assert "second ran" in second.logs()
    assert len(gce.fake.requests_for("POST", "/instances$")) == 1  # one VM for both jobs
    assert cli(["--store", gce.store.url, "show", second.id]) == 0
    assert f"warm machine {vm} (no new machine was started)" in capsys.readouterr().out

    assert gce.fake.wait_gone(vm, 120), "the idle machine did not delete itself"
    [dele] = gce.fake.requests_for("DELETE", f"/instances/{vm}$")
    assert dele["authorization"] == f"Bearer vm-token-{vm}"  # the VM itself, not a client
    rec = _record(gce.store, vm)
    assert rec["state"] == "ended" and rec["jobs_served"] == 2 and "idle for 3 s" in rec["reason"]
    assert list_machines(store=gce.store)[0] == []


@pytest.mark.slow
@gce_only
def test_a_job_of_another_shape_boots_its_own_vm_and_stop_ends_the_warm_one(gce, notebook, capsys):
    first = gce.submit(notebook("a.ipynb", ["print(1)"]), keep_alive="10m")
    first.wait(timeout=300)
    vm = first.handle["name"]
    wait_for(lambda: _idle(gce.store, vm), 60, "the machine to say it is idle")

    other = gce.submit(notebook("b.ipynb", ["print(2)"]), gpu="l4")  # another shape: not handed
    assert "on_machine" not in other.handle and other.handle["name"] != vm
    other.wait(timeout=300)
    assert other.state == "succeeded", other.status
    assert len(gce.fake.requests_for("POST", "/instances$")) == 2

    # a job whose max runtime does not fit in what is left of the machine's hard cap boots its own
    longer = gce.submit(notebook("c.ipynb", ["print(3)"]), max_runtime="2h")
    assert "on_machine" not in longer.handle and longer.handle["name"] != vm
    longer.cancel()
    assert gce.fake.wait_gone(longer.handle["name"], 120)

    # gc leaves the warm machine alone although its first job has ended
    assert not any(vm in line for line in first.backend().cleanup(dry_run=True))

    assert cli(["--store", gce.store.url, "machines", "stop", vm]) == 0
    assert f"{vm} is stopping" in capsys.readouterr().out
    assert gce.fake.wait_gone(vm, 120)
    assert _record(gce.store, vm)["reason"] == "stopped by the user"
    assert cli(["--store", gce.store.url, "machines", "--running", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["machines"] == [] and "--keep-alive" in listed["why_empty"]


@pytest.mark.slow
@gce_only
def test_a_preempted_warm_machine_ends_and_the_next_job_boots_a_new_one(gce, notebook):
    first = gce.submit(notebook("p.ipynb", ["print(1)"]), keep_alive="10m")
    first.wait(timeout=300)
    vm = first.handle["name"]
    wait_for(lambda: _idle(gce.store, vm), 60, "the machine to say it is idle")
    gce.fake.preempt(vm)
    assert gce.fake.wait_gone(vm, 120)
    wait_for(lambda: _record(gce.store, vm).get("state") == "ended", 60, "the record to say it ended")
    assert "SIGTERM" in _record(gce.store, vm)["reason"]
    assert list_machines(store=gce.store)[0] == []
    after = gce.submit(notebook("q.ipynb", ["print('after')"]))
    assert "on_machine" not in after.handle  # never handed to a machine that is gone
    after.wait(timeout=300)
    assert after.state == "succeeded", after.status


@pytest.mark.slow
@gce_only
def test_offload_magic_on_gce_runs_every_cell_on_one_vm(gce, tmp_path):
    """Two %%offload --backend gce cells in one kernel: one VM (the warm session); the VM goes when
    the kernel shuts down. The second cell comes after the boot timeout has passed since the VM
    was created: a cell queued on a running session is no boot that never reported."""
    from offload.config import save_config

    save_config({"backend": "gce", "backends": {"gce": {**gce.options, "boot_timeout": 2}}})
    script = tmp_path / "kernel.py"
    _kernel_script(script, "gce", pause_s=3)
    env = {**os.environ, "OFFLOAD_STORE": gce.store.url}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "local y 21" in proc.stdout
    inserts = gce.fake.requests_for("POST", "/instances$")
    assert len(inserts) == 1, [i["body"]["labels"] for i in inserts]
    assert inserts[0]["body"]["labels"]["offload-kind"] == "session"
    name = inserts[0]["body"]["name"]
    assert gce.fake.wait_gone(name, 120), "the session's VM outlived the kernel"
    assert _record(gce.store, name)["role"] == "session"


def test_keep_alive_on_the_local_backend_is_refused(notebook, tmp_path):
    with pytest.raises(UsageError) as err:
        submit(notebook("l.ipynb", ["print(1)"]), backend="local", keep_alive="10m")
    assert err.value.field == "keep_alive" and "gce and slurm" in err.value.hint


def test_machines_cli_says_why_the_list_is_empty_and_refuses_unknown_names(capsys, tmp_path):
    store = Store((tmp_path / "s").as_uri())
    assert cli(["--store", store.url, "machines", "--running"]) == 0
    out = capsys.readouterr().out
    assert "no machine is running" in out and "--keep-alive" in out
    assert cli(["--store", store.url, "machines", "stop", "offload-nope-123456"]) == 3
    assert "no machine 'offload-nope-123456'" in capsys.readouterr().err
    assert cli(["--store", store.url, "machines", "stop"]) == 2
    assert "say which machines" in capsys.readouterr().err


# SLURM ----------------------------------------------------------------------------------------
@pytest.fixture
def clean_slurm(slurm_cluster):
    yield slurm_cluster
    subprocess.run(["scancel", "--full", "--partition", "debug,urgent,restricted"], env=slurm_cluster.env,
                   capture_output=True, timeout=20, check=False)


def _sbatches(store: Store) -> set[str]:
    """The SLURM job of every job in the store that was submitted with sbatch (not handed to a
    warm machine or queued on a session)."""
    handles = [store.get_json(layout.job_key(j, "handle.json"), {}) for j in store.list_dirs("jobs")]
    return {h["slurm_job_id"] for h in handles if h.get("slurm_job_id") and not (h.get("on_machine") or h.get("on_session"))}


@pytest.mark.slow
def test_two_keep_alive_jobs_share_one_slurm_allocation(clean_slurm, notebook, tmp_path):
    store = Store((tmp_path / "store").as_uri())
    first = submit(notebook("one.ipynb", ["print('first')"]), backend="slurm", store=store, keep_alive="5m")
    first.wait(timeout=300)
    assert first.state == "succeeded", first.status
    name = machine_name(first.id)
    wait_for(lambda: _idle(store, name), 90, "the allocation to say it is idle")
    assert _record(store, name)["slurm_job_id"] == first.handle["slurm_job_id"]

    second = submit(notebook("two.ipynb", ["print('second ran')"]), backend="slurm", store=store, keep_alive="3s")
    assert second.handle["on_machine"] == name
    assert second.handle["slurm_job_id"] == first.handle["slurm_job_id"]  # no new sbatch
    second.wait(timeout=300)
    assert second.state == "succeeded", second.status
    assert "second ran" in second.logs()
    assert _sbatches(store) == {first.handle["slurm_job_id"]}

    sid = first.handle["slurm_job_id"]
    gone = lambda: not subprocess.run(["squeue", "-h", "-j", sid, "-o", "%T"], env=clean_slurm.env,  # noqa: E731
                                      capture_output=True, text=True).stdout.strip()
    wait_for(gone, 120, "the idle allocation to end")
    assert _record(store, name)["state"] == "ended"


def _kernel_script(path, backend: str, pause_s: float = 0) -> None:
    """A script that is an IPython kernel running two %%offload cells (``pause_s`` apart), then
    exits (the kernel shutting down)."""
    path.write_text(
        "import time\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "ip.run_line_magic('load_ext', 'offload')\n"
        f"ip.run_cell_magic('offload', '--backend {backend} --max-runtime 30m', 'x = 20')\n"
        f"time.sleep({pause_s})\n"
        f"ip.run_cell_magic('offload', '--backend {backend} --max-runtime 30m', 'y = x + 1\\nprint(\"y is\", y)')\n"
        "print('local y', ip.user_ns['y'])\n"
    )


@pytest.mark.slow
def test_offload_magic_on_slurm_runs_every_cell_in_one_allocation(clean_slurm, tmp_path):
    store = Store((tmp_path / "store").as_uri())
    script = tmp_path / "kernel.py"
    _kernel_script(script, "slurm")
    env = {**os.environ, "OFFLOAD_STORE": store.url}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "local y 21" in proc.stdout
    [sid] = _sbatches(store)  # the session's allocation; both cells ran in it
    cells = [store.get_json(layout.job_key(j, "handle.json"), {}) for j in store.list_dirs("jobs")]
    assert sum(1 for h in cells if h.get("on_session") and h.get("slurm_job_id") == sid) == 2
    gone = lambda: not subprocess.run(["squeue", "-h", "-j", sid, "-o", "%T"], env=clean_slurm.env,  # noqa: E731
                                      capture_output=True, text=True).stdout.strip()
    wait_for(gone, 120, "the session's allocation to end with the kernel")


def test_sweep_packs_are_listed_as_machines_while_they_run(tmp_path):
    """A sweep's packs (K trials on one machine) register as machines: listed while the sweep
    runs, ended with it. Local pack machines, the path gce and slurm packs take."""
    from offload import sweeps as sw
    from tests.test_sweep import SLEEPY, jobs_of
    from tests.test_sweep import notebook as sweep_notebook

    nb = sweep_notebook(tmp_path / "pk" / "sleep.ipynb", "x = 0.0\nsleep_s = 2.0\n", SLEEPY)
    seen: dict[str, dict] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for row in list_machines(store=Store())[0]:
                seen.setdefault(row["name"], row)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        res = sw.sweep(nb, space={"x": {"type": "float", "low": 0, "high": 1}}, objective="v", trials=4,
                       parallel=4, per_gpu=2, sampler="random", seed=0, quiet=True, pack=True)
    finally:
        done.set()
        watcher.join(5)
    assert res.state == "completed"
    store = Store()
    packs = {store.get_json(layout.job_key(ids[0], "spec.json"))["labels"]["pack"] for ids in jobs_of(res.id).values()}
    assert len(packs) == 2
    assert {machine_name(p) for p in packs} <= set(seen), seen  # both were listed while they ran
    assert all(seen[machine_name(p)]["role"] == "pack" for p in packs)
    wait_for(lambda: all(_record(store, machine_name(p)).get("state") == "ended" for p in packs), 60,
             "the packs' machines to end with the sweep")
    assert list_machines(store=store)[0] == []


@pytest.mark.parametrize("kind", ["file", "gs"])
def test_two_clients_never_both_claim_one_machine(kind, tmp_path, request):
    """The claim protocol (runner/machine.py) on a real store: two submits racing for the same
    idle machine, 40 times: at most one wins each time (both may lose and boot their own)."""
    from offload.jobs.machines import claim

    if kind == "gs":
        if binary() is None:
            pytest.skip("fake-gcs-server binary missing")
        store = request.getfixturevalue("gcs_env")()
    else:
        store = Store((tmp_path / "store").as_uri())
    wins = []
    for n in range(40):
        gate = threading.Barrier(2)
        got: dict[str, bool] = {}

        def race(job: str, gate: threading.Barrier = gate, got: dict[str, bool] = got) -> None:
            gate.wait()
            got[job] = claim(store, "offload-m", job)

        threads = [threading.Thread(target=race, args=(f"job-{n}-{side}",)) for side in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sum(got.values()) <= 1, (n, got)
        wins.append(sum(got.values()))
        store.delete(layout.machine_queue_key("offload-m"), recursive=True)  # the machine took it
    assert sum(wins) > 0  # the protocol does let a client win
