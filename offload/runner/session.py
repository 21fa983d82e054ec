"""The warm ``%%offload`` session: one long-lived kernel serving the cell jobs of a notebook kernel.

A session is a job of kind ``session`` (listed by ``offload ls``, cancellable like any other). It
keeps one kernel alive and takes cell jobs from the store, one writer each:

```
sessions/<session-id>/queue/<job-id>   client: "run this cell job next" (empty object)
sessions/<session-id>/stop             client: "end the session"
```

Each cell job is still a normal job: its spec is written by the client through the one launch
path, and the session runs it as a :class:`CellJob` program with the same bookkeeping as any
other (status, logs, ``output.ipynb``, ``outputs/``, ``result.json``), so nothing downstream can
tell a warm cell from a cold one except that it started in milliseconds. A cell job is one
kernel request (:meth:`SessionServer.send_cells`, ``offload.cells.remote.run_warm``). On the
local backend the client rings the session's doorbell after queueing a cell and the session
rings the client's once the cell is recorded (:mod:`offload.backends.doorbell`); elsewhere both
poll. The session ends when
it is stopped (the client's stop marker, which the client kernel writes when it shuts down, or
``offload machines stop``), when the client kernel exits (local sessions) or after its idle window
(``resources.keep_alive_s``, else ``OFFLOAD_SESSION_IDLE_S``). On GCE and SLURM the session is the
machine's whole job: the VM deletes itself / the allocation ends when the session ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import nbformat
import nbformat.v4
import zmq
from jupyter_client.blocking import BlockingKernelClient
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete

from offload.backends import procs
from offload.backends.base import Backend
from offload.backends.doorbell import Doorbell, ring
from offload.notebook import CELL_JOB_CELLS
from offload.runner.core import TICK_S, JobProgram, Outcome
from offload.runner.kernel import kernel_manager, kernel_pid
from offload.runner.machine import MachineRecord
from offload.snapshot.bundle import materialize
from offload.spec import JobSpec, JobState
from offload.store import Store, layout

IDLE_S = float(os.environ.get("OFFLOAD_SESSION_IDLE_S", "1800"))  # a session ends after this idle time
POLL_S = 0.01  # the queue is listed this often in the first minute after a cell, then every 0.2 s
FAST_POLL_S = 0.002  # instead of POLL_S on a local store without a doorbell (a listing costs 16 us)
FIRST_TICK_S = 0.02  # a cell job's status is first written this long after it was sent
BELL_POLL_S = 0.2  # with a doorbell (a client on this machine rings it after queueing a cell)
CWD_LABEL = "session_cwd"  # local sessions run cells in the user's folder, as the local kernel does
CLIENT_PID_LABEL = "client_pid"  # local sessions end when the kernel that started them exits


def _outcome(path: Path) -> dict[str, Any]:
    """``run_warm``'s outcome, as the kernel wrote it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return {"ok": False, "failed": "session", "ename": "RuntimeError",
                "evalue": f"the session kernel gave no outcome for the cell ({exc})"}


class CellJob(JobProgram):
    """One cell job executed on the session's live kernel, with the normal bookkeeping."""

    monitor_thread = False  # wait_cells ticks it
    announce = False

    def __init__(self, store: Store, spec: JobSpec, server: SessionServer):
        super().__init__(store, spec)
        self.server = server
        self.backend_cls = Backend  # no slot, no machine teardown per cell
        self.request: Any = None  # what the kernel was sent (SessionServer.send_cells)
        self.outcome: Path | None = None  # where the kernel says how the cell job went
        self.unsent: Exception | None = None  # why it could not be sent

    def send(self) -> Path:
        """Read the cell job and send it to the kernel; the job's bookkeeping (``run``) starts
        while the kernel runs it. Returns the job's work dir. Nothing raises here: what failed
        is the job's failure, recorded by ``run``."""
        work = self.new_work_dir()
        try:
            (work / "outputs").mkdir(parents=True, exist_ok=True)
            (work / "checkpoints").mkdir(exist_ok=True)
            project = self.server.project_for(self.spec)
            manifest = self.store.get_json(layout.bundle_key(self.spec.bundle_id))
            sha = manifest["files"][self.spec.notebook]["sha256"]
            data = json.loads(self.store.get_bytes(layout.blob_key(sha)))
            self.outcome = work / "outcome.json"
            self.request = self.server.send_cells(data, notebook=sha, env=self.job_environ(work), cwd=project,
                                                  outcome=self.outcome)
            # made a notebook while the kernel runs it; the client generated it
            # (offload.cells.notebook): not validated again
            self.live_nb = nbformat.v4.to_notebook(data)
        except Exception as exc:
            self.unsent = exc
        return work

    def kill(self) -> None:  # cancel: interrupt the cell, keep the session
        self.server.interrupt()

    def new_work_dir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"cell-{self.job_id}-", dir=self.server.cells_dir()))

    def remove_work_dir(self, work: Path) -> None:
        self.server.done_dirs.append(work)  # removed between cells, not in a cell's round trip

    def recorded(self, state: JobState) -> None:
        if self.server.client_pid and self.store.local:  # the client kernel, on this machine, looks now
            ring(f"client-{self.server.client_pid}")

    def final_notebook(self, work: Path, state: JobState) -> str | None:
        if self.live_nb is None:
            return self.output_snapshot
        return json.dumps(self.live_nb, sort_keys=True, indent=1, ensure_ascii=False)  # ours: not validated again

    def execute(self, work: Path) -> Outcome:
        if self.unsent is not None:
            raise self.unsent
        nb = self.live_nb
        self.set_status(state=JobState.RUNNING, started_at=time.time(), n_cells=len(nb.cells), python=sys.executable)
        return self.server.wait_cells(self, nb, self.request)


class SessionServer(JobProgram):
    """The session job itself: keeps the kernel, serves queued cell jobs until idle or stopped."""

    def __init__(self, store: Store, spec: JobSpec, *, record: MachineRecord | None = None):
        super().__init__(store, spec)
        here = spec.backend == "local"
        if here:  # no slot held for a whole session on a laptop
            self.backend_cls = Backend
        self.loop = asyncio.new_event_loop()
        self.km: Any = None
        self.bkc: Any = None
        self.outputs: Any = None
        self.kernel_dead = False  # the kernel died under a cell: the session ends
        self.done_dirs: list[Path] = []  # work dirs of recorded cell jobs, removed when idle
        # a client on this machine rings after queueing a cell (offload.cells.session)
        self.bell = Doorbell(f"session-{spec.id}") if here and self.store.local else None
        self.work: Path | None = None
        # The user's folder and kernel pid mean something on the user's machine only: a session
        # on a VM or a SLURM node materializes the bundles and ends on the client's stop marker.
        self.in_place = spec.labels.get(CWD_LABEL) if here else None
        self.client_pid = int(spec.labels.get(CLIENT_PID_LABEL) or 0) if here else 0
        self.idle_s = float(spec.resources.keep_alive_s or IDLE_S)
        self.record = record  # machines/<name>.json while this session holds its machine
        self.served = 0

    def slot(self):
        return nullcontext() if self.backend_cls is Backend else super().slot()

    # kernel -----------------------------------------------------------------------------------
    def interrupt(self) -> None:
        pid = kernel_pid(self.km)
        if pid:
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.interrupt()

    async def _start_kernel(self, work: Path) -> None:
        self.km = kernel_manager(work, sys.executable, display_name="offload session")
        cwd = self.in_place or str(work / "project")
        Path(cwd).mkdir(parents=True, exist_ok=True)
        # History in memory, as the runner's kernel: no SQLite write per cell, and the generated
        # setup/collect cells stay out of the user's IPython history. No 0.5 ms sleep before each
        # reply (ipykernel's Kernel._execute_sleep, a mitigation for clients that read a reply
        # before the outputs it follows): wait_cells waits for the reply and the idle status both.
        await self.km.start_kernel(cwd=cwd, extra_arguments=["--HistoryManager.hist_file=:memory:",
                                                             "--IPythonKernel._execute_sleep=0"])
        # A blocking client: cell jobs are served one at a time, from this thread
        self.bkc = BlockingKernelClient(**self.km.get_connection_info(session=True),
                                        connection_file=self.km.connection_file, parent=self.km)
        self.bkc.start_channels()
        self.bkc.wait_for_ready(timeout=120)
        # nbclient's message handling fills a cell job's outputs (built once: it costs ~1 ms)
        self.outputs = NotebookClient(nbformat.v4.new_notebook(), km=self.km, kernel_name="", record_timing=False)

    def cells_dir(self) -> Path:
        """Where the cell jobs' work dirs are made (inside the session's own)."""
        path = self.work / "cells"
        path.mkdir(exist_ok=True)
        return path

    def project_for(self, spec: JobSpec) -> str:
        """Where a cell runs: the user's folder for a local in-place session, else the bundle
        materialized into the session's project dir (files accumulate; same paths)."""
        if self.in_place:
            return self.in_place
        project = self.work / "project"
        materialize(self.store, spec.bundle_id, project)
        return str(project)

    def send_cells(self, data: dict[str, Any], *, notebook: str, env: dict[str, str], cwd: str, outcome: Path) -> str:
        """Send a cell job's notebook (blob ``notebook``, read as ``data``) to the live kernel, as
        one request; returns its message id. :meth:`wait_cells` follows it; the kernel writes how
        it went to ``outcome``.

        One kernel request per cell job: every request costs the kernel a few milliseconds of
        messaging whatever it runs, and a warm cell's round trip is otherwise that small. The
        request runs the job's setup cell, the user's cell (as a cell of its own: IPython's
        ``run_cell``) and the collect cell in the kernel (``offload.cells.remote.run_warm``)."""
        # A cell that may use top-level await runs in a coroutine request; any other in a plain
        # one, which an interrupt (cancel) stops wherever it is (a coroutine's only at an await).
        source = next((c.get("source", "") for c in data.get("cells", []) if c.get("id") == CELL_JOB_CELLS[1]), "")
        source = "".join(source) if isinstance(source, list) else source
        run = "await {}.run_warm_async" if re.search(r"\b(await|async)\b", source) else "{}.run_warm"
        code = (run.format("__import__('offload.cells.remote').cells.remote") + f"(globals(), notebook={notebook!r}, "
                f"env={env!r}, cwd={cwd!r}, outcome={str(outcome)!r})")
        return self.bkc.execute(code, silent=True, store_history=False, allow_stdin=False)

    def wait_cells(self, job: CellJob, nb: Any, msg_id: str) -> Outcome:
        """Follow the request :meth:`send_cells` sent until the kernel is done with it. Its
        outputs are the user cell's, filled in by nbclient's message handling as the notebook
        runner's are (streams, displays and their updates, clear_output); the kernel writes what
        happened to the job's ``outcome.json``."""
        by_id = {c.get("id"): c for c in nb.cells}
        setup, cell, collect = (by_id.get(i) for i in CELL_JOB_CELLS)
        shaped = None not in (setup, cell, collect)  # else not a cell job: the kernel's setup fails
        cell = cell if shaped else nbformat.v4.new_code_cell()
        kc = self.bkc
        cell.outputs = []
        position = nb.cells.index(cell) if shaped else 0
        job.current_cell_id = cell.get("id")
        job.set_status(cell=position + 1, cell_id=job.current_cell_id)
        outputs = self.outputs
        outputs.nb = nb
        outputs.reset_execution_trackers()  # display ids are the job's own
        outputs.clear_before_next_output = False  # what its execute_cell sets before a cell
        reply: dict[str, Any] | None = None
        idle = False
        poller = zmq.Poller()
        poller.register(kc.iopub_channel.socket, zmq.POLLIN)
        poller.register(kc.shell_channel.socket, zmq.POLLIN)
        quiet_since = time.monotonic()
        next_tick = quiet_since + FIRST_TICK_S  # a cell still running by then is shown running
        while reply is None or not idle:
            now = time.monotonic()
            if now >= next_tick:  # the job's monitor: cancel, max runtime, live output, status
                job.tick()
                next_tick = now + TICK_S
            if not poller.poll(max(1, int((next_tick - now) * 1000))):
                pid = kernel_pid(self.km)
                if time.monotonic() - quiet_since > 2 and pid and not procs.pid_alive(pid):
                    self.kernel_dead = True
                    return JobState.FAILED, "the session kernel died", None
                continue
            quiet_since = time.monotonic()
            while kc.shell_channel.msg_ready():
                msg = kc.shell_channel.get_msg(timeout=0)
                if msg["parent_header"].get("msg_id") == msg_id:
                    reply = msg["content"]
            while kc.iopub_channel.msg_ready():
                msg = kc.iopub_channel.get_msg(timeout=0)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue  # another client's (an attached console)
                try:
                    outputs.process_message(msg, cell, position)
                except CellExecutionComplete:
                    idle = True
        if job.stop_reason:
            return job.stopped_outcome()
        if not shaped:
            return JobState.FAILED, "not a %%offload cell job (its setup, cell and collect cells)", None
        if reply.get("status") != "ok":  # run_warm itself failed: the session's own fault
            return JobState.FAILED, f"the session could not run the cell: {reply.get('ename')}: {reply.get('evalue')}", {
                "ename": reply.get("ename"), "evalue": reply.get("evalue"), "traceback": reply.get("traceback", [])}
        outcome = _outcome(job.outcome)
        if outcome.get("execution_count"):
            cell["execution_count"] = outcome["execution_count"]
        if outcome.get("ok"):
            return JobState.SUCCEEDED, None, None
        step = outcome.get("failed")
        where = {"setup": setup, "collect": collect}.get(step, cell)
        tb = outcome.get("traceback")
        if tb is None:  # the user's cell: its traceback is its error output
            tb = next((o.get("traceback", []) for o in cell.outputs if o.get("output_type") == "error"), [])
        else:  # the setup's or collect's, shown as that cell's output
            where.outputs = [nbformat.v4.new_output("error", ename=outcome.get("ename"), evalue=outcome.get("evalue"),
                                                    traceback=tb)]
        error = {"ename": outcome.get("ename"), "evalue": outcome.get("evalue"), "traceback": tb,
                 "cell": nb.cells.index(where) + 1}
        return JobState.FAILED, f"{outcome.get('ename')}: {outcome.get('evalue')}", error

    # serving ----------------------------------------------------------------------------------
    def execute(self, work: Path) -> Outcome:
        self.work = work
        self.set_status(state=JobState.RUNNING, started_at=time.time(), cell=0, n_cells=0)
        self.loop.run_until_complete(self._start_kernel(work))
        self.say("session kernel ready")
        idle_since = time.time()
        self._note_idle(idle_since, write=True)  # listed with its countdown as soon as it is ready
        stop_keys = [layout.session_key(self.job_id, "stop")]
        if self.record is not None:  # `offload machines stop NAME` / the panel's Stop button
            stop_keys.append(layout.machine_stop_key(self.record.name))
        last_stop_check = 0.0
        while not self.stop_reason:
            queued = self.store.list(layout.session_queue_key(self.job_id))
            if queued:
                for key in queued:
                    self.store.delete(key)
                    self._serve(key.rsplit("/", 1)[-1])
                    if self.kernel_dead:  # the cells queued behind it go to a new session (SessionGone)
                        return JobState.FAILED, f"the session kernel died after {self.served} cell(s)", None
                idle_since = time.time()
                self._note_idle(idle_since)
                continue
            now = time.time()
            if self.done_dirs and now - idle_since > 0.05:  # no cell came right after the last
                while self.done_dirs:
                    shutil.rmtree(self.done_dirs.pop(), ignore_errors=True)
            if now - last_stop_check > 0.5:
                last_stop_check = now
                if any(self.store.exists(k) for k in stop_keys):
                    return JobState.SUCCEEDED, f"session stopped after {self.served} cell(s)", None
            if self.client_pid and not procs.pid_alive(self.client_pid):
                return JobState.SUCCEEDED, f"the client kernel exited after {self.served} cell(s)", None
            if now - idle_since > self.idle_s:
                return JobState.SUCCEEDED, f"session idle for {int(self.idle_s)} s after {self.served} cell(s)", None
            quiet = now - idle_since
            if self.bell is not None and self.bell.sock is not None:
                self.bell.wait(BELL_POLL_S)
            else:
                time.sleep((FAST_POLL_S if self.store.local else POLL_S) if quiet < 60 else 0.2)
        return self.stopped_outcome()

    def _note_idle(self, since: float, *, write: bool = False) -> None:
        """The record's countdown restarts after each cell; its next heartbeat writes it (no store
        write on a warm cell's path), except when the session has just become ready."""
        if self.record is not None:
            fields = {"idle_since": since, "idle_deadline": since + self.idle_s, "jobs_served": self.served,
                      "keep_alive_s": int(self.idle_s)}
            (self.record.update if write else self.record.note)(**fields)

    def _serve(self, job_id: str) -> None:
        handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
        try:
            spec = JobSpec.from_dict(self.store.get_json(layout.job_key(job_id, "spec.json")))
            job = CellJob(self.store, spec, self)
            job.run(work=job.send())
        except Exception as exc:
            self.say(f"cell job {job_id} could not run: {exc}")
        finally:
            signal.signal(signal.SIGTERM, handlers[0])
            signal.signal(signal.SIGINT, handlers[1])
        self.served += 1
        self.set_status(cell=self.served)

    def before_finish(self) -> None:
        if self.bell is not None:
            self.bell.close()
        try:
            if self.km is not None:
                self.bkc.stop_channels()
                self.loop.run_until_complete(self.km.shutdown_kernel(now=True))
        except Exception:
            pass
