"""Prices and cost estimates.

The bundled table (``offload/backends/prices/gce.json``) carries the date its prices were taken, so an
estimate can say how old it is (`offload machines` warns past 90 days); with credentials, today's
prices come from the Cloud Billing Catalog API (:mod:`offload.backends.billing`, cached daily); a user can point ``OFFLOAD_GCE_PRICES`` (or the gce backend option
``prices``) at their own copy when their contract prices differ. Costs are estimates: GCE bills per
second with a one-minute minimum, and spot prices move.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from offload.backends import billing
from offload.errors import UsageError

BUNDLED = Path(__file__).parent / "prices" / "gce.json"
PRICES_ENV = "OFFLOAD_GCE_PRICES"
MIN_BILLED_S = 60  # Compute Engine bills per second after the first minute


@lru_cache(maxsize=8)
def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise UsageError(
            f"price table {path} does not exist",
            hint=f"unset {PRICES_ENV} or point it at a JSON file shaped like {BUNDLED}",
        ) from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"price table {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "machines" not in data:
        raise UsageError(f"price table {path} has no 'machines' section", hint=f"see {BUNDLED}")
    return data


def load_price_table(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The user's table if given (argument, then ``OFFLOAD_GCE_PRICES``), else the bundled one.

    A user table may hold only the entries it overrides: it is merged over the bundled table
    (sections ``gpus`` and ``machines`` entry by entry), so a partial file stays usable.
    """
    base = _load(str(BUNDLED))
    chosen = path or os.environ.get(PRICES_ENV)
    if not chosen or Path(chosen).resolve() == BUNDLED.resolve():
        return base
    user = _load(str(Path(chosen).expanduser()))
    merged = {**base, **{k: v for k, v in user.items() if k not in ("gpus", "machines")}}
    for section in ("gpus", "machines", "region_multipliers"):
        merged[section] = {**base.get(section, {}), **user.get(section, {})}
    merged["overridden_by"] = str(chosen)
    return merged


STALE_AFTER_DAYS = 90  # a bundled table older than this is flagged in `offload machines` and the estimates


def gce_price_table(options: dict[str, Any] | None = None, *, refresh: bool = False) -> dict[str, Any]:
    """The prices a gce backend uses: the user's table (``prices`` option or ``OFFLOAD_GCE_PRICES``)
    when given; else today's live prices from the Cloud Billing Catalog API for the first region
    (cached for the day; fetched only with ``refresh``, which `offload machines` passes) over the
    bundled table; else the bundled table. ``source`` says which."""
    opts = options or {}
    chosen = opts.get("prices") or os.environ.get(PRICES_ENV)
    base = load_price_table(chosen)
    if chosen:
        return {**base, "source": f"your table {chosen}"}
    out = {**base, "source": "bundled table"}
    if opts.get("live_prices") in (False, "false", "no", "off", 0):
        return out
    region = (str(opts.get("regions") or opts.get("region") or base.get("default_region", "us-central1"))
              .split(",")[0].strip())
    entry = billing.refresh(base, region, opts) if refresh else billing.cached(region)
    if not entry or "overlay" not in entry:
        if entry and entry.get("error"):
            out["live_error"] = entry["error"]
        return out
    live = entry["overlay"]
    merged = {**out, "machines": dict(base["machines"]), "gpus": dict(base["gpus"])}
    for section in ("machines", "gpus"):
        for name, got in live.get(section, {}).items():
            if name in merged[section]:
                old = merged[section][name].get("price") or [None, None]
                pair = [n if n is not None else o for n, o in zip(got["price"], old, strict=True)]
                merged[section][name] = {**merged[section][name], "price": pair}
    # live prices are for `region` itself: no multiplier on top of them there
    merged["region_multipliers"] = {**base.get("region_multipliers", {}), region: 1.0}
    merged.update(taken=entry["day"], source=f"{billing.SOURCE} ({region}, fetched {entry['day']})",
                  live_region=region)
    return merged


def price_note(table: dict[str, Any] | None, *, now: float | None = None) -> str | None:
    """One line for `offload machines`: where the prices come from, their date, and a warning
    when a table is older than STALE_AFTER_DAYS."""
    if not table:
        return None
    taken = table.get("taken")
    line = f"prices: {table.get('source', 'bundled table')}, taken {taken or '?'}"
    if table.get("source", "bundled").startswith(("bundled", "your table")) and taken:
        try:
            age = int(((now or time.time()) - time.mktime(time.strptime(taken, "%Y-%m-%d"))) // 86400)
        except ValueError:
            age = None
        if age is not None and age > STALE_AFTER_DAYS:
            line += (f"\nwarning: these prices are {age} days old; list prices and spot prices move. With "
                     "Application Default Credentials `offload machines` reads today's from the Cloud Billing "
                     "Catalog API (live_error says why it could not)" if not table.get("live_error") else
                     f"\nwarning: these prices are {age} days old; live prices failed: {table['live_error']}")
    return line


@dataclass
class Price:
    """Dollars per hour for one machine shape in one region, with where the number came from."""

    on_demand: float | None
    spot: float | None
    region: str
    taken: str | None

    def per_hour(self, spot: bool) -> float | None:
        return self.spot if spot else self.on_demand


def machine_price(
    table: dict[str, Any],
    machine: str,
    *,
    gpu: str | None = None,
    gpu_count: int = 0,
    region: str | None = None,
) -> Price:
    """Machine price plus attached GPUs (n1 + T4), scaled for the region.

    Accelerator-optimized shapes (a2, a3, g2) carry their GPUs in the machine price.
    """
    region = region or table.get("default_region", "us-central1")
    mult = float(table.get("region_multipliers", {}).get(region, 1.0))
    entry = table["machines"].get(machine)
    if entry is None or "price" not in entry:
        return Price(None, None, region, table.get("taken"))
    od, sp = entry["price"]  # either may be null: a3-highgpu-1g/2g/4g are not offered on demand
    if gpu and gpu_count and not entry.get("gpu"):
        gp = table.get("gpus", {}).get(gpu, {}).get("price")
        if gp is None:
            return Price(None, None, region, table.get("taken"))
        od = None if od is None or gp[0] is None else od + gp[0] * gpu_count
        sp = None if sp is None or gp[1] is None else sp + gp[1] * gpu_count
    return Price(None if od is None else round(od * mult, 4), None if sp is None else round(sp * mult, 4),
                 region, table.get("taken"))


def estimate(
    price_per_hour: float | None, max_runtime_s: int, expected_s: float | None = None
) -> dict[str, Any]:
    """Cost of the hard cap (what the job can cost at most) and of the expected runtime."""
    if price_per_hour is None:
        return {"price_per_hour": None, "max_cost": None, "expected_cost": None}
    out: dict[str, Any] = {
        "price_per_hour": price_per_hour,
        "max_runtime_s": int(max_runtime_s),
        "max_cost": round(price_per_hour * max_runtime_s / 3600, 4),
        "expected_cost": None,
    }
    if expected_s:
        out["expected_s"] = float(expected_s)
        out["expected_cost"] = round(price_per_hour * min(expected_s, max_runtime_s) / 3600, 4)
    return out


def actual(price_per_hour: float | None, billed_s: float) -> float | None:
    """Per-second billing with the one-minute minimum."""
    if price_per_hour is None:
        return None
    billed = max(MIN_BILLED_S, math.ceil(max(0.0, billed_s)))
    return round(price_per_hour * billed / 3600, 4)


def format_money(value: float | None) -> str:
    return "?" if value is None else f"${value:,.2f}"


def machines_table(machines: list[Any], taken: str | None = None) -> str:
    """The text `offload machines` prints: one row per offer, both prices, the table's date."""
    rows = [("MACHINE", "GPU", "vCPU", "RAM GB", "$/h", "spot $/h")]
    for m in machines:
        gpu = f"{m.gpu_count}x {m.gpu}" if m.gpu else "-"
        rows.append((m.name, gpu, str(m.vcpus or "?"), f"{m.memory_gb:g}" if m.memory_gb else "?",
                     format_money(m.price_per_hour)[1:] if m.price_per_hour is not None else "?",
                     format_money(m.spot_price_per_hour)[1:] if m.spot_price_per_hour is not None else "?"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    if taken:
        lines.append(f"prices: approximate list prices taken {taken}; spot prices change daily")
    return "\n".join(lines)
