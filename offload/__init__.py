"""jupyter-offload: run notebooks, cells and sweeps on big GPUs without leaving JupyterLab.

The public API is what this module exports; everything else is private and may change. Imports
are lazy so that ``log_metric`` inside a running notebook costs no more than its own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from offload._version import __version__
from offload.errors import OffloadError
from offload.metrics import checkpoint_dir, log_metric, output_dir

if TYPE_CHECKING:
    from offload.jobs import Job, list_jobs, submit
    from offload.sweeps import sweep

__all__ = [
    "__version__",
    "OffloadError",
    "Job",
    "submit",
    "list_jobs",
    "log_metric",
    "checkpoint_dir",
    "output_dir",
    "sweep",
    "load_ipython_extension",
]

_LAZY = {"Job": "jobs", "submit": "jobs", "list_jobs": "jobs", "sweep": "sweep"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'offload' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext offload``: registers the ``%%offload`` cell magic."""
    from offload.cells.magic import load_ipython_extension as _load

    _load(ipython)
