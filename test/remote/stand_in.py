#!/usr/bin/python3
"""stand_in.py -- the command that runs the PostgREST-12.2-compatible
stand-in for gs_export's remote and for the app's own API.  The code is the
package standin/ next to this file, one role a module; what this file's
documentation used to hold is there: the overview, usage and known
differences in standin/__init__.py, the CONTROL API and the log in
standin/control.py, the faults' semantics and CORS in standin/gateway.py,
the write path in standin/write_path.py, API MODE and READS in
standin/api_mode.py.  Its tests: test/remote/tests/."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from standin.cli import main  # noqa: E402
# bench/bench.py imports the upsert's SQL builder from here.
from standin.schema_cache import SchemaCache  # noqa: E402
from standin.write_path import JsonBody, build_insert  # noqa: E402

__all__ = ["main", "SchemaCache", "JsonBody", "build_insert"]

if __name__ == "__main__":
    sys.exit(main())
