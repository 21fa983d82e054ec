"""A doorbell between two processes on one machine: one rings to say "look now", so the other,
waiting, need not poll every millisecond.

The bell carries nothing: whoever hears it reads the store, which stays the only source of
truth, and a bell nobody hears costs nothing. So a missed ring (the other side not listening
yet, another network namespace, a platform without abstract sockets such as macOS) only means
the waiting side notices at its next poll, as it would without a bell.

A bell is a Linux abstract Unix datagram socket named ``offload-<name>``: no file to create or
clean up, gone with the process that holds it. Only one process can listen on a name; a second
:class:`Doorbell` with the same name does not hear (it waits its timeout out like a poll).
"""

from __future__ import annotations

import select
import socket
import sys
import time

__all__ = ["Doorbell", "ring"]


def _address(name: str) -> str:
    return f"\0offload-{name}"


class Doorbell:
    """The listening side: ``wait(timeout)`` returns True as soon as someone rang."""

    def __init__(self, name: str):
        self.sock: socket.socket | None = None
        if not sys.platform.startswith("linux"):
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(_address(name))
        except OSError:  # someone else listens on this name
            sock.close()
            return
        sock.setblocking(False)
        self.sock = sock

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True when woken by a ring (every ring heard so far is
        taken: one look at the store answers them all)."""
        if self.sock is None:
            time.sleep(max(timeout, 0.0))
            return False
        ready, _, _ = select.select([self.sock], [], [], max(timeout, 0.0))
        if not ready:
            return False
        try:
            while True:
                self.sock.recv(16)
        except BlockingIOError:
            pass
        return True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> Doorbell:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ring(name: str) -> None:
    """Wake whoever listens on ``name``, if anyone does; never raises, never blocks."""
    if not sys.platform.startswith("linux"):
        return
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(b"!", _address(name))
    except OSError:  # nobody listening, or their queue is full (they have been rung already)
        pass
