"""A standby runner: a local runner process warmed up before its job exists (issue 14).

The local backend keeps a few of these ready for a sweep's next trials (the launcher's half is
:mod:`offload.backends.local_standby`; it passes the sweep's latest trial as the template).
``python -m offload.runner --standby STORE TEMPLATE_JOB READY_FD``:

1. waits ``OFFLOAD_STANDBY_WARM_AFTER_S`` (2 s) before its imports (``offload._startup.standby_delay``,
   called first by ``offload/runner/__main__.py``), so that its start-up does not slow the runners
   starting beside it, unless its stdin speaks first;
2. does what does not depend on the job: the runner's imports (papermill included), a fresh
   work dir, and the kernel, started with the interpreter, cwd and ``OFFLOAD_*`` variables the
   template's job would have used, and answering;
3. writes ``ready`` to ``READY_FD`` and waits on stdin for ``JOB_ID [TICKET]``;
4. becomes that job's runner, same process (its handle names this pid: state, cancel and kill
   work as for any local runner): the job's id is set in the kernel, and the notebook job takes
   the kernel when it is what the job would start itself (``NotebookJob.take_prestarted``),
   else it starts its own.

A standby serves one job, then exits like any runner: each trial still gets a fresh process and
a fresh kernel, and nothing of one trial is seen by the next. The end of stdin without a job
(the launcher released it, or the process that started it died) ends the standby and its
kernel, so none outlives its sweep; a standby killed outright takes its kernel with it
(ipykernel exits when its parent does).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.blocking import BlockingKernelClient
from jupyter_core.utils import run_sync

from offload import _startup
from offload.backends import local
from offload.runner.core import kernel_environ, machine_backend
from offload.runner.job import kernel_python
from offload.runner.kernel import (
    Prestarted,
    ReadyKernelClient,
    kernel_pid,
    kill_kernel,
    start_kernel,
)
from offload.spec import JobSpec
from offload.store import Store, layout

READY_TIMEOUT_S = 60.0


@dataclass
class Handed:
    """What a standby hands to the runner's program table once its job came."""

    job_id: str
    prestarted: Prestarted | None


class _Released(Exception):
    """Stdin ended (or SIGTERM came) before a job: the standby is not needed."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Released


def _job_line(timeout: float | None) -> str | None:
    """The next line on stdin; None when ``timeout`` passed first. Raises at the end of stdin."""
    if timeout is not None:
        ready, _, _ = select.select([sys.stdin], [], [], timeout)
        if not ready:
            return None
    line = sys.stdin.readline()
    if not line.strip():
        raise _Released
    return line.strip()


def _warm(store: Store, template: str, work: Path) -> Prestarted | None:
    """The kernel the template's job would start, started and answering (None for a job in an
    isolated environment: that environment is the job's to prepare and report)."""
    _startup.skip_unused_imports(papermill=True)
    import papermill  # noqa: F401  (what the job imports first, done while nobody waits)

    spec = JobSpec.from_dict(store.get_json(layout.job_key(template, "spec.json")))
    if spec.env_mode == "isolated":
        return None
    python = kernel_python(spec, machine_backend(spec.backend))
    cwd = (work / "project" / spec.notebook).parent
    cwd.mkdir(parents=True, exist_ok=True)
    env = kernel_environ(job_id="", store_url=store.url, work=work)
    os.environ.update({**env, "PYTHONUNBUFFERED": "1"})  # the kernel inherits them, as in runner/job.py
    km = start_kernel(work, python, cwd=cwd)
    try:
        kc = _client(km)
        try:
            kc.wait_for_ready(timeout=READY_TIMEOUT_S)
        finally:
            kc.stop_channels()
    except BaseException:
        kill_kernel(kernel_pid(km))
        raise
    km.client_factory = ReadyKernelClient  # answering already: nbclient's client skips the 0.2 s wait for silence
    return Prestarted(km=km, python=python, cwd=cwd, env=env)


def _client(km: Any) -> BlockingKernelClient:
    kc = BlockingKernelClient()
    kc.load_connection_info(km.get_connection_info())
    kc.start_channels()
    return kc


def _set_environ(pre: Prestarted, env: dict[str, str]) -> None:
    """Set the job's variables in the kernel, silently (no execution count, no history, no
    name left in the notebook's namespace)."""
    changed = {k: v for k, v in env.items() if pre.env.get(k) != v}
    if changed:
        kc = _client(pre.km)
        try:
            reply = kc.execute_interactive(f"__import__('os').environ.update({json.dumps(changed)})", silent=True,
                                           store_history=False, timeout=30, output_hook=lambda msg: None)
        finally:
            kc.stop_channels()
        if reply["content"].get("status") != "ok":
            raise RuntimeError(f"could not set the job's variables in the kernel: {reply['content']}")
    pre.env = dict(env)


def discard(pre: Prestarted | None) -> None:
    """Shut a standby's kernel down (nothing when there is none)."""
    if pre is None:
        return
    try:
        run_sync(pre.km.shutdown_kernel)(now=True)
    except Exception:
        kill_kernel(kernel_pid(pre.km))


def wait_for_job(store_url: str, template: str, ready_fd: int) -> Handed | None:
    """Warm up, say ready, wait for the job: what to run, or None when released without one."""
    store = Store(store_url)
    work = Path(tempfile.mkdtemp(prefix="offload-standby-"))
    pre: Prestarted | None = None
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        line = _job_line(0)  # after the first wait (offload._startup.standby_delay): a job already, or the end?
        if line is None:
            try:
                pre = _warm(store, template, work)
            except _Released:
                raise
            except Exception as exc:  # the job then starts its own kernel, as without a standby
                print(f"offload standby: could not prepare a kernel: {type(exc).__name__}: {exc}", flush=True)
            try:
                os.write(ready_fd, b"ready\n")
            finally:
                os.close(ready_fd)
            line = _job_line(None)
        else:
            os.close(ready_fd)
        job_id, _, ticket = line.partition(" ")
        if ticket:
            os.environ[local.TICKET_ENV] = ticket
            local.take_ticket()  # the launcher queued the job for a local slot under this pid
        if pre is not None:
            try:
                if not run_sync(pre.km.is_alive)():
                    raise RuntimeError("the standby's kernel has stopped")
                _set_environ(pre, kernel_environ(job_id=job_id, store_url=store.url, work=work))
            except Exception as exc:
                print(f"offload standby: {exc}; the job starts its own kernel", flush=True)
                discard(pre)
                pre = None
    except _Released:
        discard(pre)
        shutil.rmtree(work, ignore_errors=True)
        return None
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the job's program sets its own
    os.environ["OFFLOAD_WORK_DIR"] = str(work)  # the job's work dir is the one the kernel runs in
    print(f"offload standby: running job {job_id}{' (kernel ready)' if pre else ''}", flush=True)
    return Handed(job_id=job_id, prestarted=pre)


__all__ = ["Handed", "discard", "wait_for_job"]
