#!/usr/bin/env bash
# Browser tests: start a real `jupyter lab` on a free port with the test config, run the Galata
# (Playwright) specs headless in Debian's Chromium against it, stop the server.
# Usage: scripts/ui-test.sh [playwright args, e.g. a spec file or -g "pattern"]
# Exits non-zero when a test fails. Screenshots: ui-tests/test-results/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
BIN=$(dirname "$PY")

scripts/setup-ui.sh >/dev/null

# Test what was built: the installed lab extension must be the one in jupyter_ext/labextension.
INSTALLED=$("$PY" -c 'import sys; print(sys.prefix)')/share/jupyter/labextensions/jupyter-offload/package.json
if [ -f jupyter_ext/labextension/package.json ] && ! cmp -s "$INSTALLED" jupyter_ext/labextension/package.json; then
  echo "ui-test: the installed lab extension is not the one in jupyter_ext/labextension;" >&2
  echo "  reinstall (pip install -e .) or link it: ln -sfn \$PWD/jupyter_ext/labextension ${INSTALLED%/package.json}" >&2
  exit 1
fi

WORK=$(mktemp -d -t offload-ui-XXXXXX)
export OFFLOAD_HOME=$WORK/home
export OFFLOAD_UI_ROOT=$WORK/root
export JUPYTERLAB_GALATA_ROOT_DIR=$OFFLOAD_UI_ROOT
mkdir -p "$OFFLOAD_HOME" "$OFFLOAD_UI_ROOT"
cp -r ui-tests/notebooks/. "$OFFLOAD_UI_ROOT/" 2>/dev/null || true
OFFLOAD_UI_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export OFFLOAD_UI_PORT
export TARGET_URL=http://127.0.0.1:$OFFLOAD_UI_PORT
export JUPYTER_CONFIG_DIR=$WORK/jupyter-config  # keep the user's own config out of the test
mkdir -p "$JUPYTER_CONFIG_DIR"

LOG=ui-tests/jupyter-server.log  # outside test-results/, which Playwright empties when it starts
mkdir -p ui-tests/test-results/screenshots
"$BIN/jupyter" lab --config ui-tests/jupyter_server_test_config.py >"$LOG" 2>&1 &
SERVER_PID=$!
cleanup() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for _ in $(seq 1 120); do
  if curl -sf "$TARGET_URL/api/status" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "ui-test: jupyter lab exited; its log:" >&2; cat "$LOG" >&2; exit 1
  fi
  sleep 0.5
done
curl -sf "$TARGET_URL/api/status" >/dev/null || { echo "ui-test: server did not start" >&2; cat "$LOG" >&2; exit 1; }

rc=0
PATH=$BIN:$PATH CI=true node_modules/.bin/playwright test -c ui-tests/playwright.config.js "$@" || rc=$?
if [ "$rc" != 0 ]; then
  echo "ui-test: failed (rc=$rc); server log: $LOG; report: ui-tests/playwright-report/" >&2
fi
exit "$rc"
