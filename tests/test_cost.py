"""Machine catalog, name resolution and cost: what `offload machines` and `--gpu` users see."""

from __future__ import annotations

import json

import pytest

from offload.backends.cost import actual, estimate, load_price_table, machine_price
from offload.backends.gce import catalog
from offload.errors import UsageError
from offload.spec import JobSpec, Resources


@pytest.fixture
def table():
    return load_price_table()


def test_table_says_when_prices_were_taken(table):
    assert table["taken"] >= "2025-01-01" and table["sources"]


def test_gpu_name_picks_the_smallest_machine_that_carries_it(table):
    [shape] = catalog.shapes_for(table, Resources(gpu="l4"))
    assert (shape.machine, shape.gpu, shape.accelerator) == ("g2-standard-4", "l4", None)
    [shape] = catalog.shapes_for(table, Resources(gpu="L4", cpus=12))
    assert shape.machine == "g2-standard-16"
    [shape] = catalog.shapes_for(table, Resources(gpu="a100", gpu_count=2))
    assert shape.machine == "a2-highgpu-2g"


def test_attached_gpus_go_on_n1(table):
    [shape] = catalog.shapes_for(table, Resources(gpu="t4"))
    assert (shape.machine, shape.accelerator, shape.gpu_count) == ("n1-standard-8", "nvidia-tesla-t4", 1)
    [shape] = catalog.shapes_for(table, Resources(machine="n1-standard-4", gpu="t4", gpu_count=2))
    assert (shape.machine, shape.gpu_count) == ("n1-standard-4", 2)


def test_machine_name_alone_works_and_names_its_gpu(table):
    [shape] = catalog.shapes_for(table, Resources(machine="g2-standard-8"))
    assert (shape.gpu, shape.gpu_count, shape.built_in) == ("l4", 1, True)


def test_fallback_list_gives_one_shape_per_gpu(table):
    shapes = catalog.shapes_for(table, Resources(gpu="l4,t4"))
    assert [s.gpu for s in shapes] == ["l4", "t4"]


@pytest.mark.parametrize("res, needle", [
    (Resources(gpu="k80"), "valid GPUs: a100, a100-80gb, h100, l4, p4, t4, v100"),
    (Resources(machine="g9-huge"), "valid machine types: a2-highgpu-1g"),
    (Resources(machine="g2-standard-8", gpu="a100"), "carries 1x l4, not a100"),
    (Resources(machine="n1-standard-4", gpu="l4"), "cannot take a l4 GPU"),
    (Resources(gpu="l4", gpu_count=3), "l4 comes in counts 1, 2, 4, 8"),
    (Resources(gpu="1"), "names no GPU type"),
])
def test_bad_names_are_errors_that_list_what_is_valid(table, res, needle):
    with pytest.raises(UsageError) as err:
        catalog.shapes_for(table, res)
    assert needle in str(err.value)


def test_prices_add_attached_gpus_and_scale_by_region(table):
    p = machine_price(table, "n1-standard-8", gpu="t4", gpu_count=1, region="us-central1")
    assert p.on_demand == pytest.approx(0.38 + 0.35) and p.spot == pytest.approx(0.08 + 0.14)
    eu = machine_price(table, "g2-standard-4", region="europe-west4")
    us = machine_price(table, "g2-standard-4", region="us-central1")
    assert eu.on_demand > us.on_demand and us.spot < us.on_demand


def test_estimate_and_actual_cost():
    est = estimate(2.0, 4 * 3600, expected_s=1800)
    assert est["max_cost"] == 8.0 and est["expected_cost"] == 1.0
    assert actual(3.6, 10) == pytest.approx(0.06)  # one-minute minimum
    assert actual(3.6, 3600) == pytest.approx(3.6)


def test_user_price_table_overrides_entries(tmp_path, monkeypatch):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"taken": "2030-01-01", "machines": {
        "g2-standard-4": {"vcpus": 4, "memory_gb": 16, "gpu": "l4", "gpu_count": 1, "price": [0.5, 0.1]}}}))
    monkeypatch.setenv("OFFLOAD_GCE_PRICES", str(path))
    t = load_price_table()
    assert t["taken"] == "2030-01-01" and "a2-highgpu-1g" in t["machines"]
    assert machine_price(t, "g2-standard-4").on_demand == 0.5


def test_broken_user_price_table_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_price_table(bad)


def test_machine_list_has_gpu_shapes_with_both_prices(table):
    ms = catalog.machine_list(table, "us-central1")
    by = {m.name: m for m in ms}
    assert by["g2-standard-8"].gpu == "l4" and by["g2-standard-8"].spot_price_per_hour < by["g2-standard-8"].price_per_hour
    assert by["n1-standard-8+t4"].gpu == "t4" and by["a3-highgpu-8g"].gpu_count == 8
    assert ms[-1].gpu is None  # CPU shapes last


def test_gce_backend_describes_and_validates(tmp_path):
    from offload.backends.gce import GceBackend
    from offload.store import Store

    be = GceBackend(Store((tmp_path / "s").as_uri()), project="p", region="us-central1")
    assert any(m.name == "a2-ultragpu-1g" for m in be.machines())
    spec = JobSpec(id="20260101-000000-abcdef", notebook="a.ipynb", bundle_id="b", backend="gce",
                   resources=Resources(gpu="l4", spot=True, max_runtime_s=7200))
    assert be.estimate_cost(spec) == pytest.approx(2 * 0.283)
    with pytest.raises(UsageError, match="needs a gs:// store"):
        be.validate(spec)
    gs = GceBackend(Store("memory://x"), project="p", region="europe-west1")
    gs.store.url = "gs://bucket/offload"  # validate reads only the URL
    with pytest.raises(UsageError, match="no zone of europe-west1 offers l4"):
        gs.validate(spec)
