"""The remote half of ``%%offload``: code the generated cell notebook calls inside the job's kernel.

Kept separate from :mod:`offload.cells.magic` so the remote kernel imports nothing of IPython magics or
of the client (only the store, cloudpickle and the standard library). Three calls, one per cell
of the generated notebook: :func:`load_inputs` (setup cell), the user's cell verbatim, and
:func:`save_outputs` (collect cell). :func:`load_inputs` also installs an exception hook that
keeps the exception object, so the client can raise *the same exception* locally.

A cold cell job runs the three cells one by one (papermill). A warm session
(:mod:`offload.runner.session`) runs them in one kernel request, :func:`run_warm`: each request
costs the kernel a few milliseconds of messaging whatever it runs, and a warm cell's round trip
is otherwise that small.

Files written under the job's output dir (``offload.output_dir()``), uploaded by the runner to
``jobs/<id>/outputs/`` whatever the job's end state:

``__cell__/results.pkl``    the names pulled back, one cloudpickle stream each with its large buffers
                            out of band (pickle protocol 5, :mod:`offload.cells._frames`)
``__cell__/manifest.json``  ``{"values": {name: {size, kind, module?}}, "skipped": {name: why},
                            "deleted": [...]}``
``__cell__/exception.pkl``  cloudpickle of the exception the user's cell raised (when picklable)
"""

from __future__ import annotations

import functools
import io
import json
import os
import pickle
import types
from pathlib import Path
from typing import Any

from offload.cells import _frames
from offload.notebook import CELL_JOB_CELLS
from offload.store import Store, layout

CELL_DIR = "__cell__"
RESULTS = "results.pkl"
MANIFEST = "manifest.json"
EXCEPTION = "exception.pkl"


@functools.lru_cache(maxsize=4)
def _store(url: str) -> Store:
    """The job's store (a warm session's kernel reads it for every cell job)."""
    return Store(url)


def _out_dir() -> Path:
    base = os.environ.get("OFFLOAD_OUTPUT_DIR") or os.path.join(os.getcwd(), "offload-outputs")
    path = Path(base) / CELL_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_payload(data: Any) -> dict[str, Any]:
    """Inverse of :func:`offload.cells.namespace.capture`'s payload: names first, then each value.

    One Unpickler for the whole stream keeps the memo, so two names that shared an object
    locally share it here too. Out-of-band buffers are views into ``data`` (no copy; a writable
    ``data`` gives writable arrays).
    """
    if _frames.is_framed(data):
        stream, *buffers = _frames.read_frames(data)["payload"]
        up = pickle.Unpickler(io.BytesIO(stream), buffers=buffers)
    else:  # a payload from an older client: one in-band stream
        up = pickle.Unpickler(io.BytesIO(data))
    names = up.load()
    return {name: up.load() for name in names}


def load_inputs(ns: dict[str, Any], blob: str | None, names: list[str]) -> None:
    """Setup cell: install the exception hook, then bind the pushed values into ``ns``."""
    _install_exception_hook()
    if not blob:
        return
    store = _store(os.environ["OFFLOAD_STORE"])
    values = read_payload(store.get_buffer(layout.blob_key(blob)))
    missing = [n for n in names if n not in values]
    if missing:  # the payload and the notebook were generated together; this is corruption
        raise RuntimeError(f"offload: payload {blob} lacks {missing}")
    ns.update(values)


def _install_exception_hook() -> None:
    try:
        ip = get_ipython()  # type: ignore[name-defined]  # noqa: F821 - only inside IPython
    except NameError:
        return

    def keep_exception(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> None:
        try:
            import cloudpickle

            data = cloudpickle.dumps(value)
            pickle.loads(data)  # some exceptions pickle but cannot be rebuilt: check here
            (_out_dir() / EXCEPTION).write_bytes(data)
        except Exception:  # not picklable: the client falls back to the traceback text
            pass
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return None

    ip.set_custom_exc((Exception,), keep_exception)


def save_outputs(ns: dict[str, Any], names: list[str], deleted: list[str], limit: int) -> None:
    """Collect cell: pickle each assigned name (under ``limit`` bytes) for the client to load.

    One ``cloudpickle.dumps`` per name so that one oversized or unpicklable value is skipped
    with a reason instead of losing all the others.
    """
    import cloudpickle

    try:
        get_ipython().set_custom_exc((), None)  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        pass
    values: dict[str, list[Any]] = {}
    manifest: dict[str, Any] = {"values": {}, "skipped": {}, "deleted": [n for n in deleted if n not in ns]}
    for name in names:
        if name not in ns:
            continue  # assigned on a branch that did not run
        value = ns[name]
        if isinstance(value, types.ModuleType):
            manifest["values"][name] = {"kind": "module", "module": value.__name__, "size": 0}
            continue
        try:
            group = _frames.dumps_oob(cloudpickle.CloudPickler, value)
        except Exception as exc:
            manifest["skipped"][name] = f"cannot be pickled ({type(value).__module__}.{type(value).__qualname__}: {exc})"
            continue
        size = sum(_frames.nbytes(p) for p in group)
        if size > limit:
            manifest["skipped"][name] = f"{size} bytes is over the pull limit of {limit} bytes"
            continue
        values[name] = group
        manifest["values"][name] = {"kind": "pickle", "size": size, "type": f"{type(value).__module__}.{type(value).__qualname__}"}
    out = _out_dir()
    with open(out / RESULTS, "wb") as fh:
        _frames.write_frames(fh, _frames.frame(values))
    (out / MANIFEST).write_text(json.dumps(manifest))


def run_warm(ns: dict[str, Any], *, notebook: str, env: dict[str, str], cwd: str, outcome: str) -> None:
    """A cell job in a warm session's kernel, in one request: the job's environment and folder,
    the setup cell, the user's cell, then (if it succeeded) the collect cell, read from the cell
    job's notebook (blob ``notebook`` in the store: the request itself stays a short line).

    The user's cell runs through IPython's own ``run_cell``, as a cell of its own: same
    transformations and magics, the last expression's ``Out``, its execution count, a traceback
    through its own lines, and an interrupt (cancel) that stops it. What happened is written to
    the file ``outcome`` (JSON) for the session: ``{"ok": true}``, or ``{"failed":
    "setup"|"cell"|"collect", "ename", "evalue", "traceback"?}``, with the user cell's
    ``execution_count`` once it ran. Nothing raises out of here: the cell's own error is shown
    as the cell's output, the setup's or collect's is reported with its traceback. A cell with
    top-level ``await`` runs through :func:`run_warm_async` instead.
    """
    shell = get_ipython()  # type: ignore[name-defined]  # noqa: F821 - only inside IPython
    result: dict[str, Any] = {}
    try:
        sources = _warm_setup(ns, notebook=notebook, env=env, cwd=cwd, result=result)
        if sources:
            _warm_collect(ns, shell.run_cell(sources[1], store_history=True), sources[2], result)
    finally:
        _warm_done(shell, outcome, result)


async def run_warm_async(ns: dict[str, Any], *, notebook: str, env: dict[str, str], cwd: str, outcome: str) -> None:
    """:func:`run_warm` for a cell that may use top-level ``await``: the request itself is then a
    coroutine, so the cell's ``await`` runs on the kernel's loop as in any cell (and an interrupt
    cancels it at its next ``await``, as ipykernel does for such cells)."""
    shell = get_ipython()  # type: ignore[name-defined]  # noqa: F821 - only inside IPython
    result: dict[str, Any] = {}
    try:
        sources = _warm_setup(ns, notebook=notebook, env=env, cwd=cwd, result=result)
        if sources:
            _warm_collect(ns, await shell.run_cell_async(sources[1], store_history=True), sources[2], result)
    finally:
        _warm_done(shell, outcome, result)


def _warm_done(shell: Any, outcome: str, result: dict[str, Any]) -> None:
    shell.set_custom_exc((), None)
    with open(outcome, "w", encoding="utf-8") as fh:
        json.dump(result or {"ok": False, "failed": "session", "ename": "RuntimeError",
                             "evalue": "the cell job was interrupted before it started"}, fh, default=str)


def _failed(step: str, exc: BaseException) -> dict[str, Any]:
    import traceback

    return {"ok": False, "failed": step, "ename": type(exc).__name__, "evalue": str(exc),
            "traceback": traceback.format_exception(type(exc), exc, exc.__traceback__)}


def _warm_setup(ns: dict[str, Any], *, notebook: str, env: dict[str, str], cwd: str,
                result: dict[str, Any]) -> list[str] | None:
    """The job's environment and folder, then its setup cell; the three cells' sources, or None
    (and the failure in ``result``) when the user's cell must not run."""
    try:
        os.environ.update(env)
        os.chdir(cwd)
        nb = json.loads(_store(env["OFFLOAD_STORE"]).get_bytes(layout.blob_key(notebook)))
        by_id = {c.get("id"): c.get("source", "") for c in nb["cells"]}
        sources = ["".join(s) if isinstance(s, list) else s for s in (by_id[i] for i in CELL_JOB_CELLS)]
        exec(compile(sources[0], "<offload setup>", "exec"), ns)
    except BaseException as exc:  # an interrupt (cancel) included: the cell must not run
        result.update(_failed("setup", exc))
        return None
    return sources


def _warm_collect(ns: dict[str, Any], ran: Any, collect: str, result: dict[str, Any]) -> None:
    result.update(ok=True, execution_count=ran.execution_count)
    if not ran.success:
        error = ran.error_before_exec or ran.error_in_exec
        result.update(ok=False, failed="cell", ename=type(error).__name__, evalue=str(error))
    else:
        try:
            exec(compile(collect, "<offload collect>", "exec"), ns)
        except BaseException as exc:
            result.update(_failed("collect", exc))
