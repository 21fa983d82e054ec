"""The client half of moving a namespace: values out (``capture``) and back in (``restore``).

Why these rules:

- **Modules travel as import statements**, not pickles: ``import numpy as np`` replayed
  remotely costs nothing and picks the remote machine's build (CUDA wheels), where a pickled
  module reference would hide what the cell needs.
- **Everything else goes through cloudpickle**, which pickles functions and classes defined in
  the notebook (``__main__``) *by value* and library objects by reference. A class defined in the
  notebook keeps its identity on the way back (cloudpickle's class tracker), so an instance that
  comes home is still an ``isinstance`` of the local class.
- **One pickle stream for all pushed names** (one Pickler, one dump per name): the memo is shared,
  so two names that share an object still share it remotely, and each name's size is the stream
  growth while dumping it. The first value that cannot be pickled stops the capture with an error
  that names it, before anything is uploaded.
- **Pickle protocol 5, large buffers out of band** (:mod:`offload.cells._frames`): a numpy array's
  memory is written to the store as it is, not copied into the stream and joined first, and read
  back into one buffer the unpickled arrays share.
"""

from __future__ import annotations

import importlib
import io
import pickle
import types
from dataclasses import dataclass, field
from typing import Any

from offload.cells import _frames
from offload.errors import UsageError

DEFAULT_WARN_BYTES = 100 * 1024**2  # above this a pushed value gets a warning
DEFAULT_PULL_LIMIT = 2 * 1024**3  # above this an assigned value stays remote (with a warning)

# Names IPython puts in the user namespace that a cell never means to ship.
_ALWAYS_LOCAL = {"In", "Out", "get_ipython", "exit", "quit", "_ih", "_oh", "_dh", "__builtins__", "__builtin__"}


class UnpicklableValueError(UsageError):
    """A variable the cell reads cannot be serialized, so it cannot travel to the remote kernel."""


@dataclass
class Capture:
    """What the setup cell needs: import lines and one payload, plus what to tell the user."""

    imports: list[str] = field(default_factory=list)  # "import numpy as np"
    names: list[str] = field(default_factory=list)  # pickled names, payload order
    parts: list[Any] | None = None  # the framed payload (header, stream, buffers), see _frames
    sizes: dict[str, int] = field(default_factory=dict)  # name -> pickled bytes
    types: dict[str, str] = field(default_factory=dict)  # name -> type name, for the report
    not_found: list[str] = field(default_factory=list)  # read but not in the namespace (builtins...)
    warnings: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.values())

    @property
    def payload(self) -> bytes | None:
        """The payload as one bytes object (a copy: the upload writes ``parts`` instead)."""
        return None if self.parts is None else b"".join(bytes(memoryview(p).cast("B")) for p in self.parts)


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def type_name(value: Any) -> str:
    t = type(value)
    return t.__qualname__ if t.__module__ in ("builtins", "__main__") else f"{t.__module__}.{t.__qualname__}"


def import_line(name: str, module: types.ModuleType) -> str | None:
    """The statement that rebinds ``name`` to ``module`` remotely, or None if not importable."""
    mod = getattr(module, "__name__", None)
    spec = getattr(module, "__spec__", None)
    if not mod or mod == "__main__" or (spec is None and mod not in ("sys", "builtins")):
        return None
    if name == mod:
        return f"import {mod}"
    return f"import {mod} as {name}"


def capture(
    ns: dict[str, Any],
    names: list[str],
    *,
    warn_bytes: int = DEFAULT_WARN_BYTES,
    hidden: set[str] | frozenset[str] = frozenset(),
    explicit: bool = False,
) -> Capture:
    """Serialize ``names`` from ``ns``. ``explicit`` (``--push``): a missing name is an error."""
    import cloudpickle

    cap = Capture()
    to_pickle: list[str] = []
    for name in names:
        if name not in ns or (not explicit and (name in _ALWAYS_LOCAL or name in hidden)):
            if explicit and name not in ns:
                raise UsageError(
                    f"--push names {name!r}, which is not defined in this kernel",
                    hint="run the cell that defines it first, or remove it from --push",
                )
            cap.not_found.append(name)
            continue
        value = ns[name]
        if isinstance(value, types.ModuleType):
            line = import_line(name, value)
            if line:
                cap.imports.append(line)
                continue
        to_pickle.append(name)
    if not to_pickle:
        return cap
    buf = io.BytesIO()
    buffers: list[pickle.PickleBuffer] = []
    pickler = cloudpickle.CloudPickler(buf, protocol=5, buffer_callback=buffers.append)
    pickler.dump(to_pickle)
    for name in to_pickle:
        value = ns[name]
        start, first_buffer = buf.tell(), len(buffers)
        try:
            pickler.dump(value)
        except Exception as exc:  # pickling raises TypeError, PicklingError, AttributeError...
            cause = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UnpicklableValueError(
                f"cannot send variable {name!r} ({type_name(value)}) to the remote kernel: {cause}",
                hint=f"create {name} inside the cell instead, or leave it out with --push (names to send)",
            ) from None
        cap.sizes[name] = buf.tell() - start + sum(memoryview(b).nbytes for b in buffers[first_buffer:])
        cap.types[name] = type_name(value)
        if cap.sizes[name] > warn_bytes:
            cap.warnings.append(
                f"{name} is {human_size(cap.sizes[name])} pickled and is uploaded with this cell; "
                f"for data that large, save it to a file and pass --data PATH (or read it from the store) instead"
            )
    cap.names = to_pickle
    cap.parts = _frames.frame({"payload": [buf.getbuffer(), *(_frames.raw(b) for b in buffers)]})
    return cap


@dataclass
class Restored:
    """Values ready to assign (all unpickled before any is assigned) and what was left behind."""

    values: dict[str, Any] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def apply(self, ns: dict[str, Any]) -> None:
        ns.update(self.values)
        for name in self.deleted:
            ns.pop(name, None)


def restore(results: bytes | None, manifest: dict[str, Any], *, pull: list[str] | None = None) -> Restored:
    """Unpickle what the collect cell saved; ``pull`` restricts which names come back."""
    out = Restored(deleted=list(manifest.get("deleted", [])))
    if _frames.is_framed(results):  # protocol 5: each name's stream and its buffers, views into results
        blobs: dict[str, Any] = _frames.read_frames(results)
    else:  # an older runner's {name: pickle bytes}
        blobs = {name: [data] for name, data in (pickle.loads(results) if results else {}).items()}
    for name, why in manifest.get("skipped", {}).items():
        if pull is None or name in pull:
            out.warnings.append(f"{name} stayed remote: {why}")
    for name, info in manifest.get("values", {}).items():
        if pull is not None and name not in pull:
            continue
        try:
            if info.get("kind") == "module":
                out.values[name] = importlib.import_module(info["module"])
            else:
                out.values[name] = _frames.loads_group(blobs[name])
        except Exception as exc:
            what = info.get("module") or info.get("type") or "value"
            out.warnings.append(
                f"{name} ({what}) came back but cannot be loaded here: {type(exc).__name__}: {exc}"
            )
    if pull is not None:
        missing = [n for n in pull if n not in out.values and n not in manifest.get("skipped", {})]
        for name in missing:
            out.warnings.append(f"--pull {name}: the cell did not define it")
    return out
