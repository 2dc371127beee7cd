"""``python -m bge_core.cli``: the same as the ``bge`` command."""

import sys

from bge_core.cli.main import main

sys.exit(main())
