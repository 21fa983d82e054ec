"""Attach benchmark (issue 13): the time from ``offload attach JOB --execute 'print(step)'`` to
the printed value, while the job's cell keeps its kernel's main shell busy (a loop updating
``step``), side by side in one run:

1. local: the CLI on the job's machine, the kernel's own IPC sockets;
2. SSH: the same job reached through a real OpenSSH server on loopback (tests/sshd_server.py),
   the kernel's sockets relayed over SSH exec channels (the GCE route);
3. the floor: ``offload --version`` (the CLI process alone), so what attach adds is visible;
4. in-process (``offload.attach.execute``, no CLI start-up): local and SSH, the attach itself
   (find the job, connect, create a subshell, run, print, delete the subshell).

Each CLI row is a fresh process as a user types it; alternating rounds; medians and ratios.

Usage: python benchmarks/bench_attach.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOOP = ["import time\nstep = 0", "while True:\n    step += 1\n    time.sleep(0.01)"]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL)
    took = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr}")
    return took, out.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-attach-"))
    os.environ["OFFLOAD_HOME"] = str(tmp / "home")
    from offload.jobs import submit
    from offload.store import Store, layout
    from offload.testing import make_notebook, wait_for
    from tests.sshd_server import Sshd, why_cannot_run

    store = Store((tmp / "store").as_uri())
    job = submit(make_notebook(tmp / "loop.ipynb", LOOP), backend="local", store=store)
    sshd = None
    try:
        wait_for(lambda: store.exists(layout.job_key(job.id, layout.KERNEL)), 300, "the job's kernel")
        base = {**os.environ}
        cli = [sys.executable, "-m", "offload.cli"]
        attach_cmd = [*cli, "attach", job.id, "--execute", "print(step)"]
        routes = {"floor (offload --version)": ([*cli, "--version"], None), "local (IPC)": (attach_cmd, None)}
        reason = why_cannot_run()
        if reason is None:
            sshd = Sshd(tmp / "sshd").start()
            home = tmp / "ssh-home"
            home.mkdir()
            (home / "config.json").write_text(json.dumps({"backends": {"local": sshd.options()}}))
            # the index and store are found through OFFLOAD_STORE; the SSH route through this config
            routes["SSH tunnel (OpenSSH, loopback)"] = (attach_cmd, {"OFFLOAD_HOME": str(home), "OFFLOAD_STORE": store.url})
        else:
            print(f"SSH route skipped: {reason}")
        times: dict[str, list[float]] = {name: [] for name in routes}
        values: list[int] = []
        import io

        from offload import attach
        from offload import config as offload_config

        def in_process(name: str, home: str | None) -> None:
            saved = os.environ.get("OFFLOAD_HOME")
            if home:
                os.environ["OFFLOAD_HOME"] = home
            offload_config.__dict__.get("_cache_clear", lambda: None)()
            out = io.StringIO()
            t = time.perf_counter()
            rc = attach.execute(job.id, "print(step)", store=store, out=out)
            times.setdefault(name, []).append(time.perf_counter() - t)
            os.environ["OFFLOAD_HOME"] = saved or ""
            assert rc == 0 and int(out.getvalue().split()[-1]) >= 0

        for _ in range(args.runs):
            in_process("in-process, local", None)
            if sshd is not None:
                in_process("in-process, SSH", str(tmp / "ssh-home"))
            for name, (cmd, extra) in routes.items():
                took, out = timed(cmd, {**base, **(extra or {})})
                times[name].append(took)
                if cmd is attach_cmd:
                    values.append(int(out.splitlines()[-1]))
        assert values == sorted(values) and values[-1] > values[0], "the live value did not advance"
        floor = statistics.median(times["floor (offload --version)"])
        local = statistics.median(times["local (IPC)"])
        times = dict(sorted(times.items(), key=lambda kv: kv[0].startswith("in-process")))
        print(f"job {job.id} busy in its loop cell; {args.runs} alternating rounds, medians:")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"  {name:32s} {med:6.3f} s  (x{med / floor:4.2f} the CLI floor, x{med / local:4.2f} local)  "
                  f"min {min(ts):.3f} max {max(ts):.3f}")
        print(f"  live value advanced {values[0]} -> {values[-1]} while attached {len(values)} times")
    finally:
        job.cancel()
        if sshd is not None:
            sshd.stop()


if __name__ == "__main__":
    main()
