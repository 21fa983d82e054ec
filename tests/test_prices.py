"""Prices: live from the Cloud Billing Catalog API (a fake server speaking its wire shape), cached
for the day; the bundled table as fallback with its date and an age warning; `offload machines`
says which; shapes Google does not offer on demand are refused with the way to get them."""

from __future__ import annotations

import time

import pytest

from offload.backends import billing
from offload.backends.cost import gce_price_table, load_price_table, machine_price, price_note
from offload.backends.gce import GceBackend
from offload.cli import main
from offload.config import save_config
from offload.errors import UsageError
from offload.spec import JobSpec, Resources
from offload.store import Store
from tests.fakes.billing import FakeBilling, sku

G2_CORE, G2_RAM, L4 = 0.024, 0.0028, 0.56
G2_CORE_SPOT, G2_RAM_SPOT, L4_SPOT = 0.0097, 0.0011, 0.22


@pytest.fixture
def catalog():
    skus = [
        sku("G2 Instance Core running in Americas", G2_CORE),
        sku("G2 Instance Ram running in Americas", G2_RAM, group="RAM", unit="GiBy.h"),
        sku("Nvidia L4 GPU running in Americas", L4, group="GPU"),
        sku("Spot Preemptible G2 Instance Core running in Americas", G2_CORE_SPOT, usage="Preemptible"),
        sku("Spot Preemptible G2 Instance Ram running in Americas", G2_RAM_SPOT, usage="Preemptible", group="RAM"),
        sku("Nvidia L4 GPU attached to Spot Preemptible VMs running in Americas", L4_SPOT, usage="Preemptible",
            group="GPU"),
        sku("Nvidia Tesla T4 GPU running in Americas", 0.40, group="GPU"),
        sku("Nvidia Tesla T4 GPU attached to Spot Preemptible VMs running in Americas", 0.12, usage="Preemptible",
            group="GPU"),
        # what must not be taken: another region, a commitment, a custom shape
        sku("G2 Instance Core running in EMEA", 9.0, regions=("europe-west4",)),
        sku("Commitment v1: G2 Cpu in Americas for 1 Year", 0.001, usage="Commit1Yr"),
        sku("Custom G2 Instance Core running in Americas", 7.0),
    ]
    fake = FakeBilling(skus, page_size=3)
    yield fake
    fake.stop()


def _opts(fake):
    return {"project": "p", "credentials": "anonymous", "billing_endpoint": fake.url, "region": "us-central1"}


def test_live_prices_price_the_shapes_and_are_cached_for_the_day(catalog, tmp_path):
    table = gce_price_table(_opts(catalog), refresh=True)
    assert table["source"].startswith("Cloud Billing Catalog API (us-central1") and table["taken"] == billing.today()
    od, sp = table["machines"]["g2-standard-4"]["price"]
    assert od == pytest.approx(G2_CORE * 4 + G2_RAM * 16 + L4)  # not the EMEA or custom rates
    assert sp == pytest.approx(G2_CORE_SPOT * 4 + G2_RAM_SPOT * 16 + L4_SPOT)
    assert table["gpus"]["t4"]["price"] == [0.40, 0.12]
    assert table["machines"]["a2-highgpu-1g"] == load_price_table()["machines"]["a2-highgpu-1g"]  # unpriced: bundled
    pages = len(catalog.requests)
    assert pages == 4 and catalog.requests[1]["query"]["pageToken"] == "3"  # every page was read
    assert billing.cache_path("us-central1").exists()
    again = gce_price_table(_opts(catalog), refresh=True)  # today's cache: no second fetch
    assert len(catalog.requests) == pages and again["machines"]["g2-standard-4"] == table["machines"]["g2-standard-4"]
    be = GceBackend(Store((tmp_path / "s").as_uri()), **_opts(catalog))  # a backend reads the cache, never the API
    assert machine_price(be.table, "g2-standard-4").on_demand == pytest.approx(od)
    assert len(catalog.requests) == pages


def test_offload_machines_says_where_prices_come_from(catalog, capsys):
    save_config({"backend": "gce", "backends": {"gce": _opts(catalog)}})
    assert main(["machines", "--backend", "gce"]) == 0
    out = capsys.readouterr().out
    assert f"prices: Cloud Billing Catalog API (us-central1, fetched {billing.today()})" in out
    assert "warning" not in out
    row = next(line for line in out.splitlines() if line.startswith("g2-standard-4"))
    assert f"{G2_CORE * 4 + G2_RAM * 16 + L4:.2f}" in row


def test_without_live_prices_the_bundled_table_says_its_age(tmp_path, capsys):
    opts = {"project": "p", "credentials": "anonymous", "billing_endpoint": "http://127.0.0.1:9", "region": "us-central1"}
    table = gce_price_table(opts, refresh=True)
    assert table["source"] == "bundled table" and "live_error" in table
    assert billing.cached("us-central1")["error"]  # the failure is cached for the day: no retry per command
    note = price_note(table, now=time.mktime(time.strptime("2026-12-05", "%Y-%m-%d")))
    assert note.startswith(f"prices: bundled table, taken {table['taken']}")
    assert "days old" in note and "live prices failed" in note
    fresh = {**table, "taken": "2026-11-20"}
    assert "warning" not in price_note(fresh, now=time.mktime(time.strptime("2026-12-05", "%Y-%m-%d")))


def test_a3_high_below_8_gpus_is_spot_or_flex_start_only(tmp_path):
    table = load_price_table()
    assert table["machines"]["a3-highgpu-1g"]["price"][0] is None and table["machines"]["a3-highgpu-8g"]["price"][0]
    price = machine_price(table, "a3-highgpu-1g")
    assert price.on_demand is None and price.spot
    be = GceBackend(Store("gs://b/offload"), project="p", region="us-central1", credentials="anonymous",
                    live_prices=False)
    spec = JobSpec(id="20261205-000000-abcdef", notebook="n.ipynb", bundle_id="b", backend="gce",
                   resources=Resources(gpu="h100"))
    with pytest.raises(UsageError) as err:
        be.validate(spec)
    assert "a3-highgpu-1g is not offered on demand" in err.value.message and "--spot" in err.value.hint
    be.validate(JobSpec(**{**spec.__dict__, "resources": Resources(gpu="h100", spot=True)}))
    be.validate(JobSpec(**{**spec.__dict__, "wait_for_capacity_s": 7200}))
    be.validate(JobSpec(**{**spec.__dict__, "resources": Resources(gpu="h100", gpu_count=8)}))
