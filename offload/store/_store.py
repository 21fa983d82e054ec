"""The object store behind an fsspec URL: the one source of truth about jobs.

Every fact about a job lives under the store root (see DESIGN.md for the layout). The store API
is deliberately object-shaped (whole-object put/get, list by prefix, no append, no rename) so
that ``file://``, ``memory://`` and ``gs://`` behave the same. On local disk, whole-object
writes go through a temporary file and ``os.replace`` so a reader never sees half an object.

A write that fails is tried again with exponential backoff (``OFFLOAD_STORE_RETRIES`` attempts
after the first, default 5: about 6 s in all) before it raises a :class:`StoreError` whose
``reason`` says why; reads are never retried here (the caller polls again).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec

from offload.config import backend_store, default_store_url, load_config
from offload.errors import OffloadError, StoreError
from offload.store import layout

_BACKOFF_S = 0.2  # first pause between two tries of a write; doubled each time, with jitter
_BACKOFF_MAX_S = 3.0


_HOST = socket.gethostname()


def _tmp_path(target: str) -> str:
    """The temporary file a whole-object write goes through before ``os.replace``: named after
    the writer (host, process, thread) and the object, so no two writers share one (a shared
    file system included) and no random name has to be found free first (``mkstemp``)."""
    head, tail = os.path.split(target)
    return os.path.join(head, f".tmp-{_HOST}-{os.getpid()}-{threading.get_ident()}-{tail}")


def write_retries() -> int:
    try:
        return max(0, int(os.environ.get("OFFLOAD_STORE_RETRIES", "5")))
    except ValueError:
        return 5


class Store:
    """Keys are POSIX relative paths under the root (``jobs/<id>/status.json``)."""

    def __init__(self, url: str | None = None, **storage_options: Any):
        self.url = (url or default_store_url()).rstrip("/")
        if "://" not in self.url:
            self.url = Path(self.url).expanduser().resolve().as_uri()
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **storage_options)
        except ImportError as exc:
            proto = self.url.split("://", 1)[0]
            hint = "pip install 'jupyter-offload[gce]'" if proto in ("gs", "gcs") else f"install the fsspec driver for {proto}://"
            raise StoreError(f"no filesystem driver for store {self.url}: {exc}", hint=hint) from None
        self.root = self.root.rstrip("/")
        self.local = self.fs.protocol in ("file", "local") or "file" in (self.fs.protocol or ())

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def path(self, key: str) -> str:
        key = key.lstrip("/")
        if ".." in key.split("/"):
            raise StoreError(f"store key {key!r} escapes the store root")
        return f"{self.root}/{key}" if key else self.root

    # writing ----------------------------------------------------------------------------------
    def _write(self, key: str, write: Any) -> None:
        """``write()``, tried again with backoff while it fails; then a StoreError with the reason."""
        delay = _BACKOFF_S
        for attempt in range(write_retries() + 1):
            try:
                write()
                return
            except Exception as exc:  # OSError, gcsfs' HttpError, aiohttp's errors: the store's reasons
                if isinstance(exc, StoreError):
                    raise
                reason = f"{type(exc).__name__}: {exc}" if not isinstance(exc, OSError) else str(exc)
                reason = " ".join(reason.split())[:300]
                if attempt == write_retries():
                    raise StoreError(
                        f"cannot write {key} to store {self.url}: {reason}", reason=reason,
                        hint="check that the store location exists and is writable, or set OFFLOAD_STORE",
                    ) from None
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, _BACKOFF_MAX_S)

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self.path(key)
        self._write(key, (lambda: self._replace_local(target, data)) if self.local
                    else (lambda: self.fs.pipe_file(target, data)))

    def put_parts(self, key: str, parts: list[Any]) -> None:
        """One object written from several buffers (bytes, memoryviews) in order: on a local
        store straight from their memory, with no joined copy (a 100 MB array is written once)."""
        target = self.path(key)
        self._write(key, (lambda: self._replace_local(target, parts)) if self.local
                    else (lambda: self.fs.pipe_file(target, b"".join(parts))))

    @staticmethod
    def _replace_local(target: str, data: bytes | list[Any]) -> None:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = _tmp_path(target)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                for part in data if isinstance(data, list) else [data]:
                    fh.write(part)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @staticmethod
    def _copy_local(source: str, target: str, *, link: bool = False) -> None:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = _tmp_path(target)
        try:
            linked = False
            if link:
                try:
                    if os.path.lexists(tmp):  # left by a writer of this name that died
                        os.unlink(tmp)
                    os.link(source, tmp)
                    linked = True
                except OSError:  # another filesystem: copy
                    pass
            if not linked:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))  # private, as every object
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def put_text(self, key: str, text: str) -> None:
        self.put_bytes(key, text.encode())

    def put_json(self, key: str, obj: Any) -> None:
        self.put_bytes(key, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())

    def put_file(self, local_path: str | os.PathLike, key: str, *, link: bool = False) -> None:
        """Store a file's content. ``link``: the caller never changes the file again (a finished
        job's work dir), so a local store may take it as a hard link instead of a copy."""
        if self.local:  # copied by the kernel (sendfile), never through this process's memory
            target = self.path(key)
            self._write(key, lambda: self._copy_local(os.fspath(local_path), target, link=link))
        else:
            self._write(key, lambda: self.fs.put_file(os.fspath(local_path), self.path(key)))

    # reading ----------------------------------------------------------------------------------
    def get_bytes(self, key: str) -> bytes:
        try:
            return self.fs.cat_file(self.path(key))
        except FileNotFoundError:
            raise KeyError(key) from None
        except OSError as exc:
            raise StoreError(f"cannot read {key} from store {self.url}: {exc}") from None

    def get_buffer(self, key: str) -> bytearray:
        """The object in one writable buffer; on a local store read straight into it (one copy
        from the page cache, none in between)."""
        if not self.local:
            return bytearray(self.get_bytes(key))
        try:
            with open(self.path(key), "rb", buffering=0) as fh:
                size = os.fstat(fh.fileno()).st_size
                buf = bytearray(size)
                view, got = memoryview(buf), 0
                while got < size:
                    n = fh.readinto(view[got:])
                    if not n:
                        break
                    got += n
                del view
                del buf[got:]
                return buf
        except FileNotFoundError:
            raise KeyError(key) from None
        except OSError as exc:
            raise StoreError(f"cannot read {key} from store {self.url}: {exc}") from None

    def get_text(self, key: str) -> str:
        return self.get_bytes(key).decode()

    def get_json(self, key: str, default: Any = KeyError) -> Any:
        try:
            return json.loads(self.get_bytes(key))
        except KeyError:
            if default is KeyError:
                raise
            return default

    def get_file(self, key: str, local_path: str | os.PathLike) -> None:
        os.makedirs(os.path.dirname(os.fspath(local_path)) or ".", exist_ok=True)
        try:
            self.fs.get_file(self.path(key), os.fspath(local_path))
        except FileNotFoundError:
            raise KeyError(key) from None

    def exists(self, key: str) -> bool:
        try:
            return self.fs.exists(self.path(key))
        except OSError as exc:
            raise StoreError(f"cannot reach store {self.url}: {exc}") from None

    def list(self, prefix: str) -> list[str]:
        """Keys of every object under ``prefix`` (recursive), relative to the root, sorted."""
        base = self.path(prefix).rstrip("/")
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        root = self.root + "/"
        keys = []
        for p in found:
            p = p if p.startswith("/") or not self.root.startswith("/") else "/" + p.lstrip("/")
            rel = p[len(root):] if p.startswith(root) else p.split(self.root.lstrip("/") + "/", 1)[-1]
            if not rel.rsplit("/", 1)[-1].startswith(".tmp-"):
                keys.append(rel)
        return sorted(keys)

    def list_dirs(self, prefix: str) -> list[str]:
        """Immediate child names under ``prefix`` (``jobs`` -> job ids)."""
        try:
            entries = self.fs.ls(self.path(prefix), detail=False)
        except FileNotFoundError:
            return []
        return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in entries)

    def modified(self, key: str) -> float | None:
        """Last-modified time (epoch seconds) where the filesystem says, else None."""
        try:
            info = self.fs.info(self.path(key))
        except (FileNotFoundError, OSError):
            return None
        value = info.get("mtime") or info.get("updated") or info.get("created")
        if value is None:
            return None
        if isinstance(value, (int, float)):
            return float(value)
        from datetime import datetime

        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None

    def delete(self, key: str, *, recursive: bool = False) -> None:
        try:
            self.fs.rm(self.path(key), recursive=recursive)
        except FileNotFoundError:
            pass

    def check_writable(self) -> None:
        """Fail early with a clear message instead of half-way through staging."""
        probe = f".probe-{os.getpid()}"
        self.put_bytes(probe, b"ok")
        self.delete(probe)

    # layout helpers ---------------------------------------------------------------------------
    job_key = staticmethod(layout.job_key)
    blob_key = staticmethod(layout.blob_key)

    def iter_log_chunks(self, job_id: str, start: int = 0) -> Iterator[tuple[int, str]]:
        """Log chunks ``log/<n>.txt`` from chunk ``start`` on, in order."""
        names = self.list(self.job_key(job_id, "log"))
        nums = sorted(int(k.rsplit("/", 1)[-1].split(".")[0]) for k in names if k.endswith(".txt"))
        for n in nums:
            if n >= start:
                try:
                    yield n, self.get_text(layout.log_chunk_key(job_id, n))
                except KeyError:
                    return


def as_store(store: Store | str | None) -> Store:
    """``store`` itself, or the Store at that URL (the default store for None)."""
    return store if isinstance(store, Store) else Store(store)


def known_stores(*, also: list[Store] | tuple[Store, ...] = (), cfg: dict[str, Any] | None = None) -> list[Store]:
    """Every store jobs may be in, each once: ``also`` (e.g. the Jupyter server's own store), the
    default store, and each backend's configured store. A store whose driver is missing is skipped
    (``offload ls --store URL`` says why)."""
    cfg = load_config() if cfg is None else cfg
    urls = [s.url for s in also]
    for url in (Store().url, *(backend_store(name) for name in cfg.get("backends", {}))):
        if url and url not in urls:
            urls.append(url)
    out = []
    for url in urls:
        try:
            out.append(Store(url))
        except OffloadError:
            continue
    return out
