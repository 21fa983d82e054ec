"""gce backend pieces that need no VM: credentials errors, the startup script, the request body."""

from __future__ import annotations

import subprocess

import pytest

from offload.backends.gce import GceBackend, instance_name
from offload.backends.gce.boot import startup_script
from offload.backends.gce.wheel import build_wheel
from offload.errors import BackendError
from offload.spec import JobSpec, Resources
from offload.store import Store


def _spec(**res) -> JobSpec:
    return JobSpec(id="20260101-000000-abcdef", notebook="a.ipynb", bundle_id="b", backend="gce",
                   resources=Resources(**res))


def test_missing_credentials_is_an_error_that_says_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    be = GceBackend(Store((tmp_path / "s").as_uri()), project="p")
    with pytest.raises(BackendError) as err:
        be.cleanup()
    assert "no usable Google Cloud credentials" in str(err.value)
    assert "gcloud auth application-default login" in err.value.hint


def test_startup_script_is_constant_and_valid_bash(tmp_path):
    script = startup_script()
    assert script == startup_script() and "offload.runner" in script
    path = tmp_path / "s.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0


def test_wheel_is_deterministic_and_carries_the_entry_points():
    import io
    import zipfile

    name, data = build_wheel()
    assert build_wheel()[1] == data and name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        ep = next(n for n in names if n.endswith("entry_points.txt"))
        assert "gce = offload.backends.gce:GceBackend" in zf.read(ep).decode()
    assert "offload/runner/__main__.py" in names and "offload/backends/prices/gce.json" in names


def test_instance_body_for_cpu_on_demand_and_gpu_spot(tmp_path):
    be = GceBackend(Store((tmp_path / "s").as_uri()), project="p", credentials="anonymous",
                    labels={"Team": "ML Research"})
    from offload.backends.gce import catalog

    cpu = catalog.shapes_for(be.table, Resources())[0]
    body = be._body(_spec(), cpu, "us-central1-a", False, "offload-x", "envs/wheels/k/w.whl")
    assert body.scheduling.provisioning_model == "STANDARD" and body.scheduling.on_host_maintenance == "MIGRATE"
    assert body.scheduling.max_run_duration.seconds == 6 * 3600
    assert body.labels["team"] == "ml-research" and body.labels["offload-managed"] == "true"
    gpu = catalog.shapes_for(be.table, Resources(gpu="t4"))[0]
    body = be._body(_spec(gpu="t4", spot=True), gpu, "us-central1-b", True, "offload-x", "k")
    assert body.scheduling.provisioning_model == "SPOT" and body.scheduling.instance_termination_action == "DELETE"
    assert body.guest_accelerators[0].accelerator_type == "zones/us-central1-b/acceleratorTypes/nvidia-tesla-t4"
    assert "deeplearning-platform-release" in body.disks[0].initialize_params.source_image


def test_instance_names_are_valid_gce_names():
    assert instance_name("20260101-000000-abcdef") == "offload-20260101-000000-abcdef"
    long = instance_name("a" * 63)
    assert len(long) <= 63 and long.startswith("offload-")
