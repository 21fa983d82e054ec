"""Start-up trimming for the processes the package itself starts (the runner, the ``offload`` CLI).

Each trial of a sweep is a runner process, and on a small machine the runners' start-up CPU is
what bounds a sweep's wall time; a CLI verb such as ``offload ls`` should answer at once. Three
optional imports nothing here uses cost about 2.3 s of CPU: jsonschema's IRI and duration format
checkers (``rfc3987_syntax`` builds a grammar at import, ``isoduration`` pulls in arrow; nbformat's
schema uses neither format), and papermill's ``gs://`` I/O handler (gcsfs: the runner gives
papermill local paths, and the store imports gcsfs itself, later, when its URL is ``gs://``). Both
libraries import them inside ``except ImportError``, so a ``None`` in ``sys.modules`` makes them
skip the feature. ``skip_unused_imports`` is never called in a process the user owns (a kernel, the
Jupyter server); there :func:`defer_format_grammars` imports jsonschema without the grammars and
gives it checkers that import them at their first use, so the user's jsonschema is unchanged.
"""

from __future__ import annotations

import sys


def standby_delay() -> None:
    """A standby runner's first wait, before any import: ``OFFLOAD_STANDBY_WARM_AFTER_S`` (2 s),
    or less when its stdin speaks first (a job, or its end: the standby is not needed)."""
    import os
    import select

    select.select([sys.stdin], [], [], float(os.environ.get("OFFLOAD_STANDBY_WARM_AFTER_S", "2")))


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


# jsonschema's format checkers whose libraries cost the grammar at import, by format: the library,
# how it checks, what it raises, and the validator drafts that have the format.
_LAZY_FORMATS = {
    "iri": ("rfc3987_syntax", ("Draft7Validator", "Draft201909Validator", "Draft202012Validator")),
    "iri-reference": ("rfc3987_syntax", ("Draft7Validator", "Draft201909Validator", "Draft202012Validator")),
    "duration": ("isoduration", ("Draft201909Validator", "Draft202012Validator")),
}


def _lazy_check(fmt: str):
    def check(instance: object) -> bool:
        if not isinstance(instance, str):
            return True
        if fmt == "duration":
            import isoduration  # imported at the first check, not when nbformat loads

            isoduration.parse_duration(instance)
            return instance.endswith(tuple("DMYWHMS"))  # as jsonschema's own check
        from rfc3987_syntax import is_valid_syntax

        return is_valid_syntax("iri" if fmt == "iri" else "iri_reference", instance)

    return check


def defer_format_grammars() -> None:
    """For processes the user owns (a kernel with ``%load_ext offload``, the Jupyter server):
    import jsonschema without building the IRI grammar and the duration parser, then give it
    checkers for those formats that import them at their first use. The user's own jsonschema
    checks ``iri``, ``iri-reference`` and ``duration`` exactly as before; nothing in offload pays
    for them (nbformat's schema uses neither). A no-op when jsonschema is already imported."""
    if "jsonschema" in sys.modules:
        return
    hidden = [n for n in ("rfc3987_syntax", "isoduration") if n not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import jsonschema
    except ImportError:
        return
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
    for fmt, (_, drafts) in _LAZY_FORMATS.items():
        check = _lazy_check(fmt)
        if fmt not in jsonschema.FormatChecker.checkers:
            jsonschema.FormatChecker.checkers[fmt] = (check, ValueError)
        for draft in drafts:
            checker = getattr(getattr(jsonschema, draft, None), "FORMAT_CHECKER", None)
            if checker is not None and fmt not in checker.checkers:
                checker.checks(fmt, raises=ValueError)(check)
