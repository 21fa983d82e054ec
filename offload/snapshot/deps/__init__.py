"""Dependency snapshot: what a notebook needs installed remotely, and why.

``snapshot(notebook)`` reads every code cell (and the project's local modules it reaches),
maps each import to the distribution that provides it *in the environment that runs the
notebook* (read from installed metadata, never by importing user packages), and returns an
``EnvSpec``: the Python version, pinned requirements with the reason for each, the local files
to ship, and what it could not resolve, with a hint. A remote run that dies after a ten-minute VM
boot because one import was missed is the most expensive bug a user can hit, so every decision
here favours an explicit report over a silent guess; in particular an import that no installed
distribution provides is *never* turned into a package-index name (dependency confusion).

Static analysis handles: imports at any depth in every cell, each cell parsed on its own;
IPython magics and shell lines (``%pip``/``!pip install`` including VCS URLs and flags,
``%load_ext``, ``%run file.py`` followed, ``%%writefile`` modules treated as local);
``importlib.import_module("x")`` / ``__import__("x")`` literals; ``try/except ImportError``
imports reported as optional; local modules and packages (next to the notebook, in ``sys.path``
additions, under the project root) followed recursively; namespace packages; import names that
differ from distribution names; editable and VCS installs; local version labels (``+cpu``); the
live kernel's loaded modules; and ``requirements.txt`` / ``pyproject.toml`` / ``environment.yml``
/ ``uv.lock`` files next to the notebook, reconciled with the imports.
"""

from offload.snapshot.deps.detect import snapshot
from offload.snapshot.deps.environment import EnvIndex, load_environment
from offload.snapshot.deps.model import EnvSpec, Requirement
from offload.snapshot.deps.render import FORMATS, render

__all__ = ["EnvIndex", "EnvSpec", "FORMATS", "Requirement", "load_environment", "render", "snapshot"]
