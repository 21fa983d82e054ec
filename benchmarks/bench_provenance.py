"""What recording a job's git state costs a submit, beside what the submit already does.

    .venv/bin/python benchmarks/bench_provenance.py [--rounds 5] [--files 2000] [--changed 200] [--untracked 50]

A git repository of ``--files`` small Python modules and a notebook is committed, then
``--changed`` modules are edited and ``--untracked`` new files added. In the same run, alternating,
it times :func:`offload.snapshot.provenance.capture` (git commit, branch, remote, the diff, each
patch through the secret scanner) and :func:`offload.snapshot.bundle.build_bundle` of the same
notebook with every module shipped (what a submit already reads and hashes), and prints the
medians and the ratio capture/bundle.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from offload.snapshot.bundle import build_bundle  # noqa: E402
from offload.snapshot.provenance import capture  # noqa: E402
from tests.notebooks import make_notebook  # noqa: E402

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@e", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@e"}


def make_repo(root: Path, files: int, changed: int, untracked: int) -> list[Path]:
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    mods = []
    for i in range(files):
        p = root / "pkg" / f"m{i}.py"
        p.parent.mkdir(exist_ok=True)
        p.write_text("".join(f"def f{i}_{j}(x):\n    return x * {j} + {i}\n\n" for j in range(20)))
        mods.append(p)
    make_notebook(root / "train.ipynb", ["import pkg.m0\nprint(pkg.m0.f0_1(2))"])
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "base"], cwd=root, check=True, env=GIT_ENV)
    for p in mods[:changed]:
        p.write_text(p.read_text().replace("return x * 3", "return x * 33"))
    for i in range(untracked):
        (root / f"notes{i}.txt").write_text(f"idea {i}: a larger batch\n" * 5)
    return mods


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--changed", type=int, default=200)
    ap.add_argument("--untracked", type=int, default=50)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mods = make_repo(root, args.files, args.changed, args.untracked)
        cap, bun = [], []
        for _ in range(args.rounds):
            t = time.perf_counter()
            rec = capture(root)
            cap.append(time.perf_counter() - t)
            t = time.perf_counter()
            build_bundle(root, root / "train.ipynb", modules=[str(p) for p in mods])
            bun.append(time.perf_counter() - t)
        g = rec["git"]
        c, b = statistics.median(cap), statistics.median(bun)
        print(f"repo: {args.files} modules, {args.changed} edited, {args.untracked} untracked; "
              f"recorded {len(g['files'])} changed files, diff {g['diff_bytes']} bytes, "
              f"{len(g['withheld'])} withheld, {len(g['omitted'])} omitted")
        print(f"capture (git state + diff + secret scan): median {c * 1000:.0f} ms over {args.rounds} rounds")
        print(f"bundle of the same project:             median {b * 1000:.0f} ms")
        print(f"ratio capture/bundle: {c / b:.2f}")


if __name__ == "__main__":
    main()
