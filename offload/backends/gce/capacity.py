"""Waiting for capacity (``--wait-for-capacity 2h``): a launch that found no zone with the GPU
tries again, with backoff, until it gets one or the wait is over.

Where the shape supports it (accelerator-optimized machines: A2, A3, A4, G2; not spot) the VM is
requested as a DWS flex-start VM: ``scheduling.provisioningModel = FLEX_START`` with its required
``maxRunDuration`` (at most 7 days), ``instanceTerminationAction = DELETE``, ``onHostMaintenance =
TERMINATE`` and ``reservationAffinity = NO_RESERVATION``. Google then queues the request itself
(up to two hours) inside the insert operation, so the operation is waited on for as long as the
wait allows. Other shapes (N1 with T4/V100/P4, spot) keep cycling the zones and regions.

Progress goes where every client sees it: ``jobs/<id>/attempts.json`` gains ``waiting`` (round,
what was tried, when the next round starts, until when), the job's state reads ``provisioning``
with that as its reason (``offload ls``/``show``, the panel), and the client's log says it
(``offload run`` prints it). ``offload cancel`` (the job's cancel marker) ends the wait at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from offload.errors import BackendError, OffloadError
from offload.spec import JobSpec
from offload.store import Store, layout

FLEX_FAMILIES = ("a2", "a3", "a4", "g2")  # accelerator-optimized (A4X and G4 excluded by Google)
FLEX_MAX_RUN_S = 7 * 86400  # a flex-start VM runs at most seven days
FLEX_QUEUE_S = 2 * 3600  # Google keeps a flex-start request queued for up to two hours
BACKOFF_S = 30.0  # first pause between rounds (gce option capacity_backoff_s); doubles up to 20x
log = logging.getLogger("offload.gce")


class CancelledWhileWaiting(OffloadError):
    """The user cancelled the job while its launch waited for capacity."""

    exit_code = 130
    http_status = 409


def flex_start(spec: JobSpec, machine: str) -> bool:
    """Whether this job's VM is requested as a DWS flex-start VM."""
    return (bool(spec.wait_for_capacity_s) and not spec.resources.spot
            and machine.split("-", 1)[0] in FLEX_FAMILIES and spec.resources.max_runtime_s <= FLEX_MAX_RUN_S)


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def launch_waiting(spec: JobSpec, store: Store, options: dict[str, Any], once: Callable[[], dict[str, Any]],
                   *, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """``once()`` (one walk over the zones) until it places the VM, waiting between rounds while
    every failure was a capacity one; quota and other errors end the wait at once."""
    if not spec.wait_for_capacity_s:
        return once()
    start = time.time()
    until = start + spec.wait_for_capacity_s
    base = float(options.get("capacity_backoff_s", BACKOFF_S))
    key = layout.job_key(spec.id, "attempts.json")
    cancel = layout.job_key(spec.id, "cancel")
    history: list[dict[str, Any]] = []
    rnd = 0
    while True:
        rnd += 1
        try:
            handle = once()
        except BackendError as exc:
            record = store.get_json(key, None) or {}
            tried = [{**a, "round": rnd} for a in record.get("attempts", [])]
            history += tried
            if not tried or any(a.get("outcome") not in ("capacity", "unavailable") for a in tried):
                _put(store, key, history, None)
                raise  # quota, refused request: waiting does not help
            delay = min(base * 2 ** (rnd - 1), base * 20)
            nxt = time.time() + delay
            zones = ", ".join(sorted({a["zone"] for a in tried}))
            if nxt >= until:
                _put(store, key, history, None)
                raise BackendError(
                    f"no capacity within --wait-for-capacity {spec.wait_for_capacity_s // 60} min: "
                    f"{rnd} round(s) over {zones}; last: {exc.message}",
                    hint="wait longer (--wait-for-capacity), add regions (offload config set backend gce regions "
                         "...), or offer a fallback GPU (--gpu l4,t4)") from None
            say = (f"waiting for capacity: round {rnd} found none ({zones}); next round at {_clock(nxt)}, "
                   f"waiting until {_clock(until)}")
            _put(store, key, history, {"round": rnd, "tried": zones, "next_at": nxt, "until": until, "say": say,
                                       "last_error": exc.message})
            log.warning("job %s %s", spec.id, say)
            while time.time() < nxt:
                if store.exists(cancel):
                    _put(store, key, history, None)
                    raise CancelledWhileWaiting(f"job {spec.id} was cancelled while waiting for capacity "
                                                f"({rnd} round(s) over {zones})") from None
                sleep(min(1.0, max(0.0, nxt - time.time())))
            continue
        handle["capacity"] = {"rounds": rnd, "waited_s": round(time.time() - start, 1),
                              "flex_start": flex_start(spec, str(handle.get("machine"))) and not handle.get("spot")}
        if history:
            handle["attempts"] = history + [{**a, "round": rnd} for a in handle.get("attempts", [])]
            _put(store, key, handle["attempts"], None, placed=handle)
        return handle


def _put(store: Store, key: str, attempts: list[dict[str, Any]], waiting: dict[str, Any] | None,
         placed: dict[str, Any] | None = None) -> None:
    try:
        store.put_json(key, {
            "attempts": attempts, "waiting": waiting,
            "placed": {k: placed.get(k) for k in ("zone", "machine", "gpu", "spot", "name")} if placed else None,
        })
    except Exception:
        pass  # progress is for people: a store hiccup must not end the wait
