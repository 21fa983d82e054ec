"""``python -m offload.runner STORE_URL JOB_ID``: the one program a backend starts.

Start-up is trimmed before anything imports nbformat or papermill (see offload._startup): each
sweep trial is a runner process, and its start-up CPU bounds a sweep on a small machine.
"""

import sys

from offload import _startup

_startup.skip_unused_imports()  # papermill's own trimming waits until its kernel is starting (runner.job)

from offload.runner.programs import main  # noqa: E402

sys.exit(main())
