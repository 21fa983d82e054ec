"""The notebook job: materialize the bundle, prepare the environment, run the notebook with
papermill (parameters injected after the ``parameters`` cell), stream progress as cells start.

Kinds ``notebook``, ``cell`` (a cold ``%%offload`` cell) and ``trial`` (a sweep trial) all run
this program; see :mod:`offload.runner` for the table.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from jupyter_core.utils import run_sync

from offload import _startup
from offload.metrics import last_values
from offload.notebook import strip_ansi
from offload.runner import environment
from offload.runner.core import JobProgram, LogSink, Outcome, Stop
from offload.runner.kernel import (
    DEBUG_CELL_LABEL,
    DEBUG_HOLD_LABEL,
    DEBUG_HOLD_S,
    KERNEL_NAME,
    Prestarted,
    death_reason,
    has_subshells,
    ipykernel_version,
    kernel_pid,
    kernel_record,
    kill_kernel,
    start_kernel,
    truncate_before_cell,
)
from offload.runner.output import LiveOutput
from offload.snapshot.bundle import materialize
from offload.snapshot.deps import EnvSpec
from offload.spec import JobState
from offload.store import layout


def kernel_python(spec: Any, backend_cls: Any) -> str:
    """The interpreter of a job's kernel outside an isolated environment: the client's own where
    this machine has it (not on a fresh machine), else the runner's."""
    python = None if backend_cls.fresh_machine else spec.python
    return python if python and os.path.exists(python) else sys.executable


class NotebookJob(JobProgram):
    def __init__(self, *args: Any, prestarted: Prestarted | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.prestarted = prestarted  # a standby runner's kernel (runner/standby.py), if it fits
        self.km: Any = None
        self.kpid: int | None = None
        self.live = LiveOutput(self.store, self.job_id)  # the notebook as it runs, changed cells only
        self.cell_index = 0  # index in the notebook's cells of the cell running now

    # hooks ------------------------------------------------------------------------------------
    def kill(self) -> None:
        # Before the first cell the pid is only on the kernel manager: a cancel during kernel
        # start-up must not wait for the kernel to become ready.
        kill_kernel(self.kpid or kernel_pid(self.km))

    def snapshot_output(self) -> str | None:
        """No whole-notebook snapshots: the changed cells are saved here, debounced by time and
        size (runner/output.py), and the complete notebook once at the end (``final_notebook``)."""
        if self.live_nb is not None:
            try:
                self.live.save(self.live_nb, self.cell_index)
            except RuntimeError:  # the executing thread mutated a cell meanwhile: next tick
                pass
        return None

    def final_notebook(self, work: Path, state: JobState) -> str | None:
        """papermill's output notebook (or, when the job was stopped mid-cell, the notebook as far
        as it ran) with the job's provenance; read and written as plain JSON: validating a
        2,000-cell notebook again would cost seconds and tell nothing new."""
        nb_out = work / "output.ipynb"
        if nb_out.exists():
            nb = json.loads(nb_out.read_text(encoding="utf-8"))
        elif self.live_nb is not None:
            nb = self.live_nb
        else:
            return None
        nb.setdefault("metadata", {})["offload"] = {
            "job_id": self.job_id, "state": state, "parameters": self.spec.parameters,
            "metrics": last_values(self.metrics), "metric_records": self.metrics,
            "env_hash": self.spec.env_hash, "bundle_id": self.spec.bundle_id,
        }
        return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False, default=str)

    def finish(self, work: Path, state: JobState, reason: str | None, error: dict | None) -> None:
        self.set_status(output_saves=self.live.stats())  # live saves while it ran: writes, bytes
        super().finish(work, state, reason, error)
        try:
            self.live.discard()  # output.ipynb is stored: the live copy has served
        except Exception as exc:
            self.say(f"could not remove the live output copy: {exc}")

    # the job ----------------------------------------------------------------------------------
    def execute(self, work: Path) -> Outcome:
        # started_at is when the runner began: a job's duration counts the environment build,
        # and the phases (materialize, environment, notebook) are shown apart in its timings.
        t0 = time.time()
        self.set_status(started_at=t0, phase="materialize")
        self.say(f"job {self.job_id} on {socket.gethostname()}: materializing bundle {self.spec.bundle_id}")
        manifest = materialize(self.store, self.spec.bundle_id, work / "project")
        t1 = time.time()
        self.set_status(phase="environment", timings={"materialize_s": t1 - t0})
        try:
            python = self.prepare_env(manifest)
        finally:
            t2 = time.time()
            self.set_status(timings={"materialize_s": t1 - t0, "env_s": t2 - t1})
        if self.stop_reason:
            raise Stop
        (work / "outputs").mkdir(exist_ok=True)
        (work / "checkpoints").mkdir(exist_ok=True)
        self.restore_checkpoints(work / "checkpoints")
        # data_s: the bundle (notebook, modules, data) and any checkpoints restored from the store
        self.set_status(timings={"data_s": (t1 - t0) + (time.time() - t2)})
        os.environ.update({**self.job_environ(work), "PYTHONUNBUFFERED": "1"})  # the kernel inherits them
        self.set_status(state=JobState.RUNNING, phase="notebook", notebook_started_at=time.time(),
                        timings={"materialize_s": t1 - t0, "env_s": t2 - t1}, python=python)
        return self.run_papermill(work, python)

    def prepare_env(self, manifest: dict) -> str:
        if self.spec.env_mode != "isolated":
            return kernel_python(self.spec, self.backend_cls)
        env_dict = manifest.get("env") or self.store.get_json(self.key("env.json"))
        self.say("preparing an isolated environment from the dependency snapshot")
        got = environment.provide_env(
            EnvSpec.from_dict(env_dict), cache_dir=environment.default_cache_dir(), log=self.say,
            # a GPU job gets the accelerator builds (PyTorch CUDA wheels); the image's packages are
            # reused where versions match (GCE Deep Learning VM images carry most of them)
            accelerator="auto" if self.spec.resources.gpu else None,
            reuse_base=bool(os.environ.get("OFFLOAD_REUSE_BASE")),
            # a machine whose disk goes with the job keeps built environments in the store
            store=self.store if self.backend_cls.fresh_machine else None,
        )
        self.set_status(env_cache=got.cache, env_source=got.source)
        self.say(f"environment ready ({got.cache}, from the {got.source}): {got.python}")
        return str(got.python)

    def publish_kernel(self, km: Any, *, cwd: Path, work: Path, python: str) -> None:
        """Write the running kernel's record (``kernel.json``: how ``offload attach``/``ssh`` reach
        it), in a thread: the first cell does not wait for the store."""
        def publish() -> None:
            version = ipykernel_version(python)
            if not has_subshells(version):
                self.say(f"the kernel runs ipykernel {version or '(unknown)'} from {python}: `offload attach` needs "
                         "ipykernel >= 7 (kernel subshells) to run code while a cell runs; install "
                         "'ipykernel>=7' in that environment, or run the job isolated (--env isolated)")
            try:
                record = kernel_record(km, cwd=cwd, work=work, python=python, ipykernel=version)
                self.store.put_json(self.key(layout.KERNEL), record)
            except Exception as exc:  # attach is a convenience: the job goes on without it
                self.say(f"could not record the kernel's connection for attach: {exc}")

        self.kernel_publisher = threading.Thread(target=publish, name="offload-kernel-record", daemon=True)
        self.kernel_publisher.start()

    def unpublish_kernel(self) -> None:
        """The kernel is about to stop: its record goes (attach then says the job's state)."""
        publisher = getattr(self, "kernel_publisher", None)
        if publisher is None:
            return
        publisher.join(timeout=60)
        try:
            self.store.delete(self.key(layout.KERNEL))
        except Exception as exc:
            self.say(f"could not remove the kernel's record: {exc}")

    def hold_for_debug(self, km: Any, *, cwd: Path, work: Path, python: str) -> None:
        """A debug copy ran up to its failing cell: keep the kernel (and its record) for attach
        until the hold ends (label ``debug_hold_s``, default 30 min, within the max runtime), the
        user cancels, or the kernel dies."""
        if getattr(self, "kernel_publisher", None) is None:  # no code cell ran: publish now
            self.publish_kernel(km, cwd=cwd, work=work, python=python)
        hold = float(self.spec.labels.get(DEBUG_HOLD_LABEL) or DEBUG_HOLD_S)
        until = min(time.time() + hold, self.deadline - 10)
        self.set_status(phase="debug", debug_until=until)
        self.say(f"the kernel stays for debugging until {time.strftime('%H:%M:%S', time.localtime(until))} "
                 f"(offload attach {self.job_id}; cancel the job to end it sooner)")
        while not self.stop_reason and time.time() < until:
            if not run_sync(km.is_alive)():
                self.say("the kernel stopped")
                break
            time.sleep(0.5)

    def take_prestarted(self, work: Path, python: str, cwd: Path) -> Any:
        """The standby's kernel when it is the one this job would start (same interpreter, cwd
        and OFFLOAD_* variables) and still alive; else it is shut down and None is returned."""
        pre, self.prestarted = self.prestarted, None
        if pre is None:
            return None
        alive = False
        try:
            alive = run_sync(pre.km.is_alive)()
        except Exception:
            pass
        if alive and pre.python == python and pre.cwd == cwd and pre.env == self.job_environ(work):
            self.set_status(kernel_prestarted=True)
            return pre.km
        self.say("the standby's kernel does not fit this job (or stopped): starting a fresh one")
        try:
            run_sync(pre.km.shutdown_kernel)(now=True)
        except Exception:
            kill_kernel(kernel_pid(pre.km))
        return None

    def restore_checkpoints(self, dest: Path) -> None:
        parent = self.spec.parent
        if not parent:
            return
        prefix = layout.job_key(parent, "checkpoints")
        keys = self.store.list(prefix)
        for key in keys:
            self.store.get_file(key, dest / key[len(prefix) + 1:])
        if keys:
            self.say(f"restored {len(keys)} checkpoint file(s) from job {parent}")

    def run_papermill(self, work: Path, python: str) -> Outcome:
        program = self
        nb_in = work / "project" / self.spec.notebook
        # The kernel boots in its own process (about a second) while papermill is imported and
        # the notebook parameterized: start it first (nbclient uses a kernel already started).
        # A standby runner started one already while the previous trial ran: take it if it fits.
        t0 = time.time()
        km = self.km = self.take_prestarted(work, python, nb_in.parent) or start_kernel(work, python, cwd=nb_in.parent)
        try:
            # papermill (and nbclient under it) are imported here, not at the top: they cost about
            # a second, and are told first to skip imports the runner never uses (gcsfs: the
            # runner gives papermill local paths; offload._startup.skip_unused_imports)
            _startup.skip_unused_imports(papermill=True)
            import papermill
            from papermill.engines import NBClientEngine, papermill_engines
            from papermill.exceptions import PapermillExecutionError
        except BaseException:
            kill_kernel(kernel_pid(km))
            raise

        class OffloadEngine(NBClientEngine):
            """papermill's engine with a hook as each cell starts: progress, cell id, stop."""

            @classmethod
            def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
                program.live_nb = nb_man.nb
                code_cells = [i for i, c in enumerate(nb_man.nb.cells) if c.cell_type == "code"]
                ordinals = {index: n for n, index in enumerate(code_cells, 1)}
                program.set_status(n_cells=len(code_cells))
                original_start = nb_man.cell_start

                def cell_start(cell, cell_index=None, **kw):
                    original_start(cell, cell_index, **kw)
                    if "first_cell_at" not in program.status["timings"]:  # the kernel is up
                        program.set_status(timings={"first_cell_at": time.time(), "kernel_s": time.time() - t0})
                    program.current_cell_id = cell.get("id")
                    program.cell_index = cell_index or 0
                    program.set_status(cell=ordinals.get(cell_index, 0), cell_id=cell.get("id"))
                    if program.kpid is None and km.has_kernel:
                        program.kpid = kernel_pid(km)
                        program.publish_kernel(km, cwd=nb_in.parent, work=work, python=python)
                    if program.stop_reason:
                        raise Stop

                nb_man.cell_start = cell_start
                return super().execute_managed_notebook(nb_man, kernel_name, km=km, **kwargs)

        papermill_engines.register("offload", OffloadEngine)
        debug_cell = int(self.spec.labels.get(DEBUG_CELL_LABEL) or 0)  # a debug copy: stop before it
        if debug_cell:
            kept = truncate_before_cell(nb_in, debug_cell)
            self.say(f"debug copy of job {self.spec.parent}: running its first {kept} code cell(s), stopping before "
                     f"cell {debug_cell} (where it failed); the kernel then stays for offload attach")
        sink = LogSink(self)
        error = None
        try:
            papermill.execute_notebook(
                str(nb_in), str(work / "output.ipynb"), parameters=self.spec.parameters or None,
                engine_name="offload", kernel_name=KERNEL_NAME, language="python", progress_bar=False,
                log_output=False, stdout_file=sink, stderr_file=sink, cwd=str(nb_in.parent),
                # papermill saves the whole notebook at every cell start and end (quadratic in its
                # length): off; the runner saves changed cells live and the whole one at the end
                autosave_cell_every=0, request_save_on_cell_execute=False, start_timeout=120,
            )
            state, reason = JobState.SUCCEEDED, None
            if debug_cell:
                self.hold_for_debug(km, cwd=nb_in.parent, work=work, python=python)
        except PapermillExecutionError as exc:
            state, reason = JobState.FAILED, f"{exc.ename}: {exc.evalue}"
            error = {"ename": exc.ename, "evalue": exc.evalue, "traceback": list(exc.traceback), "cell": self.status.get("cell")}
            self.append_log("\n".join(strip_ansi(t) for t in exc.traceback) + "\n")
        except Stop:
            state, reason, error = self.stopped_outcome()
        except Exception as exc:
            if self.stop_reason:
                state, reason, error = self.stopped_outcome()
            else:
                state, reason = JobState.FAILED, death_reason(km, exc)
                error = {"ename": type(exc).__name__, "evalue": reason, "traceback": []}
                self.say(reason)
        finally:
            self.status["timings"]["execute_s"] = time.time() - t0
            self.unpublish_kernel()
            try:
                if km.has_kernel:
                    run_sync(km.shutdown_kernel)(now=True)
            except Exception:
                pass
        return state, reason, error
