"""Dependency detection on the real-notebook corpus: offload.snapshot.deps vs pipreqs, side by side.

    .venv/bin/python benchmarks/bench_deps.py [--corpus ../shared/deps-corpus] [--venv DIR]

1. Builds (once) a separate virtual environment holding every distribution the corpus's ground
   truth requires, as a user's kernel would have it: ``uv pip install --no-deps`` (detection only
   reads metadata, so nothing needs to import; a distribution without a wheel for this machine or
   not on the package index gets a metadata-only stand-in with the module names the ground truth
   gives, and is listed as such).
2. For every notebook: ``offload.snapshot.deps.snapshot(nb, project_root=<repo copy>, python=<that venv>)``
   and ``pipreqs --scan-notebooks`` on the same folder with the same packages visible.
3. Scores both as the corpus README says: precision and recall of the required set (PEP 503
   names; optional entries not counted), dangerous false positives (an import name used as a
   distribution name, or a local module resolved to a package), local-module recall; and the
   detection time per notebook with a warm cache (a fresh lookup of the environment fingerprint
   each time, as a new CLI process would do).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from offload.snapshot import deps  # noqa: E402
from offload.snapshot.deps.environment import forget_environments  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "deps-corpus"
DEFAULT_VENV = Path(os.environ.get("TMPDIR", "/tmp")) / "offload-deps-bench" / "venv"


def load_corpus(corpus: Path) -> list[dict]:
    rows = list(csv.DictReader(open(corpus / "corpus.tsv"), delimiter="\t"))
    for r in rows:
        r["truth"] = json.loads((corpus / "truth" / f"{r['id']}.json").read_text())
    return rows


def _uv() -> str:
    here = Path(sys.executable).parent / "uv"
    return str(here) if here.exists() else "uv"


def build_env(venv: Path, rows: list[dict]) -> dict:
    """The corpus's required (and optional) distributions, installed without dependencies."""
    py = venv / "bin" / "python"
    marker = venv / ".bench-ready.json"
    if marker.exists():
        return json.loads(marker.read_text())
    wanted: dict[str, list[str]] = {}
    for r in rows:
        t = r["truth"]
        for item in t["items"].values():
            if item.get("class") == "dist":
                wanted.setdefault(canonicalize_name(item["dist"]), item.get("import_names", []))
    if not py.exists():
        subprocess.run([_uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    # Versions a notebook of the corpus needs to run at all: pkg_resources (CLIP) left
    # setuptools in 81.
    pins = {"setuptools": "setuptools<81"}
    names = sorted(pins.get(n, n) for n in wanted)
    base = [_uv(), "pip", "install", "-q", "--python", str(py), "--no-deps"]
    installed, standins = [], []
    if subprocess.run(base + names, capture_output=True).returncode == 0:
        installed = names
    else:  # find which ones have no build here, one by one
        for n in names:
            ok = subprocess.run(base + ["--only-binary", ":all:", n], capture_output=True)
            (installed if ok.returncode == 0 else standins).append(
                canonicalize_name(re.split(r"[<>=!~ ]", n)[0])
            )
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    for n in standins:
        _standin(site, n, wanted[n])
    info = {"installed": installed, "standins": standins}
    marker.write_text(json.dumps(info))
    return info


def _standin(site: Path, dist: str, modules: list[str]) -> None:
    """Metadata-only install record (dist-info + RECORD + the package's __init__): what an
    installer leaves behind, for a distribution that cannot be installed on this machine."""
    info = site / f"{dist.replace('-', '_')}-0.0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.0\n")
    (info / "INSTALLER").write_text("bench-standin\n")
    rec = []
    for m in modules:
        top = m.split(".")[0]
        (site / top).mkdir(exist_ok=True)
        (site / top / "__init__.py").write_text("")
        rec.append(f"{top}/__init__.py,,")
    rec.append(f"{info.name}/METADATA,,")
    (info / "RECORD").write_text("\n".join(rec) + "\n")


# --------------------------------------------------------------------------------------------
# scoring


def dangerous_names(truth: dict) -> set[str]:
    """Names whose appearance as a required distribution is dangerous for this notebook."""
    out = set()
    for item in truth["items"].values():
        names = item.get("import_names", [])
        if item.get("class") == "dist":
            for n in names:
                top = n.split(".")[0]
                if canonicalize_name(top) != canonicalize_name(item["dist"]):
                    out.add(canonicalize_name(top))
        elif item.get("class") == "local":
            for n in names:
                out.add(canonicalize_name(n.split(".")[0]))
    return out - {canonicalize_name(d) for d in truth["required"] + truth["optional"]}


def local_hits(truth: dict, env: deps.EnvSpec | None) -> tuple[int, int]:
    total = len(truth["local"])
    if env is None:
        return 0, total
    hit = 0
    for loc in truth["local"]:
        if loc.startswith("(written"):
            hit += any(m.get("kind") == "written" for m in env.local_modules)
        elif loc.endswith(".py"):
            hit += loc in env.local_files
        else:
            hit += any(f.startswith(loc.rstrip("/") + "/") for f in env.local_files)
    return hit, total


def run_pipreqs(folder: Path, site: str) -> tuple[set[str], float, str]:
    env = dict(os.environ, PYTHONPATH=site)
    t0 = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipreqs.pipreqs",
            "--scan-notebooks",
            "--print",
            "--mode",
            "no-pin",
            "--pypi-server",
            "https://pypi.org/pypi/",
            str(folder),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    dt = time.perf_counter() - t0
    names = set()
    for line in out.stdout.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "INFO", "WARNING", "ERROR")):
            m = re.match(r"^([A-Za-z0-9_.\-]+)", line)
            if m:
                names.add(canonicalize_name(m.group(1)))
    err = "" if out.returncode == 0 else (out.stderr.strip().splitlines() or ["failed"])[-1]
    return names, dt, err


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument("--no-pipreqs", action="store_true")
    ap.add_argument("--json", type=Path, help="write per-notebook results here")
    ap.add_argument("--ids", help="comma-separated subset of notebook ids")
    ap.add_argument("--root", choices=["repo", "default"], default="repo",
                    help="repo: project_root=<repo copy>; default: the root offload finds by itself")
    args = ap.parse_args()

    rows = load_corpus(args.corpus)
    if args.ids:
        keep = set(args.ids.split(","))
        rows = [r for r in rows if r["id"] in keep]
    t0 = time.perf_counter()
    built = build_env(args.venv, load_corpus(args.corpus))
    print(
        f"environment {args.venv}: {len(built['installed'])} distributions installed --no-deps,"
        f" {len(built['standins'])} metadata stand-ins {built['standins']} "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    py = str(args.venv / "bin" / "python")
    site = subprocess.run(
        [py, "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    # cold: the first snapshot probes the environment (metadata of every distribution)
    forget_environments()
    t0 = time.perf_counter()
    deps.load_environment(py)
    cold_probe = time.perf_counter() - t0

    totals = {
        t: {"tp": 0, "fp": 0, "fn": 0, "danger": 0, "lh": 0, "lt": 0, "times": [], "p": [], "r": []}
        for t in ("offload", "pipreqs")
    }
    results = []
    for r in rows:
        truth = r["truth"]
        folder = args.corpus / "notebooks" / r["id"]
        nb = folder / r["notebook_path"]
        req = {canonicalize_name(x) for x in truth["required"]}
        opt = {canonicalize_name(x) for x in truth["optional"]}
        danger = dangerous_names(truth)
        per = {"id": r["id"], "notebook": r["notebook_path"], "required": sorted(req)}

        times = []
        env = None
        for _ in range(3):
            forget_environments()  # as a fresh process: fingerprint + on-disk cache
            t = time.perf_counter()
            root = folder if args.root == "repo" else None
            env = deps.snapshot(nb, project_root=root, python=py)
            times.append(time.perf_counter() - t)
        if args.root == "default":  # score local files by their path in the repository, as the truth names them
            base = Path(env.project_root).resolve()
            env.local_files = [os.path.relpath(base / f, folder.resolve()) for f in env.local_files]
        got = {canonicalize_name(q.name) for q in env.requirements if not q.optional}
        tools = {"offload": (got, statistics.median(times), "")}
        if not args.no_pipreqs:
            pr, dt, err = run_pipreqs(folder, site)
            tools["pipreqs"] = (pr, dt, err)
        for tool, (found, dt, err) in tools.items():
            scored = found - opt  # optional ones are not counted against precision
            neutral = {canonicalize_name(n) for n in truth.get("neutral", [])} | {"ipython"}
            totals[tool].setdefault("fp_neutral", 0)
            totals[tool]["fp_neutral"] += len((scored - req) & neutral)
            tp, fp, fn = len(scored & req), len(scored - req), len(req - scored)
            d = len(found & danger)
            tt = totals[tool]
            tt["tp"] += tp
            tt["fp"] += fp
            tt["fn"] += fn
            tt["danger"] += d
            tt["times"].append(dt)
            tt["p"].append(tp / (tp + fp) if tp + fp else 1.0)
            tt["r"].append(tp / (tp + fn) if tp + fn else 1.0)
            lh, lt = local_hits(truth, env if tool == "offload" else None)
            tt["lh"] += lh
            tt["lt"] += lt
            per[tool] = {
                "fp": sorted(scored - req),
                "fn": sorted(req - scored),
                "dangerous": sorted(found & danger),
                "time_s": round(dt, 4),
                "error": err,
            }
        per["offload"]["unresolved"] = [u["module"] for u in env.unresolved]
        per["offload"]["local_missed"] = lt_missing(truth, env)
        results.append(per)

    print(f"\n{len(rows)} notebooks, corpus {args.corpus}, project root: {args.root}")
    print(f"cold environment probe (first snapshot against this venv): {cold_probe:.2f} s")
    hdr = (
        f"{'tool':<10}{'precision':>10}{'recall':>8}{'macro P':>9}{'macro R':>9}"
        f"{'danger FP':>11}{'local recall':>14}{'median s/nb':>13}{'max s/nb':>10}"
    )
    print(hdr)
    for tool, tt in totals.items():
        if not tt["times"]:
            continue
        p = tt["tp"] / (tt["tp"] + tt["fp"]) if tt["tp"] + tt["fp"] else 1.0
        rc = tt["tp"] / (tt["tp"] + tt["fn"]) if tt["tp"] + tt["fn"] else 1.0
        lr = f"{tt['lh'] / tt['lt']:.3f}" if tool == "offload" and tt["lt"] else "n/a"
        print(
            f"{tool:<10}{p:>10.3f}{rc:>8.3f}{statistics.mean(tt['p']):>9.3f}"
            f"{statistics.mean(tt['r']):>9.3f}{tt['danger']:>11}{lr:>14}"
            f"{statistics.median(tt['times']):>13.3f}{max(tt['times']):>10.3f}"
        )
        tt["precision"], tt["recall"] = p, rc
    for tool, tt in totals.items():
        if tt.get("fp_neutral"):
            fp = tt["fp"] - tt["fp_neutral"]
            print(
                f"{tool}: precision {tt['tp'] / (tt['tp'] + fp):.3f} if kernel-provided names "
                f"(IPython: {tt['fp_neutral']} entries) are not counted"
            )
    if "pipreqs" in totals and totals["pipreqs"]["times"]:
        o, q = totals["offload"], totals["pipreqs"]
        print(
            f"ratios offload/pipreqs: precision {o['precision'] / q['precision']:.3f}, recall "
            f"{o['recall'] / q['recall']:.3f}, median time "
            f"{statistics.median(o['times']) / statistics.median(q['times']):.3f}"
        )
    print("\nper-notebook differences (offload):")
    for per in results:
        o = per["offload"]
        if o["fp"] or o["fn"] or o["dangerous"] or o["local_missed"] or o["unresolved"]:
            print(
                f"  {per['id']} {per['notebook']}: FP {o['fp']} FN {o['fn']} danger "
                f"{o['dangerous']} local missed {o['local_missed']} unresolved {o['unresolved']}"
            )
    if "pipreqs" in totals and totals["pipreqs"]["times"]:
        print("per-notebook differences (pipreqs):")
        for per in results:
            q = per.get("pipreqs") or {}
            if q.get("fp") or q.get("fn") or q.get("dangerous") or q.get("error"):
                print(
                    f"  {per['id']}: FP {q['fp']} FN {q['fn']} danger {q['dangerous']}"
                    + (f" error: {q['error']}" if q["error"] else "")
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def lt_missing(truth: dict, env: deps.EnvSpec) -> list[str]:
    out = []
    for loc in truth["local"]:
        one = {"local": [loc], **{k: v for k, v in truth.items() if k != "local"}}
        if local_hits(one, env)[0] == 0:
            out.append(loc)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
