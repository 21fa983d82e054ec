"""``offload ssh``: a shell, or one command, on the job's machine in the notebook's directory.

No user string is ever pasted into a shell: a command is an argv list. Locally it is run as is;
through ``srun`` it follows ``--`` as separate arguments. Over SSH the protocol carries one
command line, which sshd gives to the remote user's shell: it is ``shlex.join`` of the argv (each
word quoted), after a ``cd`` to the quoted directory.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
from typing import Any

from offload.attach._relay import srun_argv
from offload.attach._target import Target
from offload.errors import BackendError

LOGIN_SHELL = ["/bin/sh", "-c", 'exec "${SHELL:-/bin/sh}" -l']  # our own constant: the user's login shell


def job_environ(target: Target) -> dict[str, str]:
    return {"OFFLOAD_JOB_ID": target.job.id}


def run_shell(target: Target, command: list[str] | None, *, ssh: Any = None) -> int:
    """Run ``command`` (None: an interactive shell) on the job's machine; its exit status."""
    route = target.route
    if route.kind == "local":
        argv = command or [os.environ.get("SHELL") or "/bin/sh", "-l"]
        env = {**os.environ, **job_environ(target)}
        if not os.path.isdir(target.cwd):
            raise BackendError(f"the job's directory {target.cwd} is gone", hint="has the job just ended?")
        try:
            return subprocess.call(argv, cwd=target.cwd, env=env)
        except FileNotFoundError:
            print(f"offload ssh: command not found: {argv[0]}", file=sys.stderr)
            return 127
    if route.kind == "srun":
        if not shutil.which("srun"):
            raise BackendError("srun is not on PATH here", hint="run offload ssh on a machine of the cluster")
        pty = command is None and sys.stdin.isatty()
        return subprocess.call(srun_argv(str(route.slurm_job_id), *(command or LOGIN_SHELL), cwd=target.cwd, pty=pty))
    if route.kind == "ssh":
        return _ssh_run(ssh, target, command)
    raise BackendError(f"unknown attach route {route.kind!r}")


def remote_command(cwd: str, command: list[str] | None) -> str:
    """The command line sshd runs: ``cd <cwd> && exec <argv>``, every word quoted."""
    argv = command or LOGIN_SHELL
    return f"cd {shlex.quote(cwd)} && exec {shlex.join(argv)}"


def _ssh_run(client: Any, target: Target, command: list[str] | None) -> int:
    chan = client.get_transport().open_session()
    interactive = command is None and sys.stdin.isatty()
    if interactive:
        size = shutil.get_terminal_size()
        chan.get_pty(term=os.environ.get("TERM", "xterm"), width=size.columns, height=size.lines)
    chan.exec_command(remote_command(target.cwd, command))
    with _raw_terminal(interactive, chan):
        _pump(chan, interactive)
    return chan.recv_exit_status()


@contextlib.contextmanager
def _raw_terminal(on: bool, chan: Any):
    if not on:
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    old_winch = signal.getsignal(signal.SIGWINCH)
    try:
        tty.setraw(fd)
        signal.signal(signal.SIGWINCH, lambda *_: chan.resize_pty(*shutil.get_terminal_size()))
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, old_winch)


def _pump(chan: Any, interactive: bool) -> None:
    """Copy stdin to the channel and the channel's stdout/stderr to ours until it closes."""
    out, err = sys.stdout.buffer, sys.stderr.buffer
    stdin_fd = sys.stdin.fileno() if sys.stdin is not None else None
    stdin_open = stdin_fd is not None
    while True:
        watch = [chan] + ([stdin_fd] if stdin_open else [])
        ready, _, _ = select.select(watch, [], [], 0.5)
        if chan in ready or chan.recv_ready() or chan.recv_stderr_ready():
            while chan.recv_ready():
                out.write(chan.recv(65536))
            while chan.recv_stderr_ready():
                err.write(chan.recv_stderr(65536))
            out.flush()
            err.flush()
        if stdin_open and stdin_fd in ready:
            data = os.read(stdin_fd, 65536)
            if data:
                chan.sendall(data)
            else:
                stdin_open = False
                chan.shutdown_write()
        if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            break
