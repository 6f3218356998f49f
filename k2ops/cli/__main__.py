"""`python -m k2ops.cli ...`: the `k2` command without the console script."""

import sys

from k2ops.cli import main

sys.exit(main())
