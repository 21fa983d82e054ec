"""Build an ``EnvSpec`` into a Python environment with uv, once per env hash.

The second job with the same dependency snapshot must not pay for the environment again, so a
built environment lives in ``cache_dir/<env-hash>/`` with a ready marker written last; a later
call finds the marker and returns at once. Concurrent jobs of one machine that need the same
environment serialize on a file lock, and the one that comes second finds it ready.

The environment always contains ``ipykernel`` (the runner starts the notebook's kernel in it) and
the ``offload`` package of this very version (copied from the running source, so
``offload.log_metric`` inside the notebook writes where the runner reads), and nothing else but
the snapshot's install set: on the local backend that proves the snapshot is complete.

A machine whose disk goes with its job (a GCE VM) would build the same environment again on
every boot, so :func:`provide_env` also keeps built environments in the store: the first machine
packs its environment (a relocatable uv virtual environment, tar.gz) under
``envs/packs/<env hash>/<accelerator>-py<python>-<platform>.tar.gz`` and a later machine unpacks
it instead of building: no package index, no resolver, no installer (``docs/gce.md`` has the
measurements that chose a packed virtual environment over shipping uv's cache). ``platform``
names the OS, the CPU and the base interpreter (its path: the virtual environment links to it).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from offload._version import __version__
from offload.errors import OffloadError
from offload.paths import data_dir
from offload.snapshot.deps import EnvSpec, load_environment
from offload.store import Store, layout

__all__ = ["prepare_env", "provide_env", "PreparedEnv", "EnvBuildError", "find_uv", "env_dir",
           "default_cache_dir", "CACHE_ENV"]

CACHE_ENV = "OFFLOAD_ENV_CACHE"  # overrides where built environments live on this machine

READY = ".offload-ready.json"
KERNEL_PACKAGES = ("ipykernel",)


class EnvBuildError(OffloadError):
    """The environment could not be built from the snapshot."""

    exit_code = 7


def find_uv() -> list[str]:
    """Command prefix that runs uv: next to this interpreter, on PATH, or ``python -m uv``."""
    here = Path(sys.executable).parent
    for cand in (here / "uv", here / "uv.exe"):
        if cand.exists():
            return [str(cand)]
    found = shutil.which("uv")
    if found:
        return [found]
    try:
        import uv  # type: ignore[import-not-found]

        return [uv.find_uv_bin()]
    except Exception:  # noqa: BLE001 - any failure means: not installed here
        pass
    raise EnvBuildError(
        "uv is not installed, and it builds isolated environments",
        hint="pip install uv (or use --env kernel)",
    )


def default_cache_dir() -> Path:
    """Built environments on this machine: ``$OFFLOAD_ENV_CACHE``, else ``envs/`` in the data dir."""
    return Path(os.environ.get(CACHE_ENV) or data_dir() / "envs")


@dataclass
class PreparedEnv:
    """An environment ready to run: its Python, and where it came from.

    ``cache``: ``hit`` (already on this machine, or unpacked from the store's cache), ``built``
    (built here and packed into the store for the next machine), ``miss`` (built here, not
    stored: no store cache for this machine, or the upload failed). ``source``: ``machine``,
    ``store`` or ``index`` (built from the package index)."""

    python: Path
    cache: str
    source: str
    pack_key: str | None = None


def env_dir(env: EnvSpec, cache_dir: Path, accelerator: str | None = None) -> Path:
    key = env.env_hash[:32] + (f"-{accelerator}" if accelerator else "")
    return Path(cache_dir) / key


def _python_for(env: EnvSpec, python: str | None, uv: list[str] | None) -> str:
    """An interpreter with the snapshot's Python major.minor."""
    want = ".".join(env.python.split(".")[:2])
    if python:
        return python
    have = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if have == want:
        return sys.executable
    found = shutil.which(f"python{want}")
    if found:
        return found
    out = subprocess.run([*(uv or find_uv()), "python", "find", want], capture_output=True, text=True)
    if out.returncode == 0 and out.stdout.strip():
        return out.stdout.strip()
    raise EnvBuildError(
        f"no Python {want} interpreter here (the snapshot was taken with Python {env.python})",
        hint=f"install Python {want} (uv python install {want}) or pass python=",
    )


def _lock(path: Path):
    """Exclusive advisory lock on ``path`` (held until the returned file is closed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115 - closed by the caller
    try:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    except ImportError:  # pragma: no cover - Windows: msvcrt locks a byte range
        import msvcrt

        while True:
            try:
                msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK, 1)
                break
            except OSError:
                time.sleep(0.2)
    return fh


def _ready(target: Path) -> Path | None:
    marker = target / READY
    if not marker.exists():
        return None
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    py = Path(info.get("python", ""))
    return py if py.exists() else None


def _install_offload(site: Path) -> None:
    """Put this version of the ``offload`` package into ``site`` (a copy plus a dist-info).

    Copying the package instead of building a wheel needs no build backend and no network, and
    it is exactly the code the client runs."""
    src = Path(__file__).resolve().parents[1]  # offload/runner/environment.py -> offload/
    dest = site / "offload"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    info = site / f"jupyter_offload-{__version__}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: jupyter-offload\nVersion: {__version__}\n"
    )
    (info / "INSTALLER").write_text("offload\n")
    records = [
        f"{p.relative_to(site).as_posix()},," for p in sorted(dest.rglob("*")) if p.is_file()
    ]
    records += [f"{info.name}/METADATA,,", f"{info.name}/INSTALLER,,", f"{info.name}/RECORD,,"]
    (info / "RECORD").write_text("\n".join(records) + "\n")


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def _install_lines(
    env: EnvSpec, include_optional: bool, base_python: str | None, reuse_base: bool
) -> tuple[list[str], list[str]]:
    """(lines to install, lines the base interpreter already satisfies)."""
    lines: list[str] = []
    reused: list[str] = []
    base = load_environment(base_python) if reuse_base else None
    for r in env.requirements:
        if r.optional and not include_optional:
            continue
        if r.source in ("editable", "file") and r.spec.startswith(("-e ", ".")):
            continue  # project source: shipped as files, importable from the project dir
        if base is not None and r.source == "pypi" and r.version:
            have = base.dists.get(r.name)
            if have and have.get("version", "").split("+")[0] == r.version.split("+")[0]:
                reused.append(r.spec)
                continue
        lines.append(r.spec)
    return sorted(set(lines)), reused


def prepare_env(
    env: EnvSpec,
    *,
    cache_dir: Path,
    python: str | None = None,
    accelerator: str | None = None,
    include_optional: bool = False,
    reuse_base: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Return the Python executable of an environment holding ``env``'s install set.

    ``python``: the base interpreter (default: one with the snapshot's major.minor).
    ``accelerator``: ``cpu``, ``cu121``, ``auto``... picks PyTorch's build through uv's torch
    backend (default: the package index's own build, CUDA on Linux).
    ``reuse_base``: create the environment on top of the base interpreter's packages (a GPU
    image's preinstalled torch) and skip every pinned distribution it already has at that version.
    """
    return provide_env(env, cache_dir=cache_dir, python=python, accelerator=accelerator,
                       include_optional=include_optional, reuse_base=reuse_base, log=log).python


def provide_env(
    env: EnvSpec,
    *,
    cache_dir: Path,
    python: str | None = None,
    accelerator: str | None = None,
    include_optional: bool = False,
    reuse_base: bool = False,
    store: Store | None = None,
    log: Callable[[str], None] | None = None,
) -> PreparedEnv:
    """:func:`prepare_env`, saying where the environment came from; with ``store``, a built
    environment is packed into the store and a missing one is unpacked from it when there."""
    say = log or (lambda _msg: None)
    cache_dir = Path(cache_dir)
    target = env_dir(env, cache_dir, accelerator)
    hit = _ready(target)
    if hit is not None:
        return PreparedEnv(hit, "hit", "machine")
    fh = _lock(cache_dir / f"{target.name}.lock")
    try:
        hit = _ready(target)  # built by whoever held the lock before us
        if hit is not None:
            return PreparedEnv(hit, "hit", "machine")
        key = None
        if store is not None and not reuse_base:  # an env over the image's packages stays local
            base = _python_for(env, python, None)
            key = pack_key(env, accelerator, base)
            got = _unpack(store, key, target, say)
            if got is not None:
                return PreparedEnv(got, "hit", "store", key)
        py = _build(env, target, python, accelerator, include_optional, reuse_base, say)
        if key is None or store is None:
            return PreparedEnv(py, "miss", "index")
        try:
            _pack(store, key, target, say)
            return PreparedEnv(py, "built", "index", key)
        except Exception as exc:  # the job has its environment; only the next machine pays
            say(f"could not store the environment for the next machine: {exc}")
            return PreparedEnv(py, "miss", "index", key)
    finally:
        fh.close()


def _interpreter_tag(base: str) -> str:
    """OS, CPU and the base interpreter (path and version) a relocatable environment links to."""
    real = os.path.realpath(base)
    ident = hashlib.sha256(real.encode()).hexdigest()[:8]
    return f"{sys.platform}-{platform.machine().lower()}-{ident}"


def pack_key(env: EnvSpec, accelerator: str | None, base: str) -> str:
    """Store key of ``env`` built over interpreter ``base`` (layout.env_pack_key)."""
    py = ".".join(env.python.split(".")[:2])
    return layout.env_pack_key(env.env_hash, accelerator or "cpu", py, _interpreter_tag(base))


def _pack(store: Store, key: str, target: Path, say: Callable[[str], None]) -> None:
    if store.exists(key):  # another machine stored it first: same inputs, same environment
        return
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="offload-envpack-") as tmp:
        path = Path(tmp) / "env.tar.gz"
        with tarfile.open(path, "w:gz", compresslevel=1) as tf:
            tf.add(target, arcname="env")
        store.put_file(path, key)
        size = path.stat().st_size
    say(f"environment stored for the next machine ({size / 2**20:.0f} MiB, {time.time() - t0:.1f} s)")


def _unpack(store: Store, key: str, target: Path, say: Callable[[str], None]) -> Path | None:
    """Unpack ``key`` into ``target``; None when the store has no such environment."""
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="offload-envpack-", dir=target.parent) as tmp:
        path = Path(tmp) / "env.tar.gz"
        try:
            store.get_file(key, path)
        except (KeyError, FileNotFoundError):
            return None
        # one streaming pass (reading the members first would decompress everything twice);
        # our own pack: its links point at the base interpreter, outside the environment
        trusted = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
        with tarfile.open(path, "r|gz") as tf:
            for member in tf:
                if not (member.name == "env" or member.name.startswith("env/")) or ".." in member.name:
                    raise EnvBuildError(f"the stored environment {key} has an unsafe path ({member.name})",
                                        hint=f"delete it from the store ({key}); the next job builds it again")
                tf.extract(member, tmp, set_attrs=not member.isdir(), **trusted)
        if target.exists():
            shutil.rmtree(target)
        os.replace(Path(tmp) / "env", target)
    marker = target / READY
    info = json.loads(marker.read_text())
    py = target / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    try:
        _install_offload(_site_packages(py))  # this machine's offload, whichever packed the rest
    except (OSError, subprocess.CalledProcessError):
        shutil.rmtree(target, ignore_errors=True)  # its base interpreter is not here after all: build
        say(f"the stored environment {key} does not run here; building it")
        return None
    info.update(python=str(py), restored_from=key, restored_at=time.time())
    marker.write_text(json.dumps(info, indent=1))
    say(f"environment unpacked from the store in {time.time() - t0:.1f} s (built once in "
        f"{info.get('build_s', 0):.0f} s on another machine)")
    return py


def _build(
    env: EnvSpec,
    target: Path,
    python: str | None,
    accelerator: str | None,
    include_optional: bool,
    reuse_base: bool,
    say: Callable[[str], None],
) -> Path:
    t0 = time.time()
    uv = find_uv()
    base = _python_for(env, python, uv)
    if target.exists():  # a build that died half-way
        shutil.rmtree(target, ignore_errors=True)
    lines, reused = _install_lines(env, include_optional, base, reuse_base)
    kernel = list(env.kernel_pins) or list(KERNEL_PACKAGES)  # the kernel the notebook ran in
    if not any(k.split("==")[0] == "ipykernel" for k in kernel):
        kernel.append("ipykernel")
    # ipykernel >= 7 in every isolated environment: kernel subshells (offload attach, a console
    # beside the running cell); an older pin from the user's kernel is raised to it
    kernel = ["ipykernel>=7" if k.startswith("ipykernel==") and k[11:].split(".")[0].isdigit()
              and int(k[11:].split(".")[0]) < 7 else k
              for k in kernel]
    say(f"building environment (uv): {len(lines)} packages + {', '.join(kernel)}, Python {env.python} "
        f"[{target.name[:12]}]")
    # relocatable: the same environment works unpacked elsewhere (the store's cache, another machine)
    cmd = [*uv, "venv", "--quiet", "--relocatable", "--python", base, str(target)]
    if reuse_base:
        cmd.insert(3, "--system-site-packages")
    _run(cmd, "create the virtual environment")
    py = target / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    req_file = target / "offload-requirements.txt"
    req_file.write_text("\n".join(lines + kernel) + "\n")
    install = [*uv, "pip", "install", "--python", str(py), "-r", str(req_file)]
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        # Python will never cache what it compiles here, so every job's kernel and runner would
        # compile every module again: compile once now. Otherwise the first import caches only the
        # modules a job uses, far cheaper than compiling all (16 s vs 1 s measured on the
        # scientific stack of bench_env.py) on a VM that lives for one job.
        install.append("--compile-bytecode")
    if accelerator:
        install += ["--torch-backend", accelerator]
    _run(install, "install the snapshot's packages", say=say)
    _install_offload(_site_packages(py))
    (target / READY).write_text(
        json.dumps(
            {
                "python": str(py),
                "env_hash": env.env_hash,
                "installed": lines,
                "reused_from_base": reused,
                "build_s": round(time.time() - t0, 3),
                "built_at": time.time(),
            },
            indent=1,
        )
    )
    say(f"environment ready in {time.time() - t0:.1f} s")
    return py


def _run(cmd: list[str], what: str, say: Callable[[str], None] | None = None) -> None:
    if say is None:
        out = subprocess.run(cmd, capture_output=True, text=True)
        code, text = out.returncode, out.stderr or out.stdout
    else:  # stream uv's progress lines ("Resolved 12 packages in 1.2s") into the job's log
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seen: list[str] = []
        for ln in proc.stdout or []:
            seen.append(ln)
            if re.match(r"^\s*(Resolved|Prepared|Installed|Uninstalled|Audited|Downloading|Built)\b", ln):
                say(f"  uv: {ln.strip()}")
        code, text = proc.wait(), "".join(seen)
    if code != 0:
        err = [ln for ln in text.splitlines() if ln.strip()]
        err = [re.sub(r"^[\s×╰─▶│|]+", "", ln).strip() for ln in err]
        detail = next((ln for ln in err if re.search(r"because|not found", ln, re.I)), "") or next(
            (ln for ln in err if re.search(r"error", ln, re.I)), ""
        )
        raise EnvBuildError(
            f"could not {what}: {(detail or (err[-1] if err else 'uv failed')).strip()}",
            hint="check the package names and versions in `offload deps` (or pin them in "
            "requirements.txt)",
        )
