"""Listing at scale (issue 14): 10,000 jobs in the store, measured as a user meets them.

Writes N synthetic finished jobs through the store layout (offload.testing.records), then:

1. ``offload ls`` (whole process, as typed) and ``offload ls --refresh`` (re-reads every job);
2. a real Jupyter server: the first ``GET /offload/api/jobs`` after start, with an index that never
   saw the store (a fresh install) and after a restart (the index of the last server);
3. ``GET /jobs?limit=50`` (plain and filtered), ``GET /gallery`` pages (newest, sorted by a
   metric), p50/p95 over many requests;
4. the server's CPU while idle with N jobs (what the watcher's passes cost).

    .venv/bin/python benchmarks/bench_scale.py [--jobs 10000] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
TOKEN = "bench-scale"


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base: str, path: str) -> tuple[float, dict]:
    req = urllib.request.Request(f"{base}/offload/api/{path}", headers={"Authorization": f"token {TOKEN}"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        body = r.read()
    return time.perf_counter() - t, json.loads(body)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, float]:
    """The server and the seconds from its start until ``/api/status`` answers."""
    port = _port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "jupyter"), "server", f"--ServerApp.root_dir={root}", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}", "--ServerApp.open_browser=False",
         "--ServerApp.allow_root=True",
         "--ServerApp.jpserver_extensions={'jupyter_ext': True}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=1)
            return proc, base, time.perf_counter() - t0
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("jupyter server did not start")


def first_list(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, float, int]:
    """Start a server; seconds from ``/api/status`` answering to the first job list, and its total."""
    proc, base, _ = start_server(root, env)
    dt, page = _get(base, "jobs?limit=50")
    return proc, base, dt, page["total"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    root = work / "root"
    root.mkdir()
    env = dict(os.environ, OFFLOAD_HOME=str(work / "home"), OFFLOAD_STORE=str(work / "store"),
               JUPYTER_CONFIG_DIR=str(work / "cfg"), JUPYTER_RUNTIME_DIR=str(work / "rt"))
    os.environ.update(OFFLOAD_HOME=env["OFFLOAD_HOME"], OFFLOAD_STORE=env["OFFLOAD_STORE"])
    from offload.store import Store
    from offload.testing.records import write_job_records

    t = time.perf_counter()
    write_job_records(Store(), args.jobs, notebooks=("a.ipynb", "b.ipynb", "c.ipynb"), source_dir=str(root))
    print(f"{args.jobs} synthetic jobs written in {time.perf_counter() - t:.1f} s ({work})")

    # 2. a fresh install's first list (the index never saw the store: answered once the newest are
    # indexed), the time until every job is, then a restart
    proc, base, cold, total = first_list(root, env)
    t = time.perf_counter()
    while _get(base, "jobs?limit=1")[1]["total"] < args.jobs:
        time.sleep(0.05)
    print(f"first GET /jobs after the server starts, fresh index: {cold:.2f} s (listing the newest {total}); "
          f"all {args.jobs} indexed {cold + time.perf_counter() - t:.2f} s after start")
    proc.terminate()
    proc.wait(30)
    proc, base, warm, total = first_list(root, env)
    assert total == args.jobs, total
    print(f"first GET /jobs after a restart (answers from the last index): {warm * 1000:.0f} ms")

    # 3. pages
    cases = {
        "GET /jobs?limit=50": "jobs?limit=50",
        "GET /jobs?limit=50&state=failed&notebook=b.ipynb": "jobs?limit=50&state=failed&notebook=b.ipynb",
        "GET /jobs, page 20 (cursor)": None,
        "GET /gallery?limit=40": "gallery?limit=40",
        "GET /gallery?limit=40&sort=loss&order=asc": "gallery?limit=40&sort=loss&order=asc",
    }
    cursor = None
    for _ in range(19):
        cursor = _get(base, "jobs?limit=50" + (f"&cursor={cursor}" if cursor else ""))[1]["next_cursor"]
    cases["GET /jobs, page 20 (cursor)"] = f"jobs?limit=50&cursor={cursor}"
    sizes = {}
    for name, path in cases.items():
        _get(base, path)
        times = []
        for _ in range(args.requests):
            dt, body = _get(base, path)
            times.append(dt)
        sizes[name] = len(json.dumps(body))
        print(f"{name}: p50 {statistics.median(times) * 1000:.1f} ms, p95 {_pct(times, 95) * 1000:.1f} ms "
              f"({sizes[name] // 1024} KiB)")

    # 4. the watcher's cost with N jobs: server CPU over 10 s idle
    c0 = _cpu_s(proc.pid)
    time.sleep(10)
    idle = (_cpu_s(proc.pid) - c0) / 10
    print(f"server CPU while idle with {args.jobs} jobs (a watcher pass per second): {idle * 100:.1f}% of a core")
    proc.terminate()
    proc.wait(30)

    # 1. the CLI
    ls = [str(BIN / "offload"), "ls"]
    _timed(ls, env)
    runs = [_timed(ls, env) for _ in range(7)]
    refresh = [_timed([*ls, "--refresh"], env) for _ in range(3)]
    print(f"offload ls (whole process): median {statistics.median(runs):.3f} s, max {max(runs):.3f} s")
    print(f"offload ls --refresh (re-reads {args.jobs} jobs): median {statistics.median(refresh):.2f} s")


if __name__ == "__main__":
    main()
