"""The store: the one source of truth about jobs, over any fsspec URL (file, memory, gs).

``Store`` is the object API (whole-object put/get, list by prefix); ``layout`` names every key.
"""

from offload.store import layout
from offload.store._store import Store, as_store

__all__ = ["Store", "as_store", "layout"]
