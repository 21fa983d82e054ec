"""The doorbell between a warm session and its client (offload.backends.doorbell)."""

from __future__ import annotations

import sys
import threading

import pytest

from offload.backends.doorbell import Doorbell, ring

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux-only")


def test_a_ring_wakes_the_listener_and_every_ring_so_far_is_taken_at_once(tmp_path):
    name = f"test-{tmp_path.name}"
    with Doorbell(name) as bell:
        assert bell.wait(0) is False  # nobody rang
        threading.Timer(0.05, ring, args=(name,)).start()
        assert bell.wait(60) is True  # woken by the ring, not by the timeout
        ring(name)
        ring(name)
        assert bell.wait(60) is True
        assert bell.wait(0) is False  # both rings were answered by the one look


def test_one_listener_per_name_and_ringing_nobody_is_harmless(tmp_path):
    name = f"test-{tmp_path.name}"
    with Doorbell(name) as first:
        second = Doorbell(name)
        assert first.sock is not None and second.sock is None
        assert second.wait(0) is False  # a bell that cannot listen waits like a poll
    ring(name)  # closed: nobody listens
    ring(f"nobody-{tmp_path.name}")
    with Doorbell(name) as again:  # the name is free once its listener closed
        assert again.sock is not None
