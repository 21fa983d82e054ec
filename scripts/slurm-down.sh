#!/usr/bin/env bash
# Stop the cluster started by scripts/slurm-up.sh: kills the daemons named in DIR's pid files.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-$here/.venv/bin/python}"; [ -x "$py" ] || py=python3
cd "$here" && exec timeout 60 "$py" tests/slurm_cluster.py down "${1:-/tmp/offload-slurm}"
