"""``python -m dtask_async``: the same commands as ``dtask-async``."""

import sys

from .cli import main

sys.exit(main())
