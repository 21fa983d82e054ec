"""Where jobs run. ``base`` is the contract (the ABC, its optional abilities, the registry);
``local``, ``slurm`` and ``gce`` are the user-facing backends, found through the entry-point group
``offload.backends``; ``pack`` (sweep trials inside a pack job) is internal, registered in code
here and never offered to users. ``procs`` and ``cost`` are shared helpers.
"""

from offload.backends import pack  # noqa: F401  registers the internal sweep-pack backend
