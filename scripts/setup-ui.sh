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
if [ -x "$(dirname "$PY")/jlpm" ]; then
  JLPM=("$(dirname "$PY")/jlpm")
elif "$PY" -c "import jupyter_builder" 2>/dev/null; then
  JLPM=("$PY" -c "import sys; from jupyter_builder.jlpm import main; sys.argv[0] = 'jlpm'; main()")
else
  JLPM=(jlpm)
fi
# node_modules is current when our stamp is newer than the lockfile and package.json.
STAMP=node_modules/.offload-setup-ui
if [ ! -f "$STAMP" ] || [ yarn.lock -nt "$STAMP" ] || [ package.json -nt "$STAMP" ]; then
  CI=true "${JLPM[@]}" install --immutable >/dev/null
  touch "$STAMP"
fi
echo "setup-ui: chromium $(chromium --version 2>/dev/null | awk '{print $2}'), node $(node --version), node_modules ok"
