"""A fault-injecting HTTP proxy in front of the GCS emulator: real requests from the real gcsfs
client, answered by the emulator, except those the test says to fail.

``refuse_writes``: every write (POST, PUT, PATCH, DELETE) gets 403, as from a bucket whose
permissions were taken away; reads still pass. ``storm_every``: every n-th request, reads and
writes alike, gets 503 (a GCS 503 storm). ``refused_bodies`` keeps what the refused writes
carried, so a test can wait for a write it expects instead of sleeping.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host",
        "content-length"}
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}


class FaultProxy:
    def __init__(self, upstream: str):
        self.upstream = urlsplit(upstream)
        self.refuse_writes = False
        self.storm_every = 0
        self.requests = 0
        self.failed = 0  # 503s sent
        self.refused_bodies: list[bytes] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.proxy = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="gcs-fault-proxy", daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def verdict(self, method: str, body: bytes) -> int | None:
        """The status to fail this request with, or None to pass it on."""
        with self.lock:
            self.requests += 1
            if self.refuse_writes and method in _WRITES:
                self.refused_bodies.append(body)
                return 403
            if self.storm_every and self.requests % self.storm_every == 0:
                self.failed += 1
                return 503
        return None

    def refused(self, needle: bytes) -> bool:
        with self.lock:
            return any(needle in b for b in self.refused_bodies)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _relay(self) -> None:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        body = self._body()
        status = proxy.verdict(self.command, body)
        if status is not None:
            reason = "Forbidden: the bucket is read-only (fault injected)" if status == 403 else "Service Unavailable"
            payload = json.dumps({"error": {"code": status, "message": reason, "errors": [{"message": reason}]}}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        up = proxy.upstream
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            conn.request(self.command, self.path, body=body if body or self.command in _WRITES else None,
                         headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        origin = f"{up.scheme}://{up.netloc}"
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP:
                self.send_header(k, v.replace(origin, proxy.url))  # a resumable upload's Location
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _relay
