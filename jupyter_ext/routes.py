"""Every REST route of the extension, in one list, under ``<base_url>/offload/api/``.

Described in ``openapi.yaml`` (a test checks that both list the same paths and methods). The
handler modules never import each other or this module: adding an endpoint is one line here.
"""

from __future__ import annotations

from jupyter_server.utils import url_path_join

from jupyter_ext.handlers import attach, backends, gallery, jobs, machines, sweeps
from jupyter_ext.handlers.base import OffloadHandler

API_PREFIX = "offload/api"
JOB_ID = r"(?P<job_id>[^/]+)"  # a job id, or a sweep id under sweeps/

ROUTES: list[tuple[str, type[OffloadHandler]]] = [
    # the Run dialog
    (r"backends", backends.BackendsHandler),
    (r"notebook", backends.NotebookHandler),
    # jobs
    (r"jobs", jobs.JobsHandler),
    (rf"jobs/{JOB_ID}", jobs.JobHandler),
    (rf"jobs/{JOB_ID}/log", jobs.LogHandler),
    (rf"jobs/{JOB_ID}/metrics", jobs.MetricsHandler),
    (rf"jobs/{JOB_ID}/cancel", jobs.CancelHandler),
    (rf"jobs/{JOB_ID}/rerun", jobs.RerunHandler),
    (rf"jobs/{JOB_ID}/notebook", jobs.ExecutedNotebookHandler),
    (rf"jobs/{JOB_ID}/merge-plan", jobs.MergePlanHandler),
    (rf"jobs/{JOB_ID}/merge", jobs.MergeFileHandler),
    (rf"jobs/{JOB_ID}/console", attach.ConsoleHandler),  # a console on the running job's kernel
    (rf"jobs/{JOB_ID}/terminal", attach.TerminalHandler),  # a terminal running offload ssh JOB
    (rf"jobs/{JOB_ID}/debug-copy", attach.DebugCopyHandler),  # rerun a failed job up to its failing cell
    (r"events", jobs.EventsHandler),
    # the gallery
    (rf"jobs/{JOB_ID}/thumbnail", gallery.ThumbnailHandler),
    (r"gallery", gallery.GalleryHandler),
    (r"compare", gallery.CompareHandler),
    # kept machines (side panel): live ones with their countdown, Stop
    (r"machines", machines.MachinesHandler),
    (r"machines/stop", machines.MachinesStopHandler),
    # the sweep panel
    (r"sweeps", sweeps.SweepsHandler),
    (rf"sweeps/{JOB_ID}", sweeps.SweepHandler),
    (rf"sweeps/{JOB_ID}/stop", sweeps.SweepStopHandler),
    (rf"sweeps/{JOB_ID}/resume", sweeps.SweepResumeHandler),
    (rf"sweeps/{JOB_ID}/apply-best", sweeps.SweepApplyBestHandler),
]


def handlers(base_url: str) -> list[tuple[str, type[OffloadHandler]]]:
    """The routes as tornado wants them, under ``base_url``."""
    return [(url_path_join(base_url, API_PREFIX, pattern), h) for pattern, h in ROUTES]
