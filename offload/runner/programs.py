"""The runner's program table and entry point (``python -m offload.runner`` runs :func:`main`).

Imported by ``offload/runner/__main__.py`` only after the start-up trimming
(:func:`offload._startup.skip_unused_imports`), since the programs import nbformat and nbclient.
"""


from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from offload.backends import local
from offload.runner import machine, standby
from offload.runner.job import NotebookJob
from offload.runner.pack import serve_pack
from offload.runner.session import SessionServer
from offload.spec import JobSpec
from offload.store import Store, layout

Program = Callable[[Store, JobSpec], int]


def _job(store: Store, spec: JobSpec) -> int:
    return NotebookJob(store, spec).run()


def _session(store: Store, spec: JobSpec) -> int:
    local.drop_ticket()  # a session holds no local slot, so it does not queue for one
    with machine.registered(store, spec, role="session") as record:  # listed while a kernel holds it
        return SessionServer(store, spec, record=record).run()


def _pack(store: Store, spec: JobSpec) -> int:
    local.drop_ticket()  # the pack's slots are its own: it does not queue for one of this machine's
    with machine.registered(store, spec, role="pack"):
        return serve_pack(store, spec)


PROGRAMS: dict[str, Program] = {
    "notebook": _job,
    "cell": _job,
    "trial": _job,
    "session": _session,
    "pack": _pack,
}

# Specs written by 0.1 said what a job was through a label instead of its kind.
_ROLES_01 = {"session": "session", "sweep-pack": "pack"}


def program_kind(spec: JobSpec) -> str:
    return _ROLES_01.get(spec.labels.get("role", ""), spec.kind)


def run_job(store_url: str, job_id: str, *, prestarted: Any = None) -> int:
    """Run job ``job_id``; ``prestarted`` is a standby runner's kernel (runner/standby.py), which
    a notebook job takes when it fits and every other program leaves."""
    store = Store(store_url)
    spec = JobSpec.from_dict(store.get_json(layout.job_key(job_id, "spec.json")))
    program = PROGRAMS[program_kind(spec)]
    if program is _job and prestarted is not None and not machine.keeps_machine(spec):
        return NotebookJob(store, spec, prestarted=prestarted).run()
    standby.discard(prestarted)
    if machine.keeps_machine(spec):  # the machine stays after this job (runner/machine.py)
        return machine.serve(store, spec, program)
    return program(store, spec)


def main(argv: list[str] | None = None) -> int:
    """``python -m offload.runner STORE_URL JOB_ID``, or ``--standby STORE_URL TEMPLATE_JOB
    READY_FD`` (a standby runner: runner/standby.py); the caller trimmed start-up imports first."""
    argv = sys.argv[1:] if argv is None else argv
    is_standby = bool(argv) and argv[0] == "--standby"
    if len(argv) != (4 if is_standby else 2):
        print("usage: python -m offload.runner STORE_URL JOB_ID", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    local.take_ticket()  # a local job's place in the queue, released once it has a slot or exits
    try:
        if is_standby:
            handed = standby.wait_for_job(argv[1], argv[2], int(argv[3]))
            return 0 if handed is None else run_job(argv[1], handed.job_id, prestarted=handed.prestarted)
        return run_job(*argv)
    finally:
        local.drop_ticket()


__all__ = ["PROGRAMS", "main", "program_kind", "run_job"]
