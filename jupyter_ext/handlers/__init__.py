"""Thin REST handlers: parse the request, call the service in the thread pool, reply.

``base`` has :class:`OffloadHandler`, shared by all; one module per area (``backends`` for the
Run dialog, ``jobs``, ``gallery``, ``sweeps``). Their URLs are in :mod:`jupyter_ext.routes`.
"""
