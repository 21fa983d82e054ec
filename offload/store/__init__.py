"""The store: the one source of truth about jobs, over any fsspec URL (file, memory, gs).

``Store`` is the object API (whole-object put/get, list by prefix); ``layout`` names every key;
``read_output`` reads a job's executed notebook, final or (while it runs) live, block by block.
"""

from offload.store import layout
from offload.store._live import has_output, read_output
from offload.store._store import Store, as_store, known_stores

__all__ = ["Store", "as_store", "has_output", "known_stores", "layout", "read_output"]
