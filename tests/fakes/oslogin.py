"""A fake Cloud OS Login API (``oslogin.googleapis.com`` v1) for the OS Login SSH path: the REST
wire shape the real ``google-cloud-os-login`` client speaks (``POST /v1/users/{user}:importSshPublicKey
?projectId=P`` with an ``SshPublicKey`` JSON body; a ``LoginProfile`` back, camelCase), and Google's
error body for a refusal. Every request is recorded for the tests to check. It also plays Google's
OAuth2 token endpoint (``POST /token``, for user credentials' refresh) and the OpenID userinfo
endpoint (``GET /v1/userinfo``: the account's email for a bearer token).

What a real VM with ``enable-oslogin=TRUE`` does (its sshd asks OS Login for the user's keys) is
played by appending each imported key to ``authorized_keys``: the real OpenSSH server on loopback
then accepts that key, and only once it was registered.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit


class FakeOsLogin:
    def __init__(self, *, posix_user: str, authorized_keys: Path | None = None):
        self.posix_user = posix_user
        self.authorized_keys = authorized_keys
        self.requests: list[dict] = []
        self.denied: set[str] = set()  # users without roles/compute.osLogin: 403
        self.keys: dict[str, dict[str, dict]] = {}  # user -> fingerprint -> SshPublicKey
        self.token_email = "ada@example.com"  # whose refresh token /token honours
        self.tokens: dict[str, str] = {}  # bearer token -> account email
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeOsLogin:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def profile(self, user: str, project: str | None) -> dict:
        account = {"primary": True, "username": self.posix_user, "uid": "1001", "gid": "1001",
                   "homeDirectory": f"/home/{self.posix_user}", "operatingSystemType": "LINUX",
                   "name": f"users/{user}/projects/{project}" if project else f"users/{user}"}
        if project:
            account["accountId"] = project
        return {"name": f"users/{user}", "posixAccounts": [account], "sshPublicKeys": self.keys.get(user, {})}


def _handler(fake: FakeOsLogin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, code: int, status: str, message: str) -> None:
            self._send(code, {"error": {"code": code, "message": message, "status": status}})

        def do_GET(self) -> None:  # the OpenID userinfo endpoint: who the bearer token belongs to
            fake.requests.append({"method": "GET", "path": urlsplit(self.path).path, "headers": dict(self.headers)})
            if urlsplit(self.path).path != "/v1/userinfo":
                return self._error(404, "NOT_FOUND", f"no such method {self.path}")
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            if token not in fake.tokens:
                return self._error(401, "UNAUTHENTICATED", "Request is missing required authentication credential")
            self._send(200, {"sub": "1234", "email": fake.tokens[token], "email_verified": True})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/token":  # OAuth2 refresh: the user's credentials get a bearer token
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
                fake.requests.append({"method": "POST", "path": "/token", "body": form, "headers": dict(self.headers)})
                token = f"tok-{len(fake.tokens) + 1}"
                fake.tokens[token] = fake.token_email
                return self._send(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw or b"{}")
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            fake.requests.append({"method": "POST", "path": unquote(url.path), "query": query, "body": body,
                                  "headers": dict(self.headers)})
            m = re.fullmatch(r"/v1/users/([^/:]+):importSshPublicKey", unquote(url.path))
            if not m:
                return self._error(404, "NOT_FOUND", f"no such method {url.path}")
            user = m.group(1)
            if user in fake.denied:
                return self._error(403, "PERMISSION_DENIED",
                                   f"The caller does not have permission to import keys for {user}")
            key = (body.get("key") or "").strip()
            parts = key.split()
            try:
                blob = base64.b64decode(parts[1], validate=True) if len(parts) >= 2 else b""
            except ValueError:
                blob = b""
            if not blob:
                return self._error(400, "INVALID_ARGUMENT", "Invalid SSH key")
            fp = hashlib.sha256(blob).hexdigest()
            entry = {"key": key, "fingerprint": fp, "name": f"users/{user}/sshPublicKeys/{fp}"}
            if body.get("expirationTimeUsec"):
                entry["expirationTimeUsec"] = body["expirationTimeUsec"]
            fresh = fp not in fake.keys.get(user, {})
            fake.keys.setdefault(user, {})[fp] = entry
            if fresh and fake.authorized_keys is not None:
                with open(fake.authorized_keys, "a") as f:
                    f.write(key + "\n")
            self._send(200, {"loginProfile": fake.profile(user, query.get("projectId"))})

    return Handler
