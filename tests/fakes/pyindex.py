"""A local Python package index (PEP 503 simple API) built from the test's own virtual environment.

The fake VMs install jupyter-offload's dependencies and the notebooks' packages with uv, from a
package index. CI must not need the internet, and a test must be able to say "this VM downloaded
nothing", so the tests serve a local index: every distribution installed in this interpreter's
environment is offered at the version installed, and its wheel is built on first request by
repacking the installed files (RECORD) with the tags of its ``WHEEL`` file. Editable installs
(jupyter-offload itself) are not offered: the VM gets the client's own wheel from the store.

``requests`` logs every request (path, time) so tests assert on what was downloaded.
"""

from __future__ import annotations

import base64
import hashlib
import html
import importlib.metadata as md
import io
import json
import os
import re
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_EPOCH = (2020, 1, 1, 0, 0, 0)
_SKIP_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _compressed_tag(wheel_text: str) -> str:
    tags = [ln.split(":", 1)[1].strip() for ln in wheel_text.splitlines() if ln.startswith("Tag:")]
    parts: list[list[str]] = [[], [], []]
    for t in tags or ["py3-none-any"]:
        for i, p in enumerate(t.split("-")):
            if p not in parts[i]:
                parts[i].append(p)
    return "-".join(".".join(p) for p in parts)


class _Dist:
    def __init__(self, dist: md.Distribution):
        self.dist = dist
        self.name = dist.metadata["Name"]
        self.version = dist.version
        info = Path(str(dist._path))  # type: ignore[attr-defined]
        self.info_dir = info
        tag = _compressed_tag((info / "WHEEL").read_text()) if (info / "WHEEL").exists() else "py3-none-any"
        self.filename = f"{re.sub(r'[-_.]+', '_', self.name)}-{self.version}-{tag}.whl"
        self._built: bytes | None = None
        self._lock = threading.Lock()

    def wheel(self) -> bytes:
        with self._lock:
            if self._built is None:
                self._built = self._build()
            return self._built

    def _build(self) -> bytes:
        site = self.info_dir.parent
        base = f"{re.sub(r'[-_.]+', '_', self.name)}-{self.version}"
        scripts = {ep.name for ep in self.dist.entry_points if ep.group in ("console_scripts", "gui_scripts")}
        files: list[tuple[str, bytes, int]] = []
        for f in self.dist.files or []:
            rel = f.as_posix()
            if "__pycache__" in rel or rel.endswith((".pyc", ".pyo")):
                continue
            path = Path(os.path.normpath(site / rel))
            if not path.is_file():
                continue
            if rel.startswith(f"{self.info_dir.name}/"):
                if path.name in _SKIP_INFO:
                    continue
                arc = rel
            elif rel.startswith(".."):
                if path.parent == Path(sys.prefix) / "bin":
                    if path.name in scripts:
                        continue  # the installer writes entry-point scripts itself
                    arc = f"{base}.data/scripts/{path.name}"
                else:
                    arc = f"{base}.data/data/{os.path.relpath(path, sys.prefix)}"
            else:
                arc = rel
            files.append((arc, path.read_bytes(), path.stat().st_mode))
        record = []
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for arc, data, mode in files:
                zi = zipfile.ZipInfo(arc, _EPOCH)
                zi.external_attr = (mode & 0o777 | 0o100000) << 16
                zi.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(zi, data)
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                record.append(f"{arc},sha256={digest},{len(data)}")
            rec_name = f"{self.info_dir.name}/RECORD"
            record.append(f"{rec_name},,")
            zf.writestr(zipfile.ZipInfo(rec_name, _EPOCH), "\n".join(record) + "\n")
        return buf.getvalue()


class LocalIndex:
    """``url`` is the simple index (``.../simple``); use as a context manager."""

    def __init__(self) -> None:
        self.dists: dict[str, _Dist] = {}
        for dist in md.distributions():
            try:
                direct = json.loads(dist.read_text("direct_url.json") or "{}")
            except ValueError:
                direct = {}
            if direct.get("dir_info", {}).get("editable") or not dist.metadata["Name"]:
                continue
            self.dists.setdefault(normalize(dist.metadata["Name"]), _Dist(dist))
        self.by_file = {d.filename: d for d in self.dists.values()}
        self.requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/simple"

    def start(self) -> LocalIndex:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalIndex:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def downloads(self, since: int = 0) -> list[str]:
        """Wheel files served since request number ``since``."""
        return [r["path"].rsplit("/", 1)[-1] for r in self.requests[since:]
                if r["path"].startswith("/files/") and r["method"] == "GET"]


def _handler(index: LocalIndex) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        head = False

        def _send(self, code: int, data: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not self.head:
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # uv gave up on this response (it retries or reads the wheel another way)

        def do_HEAD(self) -> None:  # noqa: N802 - uv asks before a range request; no ranges here
            self.head = True
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            index.requests.append({"t": time.time(), "path": path, "method": self.command})
            if path.rstrip("/") == "/simple":
                links = "".join(f'<a href="/simple/{n}/">{n}</a>\n' for n in sorted(index.dists))
                return self._send(200, f"<!DOCTYPE html><html><body>{links}</body></html>".encode(), "text/html")
            m = re.fullmatch(r"/simple/([^/]+)/?", path)
            if m:
                d = index.dists.get(normalize(m[1]))
                if d is None:
                    return self._send(404, b"not found", "text/plain")
                f = html.escape(d.filename)
                body = f'<!DOCTYPE html><html><body><a href="/files/{f}">{f}</a></body></html>'
                return self._send(200, body.encode(), "text/html")
            m = re.fullmatch(r"/files/([^/]+)", path)
            if m and m[1] in index.by_file:
                return self._send(200, index.by_file[m[1]].wheel(), "application/octet-stream")
            return self._send(404, b"not found", "text/plain")

    return H
