"""Idle-GPU stop (``--stop-if-idle``, offload/runner/idle.py): the real runner on the local backend
samples a fake NVML (tests/fakes/nvml/pynvml.py, first on the runner's PYTHONPATH) or a fake
``nvidia-smi`` (tests/fakes/bin) whose utilization the test sets through a file; a job whose GPUs
stay idle for the window ends cancelled with the reason, its partial output saved."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from offload.cli import main
from offload.jobs import submit
from offload.runner import idle
from offload.testing import wait_for

FAKES = Path(__file__).parent / "fakes"

LOOP = ("import time\nfor i in range(2400):\n    print('step', i, flush=True)\n    time.sleep(0.25)\nprint('loop done')")


@pytest.fixture
def gpus(tmp_path, monkeypatch):
    """Set the fake GPUs' utilization: ``gpus([90, 0])``; ``gpus(None)``: no driver."""
    path = tmp_path / "gpu-util.json"
    monkeypatch.setenv("FAKE_GPU_UTIL", str(path))
    monkeypatch.setenv(idle.SAMPLE_ENV, "0.3")

    def set_util(values):
        if values is None:
            path.unlink(missing_ok=True)
        else:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(values))
            os.replace(tmp, path)
    return set_util


@pytest.fixture
def fake_nvml(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKES / "nvml"), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture
def fake_smi(monkeypatch):
    monkeypatch.setenv("PATH", os.pathsep.join([str(FAKES / "bin"), os.environ["PATH"]]))


def test_idle_gpus_stop_the_job_and_keep_its_partial_output(notebook, gpus, fake_nvml, capsys):
    gpus([85, 60])
    nb = notebook("train.ipynb", ["print('loading', flush=True)", LOOP])
    job = submit(nb, backend="local", stop_if_idle="3s", idle_threshold=10)
    wait_for(lambda: "step 4" in job.logs(), 120, "the loop to run")
    st = job.refresh()
    assert st["state"] == "running" and st["idle"]["source"] == "nvml" and st["idle"]["utilization"] == [85, 60]
    gpus([3, 0])  # both GPUs go idle
    job.wait(timeout=120)
    st = job.status
    assert st["state"] == "cancelled", st
    assert "every GPU under 10% utilization" in st["reason"] and "--stop-if-idle 3 s" in st["reason"]
    assert "via nvml" in st["reason"]
    assert "loop done" not in job.logs() and st["reason"] in job.logs()
    out = job.store.get_text(job.key("output.ipynb"))  # the partial output was saved
    assert "loading" in out and "step 4" in out
    capsys.readouterr()
    assert main(["show", job.id]) == 0
    shown = capsys.readouterr().out
    assert "idle stop  after 3 s with every GPU under 10%" in shown and "sampled via nvml" in shown


def test_one_busy_gpu_keeps_the_job_running(notebook, gpus, fake_nvml):
    gpus([0, 95])  # idle, busy: the job is using a GPU
    nb = notebook("busy.ipynb", ["import time\ntime.sleep(4)\nprint('finished')"])
    job = submit(nb, backend="local", stop_if_idle="1s")
    job.wait(timeout=120)
    assert job.state == "succeeded", job.status
    assert job.status["idle"]["utilization"] == [0, 95] and job.status["idle"]["idle_s"] == 0


def test_nvidia_smi_is_the_fallback_when_nvml_cannot_start(notebook, gpus, fake_smi):
    # the real nvidia-ml-py is installed but finds no driver here: the runner falls back
    gpus([1])
    nb = notebook("smi.ipynb", [LOOP])
    job = submit(nb, backend="local", stop_if_idle="2s")
    job.wait(timeout=120)
    assert job.state == "cancelled", job.status
    assert "via nvidia-smi" in job.status["reason"]


def test_without_any_gpu_reader_the_job_runs_on_and_says_why(notebook, gpus, monkeypatch):
    gpus(None)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no nvidia-smi
    nb = notebook("cpu.ipynb", ["import time\ntime.sleep(3)\nprint('finished')"])
    job = submit(nb, backend="local", stop_if_idle="1s")
    job.wait(timeout=120)
    assert job.state == "succeeded", job.status
    assert "cannot read GPU utilization" in job.logs() and "not be stopped for idleness" in job.logs()
    assert "nvidia-smi is not on PATH" in job.status["idle"]["unavailable"]


def test_a_bad_window_is_refused_naming_the_field(notebook):
    nb = notebook("bad.ipynb", ["print(1)"])
    with pytest.raises(Exception) as err:
        submit(nb, backend="local", stop_if_idle="soon")
    assert err.value.field == "stop_if_idle"
    with pytest.raises(Exception) as err:
        submit(nb, backend="local", stop_if_idle="1m", idle_threshold=150)
    assert err.value.field == "idle_threshold"


def test_the_window_restarts_when_a_gpu_wakes_up():
    samples = iter([[0.0], [0.0], [50.0], [0.0], [0.0], [0.0]])

    class Sampler:
        source = "test"

        def sample(self):
            return next(samples)

    watch = idle.IdleWatch(window_s=2, threshold=5, interval_s=1, open=Sampler)
    assert [watch.check(t)[0] is not None for t in (1, 2, 3, 4, 5, 6)] == [False, False, False, False, False, True]
