"""Zone failover for the GCE backend: what an insert attempt's error means, and what to tell the
user when every zone failed. Capacity errors (``ZONE_RESOURCE_POOL_EXHAUSTED`` and kin) move on to
the next zone; quota errors move on to the next region or give up with the quota's name.
"""

from __future__ import annotations

import re
from typing import Any

from offload.backends.gce import catalog
from offload.errors import BackendError

CAPACITY_CODES = {"ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
                  "RESOURCE_POOL_EXHAUSTED", "STOCKOUT"}
CAPACITY_REASONS = {"resource_availability", "stockout", "zone_resource_pool_exhausted",
                    "zone_resource_pool_exhausted_with_details"}

def classify_attempt(att: dict[str, Any], errs: list[dict[str, Any]], http: int | None, message: str) -> None:
    """Set ``outcome`` (capacity, quota, unavailable, error), ``code`` and ``quota`` of one attempt."""
    codes = {str(e.get("code") or e.get("reason") or "") for e in errs}
    reasons = {str(r).lower() for e in errs for r in e.get("reasons", [])} | {c.lower() for c in codes}
    quotas = [q for e in errs for q in e.get("quota", [])]
    text = message.lower()
    att["message"] = message
    att["code"] = next((c for c in codes if c), None) or http
    if codes & CAPACITY_CODES or reasons & CAPACITY_REASONS or "does not have enough resources" in text:
        att["outcome"] = "capacity"
    elif "QUOTA_EXCEEDED" in codes or "quotaexceeded" in reasons or "quota '" in text:
        att["outcome"] = "quota"
        m = re.search(r"quota '([^']+)'", message, re.I)
        att["quota"] = (m.group(1) if m else None) or (quotas[0].rsplit("/", 1)[-1].upper() if quotas else None)
    elif "does not exist in zone" in text or "not available in zone" in text or "unsupported" in text:
        att["outcome"] = "unavailable"  # the zone does not offer this shape: next zone
    elif http in (429, 503):
        att["outcome"] = "capacity"
    else:
        att["outcome"] = "error"


def exhausted_error(shapes: list[catalog.Shape], attempts: list[dict[str, Any]], quota_hit: list[dict[str, Any]],
                    *, regions: list[str], project: str | None) -> BackendError:
    """The error when no zone could take the job: quota (with where to ask for more) or capacity."""
    what = " or ".join(s.label for s in shapes)
    tried = ", ".join(f"{a['zone']} ({a['code'] or a['outcome']})" for a in attempts) or "no zone"
    if quota_hit and len(quota_hit) == len({a["region"] for a in attempts}) and all(
        a["outcome"] == "quota" for a in attempts
    ):
        q = quota_hit[0]
        return BackendError(
            f"quota {q.get('quota') or 'unknown'} exceeded in {', '.join(sorted({a['region'] for a in quota_hit}))}: "
            f"{q['message']}",
            hint=f"request more at https://console.cloud.google.com/iam-admin/quotas?project={project}, "
            "or add a region: offload config set backend gce regions us-central1,us-east1",
        )
    if not attempts:
        return BackendError(f"no candidate zone for {what} in {', '.join(regions)}",
                            hint="set another region, or check the zones option")
    extra = ""
    if quota_hit:
        extra = f"; quota {quota_hit[0].get('quota')} exceeded in {quota_hit[0]['region']}"
    return BackendError(
        f"no capacity for {what} in any zone tried: {tried}{extra}",
        hint="try again later, add regions (offload config set backend gce regions ...), "
        "offer a fallback GPU (--gpu l4,t4), or allow on-demand (spot_fallback true)",
    )
