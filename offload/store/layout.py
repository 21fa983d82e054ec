"""Every key of the store in one place: what lives where under the store root.

```
blobs/<sha256>                          file contents, immutable
bundles/<bundle-id>.json                manifest: path -> sha256, mode; entry notebook; EnvSpec
jobs/<job-id>/spec.json                 JobSpec, written once by the client (jobs.launch.launch_spec)
jobs/<job-id>/env.json, handle.json     the client's, with the spec
jobs/<job-id>/status.json ...           the runner's: status, log/<n>.txt, metrics.jsonl, output.ipynb,
                                        outputs/, checkpoints/, result.json
jobs/<job-id>/live/...                  the runner's: the notebook while it runs, 50 cells an object
                                        (store/_live.py; removed once output.ipynb is stored)
jobs/<job-id>/kernel.json               the runner's, while the notebook's kernel runs: how to reach it
                                        (connection info, host, pid, work dir); removed when it ends
jobs/<job-id>/cancel                    the client's: presence asks the runner to stop
jobs/<job-id>/reconciled.json           the client's conclusion when the backend says the job is gone
jobs/<job-id>/retry.json                the client's: the job that retries this one
jobs/<job-id>/provenance.json           the client's, once at submit: git commit, branch, remote, diff
                                        (a rerun's copies its original's, with rerun_of)
jobs/<job-id>/mlflow.json               the client's, once at submit: the job's MLflow run
jobs/<job-id>/notify.json               the client's, once at submit: where to say that the job ended
jobs/<job-id>/notified.json             created once, exclusively, by the one observer that sends it
sweeps/<sweep-id>/mlflow.json, notify.json, notified.json   as for a job: the sweep driver's (the
                                        parent MLflow run of the trials' runs)
sessions/<job-id>/queue/<cell-job-id>   warm %%offload session: cell jobs to run (client)
sessions/<job-id>/stop                  warm %%offload session: end it (client)
machines/<name>.json                    a machine's record: backend, shape, zone, busy/idle, idle
                                        deadline, env hashes... (the machine itself, runner/machine.py)
machines/<name>/queue/<job-id>          a job handed to a warm machine: the claim (client, launch_spec)
machines/<name>/stop                    end this machine (client: `offload machines stop`)
sweeps/<sweep-id>/...                   a sweep's record and its packs
envs/wheels/<digest>/<wheel>            the client's own code for GCE VMs (client)
envs/boot/<deps digest>/<py>-<platform>.tar.gz   a GCE VM's runner environment, packed by the first VM
                                        that built it (written once; later VMs unpack it)
envs/packs/<env-hash>/<accel>-<py>-<platform>.tar.gz   a job's isolated environment, packed by the
                                        first machine that built it (written once, runner)
```

Keys are POSIX paths relative to the root. Ids are checked (``spec.check_job_id``) before they
become keys, and ``Store.path`` refuses ``..``.
"""

from __future__ import annotations

JOBS = "jobs"
BLOBS = "blobs"
BUNDLES = "bundles"
SWEEPS = "sweeps"
SESSIONS = "sessions"
ENVS = "envs"
MACHINES = "machines"


def job_key(job_id: str, name: str = "") -> str:
    return f"{JOBS}/{job_id}/{name}" if name else f"{JOBS}/{job_id}"


PROVENANCE = "provenance.json"  # job_key(id, PROVENANCE): where the job's code came from
MLFLOW = "mlflow.json"  # job_key / sweep_key: the MLflow run mirrored from the store
NOTIFY = "notify.json"  # job_key / sweep_key: the webhook to call when it ends
KERNEL = "kernel.json"  # job_key(id, KERNEL): the running kernel's connection record (offload.attach)
NOTIFIED = "notified.json"  # job_key / sweep_key: the end was announced (exclusive create)


def blob_key(sha: str) -> str:
    return f"{BLOBS}/{sha}"


def bundle_key(bundle_id: str) -> str:
    return f"{BUNDLES}/{bundle_id}.json"


def log_chunk_key(job_id: str, n: int) -> str:
    return job_key(job_id, f"log/{n:08d}.txt")


def session_key(session_id: str, name: str = "") -> str:
    return f"{SESSIONS}/{session_id}/{name}" if name else f"{SESSIONS}/{session_id}"


def session_queue_key(session_id: str, job_id: str = "") -> str:
    return session_key(session_id, f"queue/{job_id}" if job_id else "queue")


def sweep_key(sweep_id: str, name: str = "") -> str:
    return f"{SWEEPS}/{sweep_id}/{name}" if name else f"{SWEEPS}/{sweep_id}"


def pack_key(sweep_id: str, pack_id: str, name: str = "") -> str:
    return sweep_key(sweep_id, f"packs/{pack_id}/{name}" if name else f"packs/{pack_id}")


def machine_key(name: str) -> str:
    """The machine's own record (one writer: the machine)."""
    return f"{MACHINES}/{name}.json"


def machine_queue_key(name: str, job_id: str = "") -> str:
    """Jobs handed to machine ``name`` (client-written claims; the machine removes what it took)."""
    return f"{MACHINES}/{name}/queue/{job_id}" if job_id else f"{MACHINES}/{name}/queue"


def machine_stop_key(name: str) -> str:
    return f"{MACHINES}/{name}/stop"


WHEELS = f"{ENVS}/wheels"  # the client's own code, shipped to GCE VMs


def wheel_key(digest: str, name: str) -> str:
    return f"{WHEELS}/{digest}/{name}"


BOOT_ENVS = f"{ENVS}/boot"  # GCE VMs' runner environments (offload.backends.gce.boot packs them)


def boot_env_template(digest: str) -> str:
    """Key of a VM's packed runner environment for dependencies ``digest``; the VM fills in
    ``{python}`` (``py3.11``) and ``{platform}`` (``linux-x86_64-<interpreter id>``)."""
    return f"{BOOT_ENVS}/{digest}/{{python}}-{{platform}}.tar.gz"


ENV_PACKS = f"{ENVS}/packs"  # isolated job environments (offload.runner.environment packs them)


def env_pack_key(env_hash: str, accelerator: str, python: str, platform: str) -> str:
    """Key of a packed isolated environment: env hash + accelerator + Python + platform."""
    return f"{ENV_PACKS}/{env_hash[:32]}/{accelerator}-py{python}-{platform}.tar.gz"
