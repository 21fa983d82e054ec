"""Live Compute Engine prices from the Cloud Billing Catalog API, cached for the day.

``GET https://cloudbilling.googleapis.com/v1/services/6F81-5844-456A/skus`` (Compute Engine's
service id; ``pageToken`` paging) lists every SKU with its ``category.usageType`` (``OnDemand``,
``Preemptible`` for spot), ``serviceRegions`` and ``pricingInfo[0].pricingExpression.tieredRates``
(``unitPrice`` as ``units`` + ``nanos``). A machine's price is its series' vCPU rate x vCPUs + RAM
rate x GiB (+ its GPUs' rate x count for accelerator-optimized shapes): the shapes of the bundled
table, priced with today's rates for the region. What the SKUs do not price stays as bundled.

Credentials are Application Default Credentials; without them (or without the API enabled) the
bundled table is used and the failure is cached too, so nothing retries on every command. The
cache is ``<data dir>/prices/gce-<region>.json``, renewed once per UTC day by ``offload machines``.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from offload.paths import data_dir

COMPUTE_SERVICE = "6F81-5844-456A"
ENDPOINT = "https://cloudbilling.googleapis.com"
ENDPOINT_ENV = "OFFLOAD_BILLING_ENDPOINT"  # testing: a fake Cloud Billing server
SOURCE = "Cloud Billing Catalog API"
_GPU = {"t4": "t4", "l4": "l4", "a100": "a100", "a100 80gb": "a100-80gb", "h100 80gb": "h100", "h100": "h100",
        "v100": "v100", "p4": "p4"}
_SKIP = ("custom", "sole tenancy", "commitment", "reserved", "premium", "virtual workstation", "dws",
         "calendar", "flex", "extended", "mega", "ultra", "edge")
_CORE_RAM = re.compile(r"^(?:spot preemptible )?([a-z]\d+[a-z]?) (?:predefined )?instance (core|ram)\b")
_GPU_RE = re.compile(r"^nvidia (?:tesla )?([a-z0-9]+(?: 80gb)?) gpu\b")


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def cache_path(region: str) -> Path:
    return data_dir() / "prices" / f"gce-{region}.json"


def cached(region: str) -> dict[str, Any] | None:
    """Today's cache entry for ``region`` (``{"day", "overlay"}`` or ``{"day", "error"}``), or None."""
    try:
        entry = json.loads(cache_path(region).read_text())
    except (OSError, ValueError):
        return None
    return entry if entry.get("day") == today() else None


def _save(region: str, entry: dict[str, Any]) -> None:
    path = cache_path(region)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only data dir only costs a fetch per command


def _price(sku: dict[str, Any]) -> float | None:
    try:
        rates = sku["pricingInfo"][0]["pricingExpression"]["tieredRates"]
        unit = rates[-1]["unitPrice"]
        return int(unit.get("units") or 0) + int(unit.get("nanos") or 0) / 1e9
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def rates(skus: list[dict[str, Any]], region: str) -> dict[tuple[str, str, bool], float]:
    """``(kind, name, spot) -> USD per hour`` (per vCPU, per GiB, per GPU) for ``region``:
    kinds ``core``/``ram`` by series (``n1``, ``g2``, ``a2``...) and ``gpu`` by table key."""
    out: dict[tuple[str, str, bool], float] = {}
    for sku in skus:
        cat = sku.get("category") or {}
        usage = cat.get("usageType")
        if cat.get("resourceFamily") != "Compute" or usage not in ("OnDemand", "Preemptible"):
            continue
        if region not in (sku.get("serviceRegions") or []):
            continue
        desc = str(sku.get("description", "")).lower()
        spot = usage == "Preemptible"
        plain = desc.removeprefix("spot preemptible ")
        if any(word in plain for word in _SKIP):
            continue
        price = _price(sku)
        if price is None:
            continue
        if m := _CORE_RAM.match(desc):
            out[(m.group(2), m.group(1), spot)] = price
        elif (m := _GPU_RE.match(plain)) and m.group(1) in _GPU:
            out[("gpu", _GPU[m.group(1)], spot)] = price
    return out


def overlay(table: dict[str, Any], found: dict[tuple[str, str, bool], float]) -> dict[str, Any]:
    """Prices for the table's shapes from the rates (``{"machines": {...}, "gpus": {...}}``); a
    shape whose series or GPU has no rate is left out (the bundled figure stays)."""
    machines: dict[str, Any] = {}
    for name, entry in table.get("machines", {}).items():
        series = name.split("-", 1)[0]
        pair = []
        for spot in (False, True):
            core, ram = found.get(("core", series, spot)), found.get(("ram", series, spot))
            gpu = found.get(("gpu", entry["gpu"], spot)) if entry.get("gpu") else 0.0
            if core is None or ram is None or gpu is None or not entry.get("vcpus") or not entry.get("memory_gb"):
                pair.append(None)
                continue
            pair.append(round(core * entry["vcpus"] + ram * entry["memory_gb"] + gpu * int(entry.get("gpu_count") or 0), 4))
        if pair[0] is not None or pair[1] is not None:
            machines[name] = {"price": pair}
    gpus = {}
    for key, info in table.get("gpus", {}).items():
        if info.get("attach"):
            od, sp = found.get(("gpu", key, False)), found.get(("gpu", key, True))
            if od is not None and sp is not None:
                gpus[key] = {"price": [round(od, 4), round(sp, 4)]}
    return {"machines": machines, "gpus": gpus}


def _session(options: dict[str, Any]) -> Any:
    """An authorized session (ADC), or None for the anonymous test endpoint."""
    if options.get("credentials") == "anonymous":
        return None
    import google.auth  # the gce extra: imported only when prices are refreshed
    from google.auth.transport.requests import AuthorizedSession

    creds, _project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    return AuthorizedSession(creds)


def fetch_skus(options: dict[str, Any], *, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every Compute Engine SKU, page by page."""
    base = (options.get("billing_endpoint") or os.environ.get(ENDPOINT_ENV) or ENDPOINT).rstrip("/")
    session = _session(options)
    skus: list[dict[str, Any]] = []
    token = ""
    for _ in range(200):  # a bound: the catalog is tens of pages, never hundreds
        query = urllib.parse.urlencode({"currencyCode": "USD", "pageSize": 5000, **({"pageToken": token} if token else {})})
        url = f"{base}/v1/services/{COMPUTE_SERVICE}/skus?{query}"
        if session is None:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our own endpoint option
                page = json.load(resp)
        else:
            resp = session.get(url, timeout=timeout)
            resp.raise_for_status()
            page = resp.json()
        skus += page.get("skus", [])
        token = page.get("nextPageToken") or ""
        if not token:
            break
    return skus


def refresh(table: dict[str, Any], region: str, options: dict[str, Any]) -> dict[str, Any]:
    """Today's entry for ``region``: from the cache, else fetched (and cached, failures too)."""
    entry = cached(region)
    if entry is not None:
        return entry
    try:
        found = rates(fetch_skus(options), region)
        entry = {"day": today(), "fetched_at": time.time(), "overlay": overlay(table, found), "rates": len(found)}
    except Exception as exc:  # no ADC, API disabled, offline: the bundled table it is, for today
        entry = {"day": today(), "fetched_at": time.time(), "error": f"{type(exc).__name__}: {exc}"[:300]}
    _save(region, entry)
    return entry
