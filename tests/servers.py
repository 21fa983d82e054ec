"""A real Jupyter server process with the extension, for tests that need one outside the
test's own event loop (a server killed with SIGKILL, a fuzzer with a blocking HTTP client)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

TOKEN = "offload-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, env: dict[str, str], *, token: str = TOKEN, port: int | None = None,
                 timeout: float = 300.0, extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    """A Jupyter server with the extension on a free port; returns once it answers (readiness,
    with a generous deadline for a loaded machine; a server that exits fails at once)."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", f"--ServerApp.root_dir={root}", f"--ServerApp.port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False",
         "--ServerApp.allow_root=True", "--ServerApp.jpserver_extensions={'jupyter_ext': True}", *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            req = urllib.request.Request(f"{base}/offload/api/events", headers={"Authorization": f"token {token}"})
            urllib.request.urlopen(req, timeout=30).read()
            return proc, base
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"jupyter server exited with {proc.returncode} before answering") from None
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                raise AssertionError(f"jupyter server did not answer within {timeout:.0f} s") from None
            time.sleep(0.2)
