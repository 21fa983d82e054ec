"""SSH to a job's machine with paramiko (no ``ssh``/``gcloud`` binary needed).

Host keys: the system's and ``~/.ssh/known_hosts`` are trusted; a host seen for the first time is
accepted and remembered in ``<data dir>/known_hosts`` (OpenSSH's ``StrictHostKeyChecking=
accept-new``: a cloud VM is new for every job); a host whose key changed is refused.
"""

from __future__ import annotations

import os
from typing import Any

from offload.backends.base import AttachRoute
from offload.errors import BackendError, UsageError
from offload.paths import data_dir

CONNECT_TIMEOUT_S = 20.0


def known_hosts_file() -> str:
    return str(data_dir() / "known_hosts")


def connect(route: AttachRoute) -> Any:
    """An authenticated ``paramiko.SSHClient`` on ``route``; a clear error naming what to check."""
    try:
        import paramiko  # optional: only SSH routes need it
    except ImportError:
        raise UsageError("SSH to a job's machine needs paramiko", field="ssh",
                         hint="pip install 'jupyter-offload[ssh]'") from None
    client = paramiko.SSHClient()
    client.load_system_host_keys()
    ours = known_hosts_file()
    if not os.path.exists(ours):
        os.makedirs(os.path.dirname(ours), exist_ok=True)
        open(ours, "a").close()
    client.load_host_keys(ours)  # new hosts are remembered here, not in ~/.ssh
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    where = f"{route.user + '@' if route.user else ''}{route.host}:{route.port}"
    key = os.path.expanduser(route.key_file) if route.key_file else None
    if key and not os.path.exists(key):
        raise UsageError(f"the SSH key {route.key_file} does not exist", field="ssh_key",
                         hint="offload config set backend <name> ssh_key ~/.ssh/id_ed25519")
    try:
        client.connect(route.host, port=route.port, username=route.user or None, key_filename=key,
                       timeout=CONNECT_TIMEOUT_S, banner_timeout=CONNECT_TIMEOUT_S, auth_timeout=CONNECT_TIMEOUT_S,
                       look_for_keys=key is None, allow_agent=True)
    except paramiko.BadHostKeyException:
        raise BackendError(f"the SSH host key of {route.host} changed since it was last seen", field="ssh_host",
                           hint=f"if the machine was replaced, remove its line from {ours}") from None
    except paramiko.AuthenticationException as exc:
        raise BackendError(f"SSH to {where} refused the key: {exc}", field="ssh_key",
                           hint=route.hint or "set ssh_user and ssh_key for the backend") from None
    except (TimeoutError, OSError, paramiko.SSHException) as exc:
        raise BackendError(f"cannot reach {where} over SSH: {exc}", field="ssh_host",
                           hint=route.hint or "check that the machine accepts SSH from here") from None
    if client.get_transport() is not None:
        client.get_transport().set_keepalive(15)
    return client
