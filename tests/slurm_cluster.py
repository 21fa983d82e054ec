"""A real, private, single-node SLURM cluster for tests: munged + slurmctld + slurmd in a temp dir.

Why a private one: the tests must exercise the real command-line tools (``sbatch``, ``squeue``,
``scontrol``, ``scancel``) and real ``--gres=gpu:N`` scheduling, without touching a system
cluster or a system munge. Everything lives under one directory: its own munge key and socket
(``AuthInfo=socket=``), its own ports, state, spool, logs and pid files, and two fake GPUs
(character devices, which is what ``gres.conf`` accepts). Clients find it through
``SLURM_CONF``. Teardown kills exactly the daemons named in its pid files.

Also usable by hand (``scripts/slurm-up.sh`` / ``scripts/slurm-down.sh``)::

    python tests/slurm_cluster.py up /tmp/offload-slurm   # prints export SLURM_CONF=...
    python tests/slurm_cluster.py down /tmp/offload-slurm
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REQUIRED = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "slurmctld", "slurmd", "munged", "munge")
SETUP_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "setup-slurm.sh"
NODE = "localhost"  # slurmd -N: the machine's own hostname need not resolve or match
PARTITION = "debug"


class ClusterError(RuntimeError):
    """Bring-up failed on a machine where SLURM is installed: a real failure, never a skip."""


def missing_tools() -> list[str]:
    return [tool for tool in REQUIRED if not shutil.which(tool)]


def why_cannot_run(install: bool = True) -> str | None:
    """None when a private cluster can run here; otherwise the reason (for a visible skip).

    Installs the packages first (scripts/setup-slurm.sh) when they are missing and we may.
    """
    if os.geteuid() != 0:
        return "a private SLURM cluster needs root (slurmd runs jobs as their users)"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        pass  # the munge package creates the user; installing below fixes it
    if missing_tools() and install and SETUP_SCRIPT.exists():
        subprocess.run(["bash", str(SETUP_SCRIPT)], check=False, timeout=900)
    missing = missing_tools()
    if missing:
        return f"SLURM is not installed and could not be installed here (missing: {', '.join(missing)})"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], env: dict[str, str], timeout: float = 10) -> subprocess.CompletedProcess[str]:
    # While slurmctld is down, client commands can block for minutes: always bounded.
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


class SlurmCluster:
    """One controller, one node (``localhost``) with ``gpus`` fake GPUs, one partition."""

    def __init__(self, root: str | Path | None = None, *, gpus: int = 2, cpus: int = 8, memory_mb: int = 4096):
        if root is None:
            # Not under pytest's tmp_path: that is mode 0700 and munged runs as the munge user.
            root = tempfile.mkdtemp(prefix="offload-slurm-")
        self.root = Path(root).resolve()
        self.gpus, self.cpus, self.memory_mb = gpus, cpus, memory_mb
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.partition = PARTITION

    # environment for clients --------------------------------------------------------------
    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def _pidfiles(self) -> list[Path]:
        return [self.root / "slurmd.pid", self.root / "slurmctld.pid", self.root / "munge" / "munged.pid"]

    # bring-up ------------------------------------------------------------------------------
    def start(self, timeout: float = 60) -> SlurmCluster:
        reason = why_cannot_run(install=False)
        if reason:
            raise ClusterError(reason)
        try:
            self._start_munge(timeout)
            self._write_config()
            for cmd in (["slurmctld", "-c", "-i"], ["slurmd", "-N", NODE]):
                proc = _run(cmd, self.env, timeout=30)
                if proc.returncode != 0:
                    raise ClusterError(f"{cmd[0]} failed to start: {proc.stderr.strip()}\n{self.logs()}")
            self._wait_idle(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_munge(self, timeout: float) -> None:
        mdir = self.root / "munge"
        kdir = self.root / "munge-key"
        os.chmod(self.root, 0o755)
        for d in (mdir, kdir):
            d.mkdir(parents=True, exist_ok=True)
        munge = pwd.getpwnam("munge")
        key = kdir / "munge.key"
        key.write_bytes(secrets.token_bytes(128))
        for path, mode in ((kdir, 0o700), (key, 0o600), (mdir, 0o755)):
            os.chown(path, munge.pw_uid, munge.pw_gid)
            os.chmod(path, mode)
        cmd = [
            "runuser", "-u", "munge", "--", "munged",
            f"--socket={self.munge_socket}", f"--key-file={key}",
            f"--pid-file={mdir / 'munged.pid'}", f"--log-file={mdir / 'munged.log'}",
            f"--seed-file={mdir / 'munged.seed'}",
        ]  # fmt: skip
        proc = _run(cmd, self.env, timeout=30)
        if proc.returncode != 0:
            raise ClusterError(f"munged failed to start: {proc.stderr.strip()}")
        deadline = time.monotonic() + timeout
        while True:
            enc = _run(["munge", "-S", str(self.munge_socket), "-n"], self.env)
            if enc.returncode == 0:
                dec = subprocess.run(
                    ["unmunge", "-S", str(self.munge_socket)], input=enc.stdout, capture_output=True, text=True, timeout=10
                )
                if dec.returncode == 0:
                    return
            if time.monotonic() > deadline:
                raise ClusterError(f"munge never answered: {enc.stderr.strip()}")
            time.sleep(0.1)

    def _write_config(self) -> None:
        r = self.root
        for d in ("state", "spool", "log", "dev"):
            (r / d).mkdir(exist_ok=True)
        for i in range(self.gpus):
            dev = r / "dev" / f"fakegpu{i}"
            if not dev.exists():
                # gres.conf rejects plain files and silently drops missing ones: /dev/null's numbers.
                os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        gres = f"Gres=gpu:{self.gpus}" if self.gpus else ""
        conf = f"""\
ClusterName=offloadtest
SlurmctldHost={NODE}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
StateSaveLocation={r / "state"}
SlurmdSpoolDir={r / "spool"}
SlurmctldPidFile={r / "slurmctld.pid"}
SlurmdPidFile={r / "slurmd.pid"}
SlurmctldLogFile={r / "log" / "slurmctld.log"}
SlurmdLogFile={r / "log" / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
EnforcePartLimits=ALL
DefMemPerCPU=64
GresTypes=gpu
MinJobAge=300
KillWait=30
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} {gres} State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=urgent Nodes={NODE} MaxTime=INFINITE State=UP PriorityTier=10
PartitionName=restricted Nodes={NODE} AllowAccounts=lab-a AllowQos=normal MaxTime=60 State=UP
"""
        self.conf.write_text(conf)
        gpus = f"NodeName={NODE} Name=gpu File={r / 'dev'}/fakegpu[0-{self.gpus - 1}]\n" if self.gpus else ""
        (r / "gres.conf").write_text(gpus)

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                proc = _run(["sinfo", "-h", "-n", NODE, "-o", "%T"], self.env, timeout=5)
                last = (proc.stdout + proc.stderr).strip()
                if proc.returncode == 0 and last.startswith(("idle", "mixed", "allocated")):
                    return
            except subprocess.TimeoutExpired:
                last = "sinfo timed out"
            time.sleep(0.2)
        raise ClusterError(f"node never became idle (last: {last!r})\n{self.logs()}")

    def logs(self) -> str:
        out = []
        for log in sorted((self.root / "log").glob("*.log")):
            out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:]))
        return "\n".join(out)

    # teardown ------------------------------------------------------------------------------
    def stop(self, timeout: float = 10) -> None:
        """Cancel our jobs, then kill the daemons named in our pid files (never by name).

        Jobs go first, while the controller can still reach them: a ``slurmstepd`` whose
        ``slurmd`` is gone lingers forever. Any that remain are found by their working
        directory (our log dir) and killed with their job processes.
        """
        if self.conf.exists() and (self.root / "slurmctld.pid").exists():
            try:
                _run(["scancel", "--partition", PARTITION, "--full"], self.env, timeout=10)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    q = _run(["squeue", "-h", "-o", "%i"], self.env, timeout=5)
                    if q.returncode != 0 or not q.stdout.strip():
                        break
                    time.sleep(0.2)
            except subprocess.TimeoutExpired:
                pass
        pids = []
        for pidfile in self._pidfiles():
            try:
                pid = int(pidfile.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
                pids.append(pid)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        for pid in pids:
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.05)
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for pid in self._leftover_stepds():
            for victim in [*_descendants(pid), pid]:
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _leftover_stepds(self) -> list[int]:
        logdir = str(self.root / "log")
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if (entry / "comm").read_text().strip() == "slurmstepd" and os.readlink(entry / "cwd") == logdir:
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (no parent reaping it) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("up", "down"):
        print("usage: python tests/slurm_cluster.py up|down DIR", file=sys.stderr)
        return 2
    verb, root = argv
    cluster = SlurmCluster(root)
    if verb == "up":
        reason = why_cannot_run()
        if reason:
            print(f"cannot start SLURM: {reason}", file=sys.stderr)
            return 1
        Path(root).mkdir(parents=True, exist_ok=True)
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}")
    else:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
