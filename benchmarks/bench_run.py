"""Core spine benchmarks (issue 2), measured as ratios side by side in one run.

1. ``offload run`` of a 1-cell notebook on the local backend vs plain ``papermill`` of the same
   notebook: both as a user types them (a fresh CLI process each), alternating, median ratio.
2. Staging a 1,000-file project: the first submission vs the second with one file changed
   (wall time and what was uploaded).
3. Long notebooks (issue 14): ``offload run`` vs plain ``papermill`` of a 300-cell notebook
   (alternating, median ratio), and a 2,000-cell one, with the runner's live-save counts.
4. Client start: the import path of ``offload run``, ``%load_ext offload`` and the server
   extension, each in a fresh process (median of 5), and whether it built nbformat's IRI grammar.

Usage: python benchmarks/bench_run.py [--runs 7] [--long-runs 3] [--long 300 2000] [--papermill-timeout 300]
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

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

BIN = Path(sys.executable).parent


def _timed(cmd: list[str], env: dict[str, str], timeout: float | None = None) -> float:
    """Seconds the command took; ``inf`` when it had not finished after ``timeout``."""
    t = time.perf_counter()
    try:
        subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return float("inf")
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


def _long_notebook(path: Path, n: int) -> Path:
    cells = [new_code_cell(f"x{i} = {i} * 2\nprint('cell', {i}, x{i})") for i in range(n)]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _saves(env: dict[str, str]) -> dict:
    """The live-save counts of the newest job (``status.output_saves``), and its output size."""
    out = subprocess.run([str(BIN / "offload"), "ls", "-n", "1", "--json"], check=True, capture_output=True,
                         text=True, env=env).stdout
    job_id = json.loads(out)[0]["id"]
    store = Path(env["OFFLOAD_HOME"]) / "store" / "jobs" / job_id
    status = json.loads((store / "status.json").read_text())
    return {**(status.get("output_saves") or {}), "final_bytes": (store / "output.ipynb").stat().st_size}


def bench_long(runs: int, sizes: tuple[int, ...], papermill_timeout: float) -> dict:
    """Plain papermill saves the whole notebook at every cell start and end: on 2,000 cells that is
    quadratic, so its run is cut at ``papermill_timeout`` (reported as not finished)."""
    work = Path(tempfile.mkdtemp(prefix="bench-long-"))
    env = dict(os.environ, OFFLOAD_HOME=str(work / "home"))
    out: dict = {}
    for n in sizes:
        reps = runs if n <= 500 else 1
        path = _long_notebook(work / f"long{n}.ipynb", n)
        offload_cmd = [str(BIN / "offload"), "run", "-q", str(path)]
        papermill_cmd = [str(BIN / "papermill"), "--no-progress-bar", "-k", "python3", str(path), str(work / "out.ipynb")]
        ours, theirs = [], []
        for _ in range(reps):
            ours.append(_timed(offload_cmd, env))
            theirs.append(_timed(papermill_cmd, env, timeout=papermill_timeout))
        out[n] = {"offload_s": statistics.median(ours), "papermill_s": statistics.median(theirs),
                  "ratio": statistics.median([a / b for a, b in zip(ours, theirs, strict=True)]), **_saves(env)}
    return out


IMPORTS = {
    "offload run (the CLI)": "from offload.cli import build_parser; build_parser('run')",
    "%load_ext offload (the magic)": "import offload.cells.magic",
    "the server extension, after jupyter_server": "import jupyter_server.serverapp, time; t = time.perf_counter(); "
    "import jupyter_ext.app; print(time.perf_counter() - t)",
    "plain `import nbformat` (for scale)": "import nbformat",
}


def bench_imports(runs: int) -> dict[str, tuple[float, bool]]:
    """Median seconds of each import path in a fresh process (the server extension: its own share
    after jupyter_server), and whether nbformat's IRI grammar (rfc3987_syntax) was built."""
    out = {}
    for name, code in IMPORTS.items():
        times, grammar = [], False
        for _ in range(runs):
            probe = code + "; import sys; print('rfc3987_syntax' in sys.modules and sys.modules['rfc3987_syntax'] is not None)"
            t = time.perf_counter()
            lines = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
            times.append(float(lines[0]) if len(lines) == 2 else time.perf_counter() - t)
            grammar = lines[-1] == "True"
        out[name] = (statistics.median(times), grammar)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--long-runs", type=int, default=3)
    ap.add_argument("--long", type=int, nargs="*", default=[300, 2000], help="cell counts of the long notebooks")
    ap.add_argument("--papermill-timeout", type=float, default=300.0)
    args = ap.parse_args()
    for name, (secs, grammar) in bench_imports(5).items():
        print(f"import, {name}: median {secs:.2f} s, IRI grammar built: {'yes' if grammar else 'no'}")
    if args.long:
        for n, r in bench_long(args.long_runs, tuple(args.long), args.papermill_timeout).items():
            theirs = f"{r['papermill_s']:.2f} s" if r["papermill_s"] != float("inf") else \
                f"not finished after {args.papermill_timeout:.0f} s"
            print(f"{n}-cell notebook: offload run {r['offload_s']:.2f} s vs papermill {theirs}, "
                  f"ratio {r['ratio']:.2f}x (goal <= 1.2x at 300 cells); live saves {r.get('writes')} objects, "
                  f"{r.get('bytes', 0) / 1024:.0f} KiB, final notebook {r['final_bytes'] / 1024:.0f} KiB")
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
