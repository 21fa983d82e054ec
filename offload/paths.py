"""Where things live on this machine, and the names of the ``OFFLOAD_*`` environment variables.

The foundation of the package: it imports nothing of ours, so anything may import it.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

# Set by the user or the tests.
HOME_ENV = "OFFLOAD_HOME"  # the per-user data directory (store, index, config, slots)
STORE_ENV = "OFFLOAD_STORE"  # the default store URL
BACKEND_ENV = "OFFLOAD_BACKEND"  # the default backend

# Set by the runner for the notebook's kernel (read by log_metric, output_dir, checkpoint_dir).
JOB_ID_ENV = "OFFLOAD_JOB_ID"
METRICS_FILE_ENV = "OFFLOAD_METRICS_FILE"
OUTPUT_DIR_ENV = "OFFLOAD_OUTPUT_DIR"
CHECKPOINT_DIR_ENV = "OFFLOAD_CHECKPOINT_DIR"


def data_dir() -> Path:
    """Per-user data directory (store, index, config); ``OFFLOAD_HOME`` overrides it for tests."""
    home = os.environ.get(HOME_ENV)
    return Path(home) if home else Path(platformdirs.user_data_dir("offload", appauthor=False))
