"""The server extension: configuration traits, the REST routes and the job watcher.

Configure it like any Jupyter app, e.g. in ``jupyter_server_config.py``::

    c.OffloadExtensionApp.store_url = "gs://my-bucket/offload"
    c.OffloadExtensionApp.backends = ["local", "gce"]
    c.OffloadExtensionApp.default_backend = "gce"
    c.OffloadExtensionApp.backend_options = {"gce": {"project": "my-project", "zone": "us-central1-a"}}
    c.OffloadExtensionApp.default_machine = "g2-standard-8"
    c.OffloadExtensionApp.max_active_jobs = 4
    c.OffloadExtensionApp.max_active_jobs_per_user = 2
    c.OffloadExtensionApp.budget = 50.0

Unset traits fall back to the user's ``offload`` config file, as the CLI does.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Dict, Float, Int, List, Unicode

from jupyter_ext.routes import handlers
from jupyter_ext.service import SWEEP_CAPS, OffloadService, jobs, notebook
from jupyter_ext.watcher import JobWatcher


class OffloadExtensionApp(ExtensionApp):
    name = "jupyter_ext"
    description = "jupyter-offload: run notebooks on big GPUs from JupyterLab"
    load_other_extensions = True

    store_url = Unicode(
        "", config=True,
        help="Store URL (file://, gs://...). Empty: $OFFLOAD_STORE, then the offload config file, then the local default.",
    )
    backends = List(
        Unicode(), default_value=[], config=True,
        help="Backends offered in the Run dialog (entry-point names). Empty: every installed backend.",
    )
    default_backend = Unicode("", config=True, help="Backend preselected in the Run dialog.")
    backend_options = Dict(
        default_value={}, config=True, help="Options per backend name, merged over the offload config file.",
    )
    default_machine = Unicode("", config=True, help="Machine preselected in the Run dialog.")
    max_runtime = Unicode("4h", config=True, help="Default hard cap on a job's runtime.")
    max_runtime_limit = Unicode("7d", config=True, help="The longest max_runtime a request may ask for (400 beyond).")
    max_sweep_trials = Int(SWEEP_CAPS["trials"], config=True, help="The most trials a sweep started here may ask for (400 beyond).")
    max_sweep_parallel = Int(SWEEP_CAPS["parallel"], config=True, help="The most trials a sweep may run at once (400 beyond).")
    max_per_gpu = Int(SWEEP_CAPS["per_gpu"], config=True, help="The most trials a sweep may pack on one GPU (400 beyond).")
    max_active_jobs = Int(0, config=True, help="Refuse new jobs (409) while this many are active; 0: no limit.")
    max_active_jobs_per_user = Int(
        0, config=True, help="Refuse a user's new job (409) while that user has this many active; 0: no limit.",
    )
    budget = Float(0.0, config=True, help="Budget in dollars shown in the Run dialog; 0: none.")
    poll_interval = Float(1.0, config=True, help="Seconds between job watcher passes.")
    worker_threads = Int(4, config=True, help="Threads for store and backend calls.")
    max_request_bytes = Int(16 << 20, config=True,
                            help="Refuse a request body larger than this (413); merge plans carry a notebook's sources.")

    def initialize_settings(self) -> None:
        root_dir = getattr(self.serverapp.contents_manager, "root_dir", None) or self.serverapp.root_dir
        self.service = OffloadService(
            root_dir=root_dir,
            store_url=self.store_url or None,
            backends=list(self.backends) or None,
            backend_options=dict(self.backend_options),
            default_backend=self.default_backend or None,
            default_machine=self.default_machine or None,
            max_runtime=self.max_runtime,
            max_runtime_limit=self.max_runtime_limit,
            sweep_caps={"trials": self.max_sweep_trials, "parallel": self.max_sweep_parallel,
                        "per_gpu": self.max_per_gpu},
            max_active_jobs=self.max_active_jobs,
            max_active_jobs_per_user=self.max_active_jobs_per_user,
            budget=self.budget or None,
        )
        self.executor = ThreadPoolExecutor(max_workers=self.worker_threads, thread_name_prefix="offload")
        service = self.service
        self.watcher = JobWatcher(
            lambda **kw: jobs.sync(service, **kw), self.executor, interval=self.poll_interval,
            # listing a remote store's job ids is a few round trips: new jobs from elsewhere every 10 s
            scan_interval=0.0 if service.store.local else 10.0, indexed=lambda: jobs.indexed(service), log=self.log,
        )
        self.settings["offload_app"] = self
        # the Run dialog's first-time work (dependency index, backend discovery), in the background
        self.executor.submit(notebook.warm, service)
        self.log.info("jupyter-offload: store %s", self.service.store.url)

    def initialize_handlers(self) -> None:
        # ExtensionApp prefixes these patterns with the server's base_url.
        self.handlers.extend(handlers("/"))

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        self.watcher.start()

    async def stop_extension(self) -> None:
        await self.watcher.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)
