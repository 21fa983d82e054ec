"""Start-up trimming for the processes the package itself starts (the runner, the ``offload`` CLI).

Each trial of a sweep is a runner process, and on a small machine the runners' start-up CPU is
what bounds a sweep's wall time; a CLI verb such as ``offload ls`` should answer at once. Three
optional imports nothing here uses cost about 2.3 s of CPU: jsonschema's IRI and duration format
checkers (``rfc3987_syntax`` builds a grammar at import, ``isoduration`` pulls in arrow; nbformat's
schema uses neither format), and papermill's ``gs://`` I/O handler (gcsfs: the runner gives
papermill local paths, and the store imports gcsfs itself, later, when its URL is ``gs://``). Both
libraries import them inside ``except ImportError``, so a ``None`` in ``sys.modules`` makes them
skip the feature. Never called in a process the user owns (a kernel, the Jupyter server).
"""

from __future__ import annotations

import sys


def skip_unused_imports(*, papermill: bool = False) -> None:
    """Call before anything imports nbformat (and, with ``papermill``, before papermill)."""
    for name in ("rfc3987_syntax", "isoduration"):
        sys.modules.setdefault(name, None)  # type: ignore[assignment]
    if not papermill or "papermill" in sys.modules or "gcsfs" in sys.modules:
        return
    sys.modules["gcsfs"] = None  # type: ignore[assignment]
    try:
        import papermill.iorw  # noqa: F401  (heavy; imported here, once, with gcsfs hidden)
    except ImportError:
        pass  # reported where the runner imports papermill
    finally:
        del sys.modules["gcsfs"]
