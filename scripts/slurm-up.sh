#!/usr/bin/env bash
# Bring up a private single-node SLURM cluster (2 fake GPUs) in DIR; prints `export SLURM_CONF=...`.
# Usage: scripts/slurm-up.sh [DIR]   (default /tmp/offload-slurm); stop it with scripts/slurm-down.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-$here/.venv/bin/python}"; [ -x "$py" ] || py=python3
cd "$here" && exec timeout 120 "$py" tests/slurm_cluster.py up "${1:-/tmp/offload-slurm}"
