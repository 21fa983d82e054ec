"""offload attach / offload ssh into a running job, end to end with real parts: the local backend
(the kernel's own IPC sockets), a real OpenSSH server on loopback (tests/sshd_server.py: the SSH
relay a GCE VM is reached by), and the suite's real SLURM cluster (srun --overlap). The CLI runs
as a user runs it, in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from offload.errors import ConflictError
from offload.jobs import Job, submit
from offload.runner.kernel import has_subshells
from offload.spec import JobState
from offload.store import Store, layout
from offload.testing import wait_for

LOOP = ["import time\nstep = 0", "while True:\n    step += 1\n    time.sleep(0.05)"]
CONFLICT = ConflictError.exit_code


def offload(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "offload.cli", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def read_step(job: Job) -> int:
    r = offload("attach", job.id, "--execute", "print(step)")
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip().splitlines()[-1])


@pytest.fixture
def store(tmp_path) -> Store:
    return Store((tmp_path / "store").as_uri())


def set_backend_options(home: Path, backend: str, options: dict) -> None:
    cfg = home / "config.json"
    data = json.loads(cfg.read_text()) if cfg.exists() else {}
    data.setdefault("backends", {})[backend] = options
    cfg.write_text(json.dumps(data))


def check_running_job(job: Job) -> None:
    """What a user sees through any route: live variables while the cell runs, a shell in the
    notebook's directory, exit codes passed through, errors shown; the job goes on."""
    # the kernel can be reached before the loop's first step (cell 1 set step = 0): wait for it
    steps = [0]
    wait_for(lambda: steps.append(read_step(job)) or steps[-1] > 0, 120, "the loop to start counting")
    first = steps[-1]
    assert Job(job.id, store=job.store).state == JobState.RUNNING
    wait_for(lambda: read_step(job) > first + 5, 120, "the live variable to change")  # the cell keeps running

    record = job.store.get_json(job.key(layout.KERNEL))
    pwd = offload("ssh", job.id, "--", "pwd")
    assert pwd.returncode == 0, pwd.stderr
    assert pwd.stdout.strip() == record["cwd"]
    ls = offload("ssh", job.id, "--", "ls", "-1")
    assert "loop.ipynb" in ls.stdout.split()  # the notebook's own directory on the job's machine
    assert offload("ssh", job.id, "--", "sh", "-c", "exit 3").returncode == 3
    quoted = offload("ssh", job.id, "--", "printf", "%s|", "a b", "$HOME", "; echo no")
    assert quoted.stdout == "a b|$HOME|; echo no|"  # argv words arrive as given: nothing is run by a shell

    err = offload("attach", job.id, "--execute", "1/0")
    assert err.returncode == 1 and "ZeroDivisionError" in err.stderr
    assert Job(job.id, store=job.store).state == JobState.RUNNING  # attaching never disturbs the job


def check_ended(job: Job) -> None:
    job.cancel()
    job.wait(timeout=180)
    assert not job.store.exists(job.key(layout.KERNEL))  # the record goes with the kernel
    r = offload("attach", job.id, "--execute", "print(step)")
    assert r.returncode == CONFLICT
    assert "cancelled" in r.stderr and "no running kernel" in r.stderr


def test_local_attach_and_ssh_while_the_cell_runs(notebook, store):
    job = submit(notebook("loop.ipynb", LOOP), backend="local", store=store)
    try:
        check_running_job(job)
        record = job.store.get_json(job.key(layout.KERNEL))
        assert record["connection"]["transport"] == "ipc"  # no TCP port at all, on any interface
        assert oct(os.stat(os.path.dirname(record["connection"]["ip"])).st_mode & 0o777) == "0o700"
        assert record["subshells"] is True
    finally:
        check_ended(job)


def test_a_queued_job_is_waited_for_or_named(notebook, store):
    blocker = submit(notebook("loop.ipynb", LOOP), backend="local", store=store, backend_options_={"max_jobs": 1})
    try:
        wait_for(lambda: blocker.store.exists(blocker.key(layout.KERNEL)), 120, "the first job's kernel")
        queued = submit(notebook("second.ipynb", ["x = 1"]), backend="local", store=store, backend_options_={"max_jobs": 1})
        wait_for(lambda: Job(queued.id, store=store).state == JobState.QUEUED, 120, "the second job to wait for a slot")
        r = offload("attach", queued.id, "--no-wait", "--execute", "x")
        assert r.returncode == CONFLICT and "is queued" in r.stderr and "not running yet" in r.stderr
        r = offload("attach", queued.id, "--timeout", "3", "--execute", "x")
        assert "waiting for its kernel to start" in r.stderr  # progress while it waits
        assert r.returncode == CONFLICT and "did not start within 3 s" in r.stderr
    finally:
        blocker.cancel()
    queued.wait(timeout=180)


def test_ipykernel_versions_with_subshells():
    assert has_subshells("7.0.0") and has_subshells("7.4.0") and has_subshells("10.1")
    assert not has_subshells("6.29.5") and not has_subshells(None) and not has_subshells("dev")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    from tests.sshd_server import Sshd, why_cannot_run

    reason = why_cannot_run()
    if reason:
        pytest.skip(f"no OpenSSH server here: {reason}")
    server = Sshd(tmp_path_factory.mktemp("sshd")).start()
    yield server
    server.stop()


def test_attach_and_ssh_through_a_real_ssh_server(notebook, store, sshd, offload_home):
    """The SSH route (what a GCE VM is reached by), against OpenSSH on loopback: the kernel's
    sockets are relayed over SSH exec channels, the shell runs through sshd."""
    set_backend_options(offload_home, "local", sshd.options())
    job = submit(notebook("loop.ipynb", LOOP), backend="local", store=store)
    try:
        check_running_job(job)
        assert (Path(offload_home) / "known_hosts").read_text().startswith("[127.0.0.1]")  # remembered
    finally:
        check_ended(job)


def test_ssh_route_errors_name_the_setting(notebook, store, sshd, offload_home, tmp_path):
    job = submit(notebook("loop.ipynb", LOOP), backend="local", store=store)
    try:
        wait_for(lambda: job.store.exists(job.key(layout.KERNEL)), 120, "the job's kernel")
        set_backend_options(offload_home, "local", {**sshd.options(), "ssh_key": str(tmp_path / "missing")})
        r = offload("ssh", job.id, "--", "true")
        assert r.returncode == 2 and "does not exist" in r.stderr
        other = tmp_path / "other_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        set_backend_options(offload_home, "local", {**sshd.options(), "ssh_key": str(other)})
        r = offload("ssh", job.id, "--", "true")
        assert r.returncode == 5 and "refused the key" in r.stderr
    finally:
        job.cancel()
        job.wait(timeout=180)


@pytest.fixture
def clean_queue(slurm_cluster):
    yield
    subprocess.run(["scancel", "--full", "--partition", "debug,urgent,restricted"], env=slurm_cluster.env,
                   capture_output=True, timeout=20, check=False)


def test_slurm_attach_and_ssh_through_srun_overlap(slurm_cluster, notebook, store, clean_queue):
    job = submit(notebook("loop.ipynb", LOOP), backend="slurm", store=store)
    try:
        check_running_job(job)
    finally:
        check_ended(job)


def test_slurm_attach_and_ssh_to_the_node_over_ssh(slurm_cluster, notebook, store, clean_queue, sshd, offload_home):
    """ssh_host "node": SSH to the node the job runs on (named by the runner's record), for
    clusters where srun is not at hand; the node here is this machine, its sshd the test's."""
    set_backend_options(offload_home, "slurm", {**sshd.options(), "ssh_host": "node"})
    job = submit(notebook("loop.ipynb", LOOP), backend="slurm", store=store)
    try:
        check_running_job(job)
        node = job.store.get_json(job.key(layout.KERNEL))["host"]
        assert f"[{node}]:{sshd.port}" in (Path(offload_home) / "known_hosts").read_text()  # reached over SSH
    finally:
        check_ended(job)


def test_debug_a_copy_of_a_job_that_failed_in_cell_3(notebook, store):
    """The copy runs cells 1-2 of the same bundle, stops before cell 3 and keeps its kernel: the
    state cell 3 met is there to inspect; the cell after it never ran."""
    failed = submit(notebook("fails.ipynb", ["a = 1", "b = a + 41", "raise ValueError('boom in cell 3')", "later = True"]),
                    backend="local", store=store)
    failed.wait(timeout=300)
    assert failed.state == JobState.FAILED and failed.status["error"]["cell"] == 3
    made = offload("debug-copy", failed.id, "--hold", "600")
    assert made.returncode == 0, made.stderr
    copy = Job(made.stdout.split()[2], store=store)
    try:
        r = offload("attach", copy.id, "--execute", "print(a, b, 'later' in dir())")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "1 42 False"
        assert copy.spec.bundle_id == failed.spec.bundle_id and copy.spec.parent == failed.id
        status = Job(copy.id, store=store).status
        assert status["state"] == JobState.RUNNING and status["phase"] == "debug"
    finally:
        copy.cancel()
    copy.wait(timeout=180)
    assert copy.state == JobState.CANCELLED
    r = offload("debug-copy", copy.id)  # only a failed job has a failing cell to stop before
    assert r.returncode == CONFLICT and "is cancelled" in r.stderr


def test_gce_job_without_ssh_setup_is_a_clear_error_then_attach_over_os_login(gce, notebook, sshd, offload_home):
    """A GCE job (the fake Compute Engine runs its VM's real startup script and runner here) with
    os_login: its VM is started with enable-oslogin=TRUE; it has no external IP in the fake, which
    attach names with the firewall rule and key setup to do; with ssh_host set (as through a tunnel
    you run) offload registers its own key with OS Login (tests/fakes/oslogin.py: the real client's
    REST requests; the loopback sshd, like an OS Login VM, accepts the registered key) and reaches
    the job as the profile's POSIX user."""
    from tests.fakes.oslogin import FakeOsLogin

    fake = FakeOsLogin(posix_user=sshd.user, authorized_keys=sshd.root / "authorized_keys").start()
    os_login = {"os_login": True, "os_login_user": "ada@example.com", "os_login_endpoint": fake.url}
    job = gce.submit(notebook("loop.ipynb", LOOP), backend_options_=os_login)
    try:
        wait_for(lambda: job.store.exists(job.key(layout.KERNEL)), 600, "the GCE job's kernel")
        metadata = {i["key"]: i.get("value") for i in gce.fake.instance(job.handle["name"])["metadata"]["items"]}
        assert metadata["enable-oslogin"] == "TRUE"
        set_backend_options(offload_home, "gce", {**gce.options, **os_login})
        r = offload("attach", job.id, "--execute", "print(step)")
        assert r.returncode == 5 and "has no external IP" in r.stderr
        assert "offload-allow-ssh" in r.stderr and "tcp:22" in r.stderr  # the firewall rule to create, named
        set_backend_options(offload_home, "gce", {**gce.options, **os_login, "ssh_host": "127.0.0.1",
                                                  "ssh_port": sshd.port})
        assert read_step(job) > 0
        pwd = offload("ssh", job.id, "--", "pwd")
        assert pwd.returncode == 0 and pwd.stdout.strip() == job.store.get_json(job.key(layout.KERNEL))["cwd"]
        assert {r["path"] for r in fake.requests} == {"/v1/users/ada@example.com:importSshPublicKey"}
        assert len(fake.keys["ada@example.com"]) == 1  # one offload key, registered by each attach
    finally:
        job.cancel()
        job.wait(timeout=300)
        fake.stop()


def _interactive(notebook, store, sshd_options=None, home=None):
    """The interactive verbs on a terminal (a real pty): the console and the shell."""
    import pexpect

    if sshd_options:
        set_backend_options(home, "local", sshd_options)
    job = submit(notebook("loop.ipynb", LOOP), backend="local", store=store)
    try:
        cli = [sys.executable, "-m", "offload.cli"]
        con = pexpect.spawn(cli[0], [*cli[1:], "attach", job.id], encoding="utf-8", timeout=180, env=dict(os.environ))
        con.expect(r"In \[1\]: ")
        con.sendline("print('step is', step)")
        con.expect(r"step is (\d+)")
        assert int(con.match.group(1)) > 0
        con.expect(r"In \[2\]: ")
        con.sendline("for i in range(2):")  # a block: continuation prompt, ends with an empty line
        con.expect(r"\.\.\.: ")
        con.sendline("    print('line', i)")
        con.expect(r"\.\.\.: ")
        con.sendline("")
        con.expect("line 1")
        con.expect(r"In \[3\]: ")  # as a user does: at the prompt
        con.sendeof()  # Ctrl-D leaves; the job goes on
        con.expect(pexpect.EOF)
        con.close()
        assert con.exitstatus == 0
        assert Job(job.id, store=store).state == JobState.RUNNING

        cwd = job.store.get_json(job.key(layout.KERNEL))["cwd"]
        sh = pexpect.spawn(cli[0], [*cli[1:], "ssh", job.id], encoding="utf-8", timeout=180,
                           env={**os.environ, "SHELL": "/bin/sh", "PS1": "$ "})
        sh.expect(r"[#$] ")  # the login shell's prompt (sh here; the remote user's shell over SSH)
        sh.sendline("echo HERE=$(pwd)")
        sh.expect(f"HERE={cwd}")
        sh.sendline("exit 5")
        sh.expect(pexpect.EOF)
        sh.close()
        assert sh.exitstatus == 5
    finally:
        job.cancel()
        job.wait(timeout=180)


def test_interactive_console_and_shell_on_a_terminal(notebook, store):
    _interactive(notebook, store)


def test_interactive_console_and_shell_over_ssh(notebook, store, sshd, offload_home):
    _interactive(notebook, store, sshd.options(), offload_home)


def test_kernel_mode_with_an_older_ipykernel_says_so(notebook, store, tmp_path):
    """Kernel mode runs the user's own interpreter as it is: with ipykernel 6 the job's log says
    that attach needs >= 7, attach fails naming the version and the fix, and ssh still works."""
    uv = Path(sys.executable).parent / "uv"
    venv = tmp_path / "old-kernel"
    made = subprocess.run([str(uv), "venv", "-q", "--python", sys.executable, str(venv)], capture_output=True, timeout=300)
    got = made.returncode == 0 and subprocess.run(
        [str(uv), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), "ipykernel==6.29.5"],
        capture_output=True, timeout=600).returncode == 0
    if not got:
        pytest.skip("cannot install ipykernel 6.29.5 here (no package index?)")
    job = submit(notebook("loop.ipynb", LOOP), backend="local", store=store, python=str(venv / "bin" / "python"))
    try:
        wait_for(lambda: job.store.exists(job.key(layout.KERNEL)), 180, "the job's kernel")
        r = offload("attach", job.id, "--execute", "print(step)")
        assert r.returncode == 2
        assert "ipykernel 6.29.5" in r.stderr and "ipykernel>=7" in r.stderr
        wait_for(lambda: "needs ipykernel >= 7" in job.logs(), 60, "the job log to say why")
        assert offload("ssh", job.id, "--", "pwd").returncode == 0
    finally:
        job.cancel()
        job.wait(timeout=180)
