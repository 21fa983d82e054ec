"""Core spine benchmarks (issue 2), measured as ratios side by side in one run.

1. ``offload run`` of a 1-cell notebook on the local backend vs plain ``papermill`` of the same
   notebook: both as a user types them (a fresh CLI process each), alternating, median ratio.
2. Staging a 1,000-file project: the first submission vs the second with one file changed
   (wall time and what was uploaded).

Usage: python benchmarks/bench_run.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

BIN = Path(sys.executable).parent


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t


def bench_run_vs_papermill(runs: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-run-"))
    nb = new_notebook(cells=[new_code_cell("print(sum(range(1000)))")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = work / "one.ipynb"
    nbformat.write(nb, path)
    env = dict(os.environ, OFFLOAD_HOME=str(work / "home"))
    offload_cmd = [str(BIN / "offload"), "run", "-q", str(path)]
    papermill_cmd = [str(BIN / "papermill"), "--no-progress-bar", "-k", "python3", str(path), str(work / "out.ipynb")]
    _timed(offload_cmd, env)  # warm the OS caches for both, equally
    _timed(papermill_cmd, env)
    ours, theirs = [], []
    for _ in range(runs):
        ours.append(_timed(offload_cmd, env))
        theirs.append(_timed(papermill_cmd, env))
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return {
        "offload_median_s": statistics.median(ours),
        "papermill_median_s": statistics.median(theirs),
        "median_ratio": statistics.median(ratios),
    }


def bench_staging(n_files: int = 1000) -> dict:
    from offload.snapshot.bundle import build_bundle, stage
    from offload.store import Store

    work = Path(tempfile.mkdtemp(prefix="bench-stage-"))
    proj = work / "proj"
    (proj / "data").mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), proj / "nb.ipynb")
    for i in range(n_files - 1):
        (proj / "data" / f"f{i:04d}.txt").write_bytes(os.urandom(2048))
    store = Store((work / "store").as_uri())

    def once() -> tuple[float, object]:
        t = time.perf_counter()
        report = stage(build_bundle(proj, proj / "nb.ipynb", data=["data"]), store)
        return time.perf_counter() - t, report

    first_s, first = once()
    (proj / "data" / "f0500.txt").write_bytes(os.urandom(2048))
    second_s, second = once()
    return {
        "files": n_files, "first_s": first_s, "first_uploaded": first.uploaded_blobs,
        "second_s": second_s, "second_uploaded": second.uploaded_blobs,
        "second_uploaded_bytes": second.uploaded_bytes, "ratio": second_s / first_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    r = bench_run_vs_papermill(args.runs)
    print(f"offload run vs papermill, 1-cell notebook, {args.runs} alternating runs:")
    print(f"  offload median {r['offload_median_s']:.2f} s, papermill median {r['papermill_median_s']:.2f} s, "
          f"median ratio {r['median_ratio']:.2f}x (goal <= 1.15x)")
    s = bench_staging()
    print(f"staging a {s['files']}-file project: first {s['first_s']:.2f} s ({s['first_uploaded']} blobs), "
          f"second with one file changed {s['second_s']:.2f} s ({s['second_uploaded']} blob, "
          f"{s['second_uploaded_bytes']} bytes), ratio {s['ratio']:.2f}")


if __name__ == "__main__":
    main()
