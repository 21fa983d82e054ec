"""A small fake Compute Engine that the real ``google-cloud-compute`` client talks to.

No maintained emulator exists, so the project owns this one. It speaks the REST wire format the
client sends (camelCase JSON, enums as strings, int64 as strings) for the calls the gce backend
makes, and it runs each instance's startup script as a local subprocess (the "VM") next to a
loopback metadata server, so the real startup path, the real runner and the real self-delete run.

What it simulates, because these are the behaviours the backend exists to handle:

* operations that finish on their own after ``op_delay`` seconds (a VM's self-delete is never
  polled) and ``.../operations/{op}/wait``;
* per-zone stockouts, answered in the finished operation (``ZONE_RESOURCE_POOL_EXHAUSTED``) or
  synchronously (HTTP 503), and per-region quota errors (``QUOTA_EXCEEDED``);
* preemption: metadata ``instance/preempted`` turns TRUE, SIGTERM to the VM, SIGKILL after the
  grace period, then the instance is deleted (termination action DELETE);
* ``maxRunDuration``: the same termination without the preempted flag (scaled by ``time_scale``);
* the validations of real GCE that catch real bugs (GPU VMs need ``onHostMaintenance=TERMINATE``,
  ``maxRunDuration`` needs an ``instanceTerminationAction``, a zone offers only some GPUs).

Every request is logged in ``requests`` (method, path, query, body, authorization) for assertions.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.fakes.gce_wire import PREFIX, HttpError, MetadataServer, make_handler

_ids = itertools.count(1000)


def _now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000-00:00", time.gmtime())


def _default_accelerators() -> dict[str, set[str]]:
    """Zone -> accelerator names, from the bundled catalog (data, not the code under test)."""
    path = Path(__file__).resolve().parents[2] / "offload" / "backends" / "prices" / "gce.json"
    table = json.loads(path.read_text())
    out: dict[str, set[str]] = {}
    for g in table["gpus"].values():
        for zones in g.get("zones", {}).values():
            for z in zones:
                out.setdefault(z, set()).add(g["accelerator"])
    return out


_BUILT_IN = {"g2": "nvidia-l4", "a2-highgpu": "nvidia-tesla-a100", "a2-ultragpu": "nvidia-a100-80gb",
             "a3-highgpu": "nvidia-h100-80gb"}


def _built_in_accel(machine_type: str) -> str | None:
    for prefix, accel in _BUILT_IN.items():
        if machine_type.startswith(prefix + "-"):
            return accel
    return None


@dataclass
class Image:
    """A boot image: the programs on its PATH (name -> host program), nothing else of the host's
    environment. ``stock_debian()`` is Debian 12's own Python (PEP 668 marker, no project packages);
    ``no_python()`` has no python3 at all."""

    bin: Path

    @classmethod
    def make(cls, where: Path, programs: dict[str, str]) -> Image:
        where.mkdir(parents=True, exist_ok=True)
        for name, target in programs.items():
            link = where / name
            if not link.exists():
                link.symlink_to(target)
        return cls(where)

    @classmethod
    def stock_debian(cls, where: Path) -> Image | None:
        """None where the host has no Debian system Python with the PEP 668 marker."""
        py = Path("/usr/bin/python3")
        if not py.exists():
            return None
        marker = subprocess.run([str(py), "-c", "import sysconfig, os; print(os.path.exists(os.path.join("
                                 "sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED')))"],
                                capture_output=True, text=True).stdout.strip()
        if marker != "True":
            return None
        return cls.make(where, {"python3": str(py)})

    @classmethod
    def no_python(cls, where: Path) -> Image:
        return cls.make(where, {})


DEBIAN_12 = "projects/debian-cloud/global/images/family/debian-12"


@dataclass
class Operation:
    name: str
    zone: str
    op_type: str
    target: str
    status: str = "RUNNING"
    error: dict[str, Any] | None = None
    http_status: int | None = None
    http_message: str | None = None
    done: threading.Event = field(default_factory=threading.Event)
    insert_time: str = field(default_factory=_now_rfc3339)

    def to_json(self, fake: FakeGCE) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": "compute#operation",
            "id": str(abs(hash(self.name)) % 10**12),
            "name": self.name,
            "zone": fake.zone_url(self.zone),
            "operationType": self.op_type,
            "targetLink": self.target,
            "status": self.status,
            "progress": 100 if self.status == "DONE" else 0,
            "insertTime": self.insert_time,
            "selfLink": f"{fake.zone_url(self.zone)}/operations/{self.name}",
        }
        if self.error:
            d["error"] = self.error
        if self.http_status:
            d["httpErrorStatusCode"] = self.http_status
            d["httpErrorMessage"] = self.http_message
        return d


class FakeVM:
    """The "VM": the startup script as a subprocess with its own loopback metadata server."""

    def __init__(self, fake: FakeGCE, inst: dict[str, Any]):
        self.fake, self.inst = fake, inst
        self.preempted = threading.Event()
        self.dir = Path(fake.workdir) / f"{inst['_zone']}-{inst['name']}-{inst['id']}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.serial = self.dir / "serial.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.metadata = MetadataServer(self)

    def source_image(self) -> str:
        disks = self.inst.get("disks") or [{}]
        return disks[0].get("initializeParams", {}).get("sourceImage", "")

    def attributes(self) -> dict[str, str]:
        return {i["key"]: i.get("value", "") for i in self.inst.get("metadata", {}).get("items", [])}

    def start(self) -> None:
        self.metadata.start()
        script = self.attributes().get("startup-script")
        if not script or not self.fake.boot_vms:
            return
        path = self.dir / "startup-script"
        path.write_text(script)
        image = self.fake.images.get(self.source_image())
        if image is None:  # the test's own environment: every package already there
            env = {k: v for k, v in os.environ.items() if k not in self.fake.vm_env_drop}
            env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        else:  # a stock image: its own PATH and nothing of the test's environment
            env = {"PATH": str(image.bin), "LANG": "C.UTF-8"}
        env.update(self.fake.vm_env)
        host = f"127.0.0.1:{self.metadata.port}"
        home, tmp = self.dir / "home", self.dir / "tmp"  # empty: a fresh machine
        home.mkdir(exist_ok=True)
        tmp.mkdir(exist_ok=True)
        env.update(GCE_METADATA_HOST=host, GCE_METADATA_IP=host, HOME=str(home), TMPDIR=str(tmp),
                   OFFLOAD_HOME=str(home / ".local/share/offload"))
        with open(self.serial, "ab") as out:
            self.proc = subprocess.Popen([shutil.which("bash") or "/bin/bash", str(path)], cwd=self.dir, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)

    def shutdown(self, grace_s: float) -> None:
        """ACPI soft-off then hard stop: SIGTERM to the whole VM, SIGKILL after the grace."""
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        if p is not None:
            try:  # whatever the script left behind (kernels) dies with the VM
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait()
        self.metadata.stop()

    def serial_output(self) -> str:
        try:
            return self.serial.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class FakeGCE:
    """Use as a context manager; ``url`` is the ``api_endpoint`` for the real client."""

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        project: str = "fake-proj",
        op_delay: float = 0.05,
        grace_s: float = 20.0,
        time_scale: float = 1.0,
        vm_env: dict[str, str] | None = None,
        accelerators: dict[str, set[str]] | None = None,
        boot_vms: bool = True,
        images: dict[str, Image] | None = None,
    ):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.project = project
        self.op_delay, self.grace_s, self.time_scale = op_delay, grace_s, time_scale
        self.boot_vms = boot_vms  # False: instances exist but run nothing (launch benchmarks)
        self.vm_env = dict(vm_env or {})
        self.images = dict(images or {})  # source image -> Image; others run in the test's environment
        self.vm_env_drop = {"NO_GCE_CHECK", "GOOGLE_APPLICATION_CREDENTIALS", "OFFLOAD_STORE",
                            "PYTEST_CURRENT_TEST", "CLOUDSDK_CONFIG", "TMPDIR", "OFFLOAD_ENV_CACHE"}
        self.accelerators = accelerators if accelerators is not None else _default_accelerators()
        self.lock = threading.RLock()
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}
        self.vms: dict[tuple[str, str], FakeVM] = {}
        self.operations: dict[str, Operation] = {}
        self.requests: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []  # (t, what, zone, name): for timing assertions
        self.stockouts: dict[str, dict[str, Any]] = {}
        self.quotas: dict[str, dict[str, Any]] = {}
        self.deleted: list[dict[str, Any]] = []
        self._timers: list[threading.Timer] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # lifecycle ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeGCE:
        self._thread.start()
        return self

    def stop(self) -> None:
        for t in self._timers:
            t.cancel()
        with self.lock:
            vms = list(self.vms.values())
            self.vms.clear()
        for vm in vms:
            vm.shutdown(0.5)
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeGCE:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # knobs for tests ------------------------------------------------------------------------
    def stockout(self, zone: str, *, sync: bool = False, code: str = "ZONE_RESOURCE_POOL_EXHAUSTED",
                 reason: str = "resource_availability", attempts: int | None = None) -> None:
        """``zone`` has no capacity; with ``attempts=N`` only for the next N inserts there (it recovers)."""
        self.stockouts[zone] = {"sync": sync, "code": code, "reason": reason, "left": attempts}

    def restock(self, zone: str) -> None:
        self.stockouts.pop(zone, None)

    def quota_exceeded(self, region: str, metric: str = "NVIDIA_L4_GPUS", *, sync: bool = False) -> None:
        self.quotas[region] = {"metric": metric, "sync": sync}

    def live(self) -> list[dict[str, Any]]:
        """Instances that exist now (any status): the leak check."""
        with self.lock:
            return [dict(i) for i in self.instances.values()]

    def instance(self, name: str) -> dict[str, Any] | None:
        with self.lock:
            for (_z, n), inst in self.instances.items():
                if n == name:
                    return inst
        return None

    def vm(self, name: str) -> FakeVM | None:
        with self.lock:
            for (_z, n), vm in self.vms.items():
                if n == name:
                    return vm
        return None

    def wait_gone(self, name: str, timeout: float = 60) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.instance(name) is None:
                return True
            time.sleep(0.05)
        return False

    def wait_for(self, pred: Any, timeout: float = 60, interval: float = 0.05) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return True
            time.sleep(interval)
        return False

    def preempt(self, name: str) -> None:
        """What GCE does to a spot VM: flag, SIGTERM, grace, SIGKILL, delete."""
        inst = self.instance(name)
        if inst is None:
            raise KeyError(name)
        zone = inst["_zone"]
        op = self._new_op(zone, "compute.instances.preempted", self.instance_url(zone, name))
        self.events.append({"t": time.time(), "what": "preempted", "zone": zone, "name": name})
        threading.Thread(target=self._terminate, args=(zone, name, op, True), daemon=True).start()

    def requests_for(self, method: str, pattern: str) -> list[dict[str, Any]]:
        rx = re.compile(pattern)
        return [r for r in self.requests if r["method"] == method and rx.search(r["path"])]

    # urls -----------------------------------------------------------------------------------
    def zone_url(self, zone: str) -> str:
        return f"{self.url}{PREFIX}{self.project}/zones/{zone}"

    def instance_url(self, zone: str, name: str) -> str:
        return f"{self.zone_url(zone)}/instances/{name}"

    # operations -----------------------------------------------------------------------------
    def _new_op(self, zone: str, op_type: str, target: str) -> Operation:
        op = Operation(f"operation-{next(_ids)}-{os.urandom(4).hex()}", zone, op_type, target)
        with self.lock:
            self.operations[op.name] = op
        return op

    def _finish(self, op: Operation, error: dict[str, Any] | None = None, http: tuple[int, str] | None = None) -> None:
        op.error = error
        if http:
            op.http_status, op.http_message = http
        op.status = "DONE"
        op.done.set()

    def _later(self, delay: float, fn: Any, *args: Any) -> None:
        t = threading.Timer(delay, fn, args)
        t.daemon = True
        self._timers.append(t)
        t.start()

    # instances ------------------------------------------------------------------------------
    def insert(self, zone: str, body: dict[str, Any]) -> Operation:
        name = body.get("name") or ""
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
            raise HttpError(400, f"Invalid value for field 'resource.name': '{name}'.", "invalid")
        region = zone.rsplit("-", 1)[0]
        mt = body.get("machineType", "").rsplit("/", 1)[-1]
        if not mt:
            raise HttpError(400, "Invalid value for field 'resource.machineType': ''.", "invalid")
        accels = [a["acceleratorType"].rsplit("/", 1)[-1] for a in body.get("guestAccelerators", [])]
        built = _built_in_accel(mt)
        sched = body.get("scheduling", {})
        if (accels or built) and sched.get("onHostMaintenance") != "TERMINATE":
            raise HttpError(400, "Instances with guest accelerators do not support live migration.", "invalid")
        if "maxRunDuration" in sched and not sched.get("instanceTerminationAction"):
            raise HttpError(400, "Invalid value for field 'resource.scheduling.maxRunDuration': "
                            "instanceTerminationAction must be set.", "invalid")
        for a in accels + ([built] if built else []):
            if a not in self.accelerators.get(zone, set()):
                raise HttpError(400, f"Invalid value for field 'resource.guestAccelerators[0].acceleratorType': "
                                f"'{a}'. Accelerator type '{a}' does not exist in zone {zone}.", "invalid")
        with self.lock:
            if (zone, name) in self.instances:
                raise HttpError(409, f"The resource 'projects/{self.project}/zones/{zone}/instances/{name}' "
                                "already exists", "alreadyExists")
        if sched.get("provisioningModel") == "FLEX_START":  # DWS flex-start: what Compute Engine checks
            self._check_flex_start(mt, body, sched)
        quota = self.quotas.get(region)
        stock = self.stockouts.get(zone)
        if stock and stock.get("left") is not None:  # a stockout that ends after N attempts
            stock["left"] -= 1
            if stock["left"] <= 0:
                self.stockouts.pop(zone, None)
        if quota and quota["sync"]:
            raise HttpError(403, f"Quota '{quota['metric']}' exceeded.  Limit: 0.0 in region {region}.",
                            "quotaExceeded")
        if stock and stock["sync"]:
            raise HttpError(503, f"The zone 'projects/{self.project}/zones/{zone}' does not have enough "
                            "resources available to fulfill the request.  Try a different zone, or try "
                            "again later.", stock["code"])
        op = self._new_op(zone, "insert", self.instance_url(zone, name))
        self.events.append({"t": time.time(), "what": "insert", "zone": zone, "name": name})
        if quota:
            err = {"errors": [{"code": "QUOTA_EXCEEDED",
                               "message": f"Quota '{quota['metric']}' exceeded.  Limit: 0.0 in region {region}.",
                               "errorDetails": [{"quotaInfo": {"metricName": f"compute.googleapis.com/{quota['metric'].lower()}",
                                                               "limitName": f"{quota['metric']}-per-project-region",
                                                               "dimensions": {"region": region}, "limit": 0}}]}]}
            self._later(self.op_delay, self._finish, op, err, (403, "FORBIDDEN"))
            return op
        if stock:
            err = {"errors": [{"code": stock["code"],
                               "message": f"The zone 'projects/{self.project}/zones/{zone}' does not have enough "
                                          "resources available to fulfill the request.  Try a different zone, "
                                          "or try again later.",
                               "errorDetails": [{"errorInfo": {"reason": stock["reason"],
                                                               "domain": "compute.googleapis.com",
                                                               "metadatas": {"zone": zone, "vmType": mt}}}]}]}
            self._later(self.op_delay, self._finish, op, err, (503, "SERVICE UNAVAILABLE"))
            return op
        inst = dict(body)
        inst.update(kind="compute#instance", id=str(next(_ids)), status="PROVISIONING",
                    zone=self.zone_url(zone), selfLink=self.instance_url(zone, name),
                    creationTimestamp=_now_rfc3339(), _zone=zone, _created=time.time())
        with self.lock:
            self.instances[(zone, name)] = inst
        self._later(self.op_delay, self._boot, zone, name, op)
        return op

    @staticmethod
    def _check_flex_start(machine_type: str, body: dict[str, Any], sched: dict[str, Any]) -> None:
        """Flex-start VMs: accelerator-optimized machine types only (not A4X, G4), a maxRunDuration of
        at most seven days, a termination action, no reservation, no live migration or restart."""
        family = machine_type.split("-", 1)[0]
        if family not in ("a2", "a3", "a4", "g2", "h4d"):
            raise HttpError(400, f"Invalid value for field 'resource.scheduling.provisioningModel': 'FLEX_START'. "
                            f"Machine type {machine_type} does not support the FLEX_START provisioning model.", "invalid")
        seconds = int((sched.get("maxRunDuration") or {}).get("seconds", 0))
        if not 0 < seconds <= 7 * 86400:
            raise HttpError(400, "Invalid value for field 'resource.scheduling.maxRunDuration': FLEX_START "
                            "instances require a maxRunDuration of at most 7 days.", "invalid")
        if sched.get("instanceTerminationAction") not in ("DELETE", "STOP"):
            raise HttpError(400, "Invalid value for field 'resource.scheduling.instanceTerminationAction'.", "invalid")
        if (body.get("reservationAffinity") or {}).get("consumeReservationType") != "NO_RESERVATION":
            raise HttpError(400, "Invalid value for field 'resource.reservationAffinity': FLEX_START instances "
                            "require consumeReservationType NO_RESERVATION.", "invalid")
        if sched.get("onHostMaintenance") != "TERMINATE" or sched.get("automaticRestart", True):
            raise HttpError(400, "Invalid value for field 'resource.scheduling': FLEX_START instances require "
                            "onHostMaintenance TERMINATE and automaticRestart false.", "invalid")

    def _boot(self, zone: str, name: str, op: Operation) -> None:
        with self.lock:
            inst = self.instances.get((zone, name))
            if inst is None:
                self._finish(op)
                return
            inst["status"] = "RUNNING"
            vm = FakeVM(self, inst)
            self.vms[(zone, name)] = vm
        vm.start()
        self._finish(op)
        mrd = inst.get("scheduling", {}).get("maxRunDuration")
        if mrd:
            secs = float(mrd.get("seconds", 0)) * self.time_scale
            self._later(secs, self._max_run_expired, zone, name, inst["id"])

    def _max_run_expired(self, zone: str, name: str, inst_id: str) -> None:
        with self.lock:
            inst = self.instances.get((zone, name))
        if inst is None or inst["id"] != inst_id:
            return
        self.events.append({"t": time.time(), "what": "max_run_duration", "zone": zone, "name": name})
        op = self._new_op(zone, "compute.instances.maxRunDurationExpired", self.instance_url(zone, name))
        self._terminate(zone, name, op, False)

    def delete(self, zone: str, name: str) -> Operation:
        with self.lock:
            inst = self.instances.get((zone, name))
            if inst is None:
                raise HttpError(404, f"The resource 'projects/{self.project}/zones/{zone}/instances/{name}' "
                                "was not found", "notFound")
        op = self._new_op(zone, "delete", self.instance_url(zone, name))
        self.events.append({"t": time.time(), "what": "delete_requested", "zone": zone, "name": name})
        threading.Thread(target=self._terminate, args=(zone, name, op, False), daemon=True).start()
        return op

    def _terminate(self, zone: str, name: str, op: Operation, preempted: bool) -> None:
        with self.lock:
            inst = self.instances.get((zone, name))
            vm = self.vms.get((zone, name))
            if inst is None:
                self._finish(op)
                return
            if inst["status"] in ("STOPPING", "TERMINATED") and not preempted:
                pass
            inst["status"] = "STOPPING"
        if vm is not None:
            if preempted:
                vm.preempted.set()
            vm.shutdown(self.grace_s)
        action = inst.get("scheduling", {}).get("instanceTerminationAction", "STOP")
        with self.lock:
            self.vms.pop((zone, name), None)
            if op.op_type == "delete" or action == "DELETE":
                gone = self.instances.pop((zone, name), None)
                if gone is not None:
                    self.deleted.append({"name": name, "zone": zone, "why": op.op_type, "t": time.time()})
                    self.events.append({"t": time.time(), "what": "deleted", "zone": zone, "name": name})
            else:
                inst["status"] = "TERMINATED"
        self._finish(op)

    def inst_json(self, inst: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in inst.items() if not k.startswith("_")}

    def matches(self, inst: dict[str, Any], flt: str | None) -> bool:
        """The filter subset the backend uses: ``labels.k = "v"`` / ``name = "x"`` joined by AND."""
        if not flt:
            return True
        for term in re.split(r"\s+AND\s+", flt.strip()):
            m = re.fullmatch(r'\(?\s*(labels\.[a-z0-9_-]+|name|status)\s*(=|!=)\s*"?([^")]*)"?\s*\)?', term.strip())
            if not m:
                raise HttpError(400, f"Invalid list filter expression '{flt}'.", "invalid")
            key, opr, val = m.groups()
            have = inst.get("labels", {}).get(key[7:]) if key.startswith("labels.") else inst.get(key)
            if (have == val) != (opr == "="):
                return False
        return True
