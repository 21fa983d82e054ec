"""A fake Cloud Billing Catalog API: ``GET /v1/services/{service}/skus`` in the real wire shape
(``skus[]`` with ``description``, ``category``, ``serviceRegions``, ``pricingInfo[].pricingExpression
.tieredRates[].unitPrice{units,nanos}``; ``pageSize``/``pageToken`` paging with ``nextPageToken``),
for offload/backends/billing.py's tests. Every request is logged in ``requests``."""

from __future__ import annotations

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COMPUTE = "6F81-5844-456A"


def sku(description: str, dollars: float, *, usage: str = "OnDemand", regions: tuple[str, ...] = ("us-central1",),
        group: str = "CPU", unit: str = "h") -> dict[str, Any]:
    units = int(dollars)
    return {
        "name": f"services/{COMPUTE}/skus/{abs(hash((description, usage, regions))) % 10**12:012d}",
        "skuId": f"{abs(hash((description, usage))) % 10**4:04X}-{abs(hash(regions)) % 10**4:04X}",
        "description": description,
        "category": {"serviceDisplayName": "Compute Engine", "resourceFamily": "Compute",
                     "resourceGroup": group, "usageType": usage},
        "serviceRegions": list(regions),
        "pricingInfo": [{"summary": "", "effectiveTime": "2026-12-01T00:00:00Z", "currencyConversionRate": 1,
                         "pricingExpression": {"usageUnit": unit, "displayQuantity": 1, "baseUnit": "s",
                                               "usageUnitDescription": "hour",
                                               "tieredRates": [{"startUsageAmount": 0, "unitPrice": {
                                                   "currencyCode": "USD", "units": str(units),
                                                   "nanos": int(round((dollars - units) * 1e9))}}]}}],
        "serviceProviderName": "Google",
    }


class FakeBilling:
    def __init__(self, skus: list[dict[str, Any]], *, page_size: int = 3):
        self.skus = skus
        self.page_size = page_size
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                url = urllib.parse.urlparse(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                fake.requests.append({"path": url.path, "query": query})
                if url.path != f"/v1/services/{COMPUTE}/skus":
                    return self._reply(404, {"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}})
                start = int(query.get("pageToken") or 0)
                size = min(int(query.get("pageSize") or 5000), fake.page_size)
                page = fake.skus[start:start + size]
                nxt = str(start + size) if start + size < len(fake.skus) else ""
                self._reply(200, {"skus": page, "nextPageToken": nxt})

            def _reply(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
