"""``python -m kctl`` is the ``kctl`` command."""

import sys

from kctl.cli import main

sys.exit(main())
