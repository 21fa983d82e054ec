"""``snapshot(notebook)``: what a notebook needs installed remotely, and why, as an ``EnvSpec``.

The run, step by step: read the code cells (from the file, or from a notebook held in memory);
index the environment that runs the notebook; read the dependency files around it; walk the
imports (:class:`~offload.snapshot.deps.resolve.ImportWalk`); then build the install set:
installed distributions the imports use, imports nothing installed provides (satisfied by a
dependency file or a pip line, else unresolved), pip lines the imports did not use, the live
kernel's extra modules, the user's additions, and what the dependency files declare beyond that.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

import nbformat

from offload.errors import NotebookError, UsageError
from offload.notebook import code_cells, read_notebook
from offload.snapshot.deps.conda import pypi_name
from offload.snapshot.deps.data import data_files
from offload.snapshot.deps.declared import (
    Declared,
    DeclaredFiles,
    collect_declared,
    parse_requirements_file,
)
from offload.snapshot.deps.environment import EnvIndex, load_environment
from offload.snapshot.deps.model import (
    EnvSpec,
    InvalidRequirement,
    Requirement,
    canonicalize_name,
    dedupe,
    parse_requirement,
    relative_to,
)
from offload.snapshot.deps.pins import apply_lock, requirement_from_dist
from offload.snapshot.deps.pip import pip_token
from offload.snapshot.deps.resolve import NEUTRAL_TOP, ImportWalk, closure
from offload.snapshot.deps.root import find_project_root
from offload.snapshot.deps.scan import Found

__all__ = ["snapshot"]

# Import names whose distribution is named differently. Used ONLY to recognise an entry the user
# declared (requirements.txt, a pip line) for a module that is not installed here; never to put
# a name on the install list by itself (that would be guessing on the package index).
_DECLARED_ALIASES = {
    "sklearn": ["scikit-learn"],
    "cv2": [
        "opencv-python",
        "opencv-contrib-python",
        "opencv-python-headless",
        "opencv-contrib-python-headless",
    ],
    "PIL": ["pillow"],
    "yaml": ["pyyaml"],
    "bs4": ["beautifulsoup4"],
    "skimage": ["scikit-image"],
    "osgeo": ["gdal"],
    "dateutil": ["python-dateutil"],
    "attr": ["attrs"],
    "OpenSSL": ["pyopenssl"],
    "Crypto": ["pycryptodome"],
    "jwt": ["pyjwt"],
    "dotenv": ["python-dotenv"],
    "git": ["gitpython"],
    "zmq": ["pyzmq"],
    "fitz": ["pymupdf"],
    "docx": ["python-docx"],
    "serial": ["pyserial"],
    "magic": ["python-magic"],
}
# The kernel's own machinery: never reported as "loaded in the live kernel".
_KERNEL_DISTS = {
    "ipykernel",
    "ipython",
    "jupyter-client",
    "pyzmq",
    "tornado",
    "traitlets",
    "jupyter-core",
    "comm",
    "debugpy",
    "jupyter-offload",
}

# Recorded in every snapshot: the versions of the kernel the notebook ran in.
_KERNEL_RECORD = (
    "ipython", "ipykernel", "jupyter-client", "jupyter-core", "traitlets", "comm", "matplotlib-inline",
    "pyzmq", "tornado", "ipython-genutils", "debugpy",
)
# Pinned to those versions in an isolated environment (the kernel the notebook ran in), plus any
# other kernel-provided distribution the code imports.
_KERNEL_PINNED = ("ipykernel", "ipython", "matplotlib-inline")
_KERNEL_IMPORTS = {"IPython": "ipython", "ipykernel": "ipykernel", "ipython_genutils": "ipython-genutils"}

PipRequests = dict[str, tuple[str, str, str]]  # canonical name -> (spec, where, source)


def snapshot(
    notebook: str | os.PathLike,
    *,
    nb: nbformat.NotebookNode | None = None,
    project_root: str | os.PathLike | None = None,
    python: str | os.PathLike | None = None,
    kernel_modules: Iterable[str] | None = None,
    overrides: dict | None = None,
    server_root: str | os.PathLike | None = None,
) -> EnvSpec:
    """Detect what ``notebook`` needs.

    ``nb`` is the notebook held in memory (nothing is read from or written to disk for it):
    ``notebook`` is then the path it would have, relative paths taken under ``project_root``;
    ``project_root`` bounds the local files that ship (default: found by
    :func:`~offload.snapshot.deps.root.find_project_root`: the nearest folder with a VCS or
    packaging marker, else ``server_root`` (the Jupyter server's root), else the notebook's folder,
    widened by the notebook's ``sys.path`` literals);
    ``python`` is the interpreter whose environment runs the notebook (default: this one);
    ``kernel_modules`` are ``sys.modules`` names from a live kernel, merged with the static
    result; ``overrides`` (merged over ``[tool.offload.deps]`` of the project's pyproject.toml):
    ``map`` {import: distribution}, ``add`` [requirement lines], ``ignore`` [import names].
    """
    t0 = time.perf_counter()
    if nb is None:
        nb_path, root = _locate_file(notebook, project_root)
        cells = code_cells(read_notebook(nb_path, validate=False))  # bad input fails early
    else:
        nb_path, root = _locate_in_memory(notebook, project_root)
        cells = code_cells(nb)
    env = load_environment(python)
    root_why = "given (--project-root)"
    if not project_root:
        root, root_why = find_project_root(
            nb_path, cells, server_root=server_root,
            installed=lambda top: env.is_stdlib(top) or env.resolve(top)[1] != "none",
        )
    declared = collect_declared(nb_path.parent, root)
    options = {**declared.overrides, **(overrides or {})}

    walk = ImportWalk(nb_path, root, env, options)
    walk.scan_cells(cells)
    walk.resolve_all()
    pip_named = _pip_requests(walk, root)
    _ship_project_installs(walk, env, root)

    reqs: dict[str, Requirement] = {}
    _add_used(walk, env, root, declared, reqs)
    _add_missing(walk, env, declared, pip_named, reqs)
    _add_pip_leftovers(walk, env, root, pip_named, reqs)
    if kernel_modules:
        _merge_kernel(walk, env, reqs, kernel_modules)
    _add_user_lines(walk, options, reqs)
    source = _reconcile_declared(walk, env, root, declared, reqs)
    _environment_notes(walk, env, reqs)

    nb_rel = relative_to(nb_path, root)
    pins = _kernel_pins(walk, env, reqs)
    data = data_files(
        walk.data_refs, nb_dir=nb_path.parent, root=root, shipped=set(walk.local_files) | {nb_rel or ""}
    )
    spec = EnvSpec(
        python=env.python,
        requirements=sorted(reqs.values(), key=lambda r: r.name),
        local_files=sorted(f for f in walk.local_files if f != nb_rel),
        unresolved=sorted(walk.unresolved.values(), key=lambda u: u["module"]),
        notes=dedupe(walk.notes),
        source=source,
        local_modules=sorted(walk.local_modules.values(), key=lambda m: m["path"]),
        neutral=sorted(walk.neutral),
        platform=env.info.get("platform", ""),
        conda=bool(env.info.get("conda")),
        project_root=str(root),
        project_root_why=root_why,
        data_files=data,
        kernel=_kernel_versions(env),
        kernel_pins=pins,
        not_in_kernel=walk.not_in_kernel,
    )
    spec._elapsed = time.perf_counter() - t0  # type: ignore[attr-defined]
    return spec


# --------------------------------------------------------------------------------------------
# Where the notebook is


def _project_root(project_root: str | os.PathLike | None) -> Path | None:
    if not project_root:
        return None
    root = Path(project_root).expanduser().resolve()
    if not root.is_dir():
        raise UsageError(
            f"project root is not a directory: {project_root}",
            hint="pass the folder that holds the notebook and its modules",
        )
    return root


def _check_inside(nb_path: Path, root: Path) -> None:
    if root not in nb_path.parents:
        raise UsageError(
            f"the notebook {nb_path} is not inside the project root {root}",
            hint="pass a project root that contains the notebook",
        )


def _locate_file(notebook: str | os.PathLike, project_root) -> tuple[Path, Path]:
    """(notebook path, project root) for a notebook on disk."""
    nb_path = Path(notebook).expanduser()
    if nb_path.suffix != ".ipynb" and nb_path.is_file():
        raise NotebookError(f"{nb_path.name} is not a notebook (.ipynb)", hint="pass a .ipynb file")
    nb_path = nb_path.resolve() if nb_path.exists() else nb_path
    root = _project_root(project_root) or nb_path.parent
    if nb_path.exists():
        _check_inside(nb_path, root)
    return nb_path, root


def _locate_in_memory(notebook: str | os.PathLike, project_root) -> tuple[Path, Path]:
    """(the path the notebook would have, project root) for a notebook held in memory."""
    nb_path = Path(notebook).expanduser()
    if nb_path.suffix != ".ipynb":
        raise NotebookError(
            f"{nb_path.name} is not a notebook name (.ipynb)",
            hint="name the in-memory notebook as its file would be named, e.g. train.ipynb",
        )
    root = _project_root(project_root)
    if not nb_path.is_absolute():
        nb_path = (root or Path.cwd()) / nb_path
    nb_path = nb_path.resolve()
    root = root or nb_path.parent
    _check_inside(nb_path, root)
    return nb_path, root


# --------------------------------------------------------------------------------------------
# The install set, step by step


def _pip_requests(walk: ImportWalk, root: Path) -> PipRequests:
    """Distributions the notebook's pip lines name: chosen by the user, not guesses."""
    pip_named: PipRequests = {}
    for pl in walk.pip_lines:
        if pl.uninstall:
            continue
        for raw in pl.requirements:
            if pl.tool == "conda":  # conda names: python-graphviz is PyPI's graphviz
                cname, _, ver = raw.split("::")[-1].strip("'\"").partition("=")
                pname = pypi_name(re.split(r"[<>!~ ]", cname)[0])
                if pname:
                    ver = ver.lstrip("=")
                    exact = ver if re.fullmatch(r"[\w.]+", ver or "") else ""
                    pip_named.setdefault(pname, (f"{pname}=={exact}" if exact else pname, pl.where, "pypi"))
                continue
            name, spec, src = pip_token(raw)
            if name:
                pip_named.setdefault(name, (spec, pl.where, src))
        for ed in pl.editables:
            p = (walk.nb_dir / ed).resolve()
            if relative_to(p, root) is not None and p.is_dir():
                walk.notes.append(
                    f"{pl.where} installs {ed} in editable mode: shipped as project files"
                )
        for rf in pl.requirement_files:
            p = (walk.nb_dir / rf).resolve()
            for e in parse_requirements_file(p, relative_to(p, root) or rf, set()):
                pip_named.setdefault(e.name, (e.spec, pl.where, e.source))
    return pip_named


def _ship_project_installs(walk: ImportWalk, env: EnvIndex, root: Path) -> None:
    """Editable / local-folder installs from inside the project ship as source: scan them too
    (what they import may bring more of them)."""
    shipped: set[str] = set()
    while True:
        todo = [k for k in walk.uses if k not in shipped and k in env.dists]
        if not todo:
            return
        for key in todo:
            shipped.add(key)
            r = requirement_from_dist(env.dists[key], root, [])
            if r.source in ("editable", "file") and r.spec.startswith(("-e ", ".")):
                walk.ship_project_source(key, r.spec.split()[-1], walk.uses[key][0].where)


def _add_used(
    walk: ImportWalk,
    env: EnvIndex,
    root: Path,
    declared: DeclaredFiles,
    reqs: dict[str, Requirement],
) -> None:
    """Installed distributions the imports use, pinned as installed."""
    for key, sites in walk.uses.items():
        optional = all(s.optional for s in sites)
        reasons = dedupe([_reason(s) for s in sites])
        info = env.dists.get(key)
        dec = declared.entries.get(key)
        if info is None:  # mapped by the user to a distribution not installed here
            version, spec = (dec.version, dec.spec) if dec else (None, key)
            reqs[key] = Requirement(key, version, reasons, optional, "declared", spec)
            continue
        r = requirement_from_dist(info, root, walk.notes)
        r.reasons = reasons
        r.optional = optional
        if dec is not None:
            r.declared_in = dec.file.split(", ")
        reqs[key] = r


def _norm_import(name: str) -> str:
    return canonicalize_name(name.replace("_", "-"))


def _add_missing(
    walk: ImportWalk,
    env: EnvIndex,
    declared: DeclaredFiles,
    pip_named: PipRequests,
    reqs: dict[str, Requirement],
) -> None:
    """Imports nothing installed provides: declared by the user (a dependency file, a pip
    line), else unresolved with a hint. Never turned into a package-index name."""
    for module, sites in walk.missing.items():
        top = module.split(".")[0]
        optional = all(s.optional for s in sites)
        cands = [_norm_import(module), _norm_import(top)]
        cands += [canonicalize_name(a) for a in _DECLARED_ALIASES.get(top, [])]
        dec, pip = _declared_match(cands, declared, pip_named)
        reasons = [_reason(s) for s in sites]
        if dec is not None:
            src = "declared" if dec.source == "pypi" else dec.source
            r = reqs.get(dec.name) or Requirement(
                dec.name, dec.version, [], optional, src, dec.spec
            )
            r.reasons = dedupe(r.reasons + reasons)
            r.declared_in = dec.file.split(", ")
            r.optional = r.optional and optional
            reqs[dec.name] = r
            walk.notes.append(
                f"'{module}' is not installed in {env.info.get('executable')}; "
                f"using {dec.spec!r} from {dec.file}"
            )
            if not optional:
                walk.not_in_kernel.append({"module": module, "where": sites[0].where, "dist": dec.name})
            continue
        if pip is not None:
            spec, where, src = pip
            name = _norm_import(top)
            reasons = dedupe(reasons + [f"pip install in {where}"])
            src = src if src != "pypi" else "declared"
            reqs[name] = Requirement(name, None, reasons, optional, src, spec)
            continue  # (the notebook installs it itself before the import)
        where = sites[0].where
        if all(s.py2_fallback for s in sites):
            walk.notes.append(
                f"'{module}' ({where}) is the Python 2 fallback of a try/except ImportError: "
                "not needed on Python 3"
            )
            continue
        if optional:
            walk.optional_unresolved.setdefault(module, []).append(where)
            continue
        entry = {"module": module, "where": where, "hint": _missing_hint(env, top)}
        also = [
            s for m, ss in walk.missing.items() if m.split(".")[0] == top for s in ss if s.optional
        ]
        dead = {walk.unreachable(s) for s in sites if not s.optional}
        if also:
            entry.update(
                optional=True,
                why=f"also imported under try/except ImportError ({also[0].where}): "
                "the notebook is written to run without it",
            )
        elif None not in dead:
            fns = ", ".join(f"{fn}()" for fn in sorted(dead))
            entry.update(
                optional=True,
                why=f"only imported inside {fns}, which the notebook never calls",
            )
        walk.unresolved.setdefault(module, entry)


def _declared_match(
    cands: list[str], declared: DeclaredFiles, pip_named: PipRequests
) -> tuple[Declared | None, tuple[str, str, str] | None]:
    """The first candidate name a dependency file or a pip line declares (one of the two)."""
    for c in cands:
        if c in declared.entries:
            return declared.entries[c], None
        if c in pip_named:
            return None, pip_named[c]
    return None, None


def _missing_hint(env: EnvIndex, top: str) -> str:
    on_path = env.find_on_path(top)
    if on_path:
        return (
            f"found at {on_path} but no installed distribution declares it; install it "
            "as a package or move it into the project"
        )
    return (
        f"not installed in {env.info.get('executable')} and not a project file; "
        "install it where the kernel runs, or map it in pyproject.toml "
        f'[tool.offload.deps] map = {{{top} = "<distribution>"}}'
    )


def _add_pip_leftovers(
    walk: ImportWalk, env: EnvIndex, root: Path, pip_named: PipRequests, reqs: dict
) -> None:
    """Pip-line entries the imports did not use: the notebook installs them itself at run time."""
    for name, (spec, where, src) in pip_named.items():
        if name in reqs:
            r = reqs[name]
            r.reasons = dedupe(r.reasons + [f"pip install in {where}"])
            continue
        info = env.dists.get(name)
        r = (
            requirement_from_dist(info, root, walk.notes)
            if info
            else Requirement(name, None, [], True, src if src != "pypi" else "declared", spec)
        )
        r.reasons = [f"pip install in {where} (not imported; the cell installs it at run time)"]
        r.optional = True
        reqs[name] = r


def _add_user_lines(walk: ImportWalk, options: dict, reqs: dict[str, Requirement]) -> None:
    """``add`` lines of the overrides: installed as written."""
    for line in options.get("add") or []:
        try:
            pr = parse_requirement(str(line))
        except InvalidRequirement:
            walk.notes.append(f"ignored override {line!r}: not a requirement line")
            continue
        key = canonicalize_name(pr.name)
        reqs[key] = Requirement(
            key, None, ["added in [tool.offload.deps] add"], False, "declared", str(line)
        )


def _reconcile_declared(
    walk: ImportWalk,
    env: EnvIndex,
    root: Path,
    declared: DeclaredFiles,
    reqs: dict[str, Requirement],
) -> str:
    """Square the install set with the dependency files: say what they miss, apply their locks,
    and list what they declare but nothing imports as optional (tools or leftovers). Returns
    the spec's ``source``: the nearest dependency file, or ``detected``."""
    if not declared.files:
        return "detected"
    missing_from_files = sorted(
        k for k, r in reqs.items() if not r.optional and k not in declared.entries
    )
    if missing_from_files:
        walk.notes.append(
            f"{', '.join(declared.files)} do not list {', '.join(missing_from_files)} "
            "(imported by the notebook): add them there"
        )
    for key, dec in declared.entries.items():
        if key in reqs:
            if not reqs[key].declared_in:
                reqs[key].declared_in = dec.file.split(", ")
            reqs[key].reasons = dedupe(reqs[key].reasons + [f"declared in {dec.file}"])
            apply_lock(reqs[key], dec, walk.notes)
            continue
        info = env.dists.get(key)
        r = (
            requirement_from_dist(info, root, [])
            if info
            else Requirement(key, dec.version, [], True, "declared", dec.spec)
        )
        r.optional = True
        r.declared_in = dec.file.split(", ")
        r.reasons = [f"declared in {dec.file} (not imported by the notebook)"]
        reqs[key] = r
    return Path(declared.files[0]).name


def _environment_notes(walk: ImportWalk, env: EnvIndex, reqs: dict[str, Requirement]) -> None:
    """Notes about the local environment: conda, kernel-provided modules, optional imports not
    installed here, and local build labels dropped."""
    if env.info.get("conda"):
        conda_dists = sorted(
            k
            for k, r in reqs.items()
            if not r.optional and (env.dists.get(k) or {}).get("installer") == "conda"
        )
        walk.notes.append(
            f"the kernel runs in a conda environment ({env.info.get('prefix')})"
            + (
                f"; installed by conda, installed from PyPI remotely: {', '.join(conda_dists)}"
                if conda_dists
                else ""
            )
        )
    other = sorted(walk.neutral - walk.kernel_imports)
    if other:
        walk.notes.append(f"provided by the kernel, not installed: {', '.join(other)}")
    for module, wheres in sorted(walk.optional_unresolved.items()):
        walk.notes.append(
            f"optional import '{module}' ({wheres[0]}) is not installed here; the "
            "notebook runs without it"
        )
    accel = sorted(r.name for r in reqs.values() if r.local_label and not r.optional)
    if accel:
        walk.notes.append(
            "local build labels dropped for "
            + ", ".join(f"{reqs[a].name} {reqs[a].version}" for a in accel)
            + ": the remote installs the build that matches its accelerator (CUDA on a GPU)"
        )


def _merge_kernel(
    walk: ImportWalk, env: EnvIndex, reqs: dict[str, Requirement], kernel_modules: Iterable[str]
) -> None:
    """Add distributions behind modules the live kernel loaded that neither the static scan nor
    the closure of what it found explains (e.g. ``exec``'d imports, packages a local module
    loads by computed name). The kernel's own machinery is left out."""
    explained = closure(env, set(reqs) | closure(env, _KERNEL_DISTS))
    tops = sorted({m.split(".")[0] for m in kernel_modules if m and not m.startswith("_")})
    found: dict[str, str] = {}  # distribution -> the top-level module that brought it
    for top in tops:
        if env.is_stdlib(top) or top in NEUTRAL_TOP or top in walk.local_modules:
            continue
        dists, status = env.resolve(top)
        if status != "ok":
            continue
        for d in dists:
            if d not in explained and d not in reqs:
                found.setdefault(d, top)
    # keep only the roots: numpy loaded because pandas was is pandas' business
    for d, top in sorted(found.items()):
        if d in closure(env, {o for o in found if o != d}):
            continue
        r = requirement_from_dist(env.dists[d], walk.root, walk.notes)
        r.reasons = [f"loaded in the live kernel ({top})"]
        reqs[d] = r


def _kernel_versions(env: EnvIndex) -> dict[str, str]:
    return {d: env.dists[d]["version"] for d in _KERNEL_RECORD if d in env.dists and env.dists[d].get("version")}


def _kernel_pins(walk: ImportWalk, env: EnvIndex, reqs: dict[str, Requirement]) -> list[str]:
    """``dist==version`` of the kernel's own distributions an isolated environment reproduces
    (the notebook's ``from IPython.display import ...`` behaves as it did here)."""
    wanted = list(_KERNEL_PINNED) + [_KERNEL_IMPORTS[t] for t in sorted(walk.kernel_imports) if t in _KERNEL_IMPORTS]
    pins = []
    for d in dict.fromkeys(wanted):
        info = env.dists.get(d)
        if d in reqs or not info or not info.get("version"):
            continue
        pins.append(f"{d}=={info['version'].split('+')[0]}")
    if walk.kernel_imports:
        used = ", ".join(sorted(walk.kernel_imports))
        walk.notes.append(
            f"provided by the kernel: {used}; an isolated environment pins "
            + (", ".join(pins) if pins else "nothing (no kernel packages in this environment)")
            + " to this kernel's versions"
        )
    return pins


def _reason(f: Found) -> str:
    verb = {
        "load_ext": "%load_ext",
        "dynamic": "imported dynamically",
        "matplotlib": "%matplotlib",
    }.get(f.kind, "imported")
    place = f"in {f.where}" if f.where.startswith("cell") else f"by {f.where}"
    if f.kind == "load_ext":
        return f"%load_ext {f.module} {place}"
    if f.kind == "matplotlib":
        return f"%matplotlib {place}"
    extra = " (optional: under try/except ImportError)" if f.optional else ""
    if f.py2_fallback:
        extra = " (Python 2 fallback under except ImportError: not needed on Python 3)"
    return f"{verb} {place}{extra}"
