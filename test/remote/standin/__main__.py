"""`python3 -m standin` (from test/remote): the same as stand_in.py."""

import sys

from .cli import main

sys.exit(main())
