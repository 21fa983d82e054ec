"""Sweeps: an Optuna study whose trials are parametrized runs of the notebook."""

from offload.sweeps.api import (
    SweepFailed,
    SweepResult,
    apply_best,
    create_sweep,
    history,
    importances,
    sweep,
    sweep_ls,
    sweep_resume,
    sweep_show,
    sweep_stop,
    sweep_summary,
    trials_table,
)

__all__ = [
    "SweepFailed", "SweepResult", "apply_best", "create_sweep", "history", "importances", "sweep",
    "sweep_ls", "sweep_resume", "sweep_show", "sweep_stop", "sweep_summary", "trials_table",
]
