"""What a GCE VM runs at boot: fetch the client's wheel, build the runner's own environment with
uv, start the runner.

This file is two things: the source of the VM's ``startup-script`` (``startup_script()``), and,
below the marker, the boot program itself, which runs on the VM with only the standard library
of whatever ``python3`` the image has (3.6 or later: the program avoids newer syntax).

The boot never installs into the image's Python (stock Debian and Ubuntu images forbid it,
PEP 668, and often have no pip). It builds its own virtual environment with uv:

1. the environment is cached in the store, packed (``envs/boot/<requirements digest>/<python>-
   <platform>-<interpreter>.tar.gz``, the key template comes from the client as metadata); a machine
   that finds it unpacks it, installs the client's wheel into it (no dependencies) and downloads
   nothing from the package index;
2. otherwise uv comes from the package index as a wheel (only its binary is used: no pip needed),
   the environment is created over the image's interpreter (with the image's packages visible, so a
   Deep Learning VM's torch stays importable; what is missing is installed into the environment)
   or, when the image's Python is older than 3.10, over a Python that uv downloads; the runner's
   dependencies (pinned by the client) and the client's wheel are installed, and the environment is
   packed into the store for the next machine;
3. an image whose Python already has every dependency (a custom image) runs the wheel as it is.

Nothing job-specific is ever pasted into the script text: the job id, store URL, wheel key and
index URL are metadata values the boot program reads from the metadata server, and every command
it runs gets an argument list, never a shell string. Every step is logged, with its duration, to
the serial console and to ``jobs/<id>/boot.log`` in the store; a failure before the runner starts
writes a ``failed`` status naming the step and deletes the VM. An image without ``python3`` cannot
run this program at all: the startup script says so on the serial console and the client's boot
watchdog (gce option ``boot_timeout``) fails the job with that console's tail and deletes the VM.
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
        'echo "offload boot: FAILED: no python3 on this image (jupyter-offload needs python3 to boot; '
        'use an image that has it)" >&2\n'
        "exit 1\n"
    )


# The program below is extracted verbatim; it must not contain the heredoc terminator.
# ---- boot program (runs on the VM) ----
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
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


_T0 = time.time()


def log(msg):
    msg = f"[{time.time() - _T0:6.1f} s] {msg}"
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


def _run(cmd, what, env=None):
    """Run an argument list (never a shell string); its output goes to the log on failure."""
    t = time.time()
    out = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {out.returncode}): {out.stdout[-3000:]}")
    log(f"{what} ({time.time() - t:.1f} s)")
    return out.stdout


def _http_get(url):
    req = urllib.request.Request(url, headers={"User-Agent": "jupyter-offload-boot"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read()


def _platform_tag():
    libc = "musl" if any(os.path.exists(p) for p in ("/lib/ld-musl-x86_64.so.1", "/lib/ld-musl-aarch64.so.1")) else ""
    return "{}-{}{}".format(sys.platform, platform.machine().lower(), "-" + libc if libc else "")


def _version_key(v):
    return [int(x) if x.isdigit() else -1 for x in re.split(r"[.+-]", v)]


def fetch_uv(index_url, want_version, dest):
    """uv's binary from its wheel on the package index (no pip: a wheel is a zip file)."""
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    libc = "musllinux" if "musl" in _platform_tag() else "manylinux"
    page = _http_get(index_url.rstrip("/") + "/uv/").decode("utf-8", "replace")
    found = []
    for href in re.findall(r'href="([^"]+)"', page):
        url = urllib.parse.urljoin(index_url.rstrip("/") + "/uv/", href.replace("&amp;", "&"))
        fname = urllib.parse.urlparse(url).path.rsplit("/", 1)[-1]
        m = re.match(r"uv-([^-]+)-.*\.whl$", fname)
        if m and libc in fname and fname.split("-")[-1].startswith(tuple(libc + p for p in ("", "_", "1", "2"))) \
                and arch in fname.split("-")[-1]:
            found.append((m.group(1), url))
    if not found:
        raise RuntimeError(f"the package index {index_url} has no uv wheel for {libc}-{arch}")
    pinned = [f for f in found if f[0] == want_version]
    version, url = pinned[0] if pinned else max(found, key=lambda f: _version_key(f[0]))
    data = _http_get(url)
    frag = urllib.parse.urlparse(url).fragment
    if frag.startswith("sha256=") and hashlib.sha256(data).hexdigest() != frag[7:]:
        raise RuntimeError(f"uv wheel from {url} does not match its sha256")
    wheel = os.path.join(dest, urllib.parse.urlparse(url).path.rsplit("/", 1)[-1])
    with open(wheel, "wb") as fh:
        fh.write(data)
    with zipfile.ZipFile(wheel) as zf:
        member = next(n for n in zf.namelist() if re.search(r"\.data/scripts/uv$", n))
        uv = os.path.join(dest, "uv")
        with zf.open(member) as src, open(uv, "wb") as out:
            shutil.copyfileobj(src, out)
    os.chmod(uv, 0o755)
    log(f"uv {version} from the package index ({len(data) // 2**20} MB)")
    return uv, wheel


def _base_python(want):
    """(interpreter for the environment, its major.minor). Too old an image Python: uv's own."""
    if sys.version_info >= (3, 10):  # noqa: UP036 - the image's Python runs this, not ours
        return os.path.realpath(sys.executable), "{}.{}".format(*sys.version_info[:2])
    log(f"the image's Python {sys.version.split()[0]} is older than 3.10: uv provides Python {want}")
    return None, want


def _env_key(template, py_version, base):
    ident = hashlib.sha256((base or "uv-managed").encode()).hexdigest()[:8]
    return template.replace("{python}", "py" + py_version).replace("{platform}", _platform_tag() + "-" + ident)


def _restore(key, root):
    """Unpack a cached environment; False when the store has none (or it cannot be used here)."""
    t = time.time()
    try:
        data = gcs_get(key)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return False
        raise
    tmp = root + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with tarfile.open(fileobj=__import__("io").BytesIO(data), mode="r:*") as tf:
        for m in tf.getmembers():
            if m.name.startswith(("/", "..")) or "/../" in m.name:
                raise RuntimeError(f"cached environment {key} has an unsafe path {m.name}")
        if hasattr(tarfile, "fully_trusted_filter"):  # our own pack: its links point at the image's Python
            tf.extractall(tmp, filter="fully_trusted")
        else:
            tf.extractall(tmp)
    manifest = json.load(open(os.path.join(tmp, "offload-boot.json")))
    old = manifest["root"]
    if old != root:  # moved: re-point what names the old place (uv-managed Python only)
        for dirpath, _dirs, files in os.walk(os.path.join(tmp, "venv", "bin")):
            for f in files:
                p = os.path.join(dirpath, f)
                if os.path.islink(p) and os.readlink(p).startswith(old + "/"):
                    target = root + os.readlink(p)[len(old):]
                    os.unlink(p)
                    os.symlink(target, p)
        cfg = os.path.join(tmp, "venv", "pyvenv.cfg")
        with open(cfg) as fh:
            text = fh.read()
        with open(cfg, "w") as fh:
            fh.write(text.replace(old + "/", root + "/"))
    shutil.rmtree(root, ignore_errors=True)
    os.rename(tmp, root)
    log(f"environment restored from the store ({len(data) // 2**20} MB, {time.time() - t:.1f} s)")
    return True


def _pack(key, root):
    """Pack the environment into the store for the next machine (written once: first one wins)."""
    t = time.time()
    buf = __import__("io").BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tf:
        for name in ("venv", "python", "offload-boot.json"):
            path = os.path.join(root, name)
            if os.path.exists(path):
                tf.add(path, arcname=name)
    gcs_put(key, buf.getvalue(), "application/gzip")
    log(f"environment packed into the store for the next machine ({len(buf.getvalue()) // 2**20} MB, {time.time() - t:.1f} s)")


def _probe(python, env):
    # find_spec, not import: importing papermill and the Google clients costs many seconds
    probe = ("import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in "
             "('papermill', 'nbformat', 'gcsfs', 'ipykernel', 'yaml', 'offload.runner')))")
    return subprocess.run([python, "-c", probe], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def build_env(root, wheel, work, md):
    """Python of the runner's environment under ``root``: restored from the store or built."""
    base, py_version = _base_python(md["python"])
    key = _env_key(md["boot_env"], py_version, base) if md["boot_env"] else None
    python = os.path.join(root, "venv", "bin", "python")
    env = dict(os.environ, UV_PYTHON_INSTALL_DIR=os.path.join(root, "python"), UV_NO_PROGRESS="1")
    if md["index"]:
        env["UV_DEFAULT_INDEX"] = md["index"]
    try:
        if key and _restore(key, root):
            # the cache holds the dependencies; the client's code is installed fresh (it changes often)
            _run([os.path.join(root, "venv", "bin", "uv"), "pip", "install", "--quiet", "--no-deps", "--reinstall",
                  "--python", python, wheel], "installed jupyter-offload " + md["version"], env)
            if _probe(python, env):
                return python
            log("the restored environment lacks a dependency; building a new one")
    except Exception as exc:  # a damaged or foreign pack costs a build, not the job
        log(f"cannot use the stored environment ({type(exc).__name__}: {exc}); building a new one")
    index = md["index"] or "https://pypi.org/simple"
    uv, uv_wheel = fetch_uv(index, md["uv_version"], work)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    with open(os.path.join(root, "offload-boot.json"), "w") as fh:
        json.dump({"root": root, "wheel": os.path.basename(wheel), "python": py_version, "key": key}, fh)
    cmd = [uv, "venv", "--quiet", "--relocatable", "--python", base or py_version, os.path.join(root, "venv")]
    if base:  # the image's packages stay visible (a Deep Learning VM's torch); installs go to the venv
        cmd.insert(3, "--system-site-packages")
    _run(cmd, f"created the environment's virtual environment (Python {py_version})", env)
    reqs = os.path.join(work, "requirements.txt")
    with open(reqs, "w") as fh:
        fh.write("\n".join(md["requirements"] + [uv_wheel]) + "\n")
    # compiled once here and packed with the rest: every later VM imports without compiling
    _run([uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", python, "-r", reqs],
         "installed the runner's dependencies", env)
    _run([uv, "pip", "install", "--quiet", "--no-deps", "--python", python, wheel],
         "installed jupyter-offload " + md["version"], env)
    if key:
        try:
            _pack(key, root)
        except Exception as exc:  # the job does not need the cache: say so and go on
            log(f"could not pack the environment into the store ({exc}); the next machine builds it")
    return python


def run_runner(python, env):
    """Run the runner, its output on the console; one that dies before its first status (a broken
    import, a missing library) fails the job here with its last lines instead of leaving it to the
    client's boot watchdog."""
    proc = subprocess.Popen([python, "-m", "offload.runner", _ctx["store"], _ctx["job"]], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # A stopping VM (preemption, self-delete) signals every process: the runner handles it (it
    # says why it stops); this parent stays to carry the runner's output to the console.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    tail = []
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace").rstrip()
        print(line, flush=True)
        tail = (tail + [line])[-15:]
    rc = proc.wait()
    if rc == 0:
        return
    try:
        gcs_get("jobs/{}/status.json".format(_ctx["job"]))
        return  # it reported: the job's status says how it ended
    except urllib.error.HTTPError as e:
        if e.code != 404:
            return
    raise RuntimeError("the runner exited with code {} before reporting: {}".format(rc, " | ".join(tail[-6:])))


def _root():
    home = os.environ.get("HOME")
    return os.path.join(home, ".offload-boot") if home and home != "/" else "/var/lib/offload"


def main():
    step = "reading instance metadata"
    try:
        _ctx["job"] = _md("instance/attributes/offload-job-id")
        _ctx["store"] = _md("instance/attributes/offload-store")
        md = {
            "wheel": _md("instance/attributes/offload-wheel"),
            "version": _md("instance/attributes/offload-version", ""),
            "index": _md("instance/attributes/offload-index-url", ""),
            "requirements": [r for r in _md("instance/attributes/offload-requirements", "").splitlines() if r.strip()],
            "boot_env": _md("instance/attributes/offload-boot-env", ""),
            "uv_version": _md("instance/attributes/offload-uv-version", ""),
            "python": _md("instance/attributes/offload-python", "") or "3.12",
        }
        if not _ctx["store"].startswith("gs://"):
            raise ValueError("store {!r} is not a gs:// URL".format(_ctx["store"]))
        log("VM {} in {}: python {} at {}; job {}".format(
            _md("instance/name"), _md("instance/zone").rsplit("/", 1)[-1], sys.version.split()[0],
            os.path.realpath(sys.executable), _ctx["job"]))
        step = "downloading jupyter-offload " + md["version"]
        work = tempfile.mkdtemp(prefix="offload-boot-")
        wheel = os.path.join(work, md["wheel"].rsplit("/", 1)[-1])
        with open(wheel, "wb") as fh:
            fh.write(gcs_get(md["wheel"]))
        step = "installing jupyter-offload " + md["version"]
        lib = os.path.join(work, "lib")
        with zipfile.ZipFile(wheel) as zf:  # a bad download fails here, before anything is built
            zf.extractall(lib)
        env = dict(os.environ, GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false", PYTHONUNBUFFERED="1",
                   OFFLOAD_BOOT_T0=str(_T0))
        env.pop("NO_GCE_CHECK", None)
        if md["index"]:
            env["UV_DEFAULT_INDEX"] = md["index"]  # the runner's isolated environments use it too
        step = "checking the image's Python"
        if _probe(sys.executable, dict(env, PYTHONPATH=lib + os.pathsep + env.get("PYTHONPATH", ""))):
            log("the image's Python already has every dependency; running the wheel as it is")
            python = sys.executable
            env["PYTHONPATH"] = lib + os.pathsep + env.get("PYTHONPATH", "")
        else:
            step = "preparing the runner's environment"
            python = build_env(_root(), wheel, work, md)
        step = "starting the runner"
        log("starting python -m offload.runner for job {}".format(_ctx["job"]))
        env["OFFLOAD_BOOT_S"] = f"{time.time() - _T0:.3f}"
        os.chdir(work)
        run_runner(python, env)
    except SystemExit:
        raise
    except BaseException as exc:
        fail(step, exc)


if __name__ == "__main__":
    main()
