"""A fake ``pynvml`` (nvidia-ml-py's module) for the idle-GPU stop tests: the runner imports it
because the test puts this folder first on PYTHONPATH. Each GPU's utilization is read, at every
call, from the JSON list in the file ``FAKE_GPU_UTIL`` names (``[90, 0]``: two GPUs), so a test
turns a GPU idle by rewriting the file. Only the calls the runner makes exist, with NVML's names."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace


class NVMLError(Exception):
    pass


def _utils() -> list[float]:
    try:
        with open(os.environ["FAKE_GPU_UTIL"], encoding="utf-8") as fh:
            return json.load(fh)
    except (KeyError, OSError, ValueError) as exc:
        raise NVMLError(f"NVML_ERROR_DRIVER_NOT_LOADED ({exc})") from None


def nvmlInit() -> None:  # noqa: N802 - NVML's own names
    _utils()


def nvmlDeviceGetCount() -> int:  # noqa: N802
    return len(_utils())


def nvmlDeviceGetHandleByIndex(index: int) -> int:  # noqa: N802
    return index


def nvmlDeviceGetUtilizationRates(handle: int) -> SimpleNamespace:  # noqa: N802
    return SimpleNamespace(gpu=int(_utils()[handle]), memory=0)
