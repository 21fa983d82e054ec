"""Where a job's code came from: the project's git commit, branch, remote and uncommitted changes.

:func:`capture` runs at submit, on the client, over the project root (the folder the bundle is
cut from). It records what a reader of the run needs to find the code again:

``commit``, ``branch`` (None when detached), ``remote`` (name and URL of the upstream, else
``origin``, else the first remote; user names, passwords and tokens are taken out of URLs),
``dirty`` and a ``diff`` of the uncommitted changes against ``HEAD`` (staged and unstaged edits,
and untracked files that git does not ignore) with a per-file summary (``files``).

The diff is bounded: a file's patch over :data:`MAX_FILE_DIFF` bytes, or one that would take the
whole diff past :data:`MAX_DIFF` bytes, is left out and listed with its size (``omitted``).
Every file's patch is searched with the bundle's secret scanner (:mod:`._secrets`, detect-secrets
and the project's rules) over the file's new and old lines, and its name is checked against the
bundle's secret-file rules (``.env``, ``id_rsa``, ``credentials.json`` ...): such a patch is
withheld and listed with why (``withheld``), so a key pasted into a config file never reaches the
store through the diff.

Nothing here fails a submit: git missing, no repository, an unreadable repository each give a
record that says so (``git: null`` with a ``note``). git runs without a shell, without pager,
external diff or textconv drivers, and with a timeout.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pathspec

from offload.snapshot.bundle import SECRET_PATTERNS

__all__ = ["MAX_DIFF", "MAX_FILE_DIFF", "capture", "clean_remote_url", "split_patches", "summary_line"]

MAX_DIFF = 512 * 1024  # bytes of diff kept in the record, all files together
MAX_FILE_DIFF = 128 * 1024  # one file's patch over this is listed, not kept (a notebook's images)
MAX_UNTRACKED = 200  # untracked files listed; their patches are part of the diff (bounded as above)
GIT_TIMEOUT_S = 20.0

_SECRET_NAMES = pathspec.PathSpec.from_lines("gitwildmatch", SECRET_PATTERNS)  # .env, id_rsa, ... (the bundle's)
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}


class _GitError(Exception):
    pass


def _git(root: Path, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    env = {**os.environ, **_GIT_ENV}
    try:
        proc = subprocess.run(
            ["git", "-c", "core.quotepath=off", "-c", "color.ui=false", *args], cwd=root, env=env,
            capture_output=True, timeout=GIT_TIMEOUT_S, check=False,
        )
    except FileNotFoundError:
        raise _GitError("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise _GitError(f"git {args[0]} took longer than {GIT_TIMEOUT_S:.0f} s") from None
    if proc.returncode not in ok:
        raise _GitError((proc.stderr.decode(errors="replace").strip() or f"git {args[0]} failed").splitlines()[-1])
    return proc.stdout.decode("utf-8", errors="replace")


def clean_remote_url(url: str) -> str:
    """A remote's URL without credentials: ``https://user:token@host/x`` -> ``https://host/x``
    (a token may sit in the user part alone), ``ssh://git:pw@host/x`` -> ``ssh://git@host/x``;
    scp-like ``git@host:org/x.git`` and local paths are kept; a ``?token=`` query is dropped."""
    url = url.strip()
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable remote URL>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username if parts.scheme in ("ssh", "git+ssh", "ssh+git") and parts.username else None
    netloc = f"{user}@{host}" if user else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _remote(root: Path) -> dict[str, str] | None:
    names = _git(root, "remote").split()
    if not names:
        return None
    name = None
    try:  # the branch's upstream remote when it has one
        upstream = _git(root, "rev-parse", "--abbrev-ref", "--symbolic-full-name", "@{upstream}").strip()
        name = upstream.split("/", 1)[0] if upstream.split("/", 1)[0] in names else None
    except _GitError:
        pass
    name = name or ("origin" if "origin" in names else names[0])
    url = _git(root, "remote", "get-url", name).strip()
    return {"name": name, "url": clean_remote_url(url)}


_DIFF_HEADER = re.compile(r"^diff --git ", re.M)


def split_patches(diff: str) -> list[str]:
    """A multi-file diff as one patch per file."""
    starts = [m.start() for m in _DIFF_HEADER.finditer(diff)]
    if not starts:
        return []
    return [diff[a:b] for a, b in zip(starts, [*starts[1:], len(diff)], strict=True)]


def _patch_path(patch: str) -> str:
    """The file a patch is about: its new name (``+++ b/``), else its old one (a deletion)."""
    new = old = None
    for line in patch.splitlines()[1:8]:
        if line.startswith("+++ b/"):
            new = line[6:]
        elif line.startswith("--- a/"):
            old = line[6:]
        elif line.startswith("rename to "):
            new = line[len("rename to "):]
    if new or old:
        return new or old
    m = re.match(r"diff --git a/(.*) b/(.*)$", patch.split("\n", 1)[0])
    return m.group(2) if m else "?"


def _patch_counts(patch: str) -> tuple[int, int, bool]:
    added = removed = 0
    binary = False
    body = False
    for line in patch.splitlines():
        if line.startswith("@@"):
            body = True
        elif line.startswith("Binary files ") or line.startswith("GIT binary patch"):
            binary = True
        elif body and line.startswith("+"):
            added += 1
        elif body and line.startswith("-"):
            removed += 1
    return added, removed, binary


def _secret_in(path: str, patch: str) -> str | None:
    """What the secret scanner finds in the patch's lines (prefixes taken off), or None."""
    lines, body = [], False
    for line in patch.splitlines():
        if line.startswith("@@"):
            body = True
        elif body and line[:1] in ("+", "-", " "):
            lines.append(line[1:])
    from offload.snapshot._secrets import ContentScan  # detect-secrets: imported at the first scan

    scan = ContentScan(path)
    scan.feed(("\n".join(lines) + "\n").encode())
    found = scan.close()
    return f"{found.kind}" if found else None


def _untracked(root: Path) -> list[str]:
    out = _git(root, "ls-files", "--others", "--exclude-standard", "-z")
    return [p for p in out.split("\0") if p]


def _untracked_patch(root: Path, rel: str, *, limit: int) -> str:
    """A new file as git shows it (``diff --git a/f b/f``, ``new file mode``, one hunk of ``+``
    lines), made here rather than by a ``git diff --no-index`` per file; a file over ``limit``
    bytes is only named (its size is what is said about it)."""
    path = root / rel
    head = f"diff --git a/{rel} b/{rel}\nnew file mode {'100755' if os.access(path, os.X_OK) else '100644'}\n"
    try:
        if path.stat().st_size > limit:
            return head + f"+++ b/{rel}\n# {path.stat().st_size} bytes\n"  # too big to read: named, sized
        data = path.read_bytes()
    except OSError:
        return ""
    if b"\0" in data[:8192]:
        return head + f"Binary files /dev/null and b/{rel} differ\n"
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if not lines:
        return head
    body = "".join(f"+{line}\n" for line in lines)
    tail = "" if text.endswith("\n") else "\\ No newline at end of file\n"
    return head + f"--- /dev/null\n+++ b/{rel}\n@@ -0,0 +1{',' + str(len(lines)) if len(lines) != 1 else ''} @@\n" + body + tail


def capture(root: str | os.PathLike, *, max_diff: int = MAX_DIFF, max_file_diff: int = MAX_FILE_DIFF) -> dict[str, Any]:
    """The provenance record of the project at ``root`` (see the module's docstring)."""
    root = Path(root)
    record: dict[str, Any] = {"captured_at": time.time(), "project_root": str(root), "git": None}
    try:
        top = _git(root, "rev-parse", "--show-toplevel").strip()
    except _GitError as exc:
        record["note"] = "not a git checkout" if "not a git repository" in str(exc).lower() else str(exc)
        return record
    except OSError as exc:  # the folder itself is unreadable
        record["note"] = str(exc)
        return record
    top_path = Path(top)
    try:
        git = _describe(top_path, max_diff=max_diff, max_file_diff=max_file_diff)
    except _GitError as exc:
        record["note"] = f"git: {exc}"
        return record
    try:
        git["subdir"] = root.resolve().relative_to(top_path.resolve()).as_posix()
    except ValueError:
        git["subdir"] = None
    record["git"] = git
    return record


def _describe(top: Path, *, max_diff: int, max_file_diff: int) -> dict[str, Any]:
    try:
        commit = _git(top, "rev-parse", "--verify", "-q", "HEAD").strip() or None
    except _GitError:
        commit = None  # a repository without a commit yet
    branch = None
    try:
        branch = _git(top, "symbolic-ref", "--short", "-q", "HEAD").strip() or None
    except _GitError:
        pass  # detached HEAD
    info: dict[str, Any] = {"commit": commit, "branch": branch, "remote": None}
    try:
        info["remote"] = _remote(top)
    except _GitError:
        pass
    if commit:
        info["commit_time"] = int(_git(top, "show", "-s", "--format=%ct", commit).strip() or 0) or None
        info["subject"] = _git(top, "show", "-s", "--format=%s", commit).strip()[:200]
        tracked = _git(top, "diff", "HEAD", "--no-ext-diff", "--no-textconv", "-M", "--")
    else:  # nothing committed: everything staged is the change
        tracked = _git(top, "diff", "--cached", "--no-ext-diff", "--no-textconv", "--")
    untracked = _untracked(top)
    patches = split_patches(tracked)
    patches += [_untracked_patch(top, rel, limit=max_file_diff) for rel in untracked[:MAX_UNTRACKED]]
    files, kept, omitted, withheld = [], [], [], []
    total = 0
    full_bytes = 0
    for patch in patches:
        if not patch:
            continue
        path = _patch_path(patch)
        added, removed, binary = _patch_counts(patch)
        size = len(patch.encode())
        big = re.search(r"^# (\d+) bytes$", patch, re.M) if path in untracked else None
        if big:  # an untracked file too big to read: its own size stands for its patch's
            size = int(big.group(1))
        full_bytes += size
        status = "untracked" if path in untracked else "modified"
        files.append({"path": path, "added": added, "removed": removed, "binary": binary, "status": status})
        if _SECRET_NAMES.match_file(path):
            withheld.append({"path": path, "why": "its name marks a secret (the bundle leaves it out too)"})
            continue
        secret = _secret_in(path, patch)
        if secret:
            withheld.append({"path": path, "why": f"contains a secret ({secret})"})
            continue
        if size > max_file_diff or total + size > max_diff:
            omitted.append({"path": path, "bytes": size,
                            "why": "over the per-file limit" if size > max_file_diff else "over the diff limit"})
            continue
        kept.append(patch)
        total += size
    info.update(
        dirty=bool(files) or len(untracked) > MAX_UNTRACKED,
        files=files,
        untracked_not_listed=max(0, len(untracked) - MAX_UNTRACKED),
        diff="".join(kept),
        diff_bytes=full_bytes,
        omitted=omitted,
        withheld=withheld,
    )
    return info


def summary_line(record: dict[str, Any] | None) -> str:
    """One line for ``offload show``: ``abc1234 on main (clean) origin https://...``."""
    if not record:
        return "not recorded"
    git = record.get("git")
    if not git:
        return record.get("note") or "not a git checkout"
    parts = [(git.get("commit") or "no commit yet")[:12]]
    parts.append(f"on {git['branch']}" if git.get("branch") else "(detached HEAD)")
    files = git.get("files") or []
    if git.get("dirty"):
        plus = sum(f.get("added", 0) for f in files)
        minus = sum(f.get("removed", 0) for f in files)
        parts.append(f"(uncommitted: {len(files)} file{'s' if len(files) != 1 else ''}, +{plus} -{minus})")
    else:
        parts.append("(clean)")
    remote = git.get("remote")
    if remote:
        parts.append(f"{remote['name']} {remote['url']}")
    return " ".join(parts)
