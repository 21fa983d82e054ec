"""`offload run`: submit a notebook and follow it to the end."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from typing import Any

from offload.cli._format import (
    STATE_STYLE,
    backend_name,
    backend_opts,
    color,
    duration,
    fmt_metrics,
    job_duration,
    store_arg,
)
from offload.errors import JobFailed
from offload.jobs import submit
from offload.notebook import load_param_file, parse_assignments
from offload.spec import JobState


def add_parsers(sub: Any) -> None:
    r = sub.add_parser("run", help="run a notebook as a job")
    r.add_argument("notebook")
    r.add_argument("-p", "--param", action="append", metavar="NAME=VALUE", help="set a parameter (repeatable)")
    r.add_argument("--param-file", action="append", metavar="YAML", help="parameters from a YAML file")
    r.add_argument("--backend", type=backend_name, help="local (default), gce, slurm, ...")
    r.add_argument("--gpu", help="GPU type (l4, a100, ...) or a comma list of fallbacks")
    r.add_argument("--gpu-count", type=int, default=1)
    r.add_argument("--machine", help="machine type, e.g. g2-standard-8")
    r.add_argument("--spot", action="store_true", help="use spot/preemptible capacity")
    r.add_argument("--max-runtime", "--time", dest="max_runtime", help="hard cap, e.g. 4h or 4:00:00 (default 6h)")
    r.add_argument("--keep-alive", dest="keep_alive", metavar="DURATION",
                   help="keep the machine this long after the job for the next compatible one, e.g. 10m "
                        "(gce, slurm; 0 = off; default: the backend's keep_alive setting)")
    r.add_argument("--budget", metavar="USD",
                   help="most the job may cost: refused before launch when price x max runtime is over it")
    r.add_argument("--cap-runtime-to-budget", action="store_true",
                   help="with --budget (or a monthly budget): cut the max runtime to fit instead of refusing")
    r.add_argument("--stop-if-idle", metavar="DURATION",
                   help="stop the job (keeping its output) when its GPUs stay idle this long, e.g. 20m")
    r.add_argument("--idle-threshold", type=float, default=5.0, metavar="PERCENT",
                   help="GPU utilization under which a GPU counts as idle (default 5)")
    r.add_argument("--wait-for-capacity", metavar="DURATION",
                   help="gce: wait this long for a GPU (DWS flex-start, else cycling zones with backoff), e.g. 2h")
    r.add_argument("--cpus", type=int)
    r.add_argument("--memory", type=float, help="memory in GB")
    r.add_argument("--data", action="append", metavar="PATH", help="file or directory to ship (same relative path remotely)")
    r.add_argument("--include", action="append", metavar="PATH", help="extra local file or package to ship")
    r.add_argument("--env", choices=["kernel", "isolated"], default="kernel", help="kernel: this interpreter; isolated: a fresh environment from the snapshot")
    r.add_argument("--retries", type=int, default=2, help="runs again after preemption, restoring checkpoint_dir() (default 2)")
    r.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="backend option (zone=..., partition=...)")
    r.add_argument("--allow-unresolved", action="store_true", help="run even if some imports map to no installed package")
    r.add_argument("--allow-secret", action="append", metavar="PATH",
                   help="ship this file although it looks like a secret (repeatable)")
    r.add_argument("--notify", metavar="URL",
                   help="webhook told when the job ends (Slack-compatible JSON; 'off' for none; "
                        "default: the notify.webhook setting)")
    r.add_argument("--detach", "-d", action="store_true", help="print the job id and return at once")
    r.add_argument("--quiet", "-q", action="store_true")
    r.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    for f in args.param_file or []:
        params.update(load_param_file(f))
    params.update(parse_assignments(args.param))
    err = sys.stderr
    job = submit(
        args.notebook, parameters=params, backend=args.backend, gpu=args.gpu, gpu_count=args.gpu_count,
        machine=args.machine, spot=args.spot, max_runtime=args.max_runtime, keep_alive=args.keep_alive, cpus=args.cpus,
        memory_gb=args.memory, data=args.data or [], include=args.include or [], env=args.env,
        store=store_arg(args), allow_unresolved=args.allow_unresolved, retries=args.retries,
        allow_secrets=args.allow_secret or [], notify=args.notify,
        budget=args.budget, cap_runtime_to_budget=args.cap_runtime_to_budget, stop_if_idle=args.stop_if_idle,
        idle_threshold=args.idle_threshold, wait_for_capacity=args.wait_for_capacity,
        backend_options_=backend_opts(args),
        on_progress=(lambda m: print(m, file=err)) if not args.quiet else None,
    )
    if args.detach:
        print(job.id)
        return 0
    handle = job.handle or {}
    on = f" (warm machine {handle['on_machine']})" if handle.get("on_machine") else ""
    print(f"job {job.id} submitted to {job.spec.backend}{on}", file=err)
    try:
        _watch(job, quiet=args.quiet)
        while (nxt := job.latest()).id != job.id:  # preempted and retried elsewhere: follow it
            print(f"job {job.id} was preempted; retrying as {nxt.id}", file=err)
            job = nxt
            _watch(job, quiet=args.quiet)
    except KeyboardInterrupt:
        print(f"\nstill running: `offload logs -f {job.id}` to follow, `offload cancel {job.id}` to stop", file=err)
        return 130
    return _final_report(job)


def _watch(job, *, quiet: bool = False) -> None:
    """Live progress on a terminal (one redrawn line); streamed log lines otherwise."""
    tty = sys.stderr.isatty()
    last_line = ""
    start = time.time()
    for text in job.iter_logs(follow=True, poll=0.1):
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if lines:
            last_line = lines[-1]
        if not tty and not quiet:
            sys.stdout.write(text)
            sys.stdout.flush()
        if tty:
            st = job.last_status
            width = shutil.get_terminal_size((100, 20)).columns
            state = st.get("state", "?")
            if state != JobState.RUNNING and st.get("phase") == "environment":
                state = f"{state} (building environment)"
            line = f"{state}  cell {st.get('cell', 0)}/{st.get('n_cells', 0)}  {duration(time.time() - start)}  {last_line}"
            sys.stderr.write("\r\x1b[K" + line[: width - 1])
            sys.stderr.flush()
    if tty:
        sys.stderr.write("\r\x1b[K")


def _phases(st: dict) -> str:
    """" (environment build 5:09, notebook 0:06)" when building the environment took a while."""
    env_s = (st.get("timings") or {}).get("env_s")
    if not env_s or env_s < 1:
        return ""
    nb_start = st.get("notebook_started_at")
    nb_s = (st.get("finished_at") or time.time()) - nb_start if nb_start else None
    return f" (environment build {duration(env_s)}" + (f", notebook {duration(nb_s)})" if nb_s is not None else ")")


def _final_report(job) -> int:
    st = job.status
    state = st["state"]
    print(f"job {job.id} {color(state, STATE_STYLE.get(state))} in {duration(st.get('duration_s') or job_duration(st))}"
          + _phases(st) + (f": {st.get('reason')}" if st.get("reason") and state != JobState.SUCCEEDED else ""))
    metrics = job.last_metrics()
    if metrics:
        print("metrics: " + fmt_metrics(metrics, limit=10))
    if state != JobState.SUCCEEDED:
        return JobFailed.exit_code
    return 0
