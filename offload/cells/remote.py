"""The remote half of ``%%offload``: code the generated cell notebook calls inside the job's kernel.

Kept separate from :mod:`offload.cells.magic` so the remote kernel imports nothing of IPython magics or
of the client (only the store, cloudpickle and the standard library). Three calls, one per cell
of the generated notebook: :func:`load_inputs` (setup cell), the user's cell verbatim, and
:func:`save_outputs` (collect cell). :func:`load_inputs` also installs an exception hook that
keeps the exception object, so the client can raise *the same exception* locally.

Files written under the job's output dir (``offload.output_dir()``), uploaded by the runner to
``jobs/<id>/outputs/`` whatever the job's end state:

``__cell__/results.pkl``    the names pulled back, one cloudpickle stream each with its large buffers
                            out of band (pickle protocol 5, :mod:`offload.cells._frames`)
``__cell__/manifest.json``  ``{"values": {name: {size, kind, module?}}, "skipped": {name: why},
                            "deleted": [...]}``
``__cell__/exception.pkl``  cloudpickle of the exception the user's cell raised (when picklable)
"""

from __future__ import annotations

import io
import json
import os
import pickle
import types
from pathlib import Path
from typing import Any

from offload.cells import _frames
from offload.store import Store, layout

CELL_DIR = "__cell__"
RESULTS = "results.pkl"
MANIFEST = "manifest.json"
EXCEPTION = "exception.pkl"
PRELUDE_ERROR = "_offload_prelude_error"  # set by a warm session's prelude that failed (runner.session)


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
    """Setup cell: install the exception hook, then bind the pushed values into ``ns``.

    A warm session prepares its kernel for each cell job (environment, folder) in a request sent
    ahead of this cell and not waited for; what went wrong there is raised here."""
    failed = ns.pop(PRELUDE_ERROR, None)
    if failed:
        raise RuntimeError(f"offload: the session kernel could not be prepared for this cell: {failed}")
    _install_exception_hook()
    if not blob:
        return
    store = Store(os.environ["OFFLOAD_STORE"])
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
