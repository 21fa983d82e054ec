"""Content-addressed snapshot of what a job needs: the notebook, local modules and declared data.

Blobs are stored by sha256, so a second run of an unchanged project uploads nothing but a small
manifest, and a changed file uploads only itself. Secrets never leave the machine: default ignore
rules drop credential-looking files by name, a content scan (:mod:`._secrets`: detect-secrets'
detectors plus the project's rules, over every byte of every file) drops files holding a key or
token whatever their name and size, and ``.offloadignore`` (gitignore syntax) adds the project's
own rules. What is left out, and why, is in ``Bundle.excluded`` before anything is uploaded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pathspec

from offload.errors import UsageError
from offload.spec import FINAL_STATES
from offload.store import Store, layout

if TYPE_CHECKING:
    from offload.snapshot._secrets import Finding

__all__ = [
    "Bundle",
    "FileEntry",
    "StageReport",
    "build_bundle",
    "stage",
    "materialize",
    "collect_garbage",
    "ignore_spec",
    "human_size",
    "DEFAULT_IGNORES",
]

SECRET_PATTERNS = [
    ".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa*", "id_dsa*", "id_ecdsa*",
    "id_ed25519*", "*credentials*.json", "*service-account*.json", "*service_account*.json",
    ".netrc", ".pypirc", ".git-credentials", ".aws/", ".ssh/", ".gnupg/", "**/.config/gcloud/",
    ".kube/", "*.kdbx",
    # package managers and container registries keep tokens here
    ".npmrc", ".yarnrc", ".docker/", "**/.cargo/credentials*", "**/.gem/credentials", "**/.config/gh/",
    ".terraformrc", "*.tfstate", "*.tfstate.*", ".pgpass", ".my.cnf", "*.jks", "*.keystore",
    # environment files under other names (direnv, `prod.env`, `secrets.env`)
    ".envrc", "*.env",
]
JUNK_PATTERNS = [
    ".git/", ".hg/", ".svn/", "__pycache__/", "*.pyc", ".ipynb_checkpoints/", ".venv/", "venv/",
    ".tox/", ".nox/", "node_modules/", ".mypy_cache/", ".pytest_cache/", ".ruff_cache/",
    ".DS_Store", ".offload-demo/",
]
DEFAULT_IGNORES = SECRET_PATTERNS + JUNK_PATTERNS
_SECRET_SPEC = pathspec.PathSpec.from_lines("gitwildmatch", SECRET_PATTERNS)
_WHEELS = layout.WHEELS
_IGNORED = "ignore rule"  # why a file matched by DEFAULT_IGNORES or .offloadignore is left out


@dataclass
class FileEntry:
    path: str  # POSIX, relative to the project root
    sha256: str
    size: int
    mode: int


@dataclass
class Bundle:
    root: Path
    notebook: str
    files: dict[str, FileEntry] = field(default_factory=dict)
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    env: dict | None = None  # the EnvSpec the job's environment is built from
    # Files held in memory, not on disk (path -> bytes): a notebook passed as an object. They
    # are hashed, staged and materialized like any other file; nothing is written locally.
    contents: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def manifest(self) -> dict:
        return {
            "version": 1,
            "notebook": self.notebook,
            "env": self.env,
            "files": {p: {"sha256": e.sha256, "size": e.size, "mode": e.mode} for p, e in sorted(self.files.items())},
        }

    @property
    def id(self) -> str:
        canon = json.dumps(self.manifest, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(canon).hexdigest()[:24]

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.files.values())

    def report(self) -> str:
        """Human summary shown before upload: what goes, how big, what was left out and why."""
        lines = [f"{len(self.files)} files, {human_size(self.total_bytes)}"]
        for e in sorted(self.files.values(), key=lambda e: -e.size)[:10]:
            lines.append(f"  {human_size(e.size):>9}  {e.path}")
        if len(self.files) > 10:
            lines.append(f"  ... and {len(self.files) - 10} more")
        lines += [f"  {line}" for line in self.left_out()]
        return "\n".join(lines)

    def left_out(self, *, limit: int = 10) -> list[str]:
        """What is left out and why, one line each, secrets first and all of them; files left out
        by ignore rules (caches, checkpoints) up to ``limit``, then a count."""
        secrets = [(p, why) for p, why in self.excluded if why != _IGNORED]
        ignored = [p for p, why in self.excluded if why == _IGNORED]
        lines = [f"left out {p}: {why}" for p, why in secrets]
        lines += [f"left out {p}: {_IGNORED}" for p in ignored[:limit]]
        if len(ignored) > limit:
            lines.append(f"... and {len(ignored) - limit} more left out by ignore rules")
        return lines


@dataclass
class StageReport:
    bundle_id: str
    files: int
    bytes: int
    uploaded_blobs: int
    uploaded_bytes: int


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def ignore_spec(root: Path) -> pathspec.PathSpec:
    """The default ignores plus the project's ``.offloadignore``; compiled once per version of
    that file (a warm ``%%offload`` stages a bundle per cell: compiling costs about 1 ms)."""
    custom = root / ".offloadignore"
    try:
        st = custom.stat()
        version: tuple = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        version = ()
    return _compiled_ignores(str(custom), version)


@functools.lru_cache(maxsize=16)
def _compiled_ignores(custom: str, version: tuple) -> pathspec.PathSpec:
    lines = list(DEFAULT_IGNORES)
    if version:
        try:
            lines += Path(custom).read_text().splitlines()
        except FileNotFoundError:
            pass
    return pathspec.PathSpec.from_lines("gitwildmatch", lines)


def _hash_file(path: Path, rel: str) -> tuple[str, int, Finding | None]:
    """sha256, size, and the first secret found in the file's content (the whole file is read
    for the hash anyway; the scan rides along, chunk by chunk, whatever the file's size)."""
    # detect-secrets is imported here, at the first scan: the runner materializes bundles and
    # `offload ls` lists jobs without scanning anything (its import costs 0.1-0.2 s)
    from offload.snapshot._secrets import ContentScan

    h = hashlib.sha256()
    size = 0
    scan = ContentScan(rel)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            scan.feed(chunk)
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size, scan.close()


def _is_venv(d: Path) -> bool:
    return (d / "pyvenv.cfg").exists() or (d / "conda-meta").is_dir()


def build_bundle(
    root: str | Path,
    notebook: str | Path,
    *,
    nb: nbformat.NotebookNode | None = None,
    include: list[str | Path] = (),
    data: list[str | Path] = (),
    modules: list[str | Path] = (),
    allow_secrets: list[str | Path] = (),
    validate: bool = True,
) -> Bundle:
    """Snapshot ``notebook`` plus ``include`` (local modules) and ``data`` paths under ``root``.

    Paths may be files or directories, absolute or relative to ``root``; all must stay inside it
    so they land at the same relative path remotely. With ``nb`` (a notebook held in memory),
    ``notebook`` is the path it would have (relative paths taken under ``root``) and its bytes
    are ``nbformat.writes(nb)``: nothing is read from or written to that path.

    ``modules`` are the local files dependency detection found (shipped like ``include``). A file
    that looks like a secret (by name or content) is left out and listed in ``bundle.excluded``;
    a file the user named in ``include`` or ``data`` is an error instead, unless it is in
    ``allow_secrets`` (shipped on purpose). ``validate=False``: ``nb`` was generated by offload
    itself (a ``%%offload`` cell job) and is written without checking it against the schema again.
    """
    root = Path(root).resolve()
    spec = ignore_spec(root)
    if nb is None:
        nb_path = Path(notebook).resolve()
    else:
        nb_path = Path(notebook).expanduser()
        nb_path = (nb_path if nb_path.is_absolute() else root / nb_path).resolve()
    bundle = Bundle(root=root, notebook=_relative(root, nb_path, "notebook"))
    allowed = {_relative(root, (root / a) if not Path(a).is_absolute() else Path(a), "allowed secret")
               for a in allow_secrets}

    def admit(rel: str, *, named: str | None = None) -> bool:
        if rel in allowed and _secret_name(rel):
            return True
        if spec.match_file(rel):
            secret = _secret_name(rel)
            if secret and named:
                _refuse_secret(rel, "its name looks like a credential", named)
            bundle.excluded.append((rel, "its name looks like a credential" if secret else _IGNORED))
            return False
        return True

    def add_file(p: Path, *, named: str | None = None) -> None:
        rel = _relative(root, p, "path")
        if not admit(rel, named=named):
            return
        try:
            sha, size, secret = _hash_file(p, rel)
        except OSError as exc:
            raise UsageError(f"cannot read {rel}: {exc.strerror}", hint="check its permissions, or leave it out") from None
        if secret and rel != bundle.notebook and rel not in allowed:  # the notebook being run is the user's own
            if named:
                _refuse_secret(rel, f"it {secret.why()}", named)
            bundle.excluded.append((rel, secret.why()))
            return
        bundle.files[rel] = FileEntry(rel, sha, size, stat.S_IMODE(p.stat().st_mode))

    if nb is None:
        add_file(nb_path)
    elif admit(bundle.notebook):
        # validate=False: the notebook's own JSON as nbformat writes it, minus the schema check
        # and the copy it makes to split sources into lines (a string source is valid nbformat)
        text = nbformat.writes(nb) if validate else json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False)
        body = text.encode("utf-8")
        sha = hashlib.sha256(body).hexdigest()
        bundle.files[bundle.notebook] = FileEntry(bundle.notebook, sha, len(body), 0o644)
        bundle.contents[bundle.notebook] = body
    named = [*(("include", i) for i in include), *(("data", d) for d in data), *((None, m) for m in modules)]
    for field_name, item in named:
        p = Path(item)
        p = (root / p) if not p.is_absolute() else p
        if not p.exists():
            raise UsageError(f"data path {item} does not exist", hint="pass a file or directory inside the project")
        if not os.access(p, os.R_OK):
            raise UsageError(f"data path {item} is not readable", hint="check its permissions")
        p = p.resolve()
        _relative(root, p, "data path")
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                d = Path(dirpath)
                dirnames[:] = sorted(
                    n for n in dirnames
                    if not spec.match_file(_relative(root, d / n, "path") + "/") and not _is_venv(d / n)
                )
                for name in sorted(filenames):
                    f = d / name
                    if f.is_file() and _relative(root, f, "path") not in bundle.contents:
                        add_file(f)
        elif _relative(root, p, "path") not in bundle.contents:
            add_file(p, named=field_name)
    return bundle


def _refuse_secret(rel: str, why: str, field: str) -> None:
    """A file the user named explicitly is never dropped in silence: say so, and how to ship it."""
    raise UsageError(f"{rel} looks like a secret, so it is not shipped: {why}", field=field,
                     hint=f"leave it out, or ship it on purpose with --allow-secret {rel}")


def _secret_name(rel: str) -> bool:
    return _SECRET_SPEC.match_file(rel)


def _relative(root: Path, p: Path, what: str) -> str:
    try:
        return p.resolve().relative_to(root).as_posix()
    except ValueError:
        raise UsageError(
            f"{what} {p} is outside the project root {root}",
            hint="move it under the project, or run from a directory that contains both",
        ) from None


def stage(bundle: Bundle, store: Store) -> StageReport:
    """Upload the blobs the store lacks, then the manifest; return what was uploaded."""
    needed = {e.sha256: e for e in bundle.files.values()}

    def missing(sha: str) -> bool:
        return not store.exists(layout.blob_key(sha))

    def upload(e: FileEntry) -> None:
        if e.path in bundle.contents:
            store.put_bytes(layout.blob_key(e.sha256), bundle.contents[e.path])
        else:
            store.put_file(bundle.root / e.path, layout.blob_key(e.sha256))

    if store.local:  # microseconds per object: no threads
        todo = [needed[sha] for sha in needed if missing(sha)]
        for e in todo:
            upload(e)
    else:
        with ThreadPoolExecutor(max_workers=16) as pool:
            flags = list(pool.map(missing, needed))
            todo = [needed[sha] for sha, m in zip(needed, flags, strict=True) if m]
            list(pool.map(upload, todo))
    key = layout.bundle_key(bundle.id)
    if not store.exists(key):
        store.put_json(key, bundle.manifest)
    return StageReport(bundle.id, len(bundle.files), bundle.total_bytes, len(todo), sum(e.size for e in todo))


def materialize(store: Store, bundle_id: str, dest: str | Path) -> dict:
    """Recreate the bundle's files under ``dest`` (runner side); return the manifest."""
    dest = Path(dest)
    manifest = store.get_json(layout.bundle_key(bundle_id))
    for rel, entry in manifest["files"].items():
        target = dest / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise UsageError(f"bundle {bundle_id} holds an unsafe path {rel!r}")
        target.parent.mkdir(parents=True, exist_ok=True)
        key = layout.blob_key(entry["sha256"])
        if store.local:
            shutil.copyfile(store.path(key), target)
        else:
            store.get_file(key, target)
        os.chmod(target, entry.get("mode", 0o644) | stat.S_IRUSR | stat.S_IWUSR)
    return manifest


def collect_garbage(store: Store, *, dry_run: bool = False, grace_s: float = 86400.0) -> list[str]:
    """Delete staging no job refers to: bundles and blobs of no job's spec, and client wheels.

    Only objects older than ``grace_s`` go, so a submission that has uploaded blobs but not yet
    written its spec is never raced. Job records and their outputs are never touched.
    """
    keep_bundles: set[str] = set()
    for job_id in store.list_dirs(layout.JOBS):
        spec = store.get_json(layout.job_key(job_id, "spec.json"), None) or {}
        if spec.get("bundle_id"):
            keep_bundles.add(spec["bundle_id"])
    keep_blobs: set[str] = set()
    stale: list[str] = []
    now = time.time()

    def old(key: str) -> bool:
        mtime = store.modified(key)
        return mtime is not None and now - mtime > grace_s

    for key in store.list(layout.BUNDLES):
        bundle_id = key.rsplit("/", 1)[-1].removesuffix(".json")
        if bundle_id in keep_bundles or not old(key):
            manifest = store.get_json(key, None) or {}
            keep_blobs.update(e["sha256"] for e in manifest.get("files", {}).values())
        else:
            stale.append(key)
    for key in store.list(layout.BLOBS):
        if key.rsplit("/", 1)[-1] not in keep_blobs and old(key):
            stale.append(key)
    for key in store.list(_WHEELS):
        if old(key) and not _wheel_in_use(store, key):
            stale.append(key)
    if not dry_run:
        for key in stale:
            store.delete(key)
    return stale


def _wheel_in_use(store: Store, key: str) -> bool:
    """A client wheel is in use while an active job's handle names it."""
    for job_id in store.list_dirs(layout.JOBS):
        status = store.get_json(layout.job_key(job_id, "status.json"), None) or {}
        if status.get("state") in FINAL_STATES:
            continue
        handle = store.get_json(layout.job_key(job_id, "handle.json"), None) or {}
        if key in json.dumps(handle):
            return True
    return False
