"""jupyter-offload: run notebooks, cells and sweeps on big GPUs without leaving JupyterLab.

The public API is what this module exports; everything else is private and may change. Imports
are lazy so that ``log_metric`` inside a running notebook costs no more than its own module.
"""

from __future__ import annotations

import importlib
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

# Lazy on purpose: a notebook running as a job imports ``offload`` for ``log_metric`` and must not
# pay for the client (jobs, backends, snapshot, Optuna); nothing below ``offload`` imports this module.
_LAZY = {"Job": "offload.jobs", "submit": "offload.jobs", "list_jobs": "offload.jobs", "sweep": "offload.sweeps"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'offload' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext offload``: registers the ``%%offload`` cell magic."""
    importlib.import_module("offload.cells.magic").load_ipython_extension(ipython)
