"""jupyter-offload's Jupyter server extension: REST API over ``offload`` plus the job watcher.

Loaded by ``jupyter_server`` through the config file installed in
``etc/jupyter/jupyter_server_config.d`` (nothing to enable by hand). Imports flow one way:
``labextension -> REST -> jupyter_ext -> offload``; nothing here imports the lab side.
"""

from __future__ import annotations

from typing import Any

from jupyter_ext.app import OffloadExtensionApp


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "jupyter-offload"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "jupyter_ext", "app": OffloadExtensionApp}]
