"""The store contract: what ``offload.store.Store`` must do on every fsspec URL it is given.

The store is object-shaped on purpose (whole-object put/get, list by prefix, no append, no
rename), so that ``file://``, ``memory://`` and ``gs://`` behave the same; these checks are that
promise. Use it from a test module::

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self):
            return Store("myproto://bucket/offload-test-<unique>")   # an empty root
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from offload.errors import StoreError
from offload.store import Store


class StoreContract:
    """Subclass as ``Test...`` and override ``store`` to return a Store on an empty root."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError(f"{type(self).__name__}: override the store fixture to return a Store on an empty root")

    def test_bytes_text_and_json_round_trip(self, store: Store) -> None:
        store.put_bytes("blobs/ff", b"\x00\x01\xff")
        store.put_text("jobs/a/log/00000000.txt", "one\n\u00e9")
        store.put_json("jobs/a/status.json", {"state": "running", "n": [1, 2.5, None]})
        assert store.get_bytes("blobs/ff") == b"\x00\x01\xff"
        assert store.get_text("jobs/a/log/00000000.txt") == "one\n\u00e9"
        assert store.get_json("jobs/a/status.json") == {"state": "running", "n": [1, 2.5, None]}
        store.put_bytes("blobs/empty", b"")
        assert store.get_bytes("blobs/empty") == b""

    def test_missing_key_is_a_key_error(self, store: Store, tmp_path: Path) -> None:
        store.put_json("jobs/a/status.json", {"state": "running"})
        with pytest.raises(KeyError):
            store.get_bytes("jobs/a/missing")
        with pytest.raises(KeyError):
            store.get_text("jobs/nope/status.json")
        with pytest.raises(KeyError):
            store.get_json("jobs/a/missing")
        with pytest.raises(KeyError):
            store.get_file("jobs/a/missing", tmp_path / "got")
        assert store.get_json("jobs/a/missing", None) is None
        assert store.get_json("jobs/a/missing", {"d": 1}) == {"d": 1}

    def test_list_by_prefix_is_recursive_sorted_and_relative(self, store: Store) -> None:
        store.put_json("jobs/a/status.json", {"state": "running"})
        store.put_text("jobs/a/log/00000001.txt", "two\n")
        store.put_text("jobs/a/log/00000000.txt", "one\n")
        store.put_text("jobs/ab/status.json", "{}")  # a sibling sharing the prefix's first letters
        store.put_bytes("blobs/ff", b"x")
        assert store.list("jobs/a") == ["jobs/a/log/00000000.txt", "jobs/a/log/00000001.txt", "jobs/a/status.json"]
        assert store.list("jobs/a/") == store.list("jobs/a")
        assert store.list("jobs") == [*store.list("jobs/a"), "jobs/ab/status.json"]
        assert store.list("jobs/none") == []
        assert store.list("nothing-here") == []

    def test_list_dirs_gives_immediate_children(self, store: Store) -> None:
        store.put_json("jobs/b/status.json", {})
        store.put_json("jobs/a/status.json", {})
        store.put_text("jobs/a/log/00000000.txt", "x")
        assert store.list_dirs("jobs") == ["a", "b"]
        assert store.list_dirs("jobs/a") == ["log", "status.json"]
        assert store.list_dirs("missing") == []

    def test_log_chunks_in_order_from_a_start(self, store: Store) -> None:
        for n, text in enumerate(["one\n", "two\n", "three\n"]):
            store.put_text(Store.job_key("a", f"log/{n:08d}.txt"), text)
        assert [t for _, t in store.iter_log_chunks("a")] == ["one\n", "two\n", "three\n"]
        assert [(n, t) for n, t in store.iter_log_chunks("a", 1)] == [(1, "two\n"), (2, "three\n")]
        assert list(store.iter_log_chunks("no-such-job")) == []

    def test_exists_and_delete(self, store: Store) -> None:
        store.put_json("jobs/a/status.json", {"state": "running"})
        store.put_text("jobs/a/log/00000000.txt", "one\n")
        store.put_text("jobs/b/cancel", "1")
        assert store.exists("jobs/a/status.json") and not store.exists("jobs/a/cancel")
        store.delete("jobs/b/cancel")
        assert not store.exists("jobs/b/cancel")
        store.delete("jobs/b/cancel")  # deleting what is not there is not an error
        store.delete("jobs/a", recursive=True)
        assert store.list("jobs/a") == []
        assert not store.exists("jobs/a/status.json")

    def test_whole_object_overwrite(self, store: Store) -> None:
        store.put_json("jobs/a/status.json", {"state": "running", "cell": 1})
        store.put_json("jobs/a/status.json", {"state": "succeeded"})
        assert store.get_json("jobs/a/status.json") == {"state": "succeeded"}  # replaced, not merged
        store.put_bytes("blobs/x", b"long " * 100)
        store.put_bytes("blobs/x", b"short")
        assert store.get_bytes("blobs/x") == b"short"  # no tail of the longer object left
        for i in range(5):
            store.put_text("jobs/a/status.json", str(i))
        assert store.list("jobs/a") == ["jobs/a/status.json"]  # no temporary object visible

    def test_a_reader_never_sees_half_an_object(self, store: Store) -> None:
        """Whole-object writes are atomic: a concurrent reader gets one complete version or another."""
        size, versions = 256 * 1024, 12
        store.put_bytes("jobs/a/output.ipynb", b"@" * size)
        seen: list[bytes] = []
        done = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                for i in range(versions):
                    store.put_bytes("jobs/a/output.ipynb", bytes([65 + i]) * size)
            except BaseException as exc:
                errors.append(exc)
            finally:
                done.set()

        writer = threading.Thread(target=write)
        writer.start()
        while not done.is_set() or not seen:
            data = store.get_bytes("jobs/a/output.ipynb")
            assert len(data) == size and data == data[:1] * size, f"a partial object: {len(data)} bytes, {sorted(set(data))[:5]}"
            seen.append(data[:1])
        writer.join()
        assert not errors, errors
        assert store.get_bytes("jobs/a/output.ipynb") == bytes([65 + versions - 1]) * size

    def test_files_go_in_and_out(self, store: Store, tmp_path: Path) -> None:
        src = tmp_path / "in.bin"
        src.write_bytes(bytes(range(256)) * 64)
        store.put_file(src, "jobs/a/outputs/sub/model.bin")
        assert store.get_bytes("jobs/a/outputs/sub/model.bin") == src.read_bytes()
        store.get_file("jobs/a/outputs/sub/model.bin", tmp_path / "out" / "deep" / "model.bin")
        assert (tmp_path / "out" / "deep" / "model.bin").read_bytes() == src.read_bytes()

    def test_check_writable_leaves_nothing(self, store: Store) -> None:
        store.check_writable()
        assert store.list("") == []

    @pytest.mark.parametrize("key", ["jobs/../../x", "../x", "jobs/a/../../../etc/passwd"])
    def test_keys_cannot_escape_the_root(self, store: Store, key: str) -> None:
        with pytest.raises(StoreError):
            store.put_text(key, "no")
        with pytest.raises(StoreError):
            store.get_bytes(key)
        with pytest.raises(StoreError):
            store.exists(key)
        with pytest.raises(StoreError):
            store.list(key)
        with pytest.raises(StoreError):
            store.delete(key, recursive=True)
