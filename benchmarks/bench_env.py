"""Environment preparation: the second job with the same env hash versus the first.

    .venv/bin/python benchmarks/bench_env.py [--rounds 3]

Each round takes a fresh cache directory and calls ``prepare_env`` twice for the same snapshot,
as two jobs of one machine would: the first builds the environment with uv (uv's own package
cache is warm after the first round, as on a developer machine; a fresh VM's first build is
slower, which only makes the ratio smaller), the second must find it ready. A third call runs in
a new process (a second runner), to include everything a job pays to get the environment.
Prints the medians and the ratio second/first (goal: <= 0.10).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from offload.runner.environment import prepare_env  # noqa: E402
from offload.snapshot.deps import EnvSpec, Requirement  # noqa: E402

PACKAGES = ["numpy", "pandas", "scipy", "scikit-learn", "matplotlib", "pyyaml", "requests", "tqdm"]


def spec() -> EnvSpec:
    reqs = []
    for name in PACKAGES:
        v = version(name)
        reqs.append(Requirement(name, v, ["bench"], spec=f"{name}=={v}"))
    py = ".".join(str(v) for v in sys.version_info[:3])
    return EnvSpec(python=py, requirements=reqs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    env = spec()
    first, second, second_proc = [], [], []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="offload-bench-env-") as tmp:
            cache = Path(tmp)
            t0 = time.perf_counter()
            py = prepare_env(env, cache_dir=cache)
            first.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert prepare_env(env, cache_dir=cache) == py
            second.append(time.perf_counter() - t0)
            code = (
                f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); t = time.perf_counter();"
                # as the runner starts: its start-up trimming first (offload/runner/__main__.py)
                "from offload import _startup; _startup.skip_unused_imports(papermill=True);"
                "from offload.runner.environment import prepare_env; from offload.snapshot.deps import EnvSpec;"
                "import json; env = EnvSpec.from_dict(json.loads(sys.argv[1]));"
                f"prepare_env(env, cache_dir={str(cache)!r}); print(time.perf_counter() - t)"
            )

            out = subprocess.run(
                [sys.executable, "-c", code, json.dumps(env.to_dict())],
                capture_output=True,
                text=True,
                check=True,
            )
            second_proc.append(float(out.stdout.strip()))
            print(
                f"round {i + 1}: first {first[-1]:.2f} s, second {second[-1] * 1000:.2f} ms, "
                f"second in a new process {second_proc[-1] * 1000:.1f} ms"
            )
    f, s, sp = (statistics.median(x) for x in (first, second, second_proc))
    print(
        f"\n{len(PACKAGES)} packages ({', '.join(PACKAGES)}) + ipykernel + offload, Python {env.python}"
    )
    print(f"median first build      {f:.2f} s")
    print(f"median second (cached)  {s * 1000:.2f} ms   ratio {s / f:.5f}")
    print(f"median second, new proc {sp * 1000:.1f} ms   ratio {sp / f:.5f}  (goal <= 0.10)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
