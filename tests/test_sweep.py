"""Sweeps end to end on the local backend with real notebooks and real kernels.

Each test runs a handful of small trials (a kernel start each), so budgets are kept tiny.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("optuna")

import offload  # noqa: E402
from offload import sweeps as sw  # noqa: E402
from offload.cli import main  # noqa: E402
from offload.errors import StoreError, UsageError  # noqa: E402
from offload.store import Store  # noqa: E402
from offload.store.layout import JOBS, job_key, sweep_key  # noqa: E402
from offload.sweeps import control  # noqa: E402
from offload.sweeps.api import create_sweep  # noqa: E402
from offload.sweeps.records import find_sweep_jobs  # noqa: E402
from offload.sweeps.space import SpaceError  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("OFFLOAD_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OFFLOAD_STORE", raising=False)
    monkeypatch.setenv("OFFLOAD_LOCAL_MAX_JOBS", "4")
    return tmp_path / "home"


def notebook(path: Path, params: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


QUADRATIC = """
import random, offload
rng = random.Random(seed * 1000 + int(x * 1e6) + int(y * 1e3))
score = -(x - 1.0) ** 2 - (y + 2.0) ** 2 + noise * rng.gauss(0, 1)
offload.log_metric("score", score)
"""


def jobs_of(sweep_id: str) -> dict[int, list[str]]:
    return find_sweep_jobs(Store(), sweep_id)


def job_status(job_id: str) -> dict:
    return Store().get_json(job_key(job_id, "status.json"))


def test_noisy_quadratic_finds_optimum_region(tmp_path):
    nb = notebook(tmp_path / "proj" / "quad.ipynb", "x = 0.0\ny = 0.0\nnoise = 0.05\nseed = 0\n", QUADRATIC)
    space = tmp_path / "space.yaml"
    space.write_text("x: {type: float, low: -4, high: 4}\ny: {type: float, low: -4, high: 4}\nnoise: 0.05\n")
    # 24 trials: with 3 in parallel, TPE's suggestions depend on which trials have finished, so
    # the run is not reproducible; 14 left the best outside the optimum region in about 1 run in 5
    res = offload.sweep(nb, space=space, objective="score", direction="maximize", trials=24, parallel=3,
                   sampler="tpe:n_startup_trials=6", seed=7, quiet=True)
    assert res.state == "completed"
    assert res.record["storage"].startswith("journal:")  # Optuna's advice for parallel processes
    rows = res.trials()
    assert [r["state"] for r in rows].count("COMPLETE") == 24
    best = res.best_params
    # The optimum is (1, -2); a blind guess in [-4, 4]^2 averages a score near -15.
    assert res.best_value > -1.5, rows[:3]
    assert abs(best["x"] - 1) < 1.3 and abs(best["y"] + 2) < 1.3
    assert best["noise"] == 0.05  # fixed values reach every trial
    # every trial is a normal job of kind trial, labelled with its sweep and number
    jobs = jobs_of(res.id)
    assert sorted(jobs) == list(range(24)) and all(len(v) == 1 for v in jobs.values())
    spec = Store().get_json(job_key(jobs[0][0], "spec.json"))
    assert spec["kind"] == "trial" and spec["labels"]["sweep"] == res.id
    # the CLI's view and the panel's JSON agree
    text = sw.sweep_show(res.id)
    assert f"best: trial {res.best_trial['number']}" in text and "x = " in text
    hist = sw.history(res.id)
    assert len(hist) == 24 and hist[-1]["best"] == pytest.approx(res.best_value)
    assert set(sw.importances(res.id)) == {"x", "y"}
    assert sw.sweep_ls()[0]["state"] == "completed"
    # --apply-best writes the parameters cell
    applied = sw.apply_best(res.id)
    src = nbformat.read(nb, as_version=4).cells[0].source
    assert f"x = {applied['x']!r}" in src and f"y = {applied['y']!r}" in src and "seed = 0" in src


PRUNE = """
import time, offload
for step in range(12):
    offload.log_metric("loss", x * (1 + 1 / (step + 1)), step=step)
    time.sleep(0.25)
offload.log_metric("loss", x)
"""


def test_pruning_cancels_bad_trials(tmp_path):
    nb = notebook(tmp_path / "p" / "prune.ipynb", "x = 1.0\n", PRUNE)
    good = [{"x": 0.1}, {"x": 0.2}, {"x": 0.15}]
    bad = [{"x": 8.0}, {"x": 9.0}]
    res = sw.sweep(nb, space={"x": {"type": "float", "low": 0.0, "high": 10.0}}, objective="loss",
                   direction="minimize", trials=5, parallel=1, sampler="random", seed=1,
                   pruner="median:n_startup_trials=3,n_warmup_steps=1", enqueue=good + bad, quiet=True)
    rows = {r["number"]: r for r in res.trials()}
    assert [rows[i]["state"] for i in range(5)] == ["COMPLETE"] * 3 + ["PRUNED"] * 2
    for i in (3, 4):
        status = job_status(rows[i]["job_id"])
        assert status["state"] == "cancelled"  # the pruned trial's job was stopped...
        assert len(rows[i]["intermediate"]) < 12  # ...early, not after running to the end
    assert res.best_params == {"x": 0.1}


FAILING = """
import offload
if x > 0.5:
    raise ValueError(f"x too big: {x}")
offload.log_metric("acc", 1 - x)
"""


def test_failing_trial_is_fail_and_sweep_goes_on(tmp_path):
    nb = notebook(tmp_path / "f" / "fail.ipynb", "x = 0.0\n", FAILING)
    res = sw.sweep(nb, space={"x": {"type": "categorical", "choices": [0.1, 0.9, 0.3]}}, objective="acc",
                   trials=3, parallel=2, sampler="grid", seed=0, quiet=True)
    rows = {r["params"]["x"]: r for r in res.trials()}
    assert rows[0.9]["state"] == "FAIL" and "ValueError: x too big" in rows[0.9]["error"]
    assert rows[0.1]["state"] == rows[0.3]["state"] == "COMPLETE"
    assert res.state == "completed" and res.best_params == {"x": 0.1}


def test_max_failures_stops_with_common_error(tmp_path):
    nb = notebook(tmp_path / "f" / "broken.ipynb", "x = 0.0\n", "raise RuntimeError('dataset not found')\n")
    with pytest.raises(sw.SweepFailed) as info:
        sw.sweep(nb, space={"x": {"type": "float", "low": 0, "high": 1}}, objective="acc", trials=10,
                 parallel=2, max_failures=2, quiet=True)
    assert "RuntimeError: dataset not found" in str(info.value)
    sid = sw.sweep_ls()[0]["id"]
    rows = sw.trials_table(sid)
    assert len(rows) < 10 and not [r for r in rows if r["state"] == "RUNNING"]
    assert sw.sweep_summary(sid)["state"] == "failed"


def test_missing_objective_metric_is_a_clear_failure(tmp_path):
    nb = notebook(tmp_path / "m" / "nometric.ipynb", "x = 0.0\n", "import offload\noffload.log_metric('acc', x)\n")
    res = sw.sweep(nb, space={"x": {"type": "float", "low": 0, "high": 1}}, objective="val_acc", trials=1,
                   quiet=True, max_failures=5)
    (row,) = res.trials()
    assert row["state"] == "FAIL" and "did not log val_acc" in row["error"] and "acc" in row["error"]


SLEEPY = """
import time, offload
time.sleep(sleep_s)
offload.log_metric("v", x)
"""


def test_packing_runs_per_gpu_trials_at_once(tmp_path):
    nb = notebook(tmp_path / "k" / "sleep.ipynb", "x = 0.0\nsleep_s = 3.0\n", SLEEPY)
    res = sw.sweep(nb, space={"x": {"type": "float", "low": 0, "high": 1}}, objective="v", trials=4,
                   parallel=4, per_gpu=4, sampler="random", seed=0, quiet=True)
    spans = []
    for ids in jobs_of(res.id).values():
        st = job_status(ids[0])
        spans.append((st["started_at"], st["finished_at"]))
    assert len(spans) == 4
    # all four trials were running at the same moment on one slot group
    assert max(s for s, _ in spans) < min(f for _, f in spans)


def _wait(pred, timeout=120.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_driver_killed_and_resumed_without_duplicates_or_orphans(tmp_path):
    nb = notebook(tmp_path / "r" / "sleep.ipynb", "x = 0.0\nsleep_s = 2.0\n", SLEEPY)
    store = Store()
    rec = create_sweep(
        nb, space={"x": {"type": "float", "low": 0, "high": 1}}, objective="v", direction="maximize",
        trials=6, parallel=2, per_gpu=1, sampler="random", seed=0, pruner=None, storage=None,
        study_name=None, max_failures=None, enqueue=None, backend=None, gpu=None, spot=False,
        machine=None, max_runtime=None, env=None, data=None, backend_options=None, retries=1, store=store,
    )
    sid = rec["id"]
    drv = subprocess.Popen([sys.executable, "-m", "offload.sweeps.driver", store.url, sid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    # kill -9 the driver while two trial jobs are running
    _wait(lambda: sum(len(v) for v in jobs_of(sid).values()) >= 3)
    os.kill(drv.pid, signal.SIGKILL)
    drv.wait()
    assert sw.sweep_summary(sid)["state"] == "interrupted"
    res = sw.sweep_resume(sid)
    assert res.state == "completed"
    rows = sw.trials_table(sid)
    assert not [r for r in rows if r["state"] in ("RUNNING", "WAITING")]
    counted = [r for r in rows if not r["requeued"]]
    assert len(counted) == 6 and all(r["state"] == "COMPLETE" for r in counted)
    jobs = jobs_of(sid)
    assert all(len(v) == 1 for v in jobs.values()), jobs  # one job per trial
    for n, (job_id,) in jobs.items():  # no job outlives its trial
        assert job_status(job_id)["state"] in ("succeeded", "cancelled")
        assert n in {r["number"] for r in rows}
    if sys.platform.startswith("linux"):  # the killed driver's standby runners went with it
        _wait(lambda: not _processes_of(Path(os.environ["OFFLOAD_HOME"])), 60)


def _running(job_id: str) -> bool:
    st = Store().get_json(job_key(job_id, "status.json"), default=None)
    return bool(st) and st.get("state") == "running"


def test_stop_cancels_jobs_and_requeues_points(tmp_path):
    nb = notebook(tmp_path / "s" / "sleep.ipynb", "x = 0.0\nsleep_s = 30.0\n", SLEEPY)
    res = sw.sweep(nb, space={"x": {"type": "float", "low": 0, "high": 1}}, objective="v", trials=2,
                   parallel=2, sampler="random", seed=0, detach=True)
    _wait(lambda: len(jobs_of(res.id)) == 2 and all(_running(v[0]) for v in jobs_of(res.id).values()))
    info = sw.sweep_stop(res.id)
    assert info["state"] == "stopped"
    rows = sw.trials_table(res.id)
    assert {r["state"] for r in rows} <= {"FAIL", "WAITING"} and all(r["requeued"] for r in rows if r["state"] == "FAIL")
    for ids in jobs_of(res.id).values():
        _wait(lambda ids=ids: job_status(ids[0])["state"] == "cancelled", 60)
    assert sw.sweep_summary(res.id)["state"] == "stopped"


def test_a_stop_during_the_drivers_start_up_holds_and_stop_is_idempotent(tmp_path):
    """Stop right after a detached start, before the driver has written anything: the driver
    must not wipe the request and launch its 30 trials anyway; a second stop is a no-op."""
    nb = notebook(tmp_path / "s" / "sleep.ipynb", "x = 0.0\nsleep_s = 30.0\n", SLEEPY)
    res = sw.sweep(nb, space={"x": {"type": "float", "low": 0, "high": 1}}, objective="v", trials=30,
                   parallel=30, sampler="random", seed=0, detach=True)
    info = sw.sweep_stop(res.id, timeout=120)
    assert info["state"] == "stopped", info
    assert sw.sweep_stop(res.id)["state"] == "stopped"
    assert all(job_status(ids[0]) is None or job_status(ids[0])["state"] != "running"
               for ids in jobs_of(res.id).values())
    assert len(jobs_of(res.id)) < 30  # it did not go on launching after the stop


def test_invalid_inputs_fail_before_any_job(tmp_path):
    nb = notebook(tmp_path / "v" / "nb.ipynb", "lr = 0.1\n", "pass\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: {type: float, low: 0, high: 1, log: true}\n")
    with pytest.raises(SpaceError, match="'lr'.*low > 0"):
        sw.sweep(nb, space=bad, objective="acc", trials=2)
    with pytest.raises(SpaceError, match="'lrr'.*not in the notebook.*did you mean 'lr'"):
        sw.sweep(nb, space={"lrr": {"type": "float", "low": 0.1, "high": 1}}, objective="acc", trials=2)
    with pytest.raises(UsageError, match="unknown sampler"):
        sw.sweep(nb, space={"lr": {"type": "float", "low": 0.1, "high": 1}}, objective="acc", trials=2, sampler="bayes")
    with pytest.raises(UsageError, match="parallel"):
        sw.sweep(nb, space={"lr": {"type": "float", "low": 0.1, "high": 1}}, objective="acc", trials=2, parallel=0)
    assert not Store().list_dirs(JOBS)


def test_cli_sweep_run_show_ls_and_apply_best(tmp_path, capsys):
    nb = notebook(tmp_path / "c" / "quad.ipynb", "x = 0.0\ny = 0.0\nnoise = 0.0\nseed = 0\n", QUADRATIC)
    space = tmp_path / "space.yaml"
    space.write_text("x: {type: categorical, choices: [0.0, 1.0]}\ny: -2.0\n")
    assert main(["sweep", str(nb), "--space", str(space), "--objective", "score", "--trials", "2",
                 "--parallel", "2", "--sampler", "grid", "--quiet", "--apply-best"]) == 0
    out = capsys.readouterr().out
    assert "best: trial" in out and "x = 1.0" in out and "wrote x=1.0" in out
    assert "x = 1.0" in nbformat.read(nb, as_version=4).cells[0].source
    assert main(["sweep", "ls"]) == 0
    assert "completed" in capsys.readouterr().out
    assert main(["sweep", "show", "nope-nope"]) == 3
    assert "no sweep 'nope-nope'" in capsys.readouterr().err


def test_cli_invalid_space_is_one_clear_line(tmp_path, capsys):
    nb = notebook(tmp_path / "c" / "nb.ipynb", "lr = 0.1\n", "pass\n")
    space = tmp_path / "space.yaml"
    space.write_text("lr: {type: float, low: 1, high: 0.1}\n")
    assert main(["sweep", str(nb), "--space", str(space), "--objective", "acc"]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "'lr'" in err and "below high" in err and "hint: swap them" in err
    assert main(["sweep", str(nb), "--objective", "acc"]) == 2
    assert "needs --space" in capsys.readouterr().err


def test_pack_machines_run_per_gpu_trials_each_and_take_the_next(tmp_path):
    """The backend-neutral pack path (used by GCE/SLURM), exercised with local pack machines."""
    nb = notebook(tmp_path / "pk" / "sleep.ipynb", "x = 0.0\nsleep_s = 2.0\n", SLEEPY)
    res = sw.sweep(nb, space={"x": {"type": "float", "low": 0, "high": 1}}, objective="v", trials=5,
                   parallel=4, per_gpu=2, sampler="random", seed=0, quiet=True, pack=True)
    assert res.state == "completed"
    store = Store()
    by_pack: dict[str, list[tuple[float, float]]] = {}
    for ids in jobs_of(res.id).values():
        spec = store.get_json(job_key(ids[0], "spec.json"))
        st = job_status(ids[0])
        assert spec["backend"] == "sweep-pack" and st["state"] == "succeeded"
        by_pack.setdefault(spec["labels"]["pack"], []).append((st["started_at"], st["finished_at"]))
    assert len(by_pack) == 2  # parallel 4 / per_gpu 2 = two machines
    for spans in by_pack.values():
        spans.sort()
        # the first two trials of a pack ran at the same time; never more than per_gpu at once
        assert spans[1][0] < spans[0][1]
        for t, _ in spans:
            assert sum(1 for s, f in spans if s <= t < f) <= 2
    # the pack machines ended when the sweep needed no more
    for pack in by_pack:
        _wait(lambda pack=pack: job_status(pack)["state"] == "succeeded", 60)


def test_multi_objective_pareto_and_apply_best_needs_a_trial(tmp_path):
    body = "import offload\noffload.log_metric('acc', x)\noffload.log_metric('cost', x * x + 0.1)\n"
    nb = notebook(tmp_path / "mo" / "mo.ipynb", "x = 0.0\n", body)
    res = sw.sweep(nb, space={"x": {"type": "categorical", "choices": [0.2, 0.8]}}, objective="acc,cost",
                   direction="maximize,minimize", trials=2, parallel=2, sampler="grid", quiet=True)
    summary = sw.sweep_summary(res.id)
    assert summary["best"] is None and len(summary["pareto"]) == 2  # both points are Pareto-optimal
    row = next(r for r in sw.trials_table(res.id) if r["params"]["x"] == 0.8)
    assert row["values"] == pytest.approx([0.8, 0.74])
    assert "pareto front" in sw.sweep_show(res.id)
    with pytest.raises(UsageError, match="Pareto"):
        sw.apply_best(res.id)
    assert sw.apply_best(res.id, trial=row["number"]) == {"x": 0.8}
    with pytest.raises(UsageError, match="several objectives"):
        sw.sweep(nb, space={"x": {"type": "float", "low": 0, "high": 1}}, objective="acc,cost",
                 direction="maximize,minimize", trials=2, pruner="median")


def test_lost_job_is_retried_once_never_left_running(tmp_path):
    nb = notebook(tmp_path / "l" / "sleep.ipynb", "x = 0.0\nsleep_s = 4.0\n", SLEEPY)
    out: dict = {}
    t = threading.Thread(target=lambda: out.setdefault("res", sw.sweep(
        nb, space={"x": {"type": "categorical", "choices": [0.5]}}, objective="v", trials=1,
        sampler="grid", quiet=True, sweep_id="20300101-000000-aaaaaa")))
    t.start()
    sid = "20300101-000000-aaaaaa"
    _wait(lambda: 0 in jobs_of(sid) and _running(jobs_of(sid)[0][0]))
    first = jobs_of(sid)[0][0]
    handle = Store().get_json(job_key(first, "handle.json"))
    os.killpg(int(handle["pid"]), signal.SIGKILL)  # the machine vanishes: no status is written
    t.join(180)
    res = out["res"]
    rows = sorted(res.trials(), key=lambda r: r["number"])
    assert [r["state"] for r in rows] == ["FAIL", "COMPLETE"]
    assert rows[0]["requeued"] and "lost" in rows[0]["error"]
    assert rows[1]["params"] == rows[0]["params"] and rows[1]["value"] == 0.5
    assert res.state == "completed"


def test_first_sweeps_opening_a_new_study_file_at_once_all_succeed(tmp_path):
    """The default SQLite file is created by whichever process opens it first; a driver starting
    while the panel reads the sweep (or two first sweeps) must not die on Optuna's schema set-up."""
    db = tmp_path / "new.db"
    go = tmp_path / "go"
    code = (
        "import os, sys, time\n"
        "from offload.sweeps.records import make_storage\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.005)\n"
        f"make_storage('sqlite:///{db}').get_all_studies()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(8)]
    time.sleep(3)  # every process has imported optuna and is waiting
    go.touch()
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, "\n".join(e for e in errors if e)[-2000:]


def test_a_storage_that_cannot_be_opened_is_a_clear_error_before_any_job(tmp_path):
    nb = notebook(tmp_path / "q.ipynb", "x = 0.0", "import offload\noffload.log_metric('m', x)")
    bad = f"sqlite:///{tmp_path}/no-such-dir/s.db"
    with pytest.raises(StoreError) as info:
        sw.sweep(nb, space={"x": {"type": "float", "low": 0, "high": 1}}, objective="m", trials=2,
                 storage=bad, detach=True, quiet=True)
    assert bad in info.value.message and "--storage" in info.value.hint
    assert sw.sweep_ls() == []


def test_a_driver_that_cannot_start_fails_the_sweep_with_the_reason(tmp_path):
    """The storage went away between the sweep's creation and its driver's start."""
    nb = notebook(tmp_path / "q.ipynb", "x = 0.0", "import offload\noffload.log_metric('m', x)")
    (tmp_path / "db").mkdir()
    rec = create_sweep(
        nb, space={"x": {"type": "float", "low": 0, "high": 1}}, objective="m", direction="maximize", trials=2,
        parallel=1, per_gpu=1, sampler="random", seed=0, pruner=None, storage=f"sqlite:///{tmp_path}/db/s.db",
        study_name=None, max_failures=None, enqueue=None, backend=None, gpu=None, spot=False, machine=None,
        max_runtime=None, env=None, data=None, backend_options=None, retries=0, store=Store())
    shutil.rmtree(tmp_path / "db")
    proc = subprocess.run([sys.executable, "-m", "offload.sweeps.driver", Store().url, rec["id"]],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    info = Store().get_json(sweep_key(rec["id"], "driver.json"))
    assert info["state"] == "failed" and "could not start" in info["error"] and "unable to open" in info["error"]
    with pytest.raises(StoreError, match="cannot open the sweep's Optuna storage"):
        sw.sweep_summary(rec["id"])
    assert not jobs_of(rec["id"])


def test_a_detached_driver_killed_before_it_starts_reads_as_interrupted(tmp_path, monkeypatch):
    nb = notebook(tmp_path / "q.ipynb", "x = 0.0", "import offload\noffload.log_metric('m', x)")
    real_popen = subprocess.Popen

    def dies_at_once(cmd, **kw):  # the driver's interpreter exits before running any of its code
        return real_popen([sys.executable, "-c", "import os; os._exit(3)"], **kw)

    monkeypatch.setattr(control.subprocess, "Popen", dies_at_once)
    res = sw.sweep(nb, space={"x": {"type": "float", "low": 0, "high": 1}}, objective="m", trials=2,
                   detach=True, quiet=True)
    deadline = time.monotonic() + 60
    while (summary := sw.sweep_summary(res.id))["state"] == "created":
        assert time.monotonic() < deadline, summary
        time.sleep(0.2)
    assert summary["state"] == "interrupted", summary


def _processes_of(home: Path) -> list[str]:
    """Live processes besides this one started for this test (runners, standbys, kernels,
    drivers): they carry its OFFLOAD_HOME in their environment."""
    mark = f"OFFLOAD_HOME={home}".encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if mark in env:
            found.append(f"{pid} {cmd}")
    return found


ISOLATED = """
import os, time, offload
while gate and not os.path.exists(gate):  # the test opens the gate once a standby is ready
    time.sleep(0.1)
leak = "_seen_by_an_earlier_trial" in globals()
_seen_by_an_earlier_trial = True
offload.log_metric("v", x)
offload.log_metric("leak", float(leak))
print("job", os.environ["OFFLOAD_JOB_ID"], "cwd", os.getcwd())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_next_trial_runs_on_a_warm_standby_with_a_fresh_kernel_and_none_is_left(tmp_path, home):
    """Issue 14: on the local backend the next trial starts on a standby runner whose imports
    are done and whose kernel is up. It is still a normal job with its own fresh kernel (no
    state of an earlier trial, its own job id, execution counts from 1), and no standby
    process or kernel outlives the sweep."""
    from offload.backends import local_standby

    with _gated_sweep(tmp_path, "w", trials=3) as (store, out):
        pass  # a warm standby waits for trial 1
    res = out["res"]
    assert res.state == "completed"
    rows = res.trials()
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3
    jobs = jobs_of(res.id)
    prestarted = []
    for row in rows:
        (job_id,) = jobs[row["number"]]
        assert row["value"] == pytest.approx(row["params"]["x"])  # its own parameters
        metrics = {m["name"]: m["value"] for m in offload.Job(job_id).metrics}
        assert metrics["leak"] == 0.0  # nothing of an earlier trial in its kernel
        out_nb = nbformat.reads(Store().get_text(job_key(job_id, "output.ipynb")), as_version=4)
        code = [c for c in out_nb.cells if c.cell_type == "code"]
        assert [c.execution_count for c in code] == list(range(1, len(code) + 1))  # no hidden cell counted
        printed = "".join(o.get("text", "") for o in code[-1].outputs)
        assert f"job {job_id} cwd" in printed  # the job's own id in the kernel's environment
        if job_status(job_id).get("kernel_prestarted"):
            prestarted.append(row["number"])
    assert 1 in prestarted, prestarted  # the trial after the gate took the warm standby
    assert local_standby.count(store.url, res.id) == (0, 0)
    _wait(lambda: not _processes_of(home), 60)  # standbys and their kernels exit with the sweep


@contextlib.contextmanager
def _gated_sweep(tmp_path: Path, folder: str, *, trials: int):
    """A local sweep (parallel 1) whose first trial waits on a gate file: yields (store, out)
    once a standby runner for the next trial is warm (imports done, kernel answering), then opens
    the gate and waits for the sweep, whose result is ``out["res"]``."""
    from offload.backends import local_standby

    gate = tmp_path / "gate"
    nb = notebook(tmp_path / folder / "iso.ipynb", "x = 0.0\ngate = ''\n", ISOLATED)
    store = Store()
    out: dict = {}
    th = threading.Thread(target=lambda: out.update(res=sw.sweep(
        nb, space={"x": {"type": "float", "low": 0, "high": 1}, "gate": str(gate)}, objective="v",
        trials=trials, parallel=1, sampler="random", seed=0, quiet=True)))
    th.start()
    try:
        _wait(lambda: len(jobs_of_any(store)) == 1)
        sid = next(iter(jobs_of_any(store)))
        _wait(lambda: local_standby.count(store.url, sid)[1] >= 1, 180)
        yield store, out
    finally:
        gate.write_text("open")
        th.join(300)


def jobs_of_any(store: Store) -> dict[str, list[str]]:
    """Sweep id -> its trial jobs, over every sweep in the store."""
    out: dict[str, list[str]] = {}
    for job_id in store.list_dirs(JOBS):
        spec = store.get_json(job_key(job_id, "spec.json"), None) or {}
        sid = (spec.get("labels") or {}).get("sweep")
        if sid and spec.get("kind") == "trial":
            out.setdefault(sid, []).append(job_id)
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_stopping_a_sweep_ends_its_standby_runners_and_kernels(tmp_path, home):
    nb = notebook(tmp_path / "s" / "sleep.ipynb", "x = 0.0\nsleep_s = 60.0\n", SLEEPY)
    res = sw.sweep(nb, space={"x": {"type": "float", "low": 0, "high": 1}}, objective="v", trials=6,
                   parallel=2, sampler="random", seed=0, detach=True)
    _wait(lambda: len(jobs_of(res.id)) == 2 and all(_running(v[0]) for v in jobs_of(res.id).values()))
    _wait(lambda: sum("--standby" in p for p in _processes_of(home)) == 2, 120)
    assert sw.sweep_stop(res.id)["state"] == "stopped"
    _wait(lambda: not _processes_of(home), 90)  # trials cancelled, standbys and every kernel gone
    assert len(jobs_of(res.id)) == 2  # the standbys ran no trial


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_standby_whose_kernel_died_runs_its_trial_on_a_fresh_kernel(tmp_path, home):
    """A standby's kernel killed while it waits (out of memory, say) costs nothing but the
    head start: the trial it is handed starts a kernel of its own and succeeds."""
    with _gated_sweep(tmp_path, "d", trials=2) as (_store, out):
        (standby,) = [int(p.split()[0]) for p in _processes_of(home) if "--standby" in p]
        kernels = _children(standby)
        assert kernels
        for pid in kernels:
            os.kill(pid, signal.SIGKILL)
    res = out["res"]
    assert [r["state"] for r in res.trials()] == ["COMPLETE", "COMPLETE"]
    row = next(r for r in res.trials() if r["number"] == 1)
    assert row["value"] == pytest.approx(row["params"]["x"])
    status = job_status(row["job_id"])
    assert status["pid"] == standby  # the standby ran it
    assert not status.get("kernel_prestarted")  # on a kernel of its own
    _wait(lambda: not _processes_of(home), 60)
