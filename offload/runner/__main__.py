"""``python -m offload.runner STORE_URL JOB_ID``: the one program a backend starts.

Start-up is trimmed before anything imports nbformat or papermill (see offload._startup): each
sweep trial is a runner process, and its start-up CPU bounds a sweep on a small machine.
"""

import os
import sys

from offload import _startup

if sys.argv[1:2] == ["--standby"]:  # a standby runner (runner/standby.py) waits before its imports,
    _startup.standby_delay()  # so that they do not slow the runners starting beside it
_startup.skip_unused_imports()  # papermill's own trimming waits until its kernel is starting (runner.job)

from offload.runner.programs import main  # noqa: E402

code = main()
# Everything the job did is in the store when main returns. The interpreter's teardown (about
# 0.15 s of module clean-up) is skipped: the local backend and the sweep driver see a job's end
# as its runner's exit, and the next trial waits for it.
sys.stdout.flush()
sys.stderr.flush()
os._exit(code if isinstance(code, int) else 0)
