"""``python -m offload.cli``: the same as the ``offload`` command."""

import sys

from offload.cli import main

sys.exit(main())
