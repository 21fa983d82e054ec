from offload.backends.gce.backend import GceBackend, instance_name  # noqa: F401
