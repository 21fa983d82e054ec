"""The file format of a ``%%offload`` cell's values (pushed payload and pulled results): pickle
protocol 5 streams with their large buffers (numpy arrays, bytes-like data) *out of band*, so a
100 MB array is never copied into a pickle stream, joined, or copied out of it again.

```
b"OFLDP5\\x00\\x01" | u64 length of the JSON header | JSON header | parts, each at a 64-byte boundary
header: {"sizes": [bytes of each part], "groups": {name: [first part, number of parts]}}
```

A group is one pickle stream (its first part) and the out-of-band buffers it refers to, in order.
Parts are written one after the other from the objects' own memory (:func:`write_frames`) and
read back into one writable buffer (:func:`read_frames`) that the unpickled arrays share: one
write and one read per value, and arrays that come back writable, as they left.
"""

from __future__ import annotations

import json
import pickle
import struct
from typing import Any, BinaryIO

MAGIC = b"OFLDP5\x00\x01"
_ALIGN = 64


def is_framed(data: Any) -> bool:
    return data is not None and bytes(memoryview(data)[: len(MAGIC)]) == MAGIC


def dumps_oob(pickler_cls: Any, obj: Any) -> list[Any]:
    """``obj`` as [pickle stream, buffer, ...] with contiguous buffers out of band."""
    import io

    buffers: list[pickle.PickleBuffer] = []
    stream = io.BytesIO()
    pickler_cls(stream, protocol=5, buffer_callback=buffers.append).dump(obj)
    return [stream.getbuffer(), *(raw(b) for b in buffers)]


def raw(buf: pickle.PickleBuffer) -> memoryview:
    try:
        return buf.raw()
    except BufferError:  # not contiguous: one copy, as pickle would make in band
        return memoryview(bytes(buf))


def nbytes(part: Any) -> int:
    return memoryview(part).nbytes


def frame(groups: dict[str, list[Any]]) -> list[Any]:
    """The parts of a framed file: the header, then every group's parts (padding between)."""
    sizes: list[int] = []
    index: dict[str, list[int]] = {}
    parts: list[Any] = []
    for name, group in groups.items():
        index[name] = [len(sizes), len(group)]
        for part in group:
            sizes.append(nbytes(part))
            parts.append(part)
    head = json.dumps({"sizes": sizes, "groups": index}).encode()
    out: list[Any] = [MAGIC + struct.pack("<Q", len(head)) + head]
    pos = len(out[0])
    for part, size in zip(parts, sizes, strict=True):
        pad = -pos % _ALIGN
        if pad:
            out.append(b"\x00" * pad)
        out.append(part)
        pos += pad + size
    return out


def write_frames(fh: BinaryIO, parts: list[Any]) -> int:
    """Write the parts from their own memory; returns the bytes written."""
    total = 0
    for part in parts:
        view = memoryview(part).cast("B")
        while view.nbytes:
            n = fh.write(view)
            total += n
            view = view[n:]
    return total


def read_frames(data: Any) -> dict[str, list[memoryview]]:
    """The groups of a framed buffer, as views into it (no copy)."""
    view = memoryview(data).cast("B")
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise ValueError("not an offload values file")
    (hlen,) = struct.unpack("<Q", view[len(MAGIC): len(MAGIC) + 8])
    start = len(MAGIC) + 8
    head = json.loads(bytes(view[start: start + hlen]))
    pos = start + hlen
    parts = []
    for size in head["sizes"]:
        pos += -pos % _ALIGN
        parts.append(view[pos: pos + size])
        pos += size
    return {name: parts[first: first + count] for name, (first, count) in head["groups"].items()}


def loads_group(group: list[memoryview]) -> Any:
    return pickle.loads(group[0], buffers=group[1:])
