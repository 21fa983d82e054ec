"""The content secret scanner: what it costs a bundle, and how often it is wrong on ordinary files.

    .venv/bin/python benchmarks/bench_secrets.py [--rounds 3] [--mib 64]

Cost: a project of generated data (a CSV of floats, a notebook with base64 image outputs, Python
modules taken from installed packages), ``--mib`` MiB in all, is bundled with the scanner and,
in the same run, hashed alone (what building a bundle read before the scanner); prints the medians
and the ratio scan/hash-only. False positives: every file of the dependency corpus
(``../shared/deps-corpus`` beside the repo, when present), of ``examples/`` and of some large
installed packages (pandas, sklearn, matplotlib, jupyterlab, numpy, scipy) is scanned as it would
be shipped; prints how many files were flagged, and which.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nbformat  # noqa: E402
from nbformat import v4  # noqa: E402

from offload.snapshot._secrets import ContentScan  # noqa: E402
from offload.snapshot.bundle import build_bundle  # noqa: E402

PACKAGES = ["pandas", "sklearn", "matplotlib", "jupyterlab", "numpy", "scipy"]


def make_project(root: Path, mib: int) -> None:
    data = root / "data"
    data.mkdir(parents=True)
    rows = int(mib * (1 << 20) * 0.6 / 40)
    with open(data / "table.csv", "w") as fh:
        for i in range(rows):
            fh.write(f"{i},{i * 0.37:.6f},{i * 1.91:.6f},{hashlib.md5(str(i).encode()).hexdigest()[:8]}\n")
    png = base64.b64encode(os.urandom(int(mib * (1 << 20) * 0.3))).decode()
    nb = v4.new_notebook(cells=[v4.new_code_cell("plot()", outputs=[v4.new_output("display_data", data={"image/png": png})])])
    nbformat.write(nb, data / "report.ipynb")
    src = Path(importlib.util.find_spec("pandas").origin).parent / "core"
    budget = int(mib * (1 << 20) * 0.1)
    for p in sorted(src.rglob("*.py")):
        if budget <= 0:
            break
        text = p.read_bytes()
        (data / p.name).write_bytes(text)
        budget -= len(text)
    nbformat.write(v4.new_notebook(cells=[v4.new_code_cell("print(1)")]), root / "main.ipynb")


def hash_only(root: Path) -> None:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)


def cost(rounds: int, mib: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj"
        make_project(root, mib)
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        plain, scanned = [], []
        for _ in range(rounds):
            t = time.perf_counter()
            hash_only(root)
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            bundle = build_bundle(root, root / "main.ipynb", data=["data"])
            scanned.append(time.perf_counter() - t)
        assert not bundle.excluded, bundle.excluded
        a, b = statistics.median(plain), statistics.median(scanned)
        print(f"project {size / (1 << 20):.0f} MiB: hash only {a:.2f} s, bundle with scan {b:.2f} s, "
              f"ratio {b / a:.2f} ({size / (1 << 20) / b:.0f} MiB/s scanned)")


def false_positives() -> None:
    roots = [ROOT.parent / "shared" / "deps-corpus", ROOT / "examples"]
    roots = [r for r in roots if r.is_dir()]
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec and spec.origin:
            roots.append(Path(spec.origin).parent)
    for group in (roots[:-len(PACKAGES)] or roots[:0], roots[-len(PACKAGES):]):
        files = flagged = 0
        hits = []
        t = time.perf_counter()
        for base in group:
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = [d for d in dirnames if d not in ("__pycache__", ".git", "node_modules")]
                for f in filenames:
                    p = Path(dirpath) / f
                    if not p.is_file():
                        continue
                    scan = ContentScan(str(p.relative_to(base)))
                    with open(p, "rb") as fh:
                        while chunk := fh.read(1 << 20):
                            scan.feed(chunk)
                    files += 1
                    if (found := scan.close()) is not None:
                        flagged += 1
                        hits.append(f"{p}: {found.why()}")
        names = ", ".join(b.name for b in group) or "(none)"
        print(f"{names}: {flagged} of {files} files flagged ({time.perf_counter() - t:.1f} s)")
        for h in hits:
            print(f"  {h}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mib", type=int, default=64)
    args = ap.parse_args()
    cost(args.rounds, args.mib)
    false_positives()


if __name__ == "__main__":
    main()
