#!/usr/bin/env bash
# Install what the SLURM tests need: Debian's slurmctld, slurmd, slurm-client and munge.
# Idempotent and non-interactive; returns at once when everything is already installed.
# The tests bring a private single-node cluster up and down themselves (tests/slurm_cluster.py).
set -euo pipefail

need=()
for bin in sbatch squeue scontrol scancel slurmctld slurmd munged; do
    command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
done
if [ ${#need[@]} -eq 0 ]; then
    echo "setup-slurm: already installed (slurm $(dpkg-query -W -f='${Version}' slurm-client 2>/dev/null || echo ?))"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-slurm: missing ${need[*]} and no apt-get here; install SLURM and munge by hand" >&2
    exit 0  # the tests then skip with a visible reason
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "setup-slurm: missing ${need[*]}; not root and no passwordless sudo, skipping install" >&2
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
# Only refresh package lists when they are missing (fresh container) or the install fails.
if ! $SUDO "${APT[@]}" install --no-install-recommends slurmctld slurmd slurm-client munge; then
    $SUDO "${APT[@]}" update
    $SUDO "${APT[@]}" install --no-install-recommends slurmctld slurmd slurm-client munge
fi
echo "setup-slurm: installed (slurm $(dpkg-query -W -f='${Version}' slurm-client))"
