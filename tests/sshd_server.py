"""A real, private OpenSSH server on loopback for the SSH-path tests of ``offload ssh``/``attach``.

Its own host key, authorized key and config in a temp dir, on a free 127.0.0.1 port; the client
key it accepts is generated here too. ``scripts/setup-sshd.sh`` (run by ``make services``)
installs Debian's openssh-server; nothing here touches a system sshd.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
SETUP_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "setup-sshd.sh"


def why_cannot_run() -> str | None:
    if not os.path.exists(SSHD) and SETUP_SCRIPT.exists():
        subprocess.run(["bash", str(SETUP_SCRIPT)], check=False, timeout=900)
    if not os.path.exists(SSHD):
        return "OpenSSH's sshd is not installed and could not be installed here"
    if not shutil.which("ssh-keygen"):
        return "ssh-keygen is missing"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    def __init__(self, root: Path):
        self.root = root
        self.port = _free_port()
        self.user = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
        self.client_key = root / "client_ed25519"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Sshd:
        r = self.root
        r.mkdir(parents=True, exist_ok=True)
        for key in (r / "host_ed25519", self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (r / "authorized_keys").write_text((r / "client_ed25519.pub").read_text())
        os.chmod(r / "authorized_keys", 0o600)
        (r / "sshd_config").write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {r / 'host_ed25519'}",
            f"AuthorizedKeysFile {r / 'authorized_keys'}", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "PermitRootLogin prohibit-password",
            "StrictModes no", "UsePAM no", f"PidFile {r / 'sshd.pid'}", "LogLevel ERROR",
        ]) + "\n")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(r / "sshd_config")],
                                     stdout=subprocess.DEVNULL, stderr=open(r / "sshd.log", "wb"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(r / 'sshd.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("sshd did not answer within 30 s")

    def options(self) -> dict[str, str | int]:
        """Backend options for the SSH route to this server."""
        return {"ssh_host": "127.0.0.1", "ssh_port": self.port, "ssh_user": self.user, "ssh_key": str(self.client_key)}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
