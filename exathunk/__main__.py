"""``python -m exathunk`` is the ``exathunk`` command."""

import sys

from .cli import main

sys.exit(main())
