"""``python -m svyaz.cli``: the ``svyaz`` command without the console script."""

import sys

from svyaz.cli import main

sys.exit(main())
