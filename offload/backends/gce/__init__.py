"""The GCE backend: one VM per job (or per sweep pack), zone failover, self-deletion, a hard cap.

``backend`` is the Backend, ``boot`` the VM's startup script, ``catalog`` the machine shapes,
``attempts`` what an insert's error means, ``wheel`` the client's own code shipped to the VM.
"""

from offload.backends.gce.backend import GceBackend, instance_name

__all__ = ["GceBackend", "instance_name"]
