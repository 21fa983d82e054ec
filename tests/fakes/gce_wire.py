"""The fake Compute Engine's wire: the REST handler the real client talks to, and each fake VM's
loopback metadata server. The behaviour behind them is in :mod:`tests.fakes.gce`."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

PREFIX = "/compute/v1/projects/"


class HttpError(Exception):
    def __init__(self, code: int, message: str, reason: str, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.message, self.reason, self.extra = code, message, reason, extra or {}

    def body(self) -> dict[str, Any]:
        err = {"message": self.message, "domain": "global", "reason": self.reason}
        return {"error": {"code": self.code, "message": self.message, "errors": [err], **self.extra}}


class MetadataServer:
    """Loopback GCE metadata server for one VM (startup script, token, identity, preemption)."""

    def __init__(self, vm: Any):
        self.vm = vm
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _make_metadata_handler(vm))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()


def _make_metadata_handler(vm: Any) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        def _send(self, code: int, body: str | dict[str, Any], ctype: str = "application/text") -> None:
            data = (json.dumps(body) if isinstance(body, dict) else body).encode()
            self.send_response(code)
            self.send_header("Metadata-Flavor", "Google")
            self.send_header("Content-Type", "application/json" if isinstance(body, dict) else ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            u = urlparse(self.path)
            q = parse_qs(u.query)
            if u.path in ("/", ""):
                return self._send(200, "computeMetadata/\n")
            if self.headers.get("Metadata-Flavor") != "Google":
                return self._send(403, "Missing required header: Metadata-Flavor")
            p = u.path.removeprefix("/computeMetadata/v1/").rstrip("/")
            inst, fake = vm.inst, vm.fake
            attrs = vm.attributes()
            recursive = q.get("recursive", [""])[0] == "true"
            sa = {"email": "offload-vm@fake-proj.iam.gserviceaccount.com", "aliases": ["default"],
                  "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}
            if p == "instance/attributes":
                return self._send(200, attrs) if recursive else self._send(200, "".join(f"{k}\n" for k in attrs))
            if p.startswith("instance/attributes/"):
                key = p.split("/", 2)[2]
                return self._send(200, attrs[key]) if key in attrs else self._send(404, "not found")
            if p == "instance/preempted":
                if q.get("wait_for_change", [""])[0] == "true" and not vm.preempted.is_set():
                    vm.preempted.wait(float(q.get("timeout_sec", ["60"])[0]))
                return self._send(200, "TRUE" if vm.preempted.is_set() else "FALSE")
            simple = {
                "instance/name": inst["name"],
                "instance/id": inst["id"],
                "instance/hostname": f"{inst['name']}.c.{fake.project}.internal",
                "instance/zone": f"projects/123456789/zones/{inst['_zone']}",
                "instance/machine-type": f"projects/123456789/machineTypes/{inst['machineType'].rsplit('/', 1)[-1]}",
                "project/project-id": fake.project,
                "project/numeric-project-id": "123456789",
                "instance/service-accounts/default/email": sa["email"],
                "instance/service-accounts/default/scopes": "\n".join(sa["scopes"]),
            }
            if p in simple:
                return self._send(200, simple[p])
            if p == "instance/service-accounts/default" and recursive:
                return self._send(200, sa)
            if p == "instance/service-accounts" and recursive:
                return self._send(200, {"default": sa, sa["email"]: sa})
            if p == "instance/service-accounts/default/token":
                return self._send(200, {"access_token": f"vm-token-{inst['name']}", "expires_in": 3599,
                                        "token_type": "Bearer"})
            return self._send(404, f"not found: {p}")

    return H


def make_handler(fake: Any) -> type[BaseHTTPRequestHandler]:
    rx_zone = re.compile(rf"^{PREFIX}(?P<p>[^/]+)/zones/(?P<z>[^/]+)/(?P<rest>.*)$")
    rx_agg = re.compile(rf"^{PREFIX}(?P<p>[^/]+)/aggregated/instances$")

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            u = urlparse(self.path)
            q = {k: v[-1] for k, v in parse_qs(u.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            fake.requests.append({"t": time.time(), "method": method, "path": u.path, "query": q, "body": body,
                                  "authorization": self.headers.get("Authorization")})
            try:
                self._send(200, self._route(method, u.path, q, body))
            except HttpError as e:
                self._send(e.code, e.body())

        def _route(self, method: str, path: str, q: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
            m = rx_agg.match(path)
            if m and method == "GET":
                items: dict[str, Any] = {}
                with fake.lock:
                    for inst in fake.instances.values():
                        if fake.matches(inst, q.get("filter")):
                            items.setdefault(f"zones/{inst['_zone']}", {"instances": []})["instances"].append(
                                fake.inst_json(inst))
                return {"kind": "compute#instanceAggregatedList", "id": f"projects/{fake.project}/aggregated/instances",
                        "items": items, "selfLink": f"{fake.url}{path}"}
            m = rx_zone.match(path)
            if not m:
                raise HttpError(404, f"no such path {path}", "notFound")
            if m["p"] != fake.project:
                raise HttpError(404, f"The resource 'projects/{m['p']}' was not found", "notFound")
            zone, rest = m["z"], m["rest"]
            if rest == "instances" and method == "POST":
                return fake.insert(zone, body).to_json(fake)
            if rest == "instances" and method == "GET":
                with fake.lock:
                    found = [fake.inst_json(i) for (z, _n), i in fake.instances.items()
                             if z == zone and fake.matches(i, q.get("filter"))]
                return {"kind": "compute#instanceList", "items": found, "id": f"projects/{fake.project}/zones/{zone}/instances"}
            mi = re.fullmatch(r"instances/([^/]+)(/serialPort)?", rest)
            if mi:
                name = mi[1]
                if method == "DELETE" and not mi[2]:
                    return fake.delete(zone, name).to_json(fake)
                with fake.lock:
                    inst = fake.instances.get((zone, name))
                    vm = fake.vms.get((zone, name))
                if inst is None:
                    raise HttpError(404, f"The resource 'projects/{fake.project}/zones/{zone}/instances/{name}' "
                                    "was not found", "notFound")
                if mi[2]:
                    text = vm.serial_output() if vm else ""
                    start = int(q.get("start", "0") or 0)
                    return {"kind": "compute#serialPortOutput", "contents": text[start:], "start": str(start),
                            "next": str(len(text)), "selfLink": f"{fake.url}{path}"}
                return fake.inst_json(inst)
            mo = re.fullmatch(r"operations/([^/]+)(/wait)?", rest)
            if mo:
                op = fake.operations.get(mo[1])
                if op is None:
                    raise HttpError(404, f"The resource 'operations/{mo[1]}' was not found", "notFound")
                if mo[2]:
                    op.done.wait(30)  # real GCE blocks up to ~2 min, then answers RUNNING
                return op.to_json(fake)
            if rest == "operations" and method == "GET":
                flt = q.get("filter", "")
                ops = [o.to_json(fake) for o in fake.operations.values() if o.zone == zone]
                mt = re.search(r'operationType\s*=\s*"?([\w.]+)"?', flt)
                if mt:
                    ops = [o for o in ops if o["operationType"] == mt[1]]
                mt = re.search(r'targetLink\s*=\s*"?([^"\s)]+)"?', flt)
                if mt:
                    ops = [o for o in ops if o["targetLink"].endswith(mt[1].split("/compute/v1/", 1)[-1])]
                return {"kind": "compute#operationList", "items": ops}
            if rest == "acceleratorTypes" and method == "GET":
                return {"kind": "compute#acceleratorTypeList",
                        "items": [{"kind": "compute#acceleratorType", "name": a, "zone": fake.zone_url(zone),
                                   "description": a, "maximumCardsPerInstance": 8}
                                  for a in sorted(fake.accelerators.get(zone, ()))]}
            mm = re.fullmatch(r"machineTypes/([^/]+)", rest)
            if mm and method == "GET":
                return {"kind": "compute#machineType", "name": mm[1], "zone": zone,
                        "selfLink": f"{fake.zone_url(zone)}/machineTypes/{mm[1]}"}
            raise HttpError(404, f"no such path {path}", "notFound")

        def do_GET(self) -> None:  # noqa: N802
            self._handle("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._handle("POST")

        def do_DELETE(self) -> None:  # noqa: N802
            self._handle("DELETE")

    return H
