"""What a GCE VM runs at boot: fetch the client's wheel, install it, start the runner.

This file is two things: the source of the VM's ``startup-script`` (``startup_script()``), and,
below the marker, the boot program itself, which runs on the VM with only the standard library
(the image's Python may lack every package we need until this program installs them).

Nothing job-specific is ever pasted into the script text: the job id, store URL and wheel key are
metadata values the boot program reads from the metadata server, so a store URL with shell
metacharacters cannot become a command. Every step is logged to the serial console and to
``jobs/<id>/boot.log`` in the store; a failure before the runner starts writes a ``failed``
status naming the step and deletes the VM, so a broken boot costs minutes, not a day.
"""

from __future__ import annotations

from pathlib import Path

_MARKER = "# ---- boot program (runs on the VM) ----"


def startup_script() -> str:
    """A constant bash script: picks a Python and hands it the boot program on stdin."""
    src = Path(__file__).read_text()
    program = src.split(_MARKER + "\n", 1)[1]
    return (
        "#!/bin/bash\n"
        "# jupyter-offload VM startup: job parameters come from instance metadata, not from this text.\n"
        "for py in /opt/conda/bin/python3 python3 python; do\n"
        '  if command -v "$py" >/dev/null 2>&1; then\n'
        "    exec \"$py\" - <<'OFFLOAD_BOOT_EOF'\n"
        f"{program}"
        "OFFLOAD_BOOT_EOF\n"
        "  fi\n"
        "done\n"
        'echo "offload boot: no python3 on this image" >&2\n'
        "exit 1\n"
    )


# The program below is extracted verbatim; it must not contain the heredoc terminator.
# ---- boot program (runs on the VM) ----
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402
import zipfile  # noqa: E402

_MD = "http://" + (os.environ.get("GCE_METADATA_HOST") or "metadata.google.internal") + "/computeMetadata/v1/"
_lines: list = []
_ctx: dict = {}


def _md(path, default=None):
    req = urllib.request.Request(_MD + path, headers={"Metadata-Flavor": "Google"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        if e.code == 404 and default is not None:
            return default
        raise


def _token():
    return json.loads(_md("instance/service-accounts/default/token"))["access_token"]


def _gcs_base():
    host = os.environ.get("STORAGE_EMULATOR_HOST") or "https://storage.googleapis.com"
    return host if "://" in host else "http://" + host


def _object(key):
    bucket, _, prefix = _ctx["store"][len("gs://"):].partition("/")
    prefix = prefix.strip("/")
    return bucket, (prefix + "/" + key) if prefix else key


def _gcs(method, url, data=None, ctype=None):
    headers = {"Authorization": "Bearer " + _token()}
    if ctype:
        headers["Content-Type"] = ctype
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    for i in range(5):
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            if e.code < 500 or i == 4:
                raise
        except urllib.error.URLError:
            if i == 4:
                raise
        time.sleep(0.5 * 2**i)


def gcs_get(key):
    bucket, name = _object(key)
    q = urllib.parse.quote
    return _gcs("GET", f"{_gcs_base()}/storage/v1/b/{q(bucket, safe='')}/o/{q(name, safe='')}?alt=media")


def gcs_put(key, data, ctype="text/plain"):
    bucket, name = _object(key)
    q = urllib.parse.quote
    url = f"{_gcs_base()}/upload/storage/v1/b/{q(bucket, safe='')}/o?uploadType=media&name={q(name, safe='')}"
    _gcs("POST", url, data, ctype)


def log(msg):
    line = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + " offload boot: " + msg
    print(line, flush=True)  # the serial console: the fallback when the store is unreachable
    _lines.append(line)
    if "job" in _ctx:
        try:
            gcs_put(f"jobs/{_ctx['job']}/boot.log", ("\n".join(_lines) + "\n").encode())
        except Exception as exc:  # the console still has it
            print(f"offload boot: cannot write boot.log: {exc}", flush=True)


def self_delete():
    project = _md("project/project-id")
    zone = _md("instance/zone").rsplit("/", 1)[-1]
    name = _md("instance/name")
    endpoint = (_md("instance/attributes/offload-compute-endpoint", "") or "https://compute.googleapis.com").rstrip("/")
    url = f"{endpoint}/compute/v1/projects/{project}/zones/{zone}/instances/{name}"
    req = urllib.request.Request(url, method="DELETE", headers={"Authorization": "Bearer " + _token()})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()


def fail(step, exc):
    log(f"FAILED while {step}: {type(exc).__name__}: {exc}")
    for line in traceback.format_exc().splitlines()[-8:]:
        print("offload boot:   " + line, flush=True)
    if "job" in _ctx:
        try:  # the runner never started, so this status has no other writer
            bucket, name = _object(f"jobs/{_ctx['job']}/status.json")
            now = time.time()
            status = {"state": "failed", "reason": f"VM setup failed while {step}: {exc}",
                      "finished_at": now, "heartbeat": now, "host": os.uname().nodename, "boot_failed": True}
            gcs_put(f"jobs/{_ctx['job']}/status.json", json.dumps(status).encode(), "application/json")
        except Exception as e2:
            print(f"offload boot: cannot write status: {e2}", flush=True)
    if _md("instance/attributes/offload-keep-vm", "") != "true":
        try:
            log("deleting this VM")
            self_delete()
        except Exception as e3:
            print(f"offload boot: self-delete failed ({e3}); maxRunDuration will delete the VM", flush=True)
    sys.exit(1)


def main():
    step = "reading instance metadata"
    try:
        _ctx["job"] = _md("instance/attributes/offload-job-id")
        _ctx["store"] = _md("instance/attributes/offload-store")
        wheel_key = _md("instance/attributes/offload-wheel")
        version = _md("instance/attributes/offload-version", "")
        if not _ctx["store"].startswith("gs://"):
            raise ValueError(f"store {_ctx['store']!r} is not a gs:// URL")
        log(f"VM {_md('instance/name')} in {_md('instance/zone').rsplit('/', 1)[-1]}: "
            f"python {sys.version.split()[0]} at {sys.executable}; job {_ctx['job']}")
        step = "downloading jupyter-offload " + version
        work = tempfile.mkdtemp(prefix="offload-boot-")
        wheel = os.path.join(work, wheel_key.rsplit("/", 1)[-1])
        with open(wheel, "wb") as fh:
            fh.write(gcs_get(wheel_key))
        step = "installing jupyter-offload " + version
        lib = os.path.join(work, "lib")
        with zipfile.ZipFile(wheel) as zf:  # a pure-Python wheel is installed by unpacking it
            zf.extractall(lib)
        env = dict(os.environ, PYTHONPATH=lib + os.pathsep + os.environ.get("PYTHONPATH", ""),
                   GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false", PYTHONUNBUFFERED="1")
        env.pop("NO_GCE_CHECK", None)
        # find_spec, not import: importing papermill and the Google clients costs many seconds
        probe = ("import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in "
                 "('papermill', 'nbformat', 'gcsfs', 'google.cloud.compute_v1', 'offload.runner')))")
        if subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True).returncode == 0:
            log("the image already has every dependency; reusing its packages")
        else:
            step = "installing the dependencies of jupyter-offload " + version
            log("installing dependencies with pip (packages the image already has are kept)")
            out = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", wheel + "[gce]"],
                                 env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError("pip install failed: " + (out.stderr or out.stdout)[-2000:])
        step = "starting the runner"
        log(f"starting python -m offload.runner for job {_ctx['job']}")
        os.chdir(work)
        os.execve(sys.executable, [sys.executable, "-m", "offload.runner", _ctx["store"], _ctx["job"]], env)
    except SystemExit:
        raise
    except BaseException as exc:
        fail(step, exc)


if __name__ == "__main__":
    main()
