from offload.runner.job import KERNEL_NAME, Runner, _backend_class, _strip_ansi, main  # noqa: F401
