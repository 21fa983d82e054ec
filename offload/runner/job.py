"""The one program that runs on the remote machine: ``python -m offload.runner STORE_URL JOB_ID``.

It materializes the bundle, prepares the environment, executes the notebook with papermill and
streams status, logs, metrics and the partial output notebook to the store. Everything it knows
is in the store when it exits, whichever way it exits: success, failing cell, cancel marker,
SIGTERM (preemption), max runtime, or a kernel that died.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from offload._version import __version__
from offload.backends.base import Backend
from offload.snapshot.bundle import materialize
from offload.spec import JobSpec, JobState
from offload.store import Store

HEARTBEAT_S = float(os.environ.get("OFFLOAD_HEARTBEAT_S", "3"))
TICK_S = 0.25
KERNEL_NAME = "offload-runner-python"
log = logging.getLogger("offload.runner")


class _Stop(Exception):
    pass


class LogSink:
    """File-like target for papermill's stdout_file/stderr_file: buffers text for the monitor."""

    def __init__(self, runner: Runner):
        self.runner = runner

    def write(self, text: str) -> int:
        self.runner.append_log(text)
        return len(text)

    def flush(self) -> None:
        pass


def _backend_class(name: str) -> type[Backend]:
    from offload.backends.base import available_backends

    ep = available_backends().get(name)
    if ep is not None:
        try:
            return ep.load()
        except ImportError:
            pass
    return Backend


class Runner:
    def __init__(self, store_url: str, job_id: str):
        self.store = Store(store_url)
        self.job_id = job_id
        self.key = lambda name: Store.job_key(job_id, name)
        self.spec = JobSpec.from_dict(self.store.get_json(self.key("spec.json")))
        self.backend_cls = _backend_class(self.spec.backend)
        self.lock = threading.Lock()
        self.status: dict[str, Any] = {
            "state": JobState.QUEUED,
            "cell": 0,
            "n_cells": 0,
            "attempt": self.spec.attempt,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "runner_version": __version__,
            "timings": {},
        }
        self.status_dirty = True
        self.last_status_write = 0.0
        self.log_buf: list[str] = []
        self.log_seq = 0
        self.metrics: list[dict[str, Any]] = []
        self.metrics_pos = 0
        self.metrics_dirty = False
        self.output_snapshot: str | None = None
        self.stop_reason: str | None = None
        self.finished = False
        self.kernel_pid: int | None = None
        self.current_cell_id: str | None = None
        self.nb_man = None
        self.last_output_mark: tuple[int, int] = (0, 0)
        self.deadline = time.time() + self.spec.resources.max_runtime_s
        self.done = threading.Event()
        self.km: Any = None
        self.flush_lock = threading.Lock()

    # ----------------------------------------------------------------------------- state updates
    def set_status(self, **fields: Any) -> None:
        with self.lock:
            self.status.update(fields)
            self.status_dirty = True

    def append_log(self, text: str) -> None:
        if text:
            with self.lock:
                self.log_buf.append(text)

    def say(self, text: str) -> None:
        """Runner's own lines in the job log, marked so users can tell them from cell output."""
        self.append_log(f"[offload] {text}\n")

    def flush(self, *, force: bool = False) -> None:
        """Write whatever changed to the store. Called by the monitor thread and at the end."""
        # One flush at a time: otherwise the monitor's flush can store a final status.json while
        # the final flush is still writing metrics.jsonl, and a reader sees "succeeded" with no
        # metrics (a sweep then fails a good trial).
        with self.flush_lock:
            self._flush(force=force)

    def _flush(self, *, force: bool = False) -> None:
        with self.lock:
            chunk = "".join(self.log_buf)
            self.log_buf.clear()
            status = dict(self.status) if (self.status_dirty or force or time.time() - self.last_status_write >= HEARTBEAT_S) else None
            if status is not None:
                status["heartbeat"] = time.time()
                self.status_dirty = False
                self.last_status_write = status["heartbeat"]
            snapshot, self.output_snapshot = self.output_snapshot, None
        if chunk:
            self.store.put_text(self.key(f"log/{self.log_seq:08d}.txt"), chunk)
            self.log_seq += 1
        self._read_metrics()
        if self.metrics_dirty:
            self.metrics_dirty = False
            self.store.put_text(self.key("metrics.jsonl"), "".join(json.dumps(m) + "\n" for m in self.metrics))
        if snapshot is not None:
            self.store.put_text(self.key("output.ipynb"), snapshot)
        if status is not None:
            self.store.put_json(self.key("status.json"), status)

    def _read_metrics(self) -> None:
        path = os.environ.get("OFFLOAD_METRICS_FILE")
        if not path or not os.path.exists(path):
            return
        with open(path, encoding="utf-8") as fh:
            fh.seek(self.metrics_pos)
            data = fh.read()
        end = data.rfind("\n") + 1  # only whole lines; a torn tail is read next time
        if not end:
            return
        self.metrics_pos += len(data[:end].encode())
        for line in data[:end].splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            rec.setdefault("cell_id", None)
            rec["cell_id"] = rec["cell_id"] or self.current_cell_id
            self.metrics.append(rec)
            self.metrics_dirty = True

    def _snapshot_output(self) -> None:
        """Serialize the live notebook when its outputs changed (mid-cell too, for long cells)."""
        nb_man = self.nb_man
        if nb_man is None:
            return
        try:
            import nbformat

            mark = (self.status.get("cell", 0), sum(
                len(o.get("text", "")) if o.get("output_type") == "stream" else 1
                for c in nb_man.nb.cells for o in c.get("outputs", [])
            ))
            if mark == self.last_output_mark:
                return
            text = nbformat.writes(nb_man.nb)
        except RuntimeError:  # the executing thread mutated a cell meanwhile: next tick
            return
        self.last_output_mark = mark
        with self.lock:
            self.output_snapshot = text

    # ----------------------------------------------------------------------------- monitor
    def monitor(self) -> None:
        last_cancel_check = 0.0
        while not self.done.wait(TICK_S):
            try:
                now = time.time()
                if now - last_cancel_check >= 1.0 and not self.stop_reason:
                    last_cancel_check = now
                    if self.store.exists(self.key("cancel")):
                        self.stop("cancelled", "cancelled by the user")
                    elif now > self.deadline:
                        self.stop("timeout", f"stopped at the max runtime of {self.spec.resources.max_runtime_s} s")
                self._snapshot_output()
                self.flush()
            except Exception as exc:  # a store hiccup must not kill the job; say it and go on
                log.warning("monitor: %s", exc)

    def stop(self, reason: str, message: str) -> None:
        if self.stop_reason or self.finished:
            return
        self.stop_reason = reason
        self.say(message)
        self._kill_kernel()

    def _kill_kernel(self) -> None:
        # Before the first cell the pid is only on the kernel manager: a cancel during kernel
        # start-up must not wait for the kernel to become ready.
        pid = self.kernel_pid or getattr(getattr(self.km, "provisioner", None), "pid", None)
        if pid:
            for sig in (signal.SIGKILL,):
                try:
                    os.killpg(pid, sig)
                except (ProcessLookupError, PermissionError):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass

    def on_sigterm(self, signum: int, frame: Any) -> None:
        if self.finished:  # our own machine going away after we finished: not a preemption
            return
        if self.store.exists(self.key("cancel")):
            self.stop("cancelled", "cancelled by the user")
        else:
            why = None
            try:
                why = self.backend_cls.termination_reason()
            except Exception:
                pass
            self.stop(why or "terminated", f"received {signal.Signals(signum).name}" + (f" ({why})" if why else ""))

    # ----------------------------------------------------------------------------- the run
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_sigterm)
        signal.signal(signal.SIGINT, self.on_sigterm)
        work = Path(os.environ.get("OFFLOAD_WORK_DIR") or tempfile.mkdtemp(prefix=f"offload-{self.job_id}-"))
        work.mkdir(parents=True, exist_ok=True)
        monitor = threading.Thread(target=self.monitor, name="offload-monitor", daemon=True)
        self.flush(force=True)
        monitor.start()
        # The slot is held through _finish: uploading results is part of the job's footprint.
        with self.backend_cls.runner_slot(self.spec, self.store, lambda: bool(self.stop_reason)):
            state, reason, error = JobState.FAILED, None, None
            try:
                if self.stop_reason:
                    raise _Stop
                state, reason, error = self._run(work)
            except _Stop:
                state, reason, error = self._stopped_state()
            except Exception as exc:
                state, reason = JobState.FAILED, f"runner error: {exc}"
                error = {"ename": type(exc).__name__, "evalue": str(exc), "traceback": traceback.format_exc().splitlines()}
                self.say(f"runner error: {exc}")
            finally:
                self.finished = True
                self.done.set()
                monitor.join(timeout=5)
            self._finish(work, state, reason, error)
        return 0 if state == JobState.SUCCEEDED else 1

    def _stopped_state(self) -> tuple[str, str | None, dict | None]:
        reason = self.stop_reason
        if reason == "cancelled":
            return JobState.CANCELLED, "cancelled by the user", None
        if reason == "preempted":
            return JobState.PREEMPTED, "the machine was preempted", None
        if reason == "timeout":
            return JobState.FAILED, f"max runtime of {self.spec.resources.max_runtime_s} s exceeded", None
        return JobState.FAILED, f"terminated ({reason})", None

    def _run(self, work: Path) -> tuple[str, str | None, dict | None]:
        t0 = time.time()
        self.say(f"job {self.job_id} on {socket.gethostname()}: materializing bundle {self.spec.bundle_id}")
        manifest = materialize(self.store, self.spec.bundle_id, work / "project")
        t1 = time.time()
        python = self._prepare_env(manifest)
        t2 = time.time()
        if self.stop_reason:
            raise _Stop
        outputs = work / "outputs"
        checkpoints = work / "checkpoints"
        outputs.mkdir(exist_ok=True)
        checkpoints.mkdir(exist_ok=True)
        self._restore_checkpoints(checkpoints)
        os.environ.update({
            "OFFLOAD_JOB_ID": self.job_id,
            "OFFLOAD_STORE": self.store.url,
            "OFFLOAD_METRICS_FILE": str(work / "metrics.jsonl"),
            "OFFLOAD_OUTPUT_DIR": str(outputs),
            "OFFLOAD_CHECKPOINT_DIR": str(checkpoints),
            "PYTHONUNBUFFERED": "1",
        })
        self.set_status(state=JobState.RUNNING, started_at=time.time(), timings={"materialize_s": t1 - t0, "env_s": t2 - t1}, python=python)
        return self._execute(work, python)

    def _prepare_env(self, manifest: dict) -> str:
        if self.spec.env_mode != "isolated":
            python = self.spec.python if self.spec.python and os.path.exists(self.spec.python) else sys.executable
            return python
        from offload.runner import environment as env_mod
        from offload.snapshot.deps import EnvSpec

        env_dict = manifest.get("env") or self.store.get_json(self.key("env.json"))
        self.say("preparing an isolated environment from the dependency snapshot")
        cache = Path(os.environ.get("OFFLOAD_ENV_CACHE") or Path(tempfile.gettempdir()) / "offload-envs")
        python = env_mod.prepare_env(
            EnvSpec.from_dict(env_dict), cache_dir=cache, log=self.say,
            # a GPU job gets the accelerator builds (PyTorch CUDA wheels); the image's packages are
            # reused where versions match (GCE Deep Learning VM images carry most of them)
            accelerator="auto" if self.spec.resources.gpu else None,
            reuse_base=bool(os.environ.get("OFFLOAD_REUSE_BASE")),
        )
        self.say(f"environment ready: {python}")
        return str(python)

    def _restore_checkpoints(self, dest: Path) -> None:
        parent = self.spec.parent
        if not parent:
            return
        prefix = Store.job_key(parent, "checkpoints")
        keys = self.store.list(prefix)
        for key in keys:
            rel = key[len(prefix) + 1:]
            self.store.get_file(key, dest / rel)
        if keys:
            self.say(f"restored {len(keys)} checkpoint file(s) from job {parent}")

    def _kernel_manager(self, work: Path, python: str):
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import AsyncKernelManager

        kdir = work / "kernels" / KERNEL_NAME
        kdir.mkdir(parents=True, exist_ok=True)
        (kdir / "kernel.json").write_text(json.dumps({
            "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "offload runner",
            "language": "python",
        }))
        ksm = KernelSpecManager(kernel_dirs=[str(work / "kernels")])
        # IPC sockets in a short private directory: no TCP port races between concurrent jobs.
        sock_dir = tempfile.mkdtemp(prefix="ofk-")
        return AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm, transport="ipc", ip=os.path.join(sock_dir, "k"))

    def _execute(self, work: Path, python: str) -> tuple[str, str | None, dict | None]:
        import papermill
        from papermill.engines import NBClientEngine, papermill_engines
        from papermill.exceptions import PapermillExecutionError

        runner = self
        km = self.km = self._kernel_manager(work, python)
        project = work / "project"
        nb_in = project / self.spec.notebook
        nb_out = work / "output.ipynb"

        class OffloadEngine(NBClientEngine):
            @classmethod
            def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
                runner.nb_man = nb_man
                code_cells = [i for i, c in enumerate(nb_man.nb.cells) if c.cell_type == "code"]
                runner.set_status(n_cells=len(code_cells))
                original_start = nb_man.cell_start

                def cell_start(cell, cell_index=None, **kw):
                    original_start(cell, cell_index, **kw)
                    runner.current_cell_id = cell.get("id")
                    ordinal = code_cells.index(cell_index) + 1 if cell_index in code_cells else 0
                    runner.set_status(cell=ordinal, cell_id=cell.get("id"))
                    if runner.kernel_pid is None and km.has_kernel:
                        runner.kernel_pid = getattr(km.provisioner, "pid", None)
                    if runner.stop_reason:
                        raise _Stop

                nb_man.cell_start = cell_start
                return super().execute_managed_notebook(nb_man, kernel_name, km=km, **kwargs)

        papermill_engines.register("offload", OffloadEngine)
        sink = LogSink(self)
        t0 = time.time()
        error = None
        try:
            papermill.execute_notebook(
                str(nb_in), str(nb_out),
                parameters=self.spec.parameters or None,
                engine_name="offload",
                kernel_name=KERNEL_NAME,
                language="python",
                progress_bar=False,
                log_output=False,
                stdout_file=sink,
                stderr_file=sink,
                cwd=str(nb_in.parent),
                autosave_cell_every=0,
                start_timeout=120,
            )
            state, reason = JobState.SUCCEEDED, None
        except PapermillExecutionError as exc:
            state = JobState.FAILED
            reason = f"{exc.ename}: {exc.evalue}"
            error = {"ename": exc.ename, "evalue": exc.evalue, "traceback": list(exc.traceback), "cell": self.status.get("cell")}
            self.append_log("\n".join(_strip_ansi(t) for t in exc.traceback) + "\n")
        except _Stop:
            state, reason, error = self._stopped_state()
        except Exception as exc:
            if self.stop_reason:
                state, reason, error = self._stopped_state()
            else:
                state, reason = JobState.FAILED, self._kernel_death_reason(km, exc)
                error = {"ename": type(exc).__name__, "evalue": reason, "traceback": []}
                self.say(reason)
        finally:
            self.status["timings"]["execute_s"] = time.time() - t0
            try:
                if km.has_kernel:
                    from jupyter_core.utils import run_sync

                    run_sync(km.shutdown_kernel)(now=True)
            except Exception:
                pass
        if state == JobState.SUCCEEDED and self.stop_reason:
            state, reason, error = self._stopped_state()
        return state, reason, error

    def _kernel_death_reason(self, km: Any, exc: Exception) -> str:
        proc = getattr(getattr(km, "provisioner", None), "process", None)
        code = proc.poll() if proc is not None else None
        if code is not None and code < 0:
            sig = signal.Signals(-code).name
            hint = " (out of memory?)" if -code == signal.SIGKILL else ""
            return f"the kernel died: killed by {sig}{hint}"
        if code is not None:
            return f"the kernel died with exit status {code}"
        return f"the kernel died or stopped answering: {type(exc).__name__}: {exc}"

    # ----------------------------------------------------------------------------- the end
    def _finish(self, work: Path, state: str, reason: str | None, error: dict | None) -> None:
        finished_at = time.time()
        self._read_metrics()
        nb_out = work / "output.ipynb"
        try:
            if nb_out.exists():
                import nbformat

                nb = nbformat.read(nb_out, as_version=4)
                from offload.metrics import last_values

                nb.metadata["offload"] = {
                    "job_id": self.job_id,
                    "state": state,
                    "parameters": self.spec.parameters,
                    "metrics": last_values(self.metrics),
                    "metric_records": self.metrics,
                    "env_hash": self.spec.env_hash,
                    "bundle_id": self.spec.bundle_id,
                }
                self.store.put_text(self.key("output.ipynb"), nbformat.writes(nb))
            elif self.output_snapshot:
                self.store.put_text(self.key("output.ipynb"), self.output_snapshot)
            self._upload_dir(work / "outputs", "outputs")
            self._upload_dir(work / "checkpoints", "checkpoints")
        except Exception as exc:
            self.say(f"could not save every output: {exc}")
        started = self.status.get("started_at")
        self.set_status(
            state=state, reason=reason, error=error, finished_at=finished_at,
            duration_s=(finished_at - started) if started else None,
        )
        self.say(f"job {state}" + (f": {reason}" if reason else ""))
        self.flush(force=True)
        self.store.put_json(self.key("result.json"), {
            "state": state, "reason": reason, "metrics": self.metrics_last(), "finished_at": finished_at,
        })
        if not os.environ.get("OFFLOAD_KEEP_WORK"):
            shutil.rmtree(work, ignore_errors=True)
        try:
            self.backend_cls.on_runner_exit(self.spec, self.store, state)
        except Exception as exc:
            log.warning("on_runner_exit: %s", exc)

    def metrics_last(self) -> dict[str, Any]:
        from offload.metrics import last_values

        return last_values(self.metrics)

    def _upload_dir(self, local: Path, prefix: str) -> None:
        if not local.exists():
            return
        for path in sorted(local.rglob("*")):
            if path.is_file():
                self.store.put_file(path, self.key(f"{prefix}/{path.relative_to(local).as_posix()}"))


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def _skip_unused_imports() -> None:
    """Each trial of a sweep is a runner process, and on a small machine the runners' start-up CPU
    is what bounds a sweep's wall time. Three optional imports nothing in the runner uses cost about
    2.3 s of CPU there: jsonschema's IRI and duration format checkers (``rfc3987_syntax`` builds a
    grammar at import, ``isoduration`` pulls in arrow; nbformat's schema uses neither format) and
    papermill's ``gs://`` I/O handler (gcsfs: the runner gives papermill local paths, and the store
    imports gcsfs itself, later, when its URL is ``gs://``). Both libraries import them inside
    ``except ImportError``, so a ``None`` in ``sys.modules`` makes them skip the feature."""
    for name in ("rfc3987_syntax", "isoduration"):
        sys.modules.setdefault(name, None)  # type: ignore[assignment]
    if "papermill" in sys.modules or "gcsfs" in sys.modules:
        return
    sys.modules["gcsfs"] = None  # type: ignore[assignment]
    try:
        import papermill.iorw  # noqa: F401
    except ImportError:
        pass  # reported where the runner imports papermill
    finally:
        del sys.modules["gcsfs"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m offload.runner STORE_URL JOB_ID", file=sys.stderr)
        return 2
    _skip_unused_imports()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    from offload.backends import local

    local.take_ticket()  # a local job's place in the queue, released once it has a slot or exits
    try:
        from offload.cells.session import (
            serve_if_session,  # a warm %%offload session is a job of its own kind
        )

        code = serve_if_session(argv[0], argv[1])
        if code is not None:
            return code
        # a sweep pack runs several trial runners on one machine
        from offload.backends.pack import serve_if_pack

        code = serve_if_pack(argv[0], argv[1])
        if code is not None:
            return code
        return Runner(argv[0], argv[1]).run()
    finally:
        local.drop_ticket()


if __name__ == "__main__":
    sys.exit(main())
