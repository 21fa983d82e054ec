"""The gce backend: one ephemeral Compute Engine VM per job, gone when the job ends.

Launch walks the candidate zones (every zone of the configured regions that offers the GPU,
then the next GPU of a ``--gpu l4,t4`` list, then on-demand when spot is exhausted and
``spot_fallback`` is on), moving on at each capacity error, whether GCE raises it at ``insert``
or reports it in the finished operation. A quota error skips the rest of its region (quota is
regional) and, when nothing else works, becomes an error that names the quota. Every attempt is
recorded in the handle and in ``jobs/<id>/attempts.json``.

The VM never outlives its job: the runner deletes it through the API when its last output is
stored (``on_runner_exit``), ``maxRunDuration`` with termination action DELETE is the hard cap,
``cancel`` deletes it, a VM whose creation failed half-way is deleted, and ``cleanup`` (run at
every launch and by ``offload gc``) deletes labelled VMs whose job has ended.

We call ``insert_unary``/``delete_unary`` and wait with our own ``ZoneOperationsClient``: the
``ExtendedOperation`` that ``insert()`` returns polls compute.googleapis.com whatever endpoint
the client was given, which breaks any non-default endpoint (and our tests).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from offload._version import __version__
from offload.backends.base import (
    B_GONE,
    B_PROVISIONING,
    B_RUNNING,
    B_UNKNOWN,
    Ability,
    AttachRoute,
    Backend,
    BackendState,
    Machine,
    kept_warm,
    ssh_route,
)
from offload.backends.cost import actual, estimate, gce_price_table, machine_price
from offload.backends.gce import capacity, catalog, oslogin
from offload.backends.gce.attempts import classify_attempt, exhausted_error
from offload.backends.gce.boot import startup_script
from offload.backends.gce.wheel import runner_requirements, ship_wheel, uv_version
from offload.errors import BackendError, UsageError
from offload.spec import FINAL_STATES, JobSpec, JobState, machine_name, parse_duration
from offload.store import Store, layout

DEFAULT_IMAGE = "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11-py310"
CPU_IMAGE = "projects/debian-cloud/global/images/family/debian-12"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
MIN_RUN_S, MAX_RUN_S = 30, 120 * 86400  # GCE's bounds on maxRunDuration
LABEL_MANAGED, LABEL_JOB = "offload-managed", "offload-job"
ENDPOINT_ENV = "OFFLOAD_GCE_API_ENDPOINT"
BOOT_TIMEOUT_S = 15 * 60  # a VM whose runner has not reported by then is failed and deleted
ADC_HINT = ("run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a "
            "service-account key file)")


def machine_cap_s(spec: JobSpec) -> int:
    """The VM's maxRunDuration: the job's max runtime, plus its keep-alive window when kept warm
    (the slack a later job on the warm machine can use; runner/machine.py never hands it more)."""
    return int(spec.resources.max_runtime_s + (spec.resources.keep_alive_s or 0))


def _boot_timeout(value: Any) -> int:
    try:
        return parse_duration(value)
    except UsageError as exc:
        raise UsageError(f"gce option boot_timeout: {exc}", hint="for example boot_timeout 15m",
                         field="boot_timeout") from None


def _listify(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _label(value: str) -> str:
    """GCE label values: lowercase letters, digits, ``_`` and ``-``, at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", str(value).lower())[:63]


def instance_name(job_id: str) -> str:
    return machine_name(job_id)  # the VM is the machine: one name for both


class _Attempt(dict):
    """One try at one zone; kept as a plain dict so it is the JSON the user sees."""


class GceBackend(Backend):
    name = "gce"
    abilities = frozenset({Ability.SERIAL_OUTPUT, Ability.JOB_COST, Ability.KEEP_ALIVE, Ability.ATTACH})
    state_poll_s = 2.0  # at most one instances.get per watched job every 2 s (Compute read quota)
    fresh_machine = True  # every VM starts with an empty disk

    def __init__(self, store: Store, **options: Any):
        super().__init__(store, **options)
        self.table = gce_price_table(options)  # yours, today's live (cached), or the bundled table
        self.project: str | None = options.get("project")
        self.regions = _listify(options.get("regions")) or _listify(options.get("region")) or [
            self.table.get("default_region", "us-central1")
        ]
        self.zones = _listify(options.get("zones")) or _listify(options.get("zone"))
        self.endpoint: str | None = options.get("api_endpoint") or os.environ.get(ENDPOINT_ENV) or None
        self.op_timeout_s = float(options.get("operation_timeout_s", 300))
        self.boot_timeout_s = _boot_timeout(options.get("boot_timeout", BOOT_TIMEOUT_S))
        self._clients: tuple[Any, Any] | None = None

    # clients ----------------------------------------------------------------------------------
    def _compute(self) -> tuple[Any, Any]:
        if self._clients is not None:
            return self._clients
        try:
            from google.api_core.client_options import ClientOptions
            from google.cloud import compute_v1
        except ImportError as exc:
            raise UsageError(
                f"the gce backend needs google-cloud-compute ({exc.name} is missing)",
                hint="pip install 'jupyter-offload[gce]'",
            ) from None
        creds = self._credentials()
        opts = ClientOptions(api_endpoint=self.endpoint) if self.endpoint else None
        self._clients = (
            compute_v1.InstancesClient(transport="rest", credentials=creds, client_options=opts),
            compute_v1.ZoneOperationsClient(transport="rest", credentials=creds, client_options=opts),
        )
        return self._clients

    def _credentials(self) -> Any:
        if self.options.get("credentials") == "anonymous":
            from google.auth.credentials import AnonymousCredentials

            if not self.project:
                raise UsageError("the gce backend needs a project",
                                 hint="offload config set backend gce project my-proj")
            return AnonymousCredentials()
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            creds, adc_project = google.auth.default(scopes=SCOPES)
        except DefaultCredentialsError as exc:
            first = str(exc).splitlines()[0] if str(exc) else "no credentials found"
            raise BackendError(f"no usable Google Cloud credentials: {first}", hint=ADC_HINT) from None
        self.project = self.project or adc_project
        if not self.project:
            raise UsageError("the gce backend needs a project",
                             hint="offload config set backend gce project my-proj")
        return creds

    def _api_error(self, exc: Exception, doing: str) -> BackendError:
        """Turn a client exception into one line the user can act on."""
        from google.auth.exceptions import RefreshError, TransportError

        if isinstance(exc, RefreshError):
            return BackendError(f"Google Cloud credentials were refused while {doing}: {exc}", hint=ADC_HINT)
        if isinstance(exc, TransportError):
            return BackendError(f"cannot reach Google Cloud while {doing}: {exc}",
                                hint="check the network connection and try again")
        code = getattr(exc, "code", None)
        msg = getattr(exc, "message", None) or str(exc)
        hint = None
        if code in (401,):
            hint = ADC_HINT
        elif code == 403:
            hint = (f"grant the account Compute Instance Admin on project {self.project}, "
                    "and check that the Compute Engine API is enabled")
        elif code == 404:
            hint = f"check that project {self.project!r} exists and the Compute Engine API is enabled"
        return BackendError(f"Compute Engine refused {doing}: {msg}", hint=hint)

    # describing -------------------------------------------------------------------------------
    def machines(self) -> list[Machine]:
        return catalog.machine_list(self.table, self.regions[0])

    def validate(self, spec: JobSpec) -> None:
        if not self.store.url.startswith(("gs://", "gcs://")):
            raise UsageError(
                f"the gce backend needs a gs:// store, not {self.store.url}",
                hint="offload config set backend gce bucket gs://my-bucket/offload",
            )
        rt = spec.resources.max_runtime_s
        if not MIN_RUN_S <= rt <= MAX_RUN_S:
            raise UsageError(f"max runtime {rt} s is outside what GCE allows (30 s to 120 days)",
                             hint="for example --max-runtime 4h")
        shapes = catalog.shapes_for(self.table, spec.resources)
        spot_only = [s.machine for s in shapes if self.table["machines"].get(s.machine, {}).get("on_demand") is False]
        if spot_only and len(spot_only) == len(shapes) and not spec.resources.spot and not spec.wait_for_capacity_s:
            raise UsageError(f"{', '.join(spot_only)} is not offered on demand (spot and DWS flex-start only)",
                             hint="add --spot, or --wait-for-capacity 2h to request it as a flex-start VM, "
                                  "or ask for all 8 GPUs (--gpu-count 8)", field="spot")
        if not any(self._zones(s) for s in shapes):
            where = sorted({r for s in shapes if s.gpu for r in self.table["gpus"][s.gpu].get("zones", {})})
            raise UsageError(
                f"no zone of {', '.join(self.regions)} offers {' or '.join(s.gpu or s.machine for s in shapes)}",
                hint=f"regions that do: {', '.join(where)} (offload config set backend gce region REGION)",
            )

    def _price(self, shape: catalog.Shape, region: str, spot: bool) -> float | None:
        p = machine_price(self.table, shape.machine, gpu=shape.gpu if shape.accelerator else None,
                          gpu_count=shape.gpu_count if shape.accelerator else 0, region=region)
        return p.per_hour(spot)

    def estimate_cost(self, spec: JobSpec) -> float | None:
        shape = catalog.shapes_for(self.table, spec.resources)[0]
        return estimate(self._price(shape, self.regions[0], spec.resources.spot),
                        spec.resources.max_runtime_s)["max_cost"]

    def cost_report(self, spec: JobSpec, expected_s: float | None = None) -> dict[str, Any]:
        """Before launch: price per hour, the cap's cost, and the expected cost when known."""
        shape = catalog.shapes_for(self.table, spec.resources)[0]
        out = estimate(self._price(shape, self.regions[0], spec.resources.spot),
                       spec.resources.max_runtime_s, expected_s)
        out.update(machine=shape.label, spot=spec.resources.spot, region=self.regions[0],
                   prices_taken=self.table.get("taken"))
        return out

    def job_cost(self, handle: dict[str, Any], status: dict[str, Any] | None) -> dict[str, Any]:
        """After the run: price x billed time (VM created -> runner finished + self-delete)."""
        start = handle.get("created_at")
        end = (status or {}).get("finished_at")
        if not start or not end:
            return {"actual_cost": None}
        billed = float(end) - float(start) + float(handle.get("delete_allowance_s", 30))
        return {"actual_cost": actual(handle.get("price_per_hour"), billed), "billed_s": round(billed, 1),
                "price_per_hour": handle.get("price_per_hour"), "estimate": handle.get("cost_estimate")}

    # launching --------------------------------------------------------------------------------
    def _zones(self, shape: catalog.Shape) -> list[tuple[str, str]]:
        out = []
        for region in self.regions:
            for zone in catalog.zones_for(self.table, shape, region):
                if not self.zones or zone in self.zones:
                    out.append((region, zone))
        for zone in self.zones:  # zones the user named that the catalog does not know: trust them
            region = zone.rsplit("-", 1)[0]
            if (region, zone) not in out and (shape.gpu is None or not self.table["gpus"][shape.gpu].get("zones")):
                out.append((region, zone))
        return out

    def _avoid_zone(self, spec: JobSpec) -> str | None:
        """A retry after preemption goes elsewhere first: the parent's zone is tried last."""
        if not spec.parent:
            return None
        parent = self.store.get_json(layout.job_key(spec.parent, "handle.json"), None) or {}
        return parent.get("zone")

    def launch(self, spec: JobSpec) -> dict[str, Any]:
        # --wait-for-capacity: rounds of the zone walk with backoff, DWS flex-start where it applies
        return capacity.launch_waiting(spec, self.store, self.options, lambda: self._launch_once(spec))

    def _launch_once(self, spec: JobSpec) -> dict[str, Any]:
        self.validate(spec)
        instances, _ops = self._compute()
        if self.options.get("sweep_on_launch", True):
            try:
                self.cleanup()
            except Exception:  # a sweep must never block a launch
                pass

        wheel_key = ship_wheel(self.store)
        shapes = catalog.shapes_for(self.table, spec.resources)
        modes = [spec.resources.spot]
        if spec.resources.spot and (self.options.get("spot_fallback") or spec.resources.options.get("spot_fallback")):
            modes.append(False)
        avoid = self._avoid_zone(spec)
        attempts: list[dict[str, Any]] = []
        quota_hit: list[dict[str, Any]] = []
        t_launch = time.time()
        name = instance_name(spec.id)
        for spot in modes:
            for shape in shapes:
                zones = self._zones(shape)
                if avoid:
                    zones = [z for z in zones if z[1] != avoid] + [z for z in zones if z[1] == avoid]
                blocked_regions: set[str] = set()
                for region, zone in zones:
                    if region in blocked_regions:
                        continue
                    att = self._try_zone(spec, shape, region, zone, spot, name, wheel_key)
                    attempts.append(att)
                    if att["outcome"] == "created":
                        handle = self._handle(spec, shape, region, zone, spot, name, att, attempts, t_launch)
                        self._record_attempts(spec, attempts, handle)
                        return handle
                    if att["outcome"] == "quota":
                        quota_hit.append(att)
                        blocked_regions.add(region)
                    elif att["outcome"] == "error":
                        self._record_attempts(spec, attempts, None)
                        raise BackendError(
                            f"Compute Engine refused to create {name} in {zone}: {att['message']}",
                            hint=att.get("hint") or "see `offload show` for every attempt",
                        )
        self._record_attempts(spec, attempts, None)
        raise exhausted_error(shapes, attempts, quota_hit, regions=self.regions, project=self.project)

    def _body(self, spec: JobSpec, shape: catalog.Shape, zone: str, spot: bool, name: str, wheel_key: str) -> Any:
        from google.cloud import compute_v1


        o = self.options
        meta = {
            "startup-script": startup_script(),
            "offload-job-id": spec.id,
            "offload-store": self.store.url,
            "offload-wheel": wheel_key,
            "offload-version": __version__,
        }
        meta.update(self._boot_metadata(wheel_key))
        if self.endpoint:
            meta["offload-compute-endpoint"] = self.endpoint
        if o.get("keep_vm_on_boot_failure"):
            meta["offload-keep-vm"] = "true"
        if o.get("os_login"):
            meta["enable-oslogin"] = "TRUE"  # sshd asks OS Login for keys (offload ssh/attach: oslogin.py)
        if shape.gpu:
            meta["install-nvidia-driver"] = "True"  # Deep Learning VM images install it at boot
        image = o.get("image") or (DEFAULT_IMAGE if shape.gpu else o.get("cpu_image") or CPU_IMAGE)
        disk = compute_v1.AttachedDisk(
            boot=True, auto_delete=True,
            initialize_params=compute_v1.AttachedDiskInitializeParams(
                source_image=image, disk_size_gb=int(o.get("disk_gb", 100)),
                disk_type=f"zones/{zone}/diskTypes/{o.get('disk_type', 'pd-balanced')}",
            ),
        )
        nic = compute_v1.NetworkInterface(network=o.get("network", "global/networks/default"))
        if o.get("subnetwork"):
            nic.subnetwork = o["subnetwork"]
        if o.get("external_ip", True):
            nic.access_configs = [compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")]
        flex = not spot and capacity.flex_start(spec, shape.machine)  # DWS: Google queues the request
        sched = compute_v1.Scheduling(
            provisioning_model="SPOT" if spot else "FLEX_START" if flex else "STANDARD",
            instance_termination_action="DELETE",
            max_run_duration=compute_v1.Duration(seconds=machine_cap_s(spec)),
            on_host_maintenance="TERMINATE" if shape.gpu else "MIGRATE",
            automatic_restart=False,  # a restart would rerun the job from scratch on its own
        )
        labels = {_label(k): _label(v) for k, v in {**o.get("labels", {}), **spec.labels}.items()
                  if re.match(r"^[a-z]", _label(k))}
        labels.update({LABEL_MANAGED: "true", LABEL_JOB: _label(spec.id), "offload-kind": _label(spec.kind)})
        inst = compute_v1.Instance(
            name=name,
            machine_type=f"zones/{zone}/machineTypes/{shape.machine}",
            disks=[disk], network_interfaces=[nic], scheduling=sched, labels=labels,
            metadata=compute_v1.Metadata(items=[compute_v1.Items(key=k, value=v) for k, v in meta.items()]),
            service_accounts=[compute_v1.ServiceAccount(
                email=o.get("service_account", "default"), scopes=_listify(o.get("scopes")) or SCOPES)],
        )
        if flex:  # a flex-start VM consumes no reservation
            inst.reservation_affinity = compute_v1.ReservationAffinity(consume_reservation_type="NO_RESERVATION")
        if shape.accelerator:
            inst.guest_accelerators = [compute_v1.AcceleratorConfig(
                accelerator_count=shape.gpu_count,
                accelerator_type=f"zones/{zone}/acceleratorTypes/{shape.accelerator}")]
        return inst

    def _boot_metadata(self, wheel_key: str) -> dict[str, str]:
        """What the boot program needs to build the runner's environment (boot.py): values, never
        script text. The cached environment's key is named here (layout) and filled in on the VM."""
        reqs, uv = runner_requirements(), uv_version()
        # keyed by what it holds (dependencies, uv), not by the client's code: a code change
        # reinstalls only the wheel on the next VM
        digest = hashlib.sha256("\n".join([*reqs, f"uv=={uv}"]).encode()).hexdigest()[:20]
        meta = {
            "offload-requirements": "\n".join(reqs),
            "offload-boot-env": layout.boot_env_template(digest),
            "offload-uv-version": uv,
            "offload-python": "{}.{}".format(*sys.version_info[:2]),
        }
        index = self.options.get("index_url")
        if index:
            meta["offload-index-url"] = str(index)
        return meta

    def _try_zone(self, spec: JobSpec, shape: catalog.Shape, region: str, zone: str, spot: bool,
                  name: str, wheel_key: str) -> dict[str, Any]:
        from google.api_core import exceptions as gexc

        instances, ops = self._compute()
        att = _Attempt(zone=zone, region=region, machine=shape.machine, gpu=shape.gpu, gpu_count=shape.gpu_count,
                       spot=spot, at=time.time(), outcome="", code=None, message="")
        body = self._body(spec, shape, zone, spot, name, wheel_key)
        try:
            op = instances.insert_unary(project=self.project, zone=zone, instance_resource=body)
        except gexc.GoogleAPICallError as exc:
            classify_attempt(att, _sync_errors(exc), getattr(exc, "code", None), str(getattr(exc, "message", exc)))
            att["duration_s"] = round(time.time() - att["at"], 3)
            if att["outcome"] == "error" and att["code"] in (401, 403, 404):
                att["hint"] = self._api_error(exc, "creating the VM").hint
            return att
        except Exception as exc:
            raise self._api_error(exc, f"creating a VM in {zone}") from None
        try:  # a flex-start request may stay queued at Google for up to two hours
            queue_s = capacity.FLEX_QUEUE_S if not spot and capacity.flex_start(spec, shape.machine) else None
            op = self._wait(op, zone, queue_s)
        except Exception as exc:
            self._delete_quietly(name, zone)
            att.update(outcome="error", message=f"waiting for the insert operation failed: {exc}")
            return att
        att["duration_s"] = round(time.time() - att["at"], 3)
        if op.error and op.error.errors:
            errs = [{"code": e.code, "message": e.message,
                     "reasons": [d.error_info.reason for d in e.error_details if d.error_info.reason],
                     "quota": [d.quota_info.metric_name for d in e.error_details if d.quota_info.metric_name]}
                    for e in op.error.errors]
            classify_attempt(att, errs, op.http_error_status_code or None, errs[0]["message"])
            self._delete_quietly(name, zone)  # a half-created VM must not survive a failed insert
            return att
        if str(op.status) not in ("Status.DONE", "DONE") and getattr(op.status, "name", "") != "DONE":
            self._delete_quietly(name, zone)
            att.update(outcome="error", message=f"insert did not finish within {self.op_timeout_s:.0f} s")
            return att
        att["outcome"] = "created"
        return att

    def _wait(self, op: Any, zone: str, timeout_s: float | None = None) -> Any:
        _instances, ops = self._compute()
        deadline = time.monotonic() + max(self.op_timeout_s, timeout_s or 0)
        while getattr(op.status, "name", str(op.status)) != "DONE" and time.monotonic() < deadline:
            op = ops.wait(project=self.project, zone=zone, operation=op.name)
        return op

    def _delete_quietly(self, name: str, zone: str) -> None:
        from google.api_core import exceptions as gexc

        instances, _ops = self._compute()
        try:
            instances.delete_unary(project=self.project, zone=zone, instance=name)
        except gexc.NotFound:
            pass
        except Exception:
            pass  # the sweep at the next launch and `offload gc` retry this

    def _handle(self, spec: JobSpec, shape: catalog.Shape, region: str, zone: str, spot: bool, name: str,
                att: dict[str, Any], attempts: list[dict[str, Any]], t_launch: float) -> dict[str, Any]:
        price = self._price(shape, region, spot)
        return {
            "backend": "gce", "project": self.project, "zone": zone, "region": region, "name": name,
            "machine": shape.machine, "gpu": shape.gpu, "gpu_count": shape.gpu_count if shape.gpu else 0,
            "spot": spot, "launched_at": t_launch, "created_at": att["at"] + att.get("duration_s", 0),
            "attempts": attempts, "price_per_hour": price,
            "cost_estimate": {**estimate(price, spec.resources.max_runtime_s), "prices_taken": self.table.get("taken")},
            "max_run_duration_s": machine_cap_s(spec),
            "api_endpoint": self.endpoint,
            "boot_timeout_s": self.boot_timeout_s,
        }

    def _record_attempts(self, spec: JobSpec, attempts: list[dict[str, Any]], handle: dict[str, Any] | None) -> None:
        """``jobs/<id>/attempts.json`` (client-written): where the job ran and why it moved on."""
        try:
            self.store.put_json(layout.job_key(spec.id, "attempts.json"), {
                "attempts": attempts,
                "placed": {k: handle[k] for k in ("zone", "machine", "gpu", "spot", "name")} if handle else None,
            })
        except Exception:
            pass

    # after launch -----------------------------------------------------------------------------
    def state(self, handle: dict[str, Any]) -> BackendState:
        from google.api_core import exceptions as gexc

        instances, _ops = self._compute()
        project = handle.get("project") or self.project
        try:
            inst = instances.get(project=project, zone=handle["zone"], instance=handle["name"])
        except gexc.NotFound:
            return BackendState(B_GONE, self._gone_reason(handle), {"zone": handle["zone"]})
        except Exception as exc:
            return BackendState(B_UNKNOWN, f"cannot ask Compute Engine: {exc}")
        status = inst.status
        details = {"zone": handle["zone"], "instance_status": status, "machine": handle.get("machine")}
        if status in ("PROVISIONING", "STAGING", "PENDING"):
            return BackendState(B_PROVISIONING, status, details)
        if status in ("RUNNING", "STOPPING", "REPAIRING"):
            return BackendState(B_RUNNING, None if status == "RUNNING" else status, details)
        return BackendState(B_GONE, status, details)

    def _gone_reason(self, handle: dict[str, Any]) -> str:
        """GCE logs a ``compute.instances.preempted`` operation: the one sure sign of preemption."""
        _instances, ops = self._compute()
        try:
            flt = 'operationType = "compute.instances.preempted"'
            for op in ops.list(project=handle.get("project") or self.project, zone=handle["zone"], filter=flt):
                if op.target_link.endswith(f"/instances/{handle['name']}"):
                    return JobState.PREEMPTED
        except Exception:
            pass
        return "VM deleted"

    def cancel(self, handle: dict[str, Any]) -> None:
        from google.api_core import exceptions as gexc

        instances, _ops = self._compute()
        try:
            op = instances.delete_unary(project=handle.get("project") or self.project, zone=handle["zone"],
                                        instance=handle["name"])
        except gexc.NotFound:
            return
        except Exception as exc:
            raise self._api_error(exc, f"deleting VM {handle['name']}") from None
        wait_s = float(self.options.get("cancel_wait_s", 0))
        if wait_s:
            saved, self.op_timeout_s = self.op_timeout_s, wait_s
            try:
                self._wait(op, handle["zone"])
            finally:
                self.op_timeout_s = saved

    def cleanup(self, *, dry_run: bool = False) -> list[str]:
        """Delete labelled VMs of this store whose job has ended (what `offload gc` runs)."""
        instances, _ops = self._compute()
        found = []
        try:
            pages = instances.aggregated_list(request={
                "project": self.project, "filter": f'labels.{LABEL_MANAGED} = "true"'})
            for _zone, scoped in pages:
                found.extend(scoped.instances)
        except Exception as exc:
            raise self._api_error(exc, "listing VMs") from None
        out = []
        for inst in found:
            zone = inst.zone.rsplit("/", 1)[-1]
            meta = {i.key: i.value for i in inst.metadata.items}
            if meta.get("offload-store", self.store.url) != self.store.url:
                continue  # another store's job: that store's client decides
            job_id = inst.labels.get(LABEL_JOB) or meta.get("offload-job-id", "")
            why = self._ended(job_id, inst.status)
            if why and inst.status not in ("TERMINATED", "SUSPENDED") and kept_warm(self.store, job_id, inst.name):
                continue  # its job ended but the machine is kept warm for the next (runner/machine.py)
            if not why:
                continue
            out.append(f"{zone}/{inst.name} (job {job_id}: {why})")
            if not dry_run:
                self._delete_quietly(inst.name, zone)
        return out

    def _ended(self, job_id: str, vm_status: str) -> str | None:
        if vm_status in ("TERMINATED", "SUSPENDED"):
            return f"VM {vm_status.lower()}"
        status = self.store.get_json(layout.job_key(job_id, "status.json"), None) if job_id else None
        if status and status.get("state") in FINAL_STATES:
            return status["state"]
        rec = self.store.get_json(layout.job_key(job_id, "reconciled.json"), None) if job_id else None
        if rec and rec.get("state") in FINAL_STATES:
            return rec["state"]
        return None

    def attach_route(self, handle: dict[str, Any], kernel: dict[str, Any] | None) -> AttachRoute:
        """SSH (paramiko, no gcloud) to the VM: its external IP, or its internal one with
        ``ssh_internal_ip`` (a VPN, or a bastion/IAP tunnel you run), or ``ssh_host`` as given.
        The VM must accept your key (``ssh_user``/``ssh_key``: in project or instance metadata
        ``ssh-keys``; or, with ``os_login``, the key offload registers in your OS Login profile and
        its POSIX user) and its firewall must allow tcp:22 from you."""
        network = str(self.options.get("network") or "default").rsplit("/", 1)[-1]
        firewall = (f"allow SSH to the VM: create the firewall rule offload-allow-ssh on network {network} "
                    "(ingress, allow tcp:22, source <your public IP>/32; Console: VPC network > Firewall, or "
                    "the Compute API's firewalls.insert), or use IAP (source 35.235.240.0/20) with a tunnel "
                    "you run and ssh_host (docs/attach.md)")
        keys = ("; the VM needs your key: set os_login true (offload registers its key in your OS Login "
                "profile) or put your public key in the project's ssh-keys metadata")
        host = self.options.get("ssh_host") or self._vm_address(handle, firewall + keys)
        route_options = dict(self.options)
        if self.options.get("os_login"):
            user, key = self._os_login_key()
            route_options.update(ssh_user=user, ssh_key=key)
            keys = (f"; offload registered {key}.pub for OS Login user {user}: the VM must run with OS Login "
                    "(enable-oslogin=TRUE, set for VMs started with os_login true)")
        return ssh_route(route_options, host=host, hint=firewall + keys)  # type: ignore[return-value]

    def _vm_address(self, handle: dict[str, Any], hint: str) -> str:
        """The job VM's external IP (its internal one with ``ssh_internal_ip``)."""
        from google.api_core import exceptions as gexc

        instances, _ops = self._compute()
        try:
            inst = instances.get(project=handle.get("project") or self.project, zone=handle["zone"],
                                 instance=handle["name"])
        except gexc.NotFound:
            raise BackendError(f"the job's VM {handle['name']} no longer exists") from None
        except Exception as exc:
            raise self._api_error(exc, "read the job's VM") from None
        nics = list(inst.network_interfaces)
        internal = nics[0].network_i_p if nics else None
        external = next((ac.nat_i_p for nic in nics for ac in nic.access_configs if ac.nat_i_p), None)
        host = internal if self.options.get("ssh_internal_ip") else external
        if not host:
            raise BackendError(f"the job's VM {handle['name']} has no external IP to SSH to", field="ssh_host",
                               hint="set ssh_internal_ip (through a VPN or a tunnel you run) or ssh_host; " + hint)
        return str(host)

    def _os_login_key(self) -> tuple[str, str]:
        """Register the SSH key (``ssh_key``, else offload's own) with OS Login: (POSIX user, key file)."""
        configured = self.options.get("ssh_key")
        key = Path(os.path.expanduser(configured)) if configured else oslogin.offload_key()
        if not key.exists():
            raise UsageError(f"the SSH key {configured} does not exist", field="ssh_key",
                             hint="unset ssh_key to let offload make its own, or point it at your private key")
        creds = self._credentials()
        user = oslogin.account_email(creds, self.options.get("os_login_user"))
        posix = oslogin.import_key(credentials=creds, endpoint=self.options.get("os_login_endpoint") or None,
                                   user=user, project=str(self.project), key=oslogin.public_key(key))
        return posix, str(key)

    def serial_output(self, handle: dict[str, Any]) -> str:
        """The VM's console: boot messages when the runner never wrote a log."""
        instances, _ops = self._compute()
        try:
            return instances.get_serial_port_output(project=handle.get("project") or self.project,
                                                    zone=handle["zone"], instance=handle["name"]).contents
        except Exception as exc:
            return f"(no serial output: {exc})"

    # remote side (on the VM, inside the runner) --------------------------------------------------
    @staticmethod
    def _metadata(path: str, timeout: float = 2.0) -> str | None:
        host = os.environ.get("GCE_METADATA_HOST") or "metadata.google.internal"
        req = urllib.request.Request(f"http://{host}/computeMetadata/v1/{path}", headers={"Metadata-Flavor": "Google"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.read().decode()
        except (urllib.error.URLError, OSError, ValueError):
            return None

    @classmethod
    def termination_reason(cls) -> str | None:
        return JobState.PREEMPTED if cls._metadata("instance/preempted") == "TRUE" else None

    @classmethod
    def on_runner_exit(cls, spec: JobSpec, store: Store, final_state: str) -> None:
        """Delete this VM through the API; only on a VM that we launched for this very job, and
        not when it is kept warm (its machine agent deletes it when idle, ``end_machine``)."""
        if spec.keeps_machine:
            return
        if final_state == JobState.FAILED and cls._metadata("instance/attributes/offload-keep-vm") == "true":
            return
        cls.end_machine(spec, store)

    @classmethod
    def end_machine(cls, spec: JobSpec, store: Store) -> None:
        if cls._metadata("instance/attributes/offload-job-id") != spec.id:
            return
        project = cls._metadata("project/project-id")
        zone = (cls._metadata("instance/zone") or "").rsplit("/", 1)[-1]
        name = cls._metadata("instance/name")
        endpoint = (cls._metadata("instance/attributes/offload-compute-endpoint") or "https://compute.googleapis.com")
        token = json.loads(cls._metadata("instance/service-accounts/default/token") or "{}").get("access_token")
        if not (project and zone and name and token):
            raise BackendError("cannot delete this VM: the metadata server did not say which VM this is",
                               hint="maxRunDuration will delete it")
        # Plain REST with the metadata token: importing google-cloud-compute and google-auth here
        # costs seconds of billed GPU time for one DELETE. The call is never waited on: it ends us.
        req = urllib.request.Request(
            f"{endpoint.rstrip('/')}/compute/v1/projects/{project}/zones/{zone}/instances/{name}",
            method="DELETE", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()


def _sync_errors(exc: Exception) -> list[dict[str, Any]]:
    out = []
    for e in getattr(exc, "errors", None) or []:
        if isinstance(e, dict):
            out.append({"code": e.get("reason"), "message": e.get("message", ""), "reasons": [e.get("reason", "")]})
    reason = getattr(exc, "reason", None)
    if reason:
        out.append({"code": reason, "message": str(exc), "reasons": [reason]})
    return out


def jsonable_attempts(attempts: list[dict[str, Any]]) -> str:
    return json.dumps(attempts, indent=1, default=str)
