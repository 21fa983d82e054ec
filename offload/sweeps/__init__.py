"""Sweeps: an Optuna study whose trials are parametrized runs of the notebook.

Modules, each importing only those above it: ``space`` (search spaces, samplers, pruners),
``records`` (the store records, the study, the sweep's jobs), ``packing`` (which pack machine gets
which trial), ``driver`` (the ask/tell loop; ``python -m offload.sweeps.driver``), ``views`` (what
the panel and ``offload sweep show`` read), ``control`` (stop, resume, apply best, the detached
driver), ``api`` (``sweep()`` and ``create_sweep``). The ``offload sweep`` command is
:mod:`offload.cli.sweep`.
"""

from offload.sweeps.api import create_sweep, sweep
from offload.sweeps.control import SweepResult, apply_best, sweep_resume, sweep_stop
from offload.sweeps.records import SweepFailed
from offload.sweeps.views import (
    history,
    importances,
    sweep_ls,
    sweep_show,
    sweep_summary,
    trials_table,
)

__all__ = [
    "SweepFailed", "SweepResult", "apply_best", "create_sweep", "history", "importances", "sweep",
    "sweep_ls", "sweep_resume", "sweep_show", "sweep_stop", "sweep_summary", "trials_table",
]
