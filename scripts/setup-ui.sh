#!/usr/bin/env bash
# Services the UI tests need: Debian's Chromium (Playwright cannot download its own browsers
# here) and the node packages of the lab extension (from the committed yarn.lock).
# Idempotent and non-interactive; quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

if ! command -v node >/dev/null 2>&1; then
  echo "setup-ui: node (>=20) is needed to build the lab extension: apt-get install nodejs" >&2
  exit 1
fi

PY=${PYTHON:-.venv/bin/python}
JLPM=("$PY" -m jupyter_builder.jlpm)
"$PY" -c "import jupyter_builder" 2>/dev/null || JLPM=(jlpm)
# node_modules is current when yarn's install state is newer than the lockfile.
if [ ! -f node_modules/.yarn-state.yml ] || [ yarn.lock -nt node_modules/.yarn-state.yml ] || [ package.json -nt node_modules/.yarn-state.yml ]; then
  CI=true "${JLPM[@]}" install --immutable >/dev/null
fi
echo "setup-ui: chromium $(chromium --version 2>/dev/null | awk '{print $2}'), node $(node --version), node_modules ok"
