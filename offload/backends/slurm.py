"""The ``slurm`` backend: run the runner as a batch job on an existing SLURM cluster.

Driven through SLURM's command-line tools (``sbatch``, ``squeue``, ``scontrol``, ``scancel``,
``sinfo``) rather than a version-tied binding: sites run SLURM 22 to 25 and the tools' text
interface is what stays stable. ``sacct`` is not needed (it requires slurmdbd, which many small
clusters and every test cluster lack), so a job's fate is read from ``squeue``, then
``scontrol show job``, then an exit record the batch script itself writes to the store.

The batch script is generated from data: every option is validated against a strict pattern and
every shell word is ``shlex.quote``-d, so no user string is ever interpreted by a shell. The exit
record is written by a constant ``python -c`` program that receives its values in ``argv``.

Options (``offload config set backend slurm KEY VALUE``, or ``backend_options=``):

``partition``, ``account``, ``qos``
    the usual ``#SBATCH`` options (names only: letters, digits, ``_ . + -``; comma lists).
``extra_sbatch``
    more ``#SBATCH`` lines, each starting with ``-`` (a list, or one string separated by ``;``).
``gpu_flag``
    ``gres`` (default, ``--gres=gpu:[type:]N``) or ``gpus`` (``--gpus=[type:]N``).
``modules``
    environment modules to ``module load`` before the runner starts (names only).
``python``
    the interpreter on the compute nodes (default: the job's, i.e. the submitting one; it must
    be visible there, e.g. a virtual environment on the shared filesystem).
``env_cache``
    where ``--env isolated`` environments are built, once per env hash, and reused by later jobs
    on any node (default: ``envs/`` under a ``file://`` store, which is on the shared filesystem).
``log_dir``
    where SLURM writes the batch job's own stdout (default ``<offload data dir>/slurm``; a
    shared filesystem path on a real cluster).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from offload.backends.base import (
    B_GONE,
    B_PENDING,
    B_PROVISIONING,
    B_RUNNING,
    B_UNKNOWN,
    Ability,
    AttachRoute,
    Backend,
    BackendState,
    Machine,
    kept_warm,
    ssh_route,
)
from offload.errors import BackendError, UsageError
from offload.paths import data_dir
from offload.spec import JobSpec, JobState, machine_name
from offload.store import layout

EXIT_RECORD = "slurm-exit.json"  # jobs/<id>/slurm-exit.json, written by the batch script
JOB_NAME_PREFIX = "offload-"
CMD_TIMEOUT_S = 20  # while slurmctld is down, client commands can block for minutes
STATE_TIMEOUT_S = 10  # state() must not block for long: unknown beats slow

_NAME = re.compile(r"^[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*$")
_GPU_TYPE = re.compile(r"^[A-Za-z0-9_.-]+$")
_MODULE = re.compile(r"^[A-Za-z0-9_.+/@:-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# squeue's %T / scontrol's JobState -> what the backend reports.
_PENDING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED"}
_PROVISIONING = {"CONFIGURING", "POWER_UP_NODE"}
_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING", "STOPPED", "UPDATE_DB"}
# Ended: what happened, and the job state it implies if the runner could not record one itself.
_ENDED: dict[str, tuple[str, str]] = {
    "COMPLETED": ("the SLURM job completed", JobState.SUCCEEDED),
    "FAILED": ("the SLURM job failed", JobState.FAILED),
    "CANCELLED": ("the SLURM job was cancelled (scancel)", JobState.CANCELLED),
    "TIMEOUT": ("killed at the SLURM time limit (TIMEOUT)", JobState.FAILED),
    "DEADLINE": ("killed at its SLURM deadline (DEADLINE)", JobState.FAILED),
    "NODE_FAIL": ("the node running it failed (NODE_FAIL)", JobState.FAILED),
    "BOOT_FAIL": ("the node failed to boot (BOOT_FAIL)", JobState.FAILED),
    "PREEMPTED": ("preempted by SLURM (PREEMPTED)", JobState.PREEMPTED),
    "OUT_OF_MEMORY": ("killed for exceeding its memory (OUT_OF_MEMORY); ask for more memory", JobState.FAILED),
    "SPECIAL_EXIT": ("the SLURM job ended in SPECIAL_EXIT", JobState.FAILED),
    "REVOKED": ("the SLURM job was revoked (federation)", JobState.FAILED),
}
# What the runner records on SIGTERM, by the state SLURM has put the job in.
_TERMINATION = {
    "TIMEOUT": "SLURM time limit",
    "DEADLINE": "SLURM deadline",
    "PREEMPTED": JobState.PREEMPTED,
    "NODE_FAIL": "node failure",
    "CANCELLED": "cancelled in SLURM",
}

# Written into the batch script verbatim; its inputs arrive in argv, never interpolated.
_EXIT_PROGRAM = """\
import json, socket, sys, time
from offload.store import Store, layout
url, job, rc, sid = sys.argv[1:5]
Store(url).put_json(layout.job_key(job, "slurm-exit.json"), {"exit_code": int(rc), "slurm_job_id": sid,
    "host": socket.gethostname(), "finished_at": time.time()})
"""


class SlurmBackend(Backend):
    """Each job is one ``sbatch`` submission whose script runs ``python -m offload.runner``."""

    name = "slurm"
    abilities = frozenset({Ability.KILL, Ability.KEEP_ALIVE, Ability.ATTACH})

    # ------------------------------------------------------------------ options and the script
    def _options(self, spec: JobSpec | None = None) -> dict[str, Any]:
        opts = dict(self.options)
        if spec is not None:
            opts.update(spec.resources.options or {})
        return {k: v for k, v in opts.items() if v not in (None, "", [])}

    def sbatch_directives(self, spec: JobSpec) -> list[str]:
        """The ``#SBATCH`` option words for ``spec`` (validated), in the order they are written."""
        opts = self._options(spec)
        res = spec.resources
        # A job kept warm holds its allocation for its keep-alive window too (runner/machine.py).
        limit = res.max_runtime_s + (res.keep_alive_s or 0)
        lines = [f"--job-name={JOB_NAME_PREFIX}{spec.id}", f"--time={format_time(limit)}"]
        for key, flag in (("partition", "--partition"), ("account", "--account"), ("qos", "--qos")):
            if key in opts:
                lines.append(f"{flag}={_check_name(key, opts[key])}")
        if res.cpus:
            lines.append(f"--cpus-per-task={int(res.cpus)}")
        if res.memory_gb:
            if res.memory_gb <= 0:
                raise UsageError(f"memory {res.memory_gb} GB must be positive", hint="for example --memory 16")
            lines.append(f"--mem={math.ceil(res.memory_gb * 1024)}M")
        gpu = gpu_request(res.gpu, res.gpu_count)
        if gpu:
            flag = str(opts.get("gpu_flag", "gres")).lower()
            if flag == "gres":
                lines.append(f"--gres=gpu:{gpu}")
            elif flag == "gpus":
                lines.append(f"--gpus={gpu}")
            else:
                raise UsageError(
                    f"unknown SLURM gpu_flag {flag!r}", hint="offload config set backend slurm gpu_flag gres (or gpus)"
                )
        for extra in _as_list(opts.get("extra_sbatch")):
            if _CONTROL.search(extra) or not extra.startswith("-"):
                raise UsageError(
                    f"extra_sbatch entry {extra!r} is not one sbatch option",
                    hint="give options such as --constraint=a100, one per entry, no line breaks",
                )
            lines.append(extra)  # after ours: sbatch lets a later #SBATCH line override an earlier one
        return lines

    def batch_script(self, spec: JobSpec) -> str:
        """The whole batch script: directives, then fixed shell whose every variable is quoted."""
        opts = self._options(spec)
        python = str(opts.get("python") or spec.python or sys.executable)
        if _CONTROL.search(python) or not os.path.isabs(python):
            raise UsageError(f"python {python!r} must be an absolute path", hint="offload config set backend slurm python /path/to/python")
        modules = [m for m in _as_list(opts.get("modules"))]
        for m in modules:
            if not _MODULE.match(m):
                raise UsageError(f"module name {m!r} is not a module name", hint="for example cuda/12.2")
        q = shlex.quote
        out = ["#!/bin/bash"]
        out += [f"#SBATCH {line}" for line in self.sbatch_directives(spec)]
        out += [
            "# Generated by jupyter-offload: every value below was validated and shell-quoted.",
            "set -u",
        ]
        out += [f"module load {q(m)}" for m in modules]
        out += [
            f"PY={q(python)}",
            f"STORE={q(self.store.url)}",
            f"JOB={q(spec.id)}",
        ]
        env_cache = self._env_cache()
        if env_cache:  # isolated environments: built once per env hash, shared by every node
            out.append(f"export OFFLOAD_ENV_CACHE={q(env_cache)}")
        out += [
            'if [ ! -x "$PY" ]; then',
            '  echo "offload: python $PY is not on $(hostname); set one the nodes see:'
            ' offload config set backend slurm python PATH" >&2',
            "  exit 127",
            "fi",
            # SLURM signals every process of the step; the trap keeps this shell alive (and
            # passes the signal on, for `scancel --batch`) so it can record the exit code.
            "trap 'kill -TERM \"$pid\" 2>/dev/null' TERM INT",
            '"$PY" -m offload.runner "$STORE" "$JOB" &',
            "pid=$!",
            "while :; do",
            '  wait "$pid"; rc=$?',
            '  if [ "$rc" -gt 128 ] && kill -0 "$pid" 2>/dev/null; then continue; fi',
            "  break",
            "done",
            f'"$PY" -c {q(_EXIT_PROGRAM)} "$STORE" "$JOB" "$rc" "${{SLURM_JOB_ID:-}}" || true',
            'exit "$rc"',
        ]
        return "\n".join(out) + "\n"

    def _env_cache(self) -> str | None:
        """Where isolated environments are cached: ``env_cache``, else ``envs/`` of a file store."""
        opt = self._options().get("env_cache")
        if opt:
            return str(Path(str(opt)).expanduser())
        if self.store.local:
            return f"{self.store.root}/envs"
        return None

    def _log_dir(self) -> Path:
        d = Path(str(self._options().get("log_dir") or data_dir() / "slurm")).expanduser()
        d.mkdir(parents=True, exist_ok=True)
        return d

    # ------------------------------------------------------------------ the contract verbs
    def validate(self, spec: JobSpec) -> None:
        """Reject what SLURM would reject, before anything is staged (``sbatch --test-only``)."""
        proto = self.store.url.split("://", 1)[0]
        if proto == "memory":
            raise UsageError(
                f"store {self.store.url} lives in this process; SLURM jobs cannot see it",
                hint="use a store on the shared filesystem (file:///shared/offload) or gs://",
            )
        script = self.batch_script(spec)
        proc = _slurm(["sbatch", "--test-only", f"--chdir={self._log_dir()}", "--output=/dev/null"], input=script)
        if proc.returncode != 0:
            raise self._submit_error(proc, spec)

    def launch(self, spec: JobSpec) -> dict[str, Any]:
        logs = self._log_dir()
        script = self.batch_script(spec)
        (logs / f"{spec.id}.sbatch").write_text(script)
        output = logs / f"{spec.id}-%j.out"
        proc = _slurm(["sbatch", "--parsable", f"--chdir={logs}", f"--output={output}"], input=script)
        if proc.returncode != 0:
            raise self._submit_error(proc, spec)
        first = (proc.stdout.strip().splitlines() or [""])[-1]
        slurm_id = first.split(";", 1)[0].strip()
        if not slurm_id.isdigit() and not re.fullmatch(r"\d+_\d+", slurm_id):
            raise BackendError(f"sbatch printed no job id: {proc.stdout.strip() or proc.stderr.strip()!r}")
        cluster = first.split(";", 1)[1] if ";" in first else None
        return {
            "slurm_job_id": slurm_id,
            "job_id": spec.id,
            "cluster": cluster,
            "output": str(output).replace("%j", slurm_id),
            "script": str(logs / f"{spec.id}.sbatch"),
        }

    def state(self, handle: dict[str, Any]) -> BackendState:
        sid = str(handle["slurm_job_id"])
        try:
            proc = _slurm(["squeue", "-h", "-t", "all", "-j", sid, "-o", "%T|%r"], timeout=STATE_TIMEOUT_S)
        except BackendError as exc:
            return BackendState(B_UNKNOWN, str(exc))
        line = proc.stdout.strip().splitlines()[0] if proc.returncode == 0 and proc.stdout.strip() else ""
        if proc.returncode != 0 and not _unknown_job(proc):
            unreachable = _controller_unreachable(_output(proc))
            return BackendState(B_UNKNOWN, str(unreachable) if unreachable else f"squeue failed: {_message(proc)}")
        if line:
            state, _, reason = line.partition("|")
            state = state.strip().upper()
            reason = reason.strip()
            details = {"slurm_job_id": sid, "slurm_state": state}
            if reason and reason != "None":
                details["slurm_reason"] = reason
            if state in _PENDING:
                return BackendState(B_PENDING, _pending_reason(state, reason), details)
            if state in _PROVISIONING:
                return BackendState(B_PROVISIONING, f"SLURM is starting the node ({state})", details)
            if state in _RUNNING:
                return BackendState(B_RUNNING, None, details)
        # Ended (or unknown to squeue): scontrol has the exit code while the record lasts.
        info = self._scontrol(sid)
        state = (info.get("JobState") or (line.partition("|")[0] if line else "")).strip().upper()
        if state in _ENDED:
            what, job_state = _ENDED[state]
            details = {"slurm_job_id": sid, "slurm_state": state, "job_state": job_state}
            if info.get("ExitCode"):
                details["exit_code"] = info["ExitCode"]
            if info.get("Reason") and info["Reason"] != "None":
                details["slurm_reason"] = info["Reason"]
            reason = what + (f", exit code {info['ExitCode']}" if info.get("ExitCode") and state in ("COMPLETED", "FAILED") else "")
            return BackendState(B_GONE, reason + _see_output(handle), details)
        if state in _PENDING | _RUNNING | _PROVISIONING:  # raced with a state change: ask next time
            return BackendState(B_RUNNING if state in _RUNNING else B_PENDING, None, {"slurm_job_id": sid, "slurm_state": state})
        job_id = handle.get("job_id")
        record = self.store.get_json(layout.job_key(job_id, EXIT_RECORD), None) if job_id else None
        if record is not None:
            rc = record.get("exit_code")
            return BackendState(
                B_GONE, f"the batch script ended with exit code {rc}" + _see_output(handle),
                {"slurm_job_id": sid, "exit_code": rc, "job_state": JobState.SUCCEEDED if rc == 0 else JobState.FAILED},
            )
        return BackendState(
            B_GONE,
            f"SLURM job {sid} left the queue without recording an exit code (killed, or its node failed)",
            {"slurm_job_id": sid},
        )

    def cancel(self, handle: dict[str, Any]) -> None:
        sid = str(handle["slurm_job_id"])
        proc = _slurm(["scancel", sid])
        if proc.returncode != 0 and not _unknown_job(proc):
            raise _controller_unreachable(_output(proc)) or BackendError(
                f"scancel {sid} failed: {_message(proc)}", hint="check `squeue -j " + sid + "`; is this your job?")

    def attach_route(self, handle: dict[str, Any], kernel: dict[str, Any] | None) -> AttachRoute:
        """``srun --overlap --jobid`` into the job's allocation (the shell; the kernel's sockets
        relayed through srun); SSH to the node instead when ``ssh_host`` is configured (``node``:
        the node the job runs on)."""
        node = (kernel or {}).get("host")
        if self.options.get("ssh_host") == "node" and node:
            return ssh_route({**self.options, "ssh_host": None}, host=node,
                             hint="the node must accept SSH from here (most clusters allow it while you have a job there)")
        via_ssh = ssh_route(self.options)
        return via_ssh or AttachRoute("srun", slurm_job_id=str(handle["slurm_job_id"]),
                                      hint="`srun --overlap` needs SLURM 20.11 or later")

    def kill(self, handle: dict[str, Any]) -> None:
        """Hard stop, for a runner that ignores SIGTERM."""
        _slurm(["scancel", "--full", "--signal=KILL", str(handle["slurm_job_id"])])

    def cleanup(self, *, dry_run: bool = False) -> list[str]:
        """Cancel our SLURM jobs whose runner already recorded a final result (stuck shells)."""
        try:
            proc = _slurm(["squeue", "--me", "-h", "-o", "%i|%j"])
        except BackendError:
            return []
        removed = []
        for line in proc.stdout.splitlines():
            sid, _, name = line.partition("|")
            if not name.startswith(JOB_NAME_PREFIX):
                continue
            job_id = name[len(JOB_NAME_PREFIX):]
            try:
                finished = self.store.exists(layout.job_key(job_id, "result.json"))
            except Exception:
                continue
            if finished and kept_warm(self.store, job_id, machine_name(job_id)):
                continue  # a warm machine waiting for the next job (runner/machine.py)
            if finished:
                removed.append(f"slurm job {sid.strip()} ({job_id})")
                if not dry_run:
                    _slurm(["scancel", sid.strip()])
        return removed

    def machines(self) -> list[Machine]:
        """One entry per partition, with its GPUs as SLURM's GRES describe them; a BackendError
        saying why when the cluster cannot be asked (the Run dialog shows the backend unavailable)."""
        proc = _slurm(["sinfo", "-h", "-o", "%R|%G|%c|%m|%l|%a"])
        if proc.returncode != 0:
            raise _controller_unreachable(_output(proc)) or BackendError(f"cannot list SLURM partitions: sinfo said: {_message(proc)}",
                               hint="check that this machine reaches the SLURM controller (`scontrol ping`)")
        seen: dict[str, Machine] = {}
        for line in proc.stdout.splitlines():
            parts = line.split("|")
            if len(parts) < 6 or parts[0] in seen:
                continue
            part, gres, cpus, mem, limit, avail = parts[:6]
            gpu_type, gpu_count = _parse_gres(gres)
            seen[part] = Machine(
                name=part, gpu=gpu_type, gpu_count=gpu_count,
                vcpus=int(cpus) if cpus.isdigit() else None,
                memory_gb=round(int(mem) / 1024, 1) if mem.isdigit() else None,
                price_per_hour=None,
                description=f"SLURM partition {part} ({avail}), time limit {limit}",
            )
        return list(seen.values())

    # ------------------------------------------------------------------ runner side
    @classmethod
    def termination_reason(cls) -> str | None:
        """On SIGTERM inside a SLURM job: SLURM already marked why (TIMEOUT, PREEMPTED...)."""
        sid = os.environ.get("SLURM_JOB_ID")
        if not sid:
            return None
        try:
            info = _parse_scontrol(_slurm(["scontrol", "show", "job", "-o", sid], timeout=5).stdout)
        except Exception:
            return None
        return termination_from_scontrol(info)

    # ------------------------------------------------------------------ helpers
    def _scontrol(self, sid: str) -> dict[str, str]:
        try:
            proc = _slurm(["scontrol", "show", "job", "-o", sid], timeout=STATE_TIMEOUT_S)
        except BackendError:
            return {}
        return _parse_scontrol(proc.stdout) if proc.returncode == 0 else {}

    def _submit_error(self, proc: subprocess.CompletedProcess[str], spec: JobSpec) -> BackendError:
        """SLURM's own message, plus which setting to change."""
        unreachable = _controller_unreachable(_output(proc))
        if unreachable is not None:  # nothing about the job is wrong: say so, not "fix the options"
            return unreachable
        msg = _message(proc)
        opts = self._options(spec)
        low = msg.lower()
        cfg = "offload config set backend slurm"
        if "invalid partition" in low:
            names = ", ".join(m.name for m in self.machines()) or "see `sinfo -s`"
            hint = f"partition {opts.get('partition')!r} does not exist here; available: {names}. Use `{cfg} partition NAME`"
        elif "invalid account" in low or "account not known" in low:
            hint = (
                f"account {opts.get('account')!r} may not submit to partition {opts.get('partition') or '(default)'}; "
                f"list yours with `sacctmgr show assoc user=$USER format=account,partition` and use `{cfg} account NAME`"
            )
        elif "qos" in low:
            hint = f"QoS {opts.get('qos')!r} is not allowed here; list yours with `sacctmgr show assoc user=$USER format=qos` and use `{cfg} qos NAME`"
        elif "time limit" in low:
            hint = "ask for less time (--max-runtime) than the partition allows (`sinfo -o '%P %l'`), or pick another partition"
        elif "node configuration is not available" in low or "gres" in low:
            hint = "no node in the partition has that many GPUs/CPUs/memory (`sinfo -o '%P %G %c %m'`): ask for less or pick another partition"
        elif "policy" in low:
            hint = "your account or QoS limits forbid this job (jobs, GPUs or time): check `sacctmgr show assoc user=$USER`"
        else:
            hint = f"fix the SLURM options with `{cfg} ...` (partition, account, qos, extra_sbatch)"
        return BackendError(f"SLURM rejected the job: {msg}", hint=hint)


# ---------------------------------------------------------------------- module helpers
def _slurm(cmd: list[str], *, input: str | None = None, timeout: float = CMD_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run a SLURM client command, bounded in time; turn a missing tool into a clear error."""
    exe = shutil.which(cmd[0])
    if exe is None:
        raise BackendError(
            f"{cmd[0]} not found: the slurm backend needs SLURM's command-line tools",
            hint="run on a SLURM login node (or `module load slurm`), or choose another backend with --backend",
        )
    try:
        return subprocess.run([exe, *cmd[1:]], input=input, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        # SLURM retries a controller it cannot resolve or reach for a while: what it said so far
        # tells which, when it did not finish within the time allowed
        said = "\n".join(s.decode(errors="replace") if isinstance(s, bytes) else s for s in (exc.stderr, exc.output) if s)
        unreachable = _controller_unreachable(said)
        if unreachable is not None:
            raise unreachable from None
        raise BackendError(
            f"{cmd[0]} did not answer within {timeout:.0f} s",
            hint="the SLURM controller may be down or overloaded; try again, or ask your cluster admins",
        ) from None


def _see_output(handle: dict[str, Any]) -> str:
    return f"; SLURM's output: {handle['output']}" if handle.get("output") else ""


_UNRESOLVED = re.compile(r'Unable to resolve "([^"]+)"')


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    return f"{proc.stderr or ''}\n{proc.stdout or ''}"


def _controller_host() -> str | None:
    """SlurmctldHost of the slurm.conf in force, where this machine can read it."""
    try:
        with open(os.environ.get("SLURM_CONF") or "/etc/slurm/slurm.conf", encoding="utf-8") as fh:
            m = re.search(r"^\s*(?:SlurmctldHost|ControlMachine)\s*=\s*([^\s(#]+)", fh.read(), re.M | re.I)
    except OSError:
        return None
    return m.group(1) if m else None


def _controller_unreachable(said: str) -> BackendError | None:
    """The clear error for a controller that cannot be reached (its name does not resolve, or it
    does not answer), instead of SLURM's getaddrinfo lines and a hint about job options."""
    low = said.lower()
    conf = os.environ.get("SLURM_CONF") or "slurm.conf"
    m = _UNRESOLVED.search(said)
    if m or "unable to establish control machine" in low or "getaddrinfo() failed" in low:
        host = m.group(1) if m else (_controller_host() or "<SlurmctldHost>")
        return BackendError(
            f"cannot reach the SLURM controller: its host name {host!r} does not resolve from this machine",
            hint=f"check SlurmctldHost in {conf} and this machine's DNS (`getent hosts {host}`); "
                 "`scontrol ping` says when the controller is reachable",
        )
    if "unable to contact slurm controller" in low or "connect failure" in low or "connection refused" in low:
        return BackendError(
            "cannot reach the SLURM controller: it does not answer (connect failure)",
            hint="slurmctld may be down or not reachable from this machine (firewall, SlurmctldPort in "
                 f"{conf}): `scontrol ping`; try again later or ask your cluster admins",
        )
    return None


def _message(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    cleaned = [re.sub(r"^(sbatch|squeue|scontrol|scancel|sinfo): (error|fatal): ", "", ln) for ln in lines]
    cleaned = [re.sub(r"^allocation failure: ", "", ln) for ln in cleaned]  # sbatch --test-only
    # sbatch says "Batch job submission failed: <reason>": that line carries the reason.
    for ln in cleaned:
        if "submission failed:" in ln:
            return ln.split("submission failed:", 1)[1].strip()
    return "; ".join(cleaned) or f"exit status {proc.returncode}"


def _unknown_job(proc: subprocess.CompletedProcess[str]) -> bool:
    return "invalid job id" in (proc.stderr + proc.stdout).lower()


def _parse_scontrol(text: str) -> dict[str, str]:
    """``scontrol show job -o``: one line of Key=Value pairs (values without spaces mostly)."""
    out: dict[str, str] = {}
    for m in re.finditer(r"(\w+(?:/\w+)?)=(.*?)(?=\s+\w+(?:/\w+)?=|$)", text.strip().splitlines()[0] if text.strip() else ""):
        out.setdefault(m.group(1), m.group(2).strip())
    return out


def termination_from_scontrol(info: dict[str, str]) -> str | None:
    """Why SLURM is stopping a job, from ``scontrol show job`` at the moment of its SIGTERM.

    Verified on SLURM 22.05: by then JobState already reads COMPLETING for a time limit and a
    preemption alike; a time limit leaves ``Reason=TimeLimit``, a preemption sets ``PreemptTime``.
    """
    state = (info.get("JobState") or "").upper()
    if state == "TIMEOUT" or info.get("Reason") == "TimeLimit":
        return _TERMINATION["TIMEOUT"]
    if state == "PREEMPTED" or info.get("PreemptTime") not in (None, "", "None", "Unknown"):
        return _TERMINATION["PREEMPTED"]
    return _TERMINATION.get(state)


def _pending_reason(state: str, reason: str) -> str:
    if state == "SUSPENDED":
        return "suspended by SLURM"
    if state != "PENDING":
        return f"{state.lower()} ({reason})" if reason and reason != "None" else state.lower()
    return f"waiting in the SLURM queue ({reason})" if reason and reason != "None" else "waiting in the SLURM queue"


def _parse_gres(gres: str) -> tuple[str | None, int]:
    """``gpu:a100:4(S:0-1),shard:8`` -> ("a100", 4); ``gpu:2`` -> ("gpu", 2); ``(null)`` -> (None, 0)."""
    for item in gres.split(","):
        item = re.sub(r"\(.*?\)", "", item).strip()
        if not item.startswith("gpu"):
            continue
        parts = item.split(":")
        if len(parts) >= 3 and parts[-1].isdigit():
            return parts[1], int(parts[-1])
        if len(parts) == 2 and parts[1].isdigit():
            return "gpu", int(parts[1])
    return None, 0


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(";") if v.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


def _check_name(key: str, value: Any) -> str:
    text = str(value).strip()
    if not _NAME.match(text):
        raise UsageError(
            f"SLURM {key} {text!r} is not a valid name",
            hint=f"letters, digits, _ . + - (comma-separated for several): offload config set backend slurm {key} NAME",
        )
    return text


def gpu_request(gpu: str | int | None, count: int = 1) -> str | None:
    """``Resources.gpu`` -> the GRES count part: ``"2"`` -> ``2``; ``"a100"`` -> ``a100:<count>``."""
    if gpu in (None, "", 0, "0"):
        return None
    text = str(gpu).strip().lower()
    if text.isdigit():
        return str(int(text))
    typ, _, n = text.partition(":")
    if n:
        if not n.isdigit() or int(n) < 1:
            raise UsageError(f"cannot read GPU request {gpu!r}", hint="write --gpu 2, --gpu a100 or --gpu a100:2")
        count = int(n)
    if "," in typ:
        raise UsageError(
            f"SLURM cannot fall back between GPU types ({gpu!r})",
            hint="ask for one type (--gpu a100) or just a count (--gpu 1)",
        )
    if not _GPU_TYPE.match(typ):
        raise UsageError(f"GPU type {typ!r} is not a GRES type name", hint="for example --gpu a100 or --gpu 1")
    return f"{typ}:{max(int(count), 1)}"


def format_time(seconds: int) -> str:
    """Seconds -> SLURM's ``D-HH:MM:SS`` (SLURM itself rounds up to whole minutes)."""
    seconds = max(int(seconds), 1)
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    return f"{d}-{h:02d}:{m:02d}:{s:02d}"
