"""Sweep overhead: 16 trials of a notebook that sleeps 2 s, ``parallel=8``, local backend.

Ideal wall time is 2 waves x (2 s + one kernel start). We measure, side by side on this machine:

* ``kernel_s``: one kernel start (jupyter_client, start + wait_for_ready), averaged;
* ``job_s``: one whole trial job alone (submit -> succeeded) of the same notebook;
* ``sweep_s``: the sweep's wall time (create -> completed).

and print ``sweep_s / ideal`` (goal <= 1.3) and ``sweep_s / (2 x job_s)`` (the sweep driver's own
cost over running two waves of single jobs). Usage: ``python benchmarks/bench_sweep.py [--trials 16
--parallel 8 --sleep 2]``. Runs in a temporary OFFLOAD_HOME.

``--vs-script`` (issue 14) also runs the same trials the way users script it today: Optuna's
``study.optimize(n_jobs=parallel)`` calling ``papermill.execute_notebook`` and reading the metric
from the output notebook, and prints ``sweep_s / script_s`` (goal <= 1.0) and the sweep driver's
CPU per trial. ``--trials 8 --parallel 2 --sleep 20 --vs-script`` is the issue's setting. Both
timers start with Optuna already imported in this process (the script imports Optuna and
papermill before its timer; the sweep's runners import papermill inside theirs).
``warm_trials`` counts the trials that started on a standby runner's kernel (docs/sweeps.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import start_new_kernel

from offload import jobs, sweeps
from offload.backends import procs
from offload.store import Store
from offload.store.layout import job_key


def kernel_start_s(n: int = 3) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        km, kc = start_new_kernel(kernel_name="python3")
        times.append(time.perf_counter() - t)
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return sum(times) / len(times)


def make_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("x = 0.0\nsleep_s = 2.0\n")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(
        "import time, offload\ntime.sleep(sleep_s)\noffload.log_metric('v', x)\nprint('v', x)\n")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def hand_rolled(nb: Path, *, trials: int, parallel: int, sleep: float) -> tuple[float, float]:
    """The script a user writes without offload: Optuna asks, papermill runs, the metric is read
    back from the output notebook. Wall seconds and this process's CPU seconds."""
    import optuna
    import papermill

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out_dir = Path(tempfile.mkdtemp(prefix="bench-sweep-script-"))

    def objective(trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        out = out_dir / f"trial-{trial.number}.ipynb"
        papermill.execute_notebook(str(nb), str(out), parameters={"x": x, "sleep_s": sleep}, progress_bar=False,
                                   kernel_name="python3")
        text = "".join(o.get("text", "") for o in nbformat.read(out, as_version=4).cells[-1].outputs)
        return float(text.split()[-1])

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    study.optimize(objective, n_trials=trials, n_jobs=parallel)
    wall = time.perf_counter() - t
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    return wall, (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--sleep", type=float, default=2.0)
    ap.add_argument("--vs-script", action="store_true", help="also run the hand-rolled Optuna + papermill script")
    args = ap.parse_args()
    home = tempfile.mkdtemp(prefix="bench-sweep-")
    os.environ["OFFLOAD_HOME"] = home
    os.environ["OFFLOAD_LOCAL_MAX_JOBS"] = str(args.parallel)
    os.environ.pop("OFFLOAD_STORE", None)
    nb = make_notebook(Path(home) / "sleep.ipynb")
    kernel = kernel_start_s()
    ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    single = jobs.submit(nb, parameters={"x": 0.5, "sleep_s": args.sleep}, kind="trial").wait()
    job = time.perf_counter() - t
    procs.wait_child(int(single.handle["pid"]))  # reap the runner so its CPU time (and its kernel's) is counted
    ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    job_cpu = (ch1.ru_utime - ch0.ru_utime) + (ch1.ru_stime - ch0.ru_stime)  # runner + kernel

    space = {"x": {"type": "float", "low": 0, "high": 1}, "sleep_s": args.sleep}
    import optuna  # noqa: F401  (as the script has it before its timer starts)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    res = sweeps.sweep(nb, space=space, objective="v", trials=args.trials, parallel=args.parallel,
                       sampler="random", seed=0, quiet=True)
    wall = time.perf_counter() - t
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    driver_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    waves = -(-args.trials // args.parallel)
    ideal = waves * (args.sleep + kernel)
    # With fewer cores than parallel trials, the trials' own CPU work bounds the wall time.
    cpu_bound = args.trials * job_cpu / (os.cpu_count() or 1)
    out = {
        "trials": args.trials, "parallel": args.parallel, "sleep_s": args.sleep, "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0], "kernel_start_s": round(kernel, 2), "single_job_s": round(job, 2),
        "sweep_s": round(wall, 2), "ideal_s": round(ideal, 2), "ratio_vs_ideal": round(wall / ideal, 2),
        "ratio_vs_2_single_jobs": round(wall / (waves * job), 2),
        "driver_cpu_s": round(driver_cpu, 2),
        "trial_cpu_s": round(job_cpu, 2), "cpu_bound_s": round(cpu_bound, 2),
        "ratio_vs_max_ideal_cpu_bound": round(wall / max(ideal, cpu_bound), 2),
        "complete": sum(1 for r in res.trials() if r["state"] == "COMPLETE"),
        "driver_cpu_per_trial_s": round(driver_cpu / args.trials, 3),
        "warm_trials": sum(1 for r in res.trials() if r["job_id"] and (Store().get_json(
            job_key(r["job_id"], "status.json"), None) or {}).get("kernel_prestarted")),
    }
    if args.vs_script:
        script_s, script_cpu = hand_rolled(nb, trials=args.trials, parallel=args.parallel, sleep=args.sleep)
        out.update(script_s=round(script_s, 2), script_cpu_s=round(script_cpu, 2),
                   ratio_vs_script=round(wall / script_s, 3))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
