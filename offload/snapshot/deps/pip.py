"""``pip install`` lines in a notebook (``%pip``, ``!pip``, ``conda``, ``uv pip``): what they install.

A package named on an install line is a name the user chose, so detection may use it for an
import that is not installed here; the line's flags, indexes and redirections are skipped.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from offload.snapshot.deps.model import InvalidRequirement, canonicalize_name, parse_requirement

__all__ = ["PipLine", "shell_pip", "pip_token"]

_VCS = re.compile(r"^(git|hg|svn|bzr)\+")


@dataclass
class PipLine:
    """A ``%pip install`` / ``!pip install`` (or conda) line found in a cell."""

    text: str
    where: str
    tool: str  # pip | conda
    requirements: list[str] = field(default_factory=list)  # requirement strings / URLs
    editables: list[str] = field(default_factory=list)
    requirement_files: list[str] = field(default_factory=list)
    uninstall: bool = False


_PIP_CMD = re.compile(
    r"^(?:(?:\{[^}]*\}|\S*python[\d.]*|\$\S+|\S*/python[\d.]*)\s+-m\s+)?(pip3?|conda|mamba|micromamba|uv\s+pip)\s+(install|uninstall)\b(.*)$"
)


def shell_pip(cmd: str, where: str) -> PipLine | None:
    """Parse one shell command (``pip install ...``) into a PipLine; None if it is not one."""
    for part in re.split(r"\s*(?:&&|;|\|\|)\s*", cmd.strip()):
        m = _PIP_CMD.match(part.strip())
        if m:
            return _parse_pip_args(part.strip(), m.group(1), m.group(2), m.group(3), where)
    return None


def _parse_pip_args(text: str, tool: str, verb: str, args: str, where: str) -> PipLine:
    tool = "conda" if tool in ("conda", "mamba", "micromamba") else "pip"
    line = PipLine(text=text, where=where, tool=tool, uninstall=verb == "uninstall")
    try:
        tokens = shlex.split(args, comments=True)
    except ValueError:
        tokens = args.split()
    takes_value = {
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "-c",
        "--constraint",
        "--target",
        "-t",
        "--prefix",
        "--root",
        "--src",
        "--platform",
        "--python-version",
        "--implementation",
        "--abi",
        "--trusted-host",
        "--cache-dir",
        "--progress-bar",
        "--upgrade-strategy",
        "--log",
        "--proxy",
        "--timeout",
        "--retries",
        "--only-binary",
        "--no-binary",
        "--config-settings",
        "-C",
        "--global-option",
        "--report",
        "-n",
        "--name",
        "-p",
        "--channel",
    }
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("-r", "--requirement"):
            if i + 1 < len(tokens):
                line.requirement_files.append(tokens[i + 1])
            i += 2
            continue
        if tok.startswith("--requirement=") or (tok.startswith("-r") and len(tok) > 2):
            line.requirement_files.append(tok.split("=", 1)[-1] if "=" in tok else tok[2:])
        elif tok in ("-e", "--editable"):
            if i + 1 < len(tokens):
                line.editables.append(tokens[i + 1])
            i += 2
            continue
        elif tok in takes_value:
            i += 2
            continue
        elif tok.startswith("-"):
            pass
        elif tok.startswith(("$", "{")) or tok in (">", ">>", "2>&1", "|"):
            if tok in (">", ">>", "|"):
                break
        elif tok:
            line.requirements.append(tok)
        i += 1
    return line


def pip_token(raw: str) -> tuple[str | None, str, str]:
    """(canonical name or None, requirement line, source) for one ``pip install`` argument."""
    raw = raw.strip().strip("'\"")
    if _VCS.match(raw):
        m = re.search(r"#egg=([\w.\-]+)", raw)
        if m:
            name = m.group(1)
        else:
            path = re.sub(r"[@#].*$", "", raw.split("://", 1)[-1]).rstrip("/")
            name = path.rsplit("/", 1)[-1]
            name = name[:-4] if name.endswith(".git") else name
        return canonicalize_name(name), f"{name} @ {raw}", "vcs"
    if raw.startswith(("http://", "https://")):
        fname = raw.rsplit("/", 1)[-1]
        m = re.match(r"^([A-Za-z0-9_.]+?)-\d", fname)
        return (canonicalize_name(m.group(1)) if m else None), raw, "url"
    if raw.startswith((".", "/", "~")) or raw.endswith((".whl", ".tar.gz", ".zip")):
        return None, raw, "file"
    try:
        r = parse_requirement(raw)
    except InvalidRequirement:
        return None, raw, "pypi"
    src = (
        "vcs" if r.url and _VCS.match(r.url) else ("url" if r.url else "pypi")
    )
    return canonicalize_name(r.name), raw, src
