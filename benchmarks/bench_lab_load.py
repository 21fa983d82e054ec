"""Does jupyter-offload slow JupyterLab's start? Page load to idle, with and without it.

Starts a real ``jupyter lab`` (the UI-test config: no token, no news) twice: once as installed,
once with the server extension off and the lab extension disabled through page_config.json.
Loads the page in headless Chromium several times each, interleaved so machine noise hits both
sides alike, and prints the medians and their ratio.

    .venv/bin/python benchmarks/bench_lab_load.py [--runs 5]
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

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_lab(work: Path, *, with_extension: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ)
    cfg = work / ("cfg-on" if with_extension else "cfg-off")
    (cfg / "labconfig").mkdir(parents=True, exist_ok=True)
    if not with_extension:
        (cfg / "labconfig" / "page_config.json").write_text(json.dumps({"disabledExtensions": {"jupyter-offload": True}}))
        env["OFFLOAD_UI_DISABLE_EXTENSION"] = "1"
    root = work / "root"
    root.mkdir(exist_ok=True)
    env.update(JUPYTER_CONFIG_DIR=str(cfg), OFFLOAD_UI_PORT=str(port), OFFLOAD_UI_ROOT=str(root),
               OFFLOAD_HOME=str(work / "home"), JUPYTERLAB_GALATA_ROOT_DIR=str(root))
    log = open(work / f"lab-{port}.log", "wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter"), "lab", "--config", str(REPO / "ui-tests" / "jupyter_server_test_config.py")],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"jupyter lab did not start; see {log.name}")


def loads(url: str, runs: int) -> list[int]:
    out = subprocess.run(["node", str(REPO / "benchmarks" / "lab_load.js"), f"{url}/lab", str(runs)],
                         capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="page loads per side (after one warm-up each)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="offload-bench-") as tmp:
        work = Path(tmp)
        on, url_on = start_lab(work, with_extension=True)
        off, url_off = start_lab(work, with_extension=False)
        try:
            loads(url_on, 1), loads(url_off, 1)  # warm caches on both sides
            with_ext: list[int] = []
            without: list[int] = []
            for _ in range(args.runs):
                with_ext += loads(url_on, 1)
                without += loads(url_off, 1)
        finally:
            for p in (on, off):
                p.terminate()
                p.wait(timeout=30)
    m_on, m_off = statistics.median(with_ext), statistics.median(without)
    print(f"page load to idle, median of {args.runs} (ms): with jupyter-offload {m_on:.0f} {with_ext}, "
          f"without {m_off:.0f} {without}")
    print(f"ratio with/without: {m_on / m_off:.3f}")


if __name__ == "__main__":
    main()
