"""Tests of the PostgREST stand-in (test/remote/standin/), one module a role:
test_write_path, test_gateway, test_control, test_cli, test_api_mode,
test_delete_patch_get, test_openapi, test_realtime;
fixture.py is what they share (a throwaway cluster, the stand-in on it).

Run, from test/remote:

    /usr/bin/python3 -m unittest discover -v

initdb and pg_ctl are $PG_CONFIG's (--bindir) when it is set, else
/usr/lib/postgresql/15/bin.  PostgreSQL refuses to run as root: run this as
`postgres`; when run as root the clusters are started through
`runuser -u postgres` by themselves.
"""
