"""Warm sessions for ``%%offload``: one long-lived kernel serving the cells of a notebook session."""

from __future__ import annotations

from typing import Any


class SessionGone(Exception):
    """The warm session's worker is not there any more: fall back to a cold job."""


def can_serve(backend: str | None, opts: Any) -> bool:
    return False
