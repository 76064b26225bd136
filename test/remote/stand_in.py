#!/usr/bin/python3
"""stand_in.py -- the command that runs the PostgREST-12.2-compatible
stand-in for gs_export's remote and for the app's own API.  The code is the
package standin/ next to this file (its roles and its documentation:
standin/__init__.py); bench/bench.py imports its SQL builder from here."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from standin.cli import main  # noqa: E402
from standin.schema_cache import SchemaCache  # noqa: E402,F401  (bench/bench.py)
from standin.write_path import JsonBody, build_insert  # noqa: E402,F401  (bench/bench.py)

if __name__ == "__main__":
    sys.exit(main())
