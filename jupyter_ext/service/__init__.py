"""What the REST API does, as plain synchronous functions over the ``offload`` core.

``core`` holds the per-server :class:`OffloadService` (store, backends, limits, caches); every
other module is a group of functions taking it first: ``notebook`` (the Run dialog's inspection),
``jobs``, ``gallery``, ``sweeps``. ``models`` checks request bodies (400 naming the field),
``paths`` keeps notebook paths inside the server root, ``errors`` has :class:`ApiError`.
"""

from jupyter_ext.service.core import SWEEP_CAPS, OffloadService
from jupyter_ext.service.errors import ApiError

__all__ = ["SWEEP_CAPS", "ApiError", "OffloadService"]
