"""Round trip of a trivial ``%%offload`` cell on the local backend vs the same cell run locally.

Measured side by side in one kernel: local execution, a cold cell job (fresh runner + kernel,
``--cold``), the first warm cell (starts the session) and warm cells after it. Goal: warm <= 0.5 s.

    .venv/bin/python benchmarks/bench_magic.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--cold-repeat", type=int, default=2)
    args = ap.parse_args()

    from jupyter_client.manager import start_new_kernel

    home = tempfile.mkdtemp(prefix="bench-magic-")
    env = dict(os.environ, OFFLOAD_HOME=home)
    env.pop("OFFLOAD_STORE", None)
    km, kc = start_new_kernel(kernel_name="python3", cwd=home, env=env)

    def run(code: str) -> float:
        t0 = time.perf_counter()
        reply = kc.execute_interactive(code, timeout=600, output_hook=lambda msg: None)
        dt = time.perf_counter() - t0
        if reply["content"]["status"] != "ok":
            raise SystemExit(f"cell failed: {reply['content'].get('ename')}: {reply['content'].get('evalue')}")
        return dt

    try:
        run("%load_ext offload\nx = 20")
        cell = "y = x + 1"
        local = [run(cell) for _ in range(args.repeat)]
        cold = [run(f"%%offload --cold\n{cell}") for _ in range(args.cold_repeat)]
        first_warm = run(f"%%offload\n{cell}")
        warm = [run(f"%%offload\n{cell}") for _ in range(args.repeat)]
        run("%offload stop")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)

    med_local, med_cold, med_warm = statistics.median(local), statistics.median(cold), statistics.median(warm)
    print(f"{'local cell':28} {med_local * 1000:9.1f} ms  (median of {len(local)})")
    print(f"{'%%offload --cold':28} {med_cold * 1000:9.1f} ms  (median of {len(cold)})  {med_cold / med_local:8.0f}x local")
    print(f"{'%%offload first (session)':28} {first_warm * 1000:9.1f} ms")
    print(f"{'%%offload warm':28} {med_warm * 1000:9.1f} ms  (median of {len(warm)})  {med_warm / med_local:8.0f}x local, "
          f"{med_cold / med_warm:.0f}x faster than cold")
    print(f"goal warm <= 500 ms: {'met' if med_warm <= 0.5 else 'NOT met'} (max warm {max(warm) * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
