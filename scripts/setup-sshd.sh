#!/usr/bin/env bash
# Install what the SSH-tunnel tests of `offload attach` / `offload ssh` need: Debian's
# openssh-server (sshd). Idempotent and non-interactive; returns at once when sshd is installed.
# The tests start a private sshd on a loopback port themselves (tests/sshd_server.py), with their
# own host key and authorized key in a temp dir; nothing here starts a system sshd.
set -euo pipefail

if command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; then
    echo "setup-sshd: already installed ($(/usr/sbin/sshd -V 2>&1 | head -1 || true))"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup-sshd: sshd missing and no apt-get here; install OpenSSH's server by hand" >&2
    exit 0  # the tests then skip with a visible reason
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "setup-sshd: sshd missing; not root and no passwordless sudo, skipping install" >&2
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
# Only refresh package lists when they are missing (fresh container) or the install fails.
if ! $SUDO "${APT[@]}" install --no-install-recommends openssh-server; then
    $SUDO "${APT[@]}" update
    $SUDO "${APT[@]}" install --no-install-recommends openssh-server
fi
echo "setup-sshd: installed ($(dpkg-query -W -f='${Version}' openssh-server))"
