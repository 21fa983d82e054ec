"""Server config for the Galata UI tests (started by scripts/ui-test.sh).

Never use this for real work: Galata's helper removes the token so the browser can connect.
"""

import os
from pathlib import Path

from jupyterlab.galata import configure_jupyter_server

c = get_config()  # noqa: F821 (provided by traitlets when loading a config file)
configure_jupyter_server(c)

c.ServerApp.port = int(os.environ.get("OFFLOAD_UI_PORT", "8888"))
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.allow_root = True  # CI containers run as root
if os.environ.get("OFFLOAD_UI_ROOT"):
    c.ServerApp.root_dir = os.environ["OFFLOAD_UI_ROOT"]

# Nothing may pop up over the page (news, update checks) or reach the network.
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
c.LabApp.extension_manager = "readonly"
c.LabApp.app_settings_dir = str(Path(__file__).parent / "app-settings")

# The extension under test; a local store under OFFLOAD_HOME set by the script.
c.OffloadExtensionApp.poll_interval = 0.5
if os.environ.get("OFFLOAD_UI_DISABLE_EXTENSION"):
    # For benchmarks/bench_lab_load.py; the lab side is disabled through page_config.json.
    c.ServerApp.jpserver_extensions = {"jupyter_ext": False}
