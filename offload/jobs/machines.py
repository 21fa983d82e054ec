"""Warm machines, client side: hand a job to an idle machine, list live machines, stop them.

The machine side (the agent, its record ``machines/<name>.json`` and the claim protocol) is
described in :mod:`offload.runner.machine`; this module only reads records and writes the
client's objects: the claim ``machines/<name>/queue/<job>`` and the stop marker.
"""

from __future__ import annotations

import re
import time
from typing import Any

from offload.backends.base import Ability, Backend, get_backend, machine_record_live
from offload.config import backend_options
from offload.errors import MachineNotFound, OffloadError, UsageError
from offload.spec import MACHINE_KINDS, JobSpec, MachineState, parse_keep_alive
from offload.store import Store, layout
from offload.store import known_stores as store_known_stores

CLAIM_MARGIN_S = 10.0  # never claim a machine this close to its idle deadline: it may be ending
RUNTIME_MARGIN_S = 60.0  # a handed job must fit in what is left of the machine's hard cap, with this to spare


def apply_keep_alive_default(spec: JobSpec, backend: Backend, options: dict[str, Any]) -> None:
    """``resources.keep_alive_s`` None -> the backend's ``keep_alive`` option (0 when unset); a
    window on a backend whose machines cannot stay is an error naming the field."""
    res = spec.resources
    if res.keep_alive_s is None:
        res.keep_alive_s = 0
        if spec.kind in MACHINE_KINDS and backend.can(Ability.KEEP_ALIVE):
            res.keep_alive_s = parse_keep_alive(options.get("keep_alive")) or 0
    # A session's window is how long it waits for the next cell: meaningful everywhere.
    if spec.keeps_machine and not backend.can(Ability.KEEP_ALIVE):
        raise UsageError(
            f"the {spec.backend} backend keeps no machine warm: its jobs start on this machine in about a "
            "second, so there is nothing to keep",
            hint="drop --keep-alive (it is for gce and slurm), or pick one of those backends",
            field="keep_alive",
        )
    res.validate()


def _records(store: Store) -> list[dict[str, Any]]:
    out = []
    for name in store.list_dirs(layout.MACHINES):
        if not name.endswith(".json"):
            continue
        rec = store.get_json(f"{layout.MACHINES}/{name}", None)
        if isinstance(rec, dict) and rec.get("name"):
            out.append(rec)
    return out


def _compatible(rec: dict[str, Any], spec: JobSpec, now: float) -> bool:
    return (
        rec.get("role") == "keep-alive"
        and rec.get("state") == MachineState.IDLE
        and machine_record_live(rec, now)
        and rec.get("backend") == spec.backend
        and rec.get("shape") == spec.resources.shape()
        and float(rec.get("idle_deadline") or 0) - now > CLAIM_MARGIN_S
        and float(rec.get("hard_deadline") or 0) - now >= spec.resources.max_runtime_s + RUNTIME_MARGIN_S
        and rec.get("handle") is not None
    )


def claim(store: Store, name: str, job_id: str) -> bool:
    """Write our claim, then list: ours alone wins; else withdraw it (see runner/machine.py)."""
    mine = layout.machine_queue_key(name, job_id)
    store.put_bytes(mine, b"")
    others = [k for k in store.list(layout.machine_queue_key(name)) if k != mine]
    if others:
        store.delete(mine)
        return False
    return True


def hand_off(spec: JobSpec, store: Store, backend: Backend) -> dict[str, Any] | None:
    """The handle of an idle compatible machine this job was handed to, or None (launch one).

    Called by ``launch_spec`` after ``spec.json`` is written; the caller writes the handle, which
    is what the machine waits for before running the job.
    """
    if spec.kind not in MACHINE_KINDS or not backend.can(Ability.KEEP_ALIVE):
        return None
    now = time.time()
    try:
        candidates = [r for r in _records(store) if _compatible(r, spec, now)]
    except OffloadError:
        return None  # cannot read the records: boot a machine as if there were none
    # The one idle longest first: it is the closest to ending, so using it saves the most.
    for rec in sorted(candidates, key=lambda r: float(r.get("idle_since") or 0)):
        if not claim(store, rec["name"], spec.id):
            continue
        # Read the record again: a machine that took another job meanwhile (its record said idle
        # a moment ago) or began ending is not kept waiting on; boot one instead.
        now_rec = store.get_json(layout.machine_key(rec["name"]), None) or {}
        if not _compatible(now_rec, spec, time.time()):
            store.delete(layout.machine_queue_key(rec["name"], spec.id))
            continue
        now = time.time()  # the job's machine exists from now on: provision_s is 0
        return {**rec["handle"], "on_machine": rec["name"], "handed_at": now, "created_at": now, "launched_at": now}
    return None


def is_handed(handle: dict[str, Any] | None) -> bool:
    """A job running on a warm machine it was handed to, or a cell on a warm session: cancelling
    it must not end the machine."""
    return bool(handle and (handle.get("on_machine") or handle.get("on_session")))


# listing and stopping -------------------------------------------------------------------------
def known_stores(store: Store | str | None = None, *, also: list[Store] = ()) -> list[Store]:
    """``store`` alone when given; else every store jobs may be in, ``also`` (the Jupyter server's
    own store) first, each once."""
    if store is not None:
        return [store if isinstance(store, Store) else Store(store)]
    return store_known_stores(also=also)


def describe(rec: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """A record as the user sees it: with ``idle_left_s``, ``cost_so_far`` and ``alive``."""
    now = now or time.time()
    started = float(rec.get("started_at") or now)
    price = rec.get("price_per_hour")
    deadline = rec.get("idle_deadline")
    shape = rec.get("shape") or {}
    return {
        "name": rec.get("name"), "backend": rec.get("backend"), "role": rec.get("role"),
        "state": rec.get("state"), "job": rec.get("job"), "zone": rec.get("zone") or rec.get("partition"),
        "region": rec.get("region"), "partition": rec.get("partition"),
        "machine": rec.get("machine") or shape.get("machine"), "gpu": rec.get("gpu") or shape.get("gpu"),
        "gpu_count": rec.get("gpu_count") or shape.get("gpu_count"), "spot": bool(rec.get("spot", shape.get("spot"))),
        "idle_deadline": deadline, "idle_left_s": max(0.0, float(deadline) - now) if deadline else None,
        "hard_deadline": rec.get("hard_deadline"), "started_at": started, "up_s": round(now - started, 1),
        "price_per_hour": price,
        "cost_so_far": round(float(price) * (now - started) / 3600, 4) if price is not None else None,
        "jobs_served": rec.get("jobs_served", 0), "env_hashes": rec.get("env_hashes", []),
        "keep_alive_s": rec.get("keep_alive_s"), "store": rec.get("store"), "alive": machine_record_live(rec, now),
        "heartbeat": rec.get("heartbeat"), "reason": rec.get("reason"),
    }


def list_machines(*, store: Store | str | None = None, running: bool = True,
                  also: list[Store] = ()) -> tuple[list[dict[str, Any]], str]:
    """Machines recorded in the store(s), newest first, and why the list is empty when it is."""
    stores = known_stores(store, also=also)
    rows: list[dict[str, Any]] = []
    now = time.time()
    for st in stores:
        try:
            recs = _records(st)
        except OffloadError:
            continue
        for rec in recs:
            row = describe(rec, now)
            if running and not row["alive"]:
                continue
            rows.append(row)
    rows.sort(key=lambda r: -float(r["started_at"] or 0))
    why = ""
    if not rows:
        where = ", ".join(s.url for s in stores)
        why = (f"no machine is running in {where}: a job's machine ends with its job unless it was "
               "started with --keep-alive (or a backend's keep_alive setting), and warm %%offload "
               "sessions and sweep packs are listed only while they run")
    return rows, why


def _find(name: str, stores: list[Store]) -> tuple[Store, dict[str, Any]]:
    for st in stores:
        rec = st.get_json(layout.machine_key(name), None) if _safe_name(name) else None
        if rec:
            return st, rec
    raise MachineNotFound(f"no machine {name!r} in {', '.join(s.url for s in stores)}",
                          hint="`offload machines --running` lists the live machines", field="name")


MACHINE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")  # machine names are VM names: also safe as store keys


def _safe_name(name: str) -> bool:
    return bool(MACHINE_NAME.match(name or ""))


def stop_machine(name: str, *, store: Store | str | None = None, also: list[Store] = ()) -> dict[str, Any]:
    """Ask machine ``name`` to end: it ends now when idle, after its current job when busy (a
    session ends at once). A machine whose agent no longer answers is deleted through its backend."""
    stores = known_stores(store, also=also)
    st, rec = _find(name, stores)
    if rec.get("state") == MachineState.ENDED:
        return {"name": name, "stopped": False, "message": f"{name} has already ended ({rec.get('reason') or 'ended'})"}
    if rec.get("role") == "pack":
        raise UsageError(f"{name} is a sweep's pack: it ends with its sweep",
                         hint="offload sweep stop SWEEP_ID", field="name")
    st.put_text(layout.machine_stop_key(name), str(time.time()))
    message = (f"{name} stops after its current job {rec.get('job')}" if rec.get("state") == MachineState.BUSY
               and rec.get("role") == "keep-alive" else f"{name} is stopping")
    if not machine_record_live(rec) and rec.get("handle"):
        try:
            be = get_backend(rec["backend"], st, **backend_options(rec["backend"]))
            be.cancel(rec["handle"])
            message = f"{name} did not answer; deleted through {rec['backend']}"
        except OffloadError as exc:
            message = f"{name} did not answer and could not be deleted: {exc}"
    return {"name": name, "stopped": True, "message": message}


def stop_all(*, store: Store | str | None = None, also: list[Store] = ()) -> list[dict[str, Any]]:
    """Stop every live machine but sweep packs (they end with their sweep)."""
    rows, _why = list_machines(store=store, also=also)
    return [stop_machine(row["name"], store=row.get("store") or store, also=also) for row in rows
            if row["role"] != "pack"]


__all__ = ["MACHINE_NAME", "apply_keep_alive_default", "claim", "hand_off", "is_handed", "list_machines", "stop_all", "stop_machine"]
