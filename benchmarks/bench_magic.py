"""Round trip of ``%%offload`` on the local backend vs the same cell run locally and vs ipyparallel.

Measured side by side in one run: local execution, a cold cell job (fresh runner + kernel,
``--cold``), the first warm cell (starts the session), warm cells after it, and the same cells on
one ipyparallel engine started on this machine (``ipp.Cluster(n=1)``), alternating round by round.
Each tool is driven from its own notebook kernel (same data in both), so neither tool's client
shares an interpreter with the other's (ipyparallel's client keeps a thread of its own in the
kernel that holds it); both tools' processes are up for every round. Two workloads, each in both
tools:

- trivial: ``y = x + 1`` (x in, y back). ipyparallel: ``%%px`` (the cell only, no data moved) and
  push + execute + pull (what ``%%offload`` does: x in, y back).
- large: a 100 MB numpy array in, a 100 MB array back (``b = a + 1``). ipyparallel: push +
  execute + pull.

Goals: warm <= 0.5 s; warm at or below ipyparallel (ratios in the last lines).

ipyparallel is a benchmark-only dependency (the ``bench`` extra: ``pip install -e '.[bench]'``, or
``.venv/bin/uv pip install --python .venv/bin/python ipyparallel``); without it those rows are skipped.

    .venv/bin/python benchmarks/bench_magic.py [--repeat 10] [--mb 100]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--cold-repeat", type=int, default=2)
    ap.add_argument("--mb", type=int, default=100, help="size of the large array (MB)")
    ap.add_argument("--large-repeat", type=int, default=5)
    args = ap.parse_args()

    from jupyter_client.manager import start_new_kernel

    home = tempfile.mkdtemp(prefix="bench-magic-")
    env = dict(os.environ, OFFLOAD_HOME=home)
    env.pop("OFFLOAD_STORE", None)
    km, kc = start_new_kernel(kernel_name="python3", cwd=home, env=env)
    has_ipp = importlib.util.find_spec("ipyparallel") is not None
    if has_ipp:  # the ipyparallel user's notebook
        km_ipp, kc_ipp = start_new_kernel(kernel_name="python3", cwd=home, env=env)

    def run(code: str, client=None) -> float:
        t0 = time.perf_counter()
        reply = (client or kc).execute_interactive(code, timeout=600, output_hook=lambda msg: None)
        dt = time.perf_counter() - t0
        if reply["content"]["status"] != "ok":
            raise SystemExit(f"cell failed: {reply['content'].get('ename')}: {reply['content'].get('evalue')}")
        return dt

    res: dict[str, list[float]] = {}

    def add(name: str, dt: float) -> None:
        res.setdefault(name, []).append(dt)

    n = args.mb * 1024 * 1024 // 8
    try:
        data = f"x = 20\nimport numpy as np\na = np.arange({n}, dtype='float64')"
        run(f"%load_ext offload\n{data}")
        if has_ipp:
            run(f"{data}\nimport ipyparallel as ipp\n_cluster = ipp.Cluster(n=1)\n_rc = _cluster.start_and_connect_sync()\n"
                "_rc.wait_for_engines(1, timeout=300)\n_v = _rc[0]\n_v.activate()\n_v.execute('import numpy as np', block=True)",
                kc_ipp)
        cell = "y = x + 1"
        for _ in range(args.repeat):
            add("local", run(cell))
        for _ in range(args.cold_repeat):
            add("cold", run(f"%%offload --cold\n{cell}"))
        add("first", run(f"%%offload\n{cell}"))
        for _ in range(args.repeat):  # alternating rounds: same load for both tools
            add("warm", run(f"%%offload\n{cell}"))
            if has_ipp:
                add("ipp_px", run(f"%%px\n{cell}", kc_ipp))
                add("ipp_ppp", run(f"_v.push({{'x': x}}, block=True); _v.execute({cell!r}, block=True); "
                                   "y = _v.pull('y', block=True)", kc_ipp))
        for _ in range(args.large_repeat):
            add("warm_large", run("%%offload\nb = a + 1"))
            if has_ipp:
                add("ipp_large", run("_v.push({'a': a}, block=True); _v.execute('b = a + 1', block=True); "
                                     "b = _v.pull('b', block=True)", kc_ipp))
        run("assert float(b[-1]) == float(a[-1]) + 1")
        run("%offload stop")
        if has_ipp:
            run("assert float(b[-1]) == float(a[-1]) + 1\n_rc.close(); _cluster.stop_cluster_sync()", kc_ipp)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        if has_ipp:
            kc_ipp.stop_channels()
            km_ipp.shutdown_kernel(now=True)

    med = {k: statistics.median(v) for k, v in res.items()}
    ms = lambda k: f"{med[k] * 1000:9.1f} ms  (median of {len(res[k])})"  # noqa: E731
    print(f"{'local cell':34} {ms('local')}")
    print(f"{'%%offload --cold':34} {ms('cold')}")
    print(f"{'%%offload first (session)':34} {res['first'][0] * 1000:9.1f} ms")
    print(f"{'%%offload warm':34} {ms('warm')}  max {max(res['warm']) * 1000:.0f} ms")
    print(f"goal warm <= 500 ms: {'met' if med['warm'] <= 0.5 else 'NOT met'}")
    print(f"{'%%offload warm, ' + str(args.mb) + ' MB in + back':34} {ms('warm_large')}")
    if has_ipp:
        print(f"{'ipyparallel %%px':34} {ms('ipp_px')}")
        print(f"{'ipyparallel push+execute+pull':34} {ms('ipp_ppp')}")
        print(f"{'ipyparallel ' + str(args.mb) + ' MB in + back':34} {ms('ipp_large')}")
        print(f"ratio warm / ipyparallel %%px: {med['warm'] / med['ipp_px']:.2f}x; "
              f"/ push+execute+pull: {med['warm'] / med['ipp_ppp']:.2f}x; "
              f"large: {med['warm_large'] / med['ipp_large']:.2f}x  (goal <= 1.0x)")
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
