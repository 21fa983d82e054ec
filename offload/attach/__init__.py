"""Into a running job: ``offload ssh`` (a shell or one command on its machine, in the notebook's
directory) and ``offload attach`` (code run in the job's kernel through a kernel subshell, while
its cell runs). Per backend the route is the backend's (:meth:`Backend.attach_route`): this
machine, ``srun --overlap`` into the SLURM allocation, or SSH (paramiko). See ``docs/attach.md``.
"""

from __future__ import annotations

from offload.attach._api import console, execute, open_kernel, shell
from offload.attach._debug import debug_copy
from offload.attach._kernel import SubshellClient
from offload.attach._relay import BRIDGE, kernel_connection
from offload.attach._shell import remote_command
from offload.attach._target import Target, ended_error, find_target

__all__ = [
    "BRIDGE",
    "SubshellClient",
    "Target",
    "console",
    "debug_copy",
    "ended_error",
    "execute",
    "find_target",
    "kernel_connection",
    "open_kernel",
    "remote_command",
    "shell",
]
