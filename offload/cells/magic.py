"""``%%offload``: run one notebook cell on another machine, state out and back.

``%load_ext offload`` registers one magic that works as a cell magic (run the cell remotely) and
as a line magic (``%offload config|status|ls|result|cancel|stop``). A cell becomes a small
notebook job (see :mod:`offload.cells.notebook`) that goes through the same runner and backends
as every other job, so it is listed by ``offload ls`` and shows in the jobs panel and gallery.

The round trip: static analysis of the cell (:mod:`offload.cells.analysis`) -> the values it
reads are pickled into one content-addressed blob in the store (:mod:`offload.cells.namespace`) -> the
job runs (warm session when one is up, see :mod:`offload.cells.session`) -> its output notebook is
polled and new outputs of the cell are re-displayed under the local cell -> on success the names
it assigned are unpickled and bound, on failure the remote exception is raised with the remote
traceback and nothing is bound.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import hashlib
import os
import pickle
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import nbformat.v4
from IPython import get_ipython
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display

from offload.backends.doorbell import Doorbell
from offload.cells import notebook as cellnb
from offload.cells.analysis import analyze_cell
from offload.cells.namespace import (
    DEFAULT_PULL_LIMIT,
    DEFAULT_WARN_BYTES,
    capture,
    human_size,
    restore,
)
from offload.cells.remote import CELL_DIR, EXCEPTION, MANIFEST, RESULTS
from offload.cells.session import (
    CELL_NOTEBOOK,
    SessionClient,
    SessionGone,
    can_serve,
    client_labels,
)
from offload.errors import JobFailed, OffloadError, UsageError
from offload.jobs import Job, list_jobs, submit
from offload.snapshot.deps import snapshot
from offload.spec import FINAL_STATES, JobState
from offload.store import Store, layout

__all__ = ["OffloadMagics", "load_ipython_extension", "CellJob", "RemoteCellError", "run_cell"]


class RemoteCellError(OffloadError):
    """The cell raised remotely and the exception object itself could not be brought back."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would sys.exit() the kernel's cell
        raise UsageError(f"{self.prog}: {message}", hint=f"`{self.prog} --help` lists the options")

    def exit(self, status: int = 0, message: str | None = None) -> None:
        if message:
            raise UsageError(message.strip())
        raise _HelpShown


class _HelpShown(Exception):
    pass


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in re.split(r"[,\s]+", text) if n.strip()]
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        raise UsageError(f"not a variable name: {', '.join(bad)}", hint="write names separated by commas: --push a,b")
    return names


def _size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)?\s*", str(text).lower())
    if not m:
        raise UsageError(f"cannot read size {text!r}", hint="write it like 500MB or 2GB")
    unit = (m.group(2) or "b").rstrip("b").rstrip("i")
    return int(float(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit])


@functools.cache
def cell_parser() -> _Parser:
    """The option parser (built once: it is read-only once built)."""
    p = _Parser(prog="%%offload", add_help=True, description="Run this cell remotely.")
    p.add_argument("--backend", help="where to run: local, gce, slurm (default: config)")
    p.add_argument("--gpu", help="GPU type, e.g. l4, a100, or a fallback list t4,l4")
    p.add_argument("--gpu-count", type=int, default=None)
    p.add_argument("--machine", help="backend machine type, e.g. g2-standard-8")
    p.add_argument("--spot", action="store_true", default=None, help="spot/preemptible capacity")
    p.add_argument("--max-runtime", help="hard cap, e.g. 30m, 4h")
    p.add_argument("--keep-alive", dest="keep_alive", default=None,
                   help="how long the warm session's machine waits for the next cell, e.g. 10m "
                        "(default: the backend's keep_alive, else 30m)")
    p.add_argument("--push", help="names to send (overrides the analysis)")
    p.add_argument("--pull", help="names to bring back (overrides the analysis)")
    p.add_argument("--no-pull", action="store_true", help="bring nothing back")
    p.add_argument("--detach", action="store_true", help="return at once; `%%offload result JOB` later")
    p.add_argument("--data", action="append", default=None, help="file or directory to ship (repeatable)")
    p.add_argument("--env", choices=["kernel", "isolated"], default=None)
    p.add_argument("--cold", action="store_true", default=None, help="a fresh runner, not the warm session")
    p.add_argument("--warn-size", type=_size, default=None, help="warn above this pushed size (default 100MB)")
    p.add_argument("--pull-limit", type=_size, default=None, help="leave assigned values above this remote (2GB)")
    return p


@functools.lru_cache(maxsize=64)
def _parse_line(line: str) -> argparse.Namespace:
    """The options of a ``%%offload`` line (cached: a notebook repeats the same few lines)."""
    return cell_parser().parse_args(shlex.split(line))


@functools.lru_cache(maxsize=256)
def _analysis(body: str) -> Any:
    """:func:`analyze_cell`, once per cell source (a rerun cell is not parsed again; the result is
    only read)."""
    return analyze_cell(body)


_DEFAULT_KEYS = ("backend", "gpu", "gpu_count", "machine", "spot", "max_runtime", "keep_alive", "data", "env", "cold",
                 "warn_size", "pull_limit")


def _render(exc: BaseException, lines: list[str]) -> BaseException:
    """Make IPython show ``lines`` instead of a traceback through this module's internals."""
    exc._render_traceback_ = lambda: list(lines)  # type: ignore[attr-defined]
    return exc


class CellJob:
    """What ``%%offload --detach`` returns: the job, and how to get its results."""

    def __init__(self, job: Any):
        self.job = job
        self.id = job.id

    def __repr__(self) -> str:
        return f"<offload cell job {self.id} ({self.job.state}): `%offload result {self.id}` brings its results back>"


class _OutputMirror:
    """Re-display the outputs of the remote cell as they appear in the partial output notebook."""

    def __init__(self) -> None:
        self.done = 0  # outputs fully shown
        self.stream_chars = 0  # characters of output[self.done] already written (a growing stream)

    def update(self, cell: Any, *, final: bool = False) -> None:
        if cell is None:
            return
        outputs = cell.get("outputs", [])
        while self.done < len(outputs):
            out = outputs[self.done]
            last = self.done == len(outputs) - 1
            kind = out.get("output_type")
            if kind == "stream":
                text = out.get("text", "")
                text = "".join(text) if isinstance(text, list) else text
                new = text[self.stream_chars:]
                if new:
                    stream = sys.stderr if out.get("name") == "stderr" else sys.stdout
                    stream.write(new)
                    stream.flush()
                self.stream_chars = len(text)
                if last and not final:
                    return  # the stream may still grow
            elif kind in ("display_data", "execute_result"):

                display(dict(out.get("data", {})), raw=True, metadata=dict(out.get("metadata", {})))
            # "error" outputs are shown by raising the exception locally
            self.done += 1
            self.stream_chars = 0


def _status(text: str) -> None:
    """A status line under the cell: its own display output, so it is neither the cell's stdout
    (which the user may capture or parse) nor stderr (which JupyterLab shows on a red background)."""
    display({"text/plain": text}, raw=True)


@magics_class
class OffloadMagics(Magics):
    """``%%offload`` and ``%offload``; one instance per kernel."""

    def __init__(self, shell: Any):
        super().__init__(shell)
        self.defaults: dict[str, Any] = {}
        self.jobs: list[str] = []  # ids of this kernel's cell jobs, oldest first
        self._env_cache: dict[str, Any] = {}
        self._modules: tuple[int, list[str], str] = (-1, [], "")  # len(sys.modules), their names, digest
        self.session: Any = None  # offload.cells.session.SessionClient when warm
        self._bell: Any = None  # this kernel's doorbell, rung by a local session when a cell job ends

    # ------------------------------------------------------------------------------ entry point
    @line_cell_magic
    def offload(self, line: str, cell: str | None = None) -> Any:
        try:
            if cell is None:
                return self._line(line)
            return self.run_cell(line, cell)
        except _HelpShown:
            return None
        except OffloadError as exc:
            if not hasattr(exc, "_render_traceback_"):
                hint = f"\n  hint: {exc.hint}" if exc.hint else ""
                _render(exc, [f"\x1b[0;31m{type(exc).__name__}\x1b[0m: {exc.message}{hint}"])
            raise exc from None

    # ------------------------------------------------------------------------------ cell magic
    def options(self, line: str) -> argparse.Namespace:
        opts = argparse.Namespace(**vars(_parse_line(line)))  # a copy: the defaults are set on it
        for key in _DEFAULT_KEYS:
            if getattr(opts, key, None) is None and key in self.defaults:
                setattr(opts, key, self.defaults[key])
        return opts

    def run_cell(self, line: str, body: str) -> Any:
        opts = self.options(line)
        ns = self.shell.user_ns
        analysis = _analysis(body)
        push = _names(opts.push)
        pull = [] if opts.no_pull else (_names(opts.pull) or analysis.writes)
        cap = capture(
            ns, push if push is not None else analysis.reads,
            warn_bytes=opts.warn_size or DEFAULT_WARN_BYTES,
            hidden=set(getattr(self.shell, "user_ns_hidden", {})), explicit=push is not None,
        )
        for w in cap.warnings:
            print(f"offload: warning: {w}", file=sys.stderr)
        store = Store()
        blob = None
        if cap.parts is not None:  # hashed and written from the values' own memory (no joined copy)
            digest = hashlib.sha256()
            for part in cap.parts:
                digest.update(part)
            blob = digest.hexdigest()
            if not store.exists(layout.blob_key(blob)):
                store.put_parts(layout.blob_key(blob), cap.parts)
        nb = cellnb.build(
            body, magic_line=line.strip(), imports=cap.imports, blob=blob, names=cap.names,
            pull=pull, deleted=[] if opts.no_pull else analysis.deleted,
            pull_limit=opts.pull_limit or DEFAULT_PULL_LIMIT,
        )
        job = self._launch(nb, opts, store)
        self.jobs.append(job.id)
        sent = ", ".join(f"{n} ({human_size(cap.sizes[n])})" for n in cap.names) or "nothing"
        imports = f"; imports: {', '.join(i.split(' ', 1)[1] for i in cap.imports)}" if cap.imports else ""
        _status(f"[offload] job {job.id} on {job.spec.backend}: sent {sent}{imports}")
        if opts.detach:
            return CellJob(job)
        return self.finish(job, fresh=True)

    def _launch(self, nb: Any, opts: argparse.Namespace, store: Store) -> Any:
        """Warm session if one serves these options, else a normal cold job."""
        backend = opts.backend
        if not opts.cold and can_serve(backend, opts):
            if self._bell is None:  # listening before the first cell is queued: no ring is missed
                self._bell = Doorbell(f"client-{os.getpid()}")
            if self.session is None or not self.session.compatible(opts):
                if self.session is not None:
                    self.session.stop()
                where = f"{opts.backend or 'the default backend'}{f' ({opts.machine})' if opts.machine else ''}"
                _status(f"[offload] starting a session on {where}\u2026")
                self.session = SessionClient.start(store, opts, cwd=os.getcwd())
                atexit.register(self.session.stop)
            try:
                return self.session.submit(nb, opts, env_spec=lambda p: self._env_spec(p, nb), known_alive=True)
            except SessionGone:
                self.session = None
        return self._submit_cold(nb, opts, store)

    def _submit_cold(self, nb: Any, opts: argparse.Namespace, store: Store) -> Any:
        root = Path(os.getcwd())
        return submit(
            nb, name=CELL_NOTEBOOK, kind="cell", backend=opts.backend, gpu=opts.gpu, gpu_count=opts.gpu_count or 1,
            machine=opts.machine, spot=bool(opts.spot), max_runtime=opts.max_runtime,
            data=list(opts.data or []), env=opts.env or "kernel", store=store, project_root=root,
            env_spec=self._env_spec(root / CELL_NOTEBOOK, nb), labels=client_labels(),
        )

    def _env_spec(self, nb_path: Path, nb: Any) -> Any:
        """Snapshot of the whole kernel (its imported modules), cached per module set and cell."""
        if self._modules[0] != len(sys.modules):  # an import since the last cell (listing them costs)
            mods = sorted(m for m in list(sys.modules) if "." not in m and not m.startswith("_"))
            self._modules = (len(sys.modules), mods, hashlib.sha256("\n".join(mods).encode()).hexdigest())
        _, mods, digest = self._modules
        key = hashlib.sha256((digest + nb.cells[1].source).encode()).hexdigest()
        if key not in self._env_cache:
            self._env_cache[key] = snapshot(nb_path, nb=nb, project_root=nb_path.parent, kernel_modules=mods)
        return self._env_cache[key]

    # ------------------------------------------------------------------------------ following
    def finish(self, job: Any, *, fresh: bool = False) -> None:
        """Mirror outputs until the job ends; bind results or raise the remote exception.

        A warm session on this machine rings this kernel's doorbell once a cell job's end is
        recorded (:mod:`offload.backends.doorbell`; the bell listens from the first warm cell on,
        before any is queued), so the end is seen at once, and the store is polled from 50 ms for
        the outputs of a longer cell; a ``fresh`` job (just queued) is not looked at before the
        first ring or poll. Without a doorbell, a local store is
        polled from 2 ms (a warm cell ends in milliseconds; a read of a local status file costs
        microseconds) and the job's ``result.json`` (its last write) is looked for every
        millisecond for the first second; a remote store is polled from 20 ms. All back off to
        0.25 s."""
        mirror = _OutputMirror()
        seen = None
        # a warm cell on this machine (local backend) rings when it ends; one on a SLURM node or
        # a VM cannot reach this machine's doorbell, even through a shared file:// store, and a
        # cold cell's runner does not ring
        on_session = bool(job.spec.labels.get("session"))
        bell = self._bell if on_session and job.spec.backend == "local" and job.store.local else None
        if bell is not None and bell.sock is None:
            bell = None
        # with a doorbell the end is heard at once: polling only mirrors a long cell's outputs
        poll = 0.05 if bell is not None else 0.002 if job.store.local else 0.02
        fast_until = time.perf_counter() + 1.0 if job.store.local else 0.0
        result_key = layout.job_key(job.id, "result.json")
        try:
            if fresh and bell is not None:  # queued a moment ago: its end rings
                bell.wait(poll)
            while True:
                state = job.refresh()["state"]
                text = _output_text(job)
                if text is not None and text != seen:
                    seen = text
                    mirror.update(cellnb.user_cell(_read_nb(text)), final=state in FINAL_STATES)
                if state in FINAL_STATES:
                    break
                if bell is not None:
                    bell.wait(poll)
                else:
                    _wait_for(job.store, result_key, poll, until=fast_until)
                poll = min(poll * 1.2, 0.25)
        except KeyboardInterrupt:
            job.cancel()
            _status(f"[offload] cancelled job {job.id}")
            raise
        final_text = _output_text(job)
        if final_text is not None and final_text != seen:
            mirror.update(cellnb.user_cell(_read_nb(final_text)), final=True)
        if state != JobState.SUCCEEDED:
            raise self._remote_error(job, _read_nb(final_text) if final_text else None)
        self._bind(job)
        return None

    def _bind(self, job: Any) -> None:
        key = lambda name: layout.job_key(job.id, f"outputs/{CELL_DIR}/{name}")  # noqa: E731
        try:
            manifest = job.store.get_json(key(MANIFEST))
        except KeyError:
            raise JobFailed(
                f"job {job.id} succeeded but left no results",
                hint=f"`offload logs {job.id}` shows what the collect step did",
            ) from None
        try:
            results = job.store.get_buffer(key(RESULTS))
        except KeyError:
            results = None
        restored = restore(results, manifest)
        for w in restored.warnings:
            print(f"offload: warning: {w}", file=sys.stderr)
        restored.apply(self.shell.user_ns)

    def _remote_error(self, job: Any, nb: Any) -> BaseException:
        status = job.status
        state = status.get("state")
        if state == JobState.CANCELLED:  # its interrupt's traceback would only say where it stopped
            return _render(JobFailed(f"cell job {job.id} was cancelled"), [
                f"\x1b[0;31mcell job {job.id} was cancelled\x1b[0m: {status.get('reason') or 'cancelled'}; nothing was assigned"])
        cell = cellnb.user_cell(nb) if nb is not None else None
        err_out = next((o for o in (cell or {}).get("outputs", []) if o.get("output_type") == "error"), None)
        if err_out is None:
            error = status.get("error") or {}
            why = status.get("reason") or state
            if not error.get("traceback"):
                return JobFailed(f"cell job {job.id} {state}: {why}", hint=f"`offload logs {job.id}` shows the log")
            lines = list(error["traceback"])
            exc: BaseException = RemoteCellError(f"cell job {job.id} failed before or after the cell: {why}")
            return _render(exc, lines + [f"\x1b[0;33m(in the setup/collect step of job {job.id})\x1b[0m"])
        exc = None
        try:
            data = job.store.get_bytes(layout.job_key(job.id, f"outputs/{CELL_DIR}/{EXCEPTION}"))
            loaded = pickle.loads(data)
            if isinstance(loaded, BaseException):
                exc = loaded
        except Exception:  # missing, or a type that does not exist here
            exc = None
        if exc is None:
            exc = RemoteCellError(f"{err_out.get('ename')}: {err_out.get('evalue')}")
        count = getattr(self.shell, "execution_count", None)
        lines = [_local_cell_ref(t, count) for t in err_out.get("traceback", [])]
        lines.append(f"\x1b[0;33m(raised remotely in job {job.id}; nothing was assigned)\x1b[0m")
        exc.offload_job = job.id  # type: ignore[attr-defined]
        return _render(exc, lines)

    # ------------------------------------------------------------------------------ line magic
    def _line(self, line: str) -> Any:
        args = shlex.split(line)
        if not args:
            raise UsageError("%offload needs a command", hint="config, status, ls, result JOB, cancel JOB, stop")
        cmd, rest = args[0], args[1:]
        if cmd == "config":
            return self._config(rest)
        if cmd == "ls":
            rows = list_jobs(limit=int(rest[0]) if rest else 20)
            for r in rows:
                print(f"{r['id']}  {r.get('kind') or '':8} {r.get('backend') or '':6} {r.get('state') or '':10} {r.get('notebook') or ''}")
            return None
        if cmd == "status":
            ids = rest or self.jobs[-10:]
            for ref in ids:
                job = Job(ref)
                st = job.status
                print(f"{job.id}  {st.get('state')}" + (f"  ({st['reason']})" if st.get("reason") else ""))
            if self.session is not None:
                print(f"warm session: {self.session.describe()}")
            return None
        if cmd == "result":
            if len(rest) != 1:
                raise UsageError("%offload result needs one job id", hint="as printed by %%offload --detach")
            return self.finish(Job(rest[0]))
        if cmd == "cancel":
            for ref in rest:
                print(f"{ref}: {'cancelling' if Job(ref).cancel() else 'already ended'}")
            return None
        if cmd == "stop":
            if self.session is not None:
                self.session.stop()
                self.session = None
                print("[offload] warm session stopped")
            return None
        raise UsageError(f"unknown %offload command {cmd!r}", hint="config, status, ls, result JOB, cancel JOB, stop")

    def _config(self, args: list[str]) -> dict[str, Any]:
        if args == ["--reset"]:
            self.defaults.clear()
            return dict(self.defaults)
        opts = cell_parser().parse_args(args)
        for key in _DEFAULT_KEYS:
            value = getattr(opts, key, None)
            if value is not None:
                self.defaults[key] = value
        print(f"[offload] defaults for %%offload: {self.defaults or 'none'}")
        return None


def _wait_for(store: Store, key: str, seconds: float, *, until: float) -> None:
    """Sleep ``seconds``, returning early once ``key`` exists (checked every ms before ``until``)."""
    end = time.perf_counter() + seconds
    while True:
        now = time.perf_counter()
        if now >= end:
            return
        if now >= until:
            time.sleep(end - now)
            return
        if store.exists(key):
            return
        time.sleep(min(0.001, end - now))


def _output_text(job: Any) -> str | None:
    try:
        return job.store.get_text(layout.job_key(job.id, "output.ipynb"))
    except KeyError:
        return None


def _read_nb(text: str) -> Any:
    """A cell job's output notebook (written by the runner: read as it is, not validated again)."""
    return nbformat.v4.reads(text)


_CELL_REF = re.compile(r"(Cell(?:\x1b\[[0-9;]*m)*\s+(?:\x1b\[[0-9;]*m)*In\s*\[)(\d+)(\])")


def _local_cell_ref(line: str, count: int | None) -> str:
    """``Cell In[2], line 3`` (remote count) -> the local cell's count, so it reads right here."""
    if count is None:
        return line
    return _CELL_REF.sub(lambda m: f"{m.group(1)}{count}{m.group(3)}", line)


def run_cell(source: str, line: str = "", *, shell: Any = None) -> Any:
    """Run ``source`` as if it were a ``%%offload <line>`` cell (for the JupyterLab command)."""
    shell = shell or get_ipython()
    if shell is None:
        raise UsageError("run_cell needs an IPython kernel", hint="call it from a notebook")
    magics = shell.magics_manager.registry.get("OffloadMagics") or OffloadMagics(shell)
    return magics.run_cell(line, source)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext offload``."""
    ipython.register_magics(OffloadMagics)


def unload_ipython_extension(ipython: Any) -> None:
    magics = ipython.magics_manager.registry.get("OffloadMagics")
    if magics is not None and magics.session is not None:
        magics.session.stop()
    if magics is not None and magics._bell is not None:
        magics._bell.close()
        magics._bell = None
