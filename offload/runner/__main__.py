"""``python -m offload.runner STORE_URL JOB_ID``: the one program a backend starts."""

import sys

from offload.runner import main

sys.exit(main())
