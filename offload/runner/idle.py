"""Idle-GPU stop (``--stop-if-idle 20m``): a job whose GPUs all stay under a utilization threshold
for the window is stopped, its partial output saved, and the reason recorded.

The runner's monitor thread calls :meth:`IdleWatch.check` every tick; it samples at most every
``interval_s`` through NVML (``nvidia-ml-py``, imported lazily: it is an optional extra, ``pip
install 'jupyter-offload[gpu]'``) and falls back to ``nvidia-smi`` when NVML cannot be loaded or
initialised. Where neither can read the GPUs the job runs on, says so once and is never stopped for
idleness. ``CUDA_VISIBLE_DEVICES`` (indices) limits the GPUs that count.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SAMPLE_ENV = "OFFLOAD_IDLE_SAMPLE_S"  # the sampling interval (default: a tenth of the window, 1 to 10 s)
SMI_TIMEOUT_S = 20.0


class Unavailable(Exception):
    """GPU utilization cannot be read here (no NVML, no nvidia-smi, no GPU)."""


def _visible(count: int) -> list[int]:
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None or raw.strip() == "":
        return list(range(count))
    try:
        picked = [int(x) for x in raw.split(",") if x.strip()]
    except ValueError:  # GPU UUIDs: count every GPU rather than guess
        return list(range(count))
    return [i for i in picked if 0 <= i < count]


class NvmlSampler:
    """Utilization of each visible GPU through NVML."""

    source = "nvml"

    def __init__(self) -> None:
        try:
            import pynvml  # optional extra [gpu]: imported only when a job asks for an idle stop
        except ImportError as exc:
            raise Unavailable(f"nvidia-ml-py is not installed ({exc})") from None
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except Exception as exc:  # pynvml.NVMLError and its many subclasses, a missing libnvidia-ml
            raise Unavailable(f"NVML: {exc}") from None
        self.nvml = pynvml
        self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in _visible(count)]
        if not self.handles:
            raise Unavailable("NVML sees no GPU")

    def sample(self) -> list[float]:
        return [float(self.nvml.nvmlDeviceGetUtilizationRates(h).gpu) for h in self.handles]


class SmiSampler:
    """Utilization of each visible GPU through ``nvidia-smi`` (no shell, a fixed argument list)."""

    source = "nvidia-smi"
    ARGS = ("--query-gpu=utilization.gpu", "--format=csv,noheader,nounits")

    def __init__(self) -> None:
        exe = shutil.which("nvidia-smi")
        if not exe:
            raise Unavailable("nvidia-smi is not on PATH")
        self.exe = exe
        self.sample()  # fails here, once, rather than at every tick

    def sample(self) -> list[float]:
        try:
            out = subprocess.run([self.exe, *self.ARGS], capture_output=True, text=True, timeout=SMI_TIMEOUT_S,
                                 check=True).stdout
            values = [float(line.strip()) for line in out.splitlines() if line.strip()]
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            raise Unavailable(f"nvidia-smi: {exc}") from None
        picked = [values[i] for i in _visible(len(values))]
        if not picked:
            raise Unavailable("nvidia-smi lists no GPU")
        return picked


def open_sampler() -> NvmlSampler | SmiSampler:
    """NVML first, ``nvidia-smi`` second; :class:`Unavailable` with both reasons otherwise."""
    reasons = []
    for kind in (NvmlSampler, SmiSampler):
        try:
            return kind()
        except Unavailable as exc:
            reasons.append(str(exc))
    raise Unavailable("; ".join(reasons))


@dataclass(kw_only=True)
class IdleWatch:
    """Stops a job whose GPUs all stay under ``threshold`` percent for ``window_s``."""

    window_s: float
    threshold: float
    interval_s: float
    open: Callable[[], Any] = open_sampler
    sampler: Any = None
    unavailable: str | None = None
    idle_since: float | None = None
    last_sample_at: float = 0.0
    last: list[float] = field(default_factory=list)

    def status(self, now: float) -> dict[str, Any]:
        """What ``status.json`` carries under ``idle`` (``offload show`` prints it)."""
        if self.unavailable:
            return {"unavailable": self.unavailable, "window_s": self.window_s}
        return {"source": getattr(self.sampler, "source", None), "utilization": self.last,
                "threshold": self.threshold, "window_s": self.window_s,
                "idle_s": round(now - self.idle_since, 1) if self.idle_since is not None else 0.0}

    def check(self, now: float | None = None) -> tuple[str | None, dict[str, Any] | None]:
        """(why to stop or None, the status to record or None when nothing was sampled now)."""
        now = time.time() if now is None else now
        if self.unavailable or now - self.last_sample_at < self.interval_s:
            return None, None
        self.last_sample_at = now
        try:
            if self.sampler is None:
                self.sampler = self.open()
            self.last = self.sampler.sample()
        except Unavailable as exc:
            self.unavailable = str(exc)
            return None, self.status(now)
        if max(self.last) >= self.threshold:
            self.idle_since = None
        elif self.idle_since is None:
            self.idle_since = now
        if self.idle_since is not None and now - self.idle_since >= self.window_s:
            return (f"stopped: every GPU under {self.threshold:g}% utilization for "
                    f"{_minutes(now - self.idle_since)} (--stop-if-idle {_minutes(self.window_s)}, "
                    f"last {', '.join(f'{u:g}%' for u in self.last)} via {self.sampler.source})"), self.status(now)
        return None, self.status(now)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:.0f} s"


def watch_for(spec: Any) -> IdleWatch | None:
    """The watch a job asked for (``spec.stop_if_idle_s``), or None."""
    window = getattr(spec, "stop_if_idle_s", None)
    if not window:
        return None
    default = min(10.0, max(1.0, window / 10))
    interval = float(os.environ.get(SAMPLE_ENV) or default)
    return IdleWatch(window_s=float(window), threshold=float(getattr(spec, "idle_threshold", 5.0)),
                     interval_s=interval)
