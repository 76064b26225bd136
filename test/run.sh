#!/bin/bash
# test/run.sh: every test of gs_export, against real PostgreSQL servers that
# the tests start themselves.  Runs as an unprivileged user (PostgreSQL
# refuses root); needs gs_export built and installed (tools/test does both).
#   1. pg_regress: the SQL API (sql/*.sql against expected/*.out), on a
#      temporary instance with shared_preload_libraries = 'gs_export'.
#   2. The remote stand-in's own tests (test/remote).
#   3. TAP tests of the workers (test/t/*.pl, PostgreSQL::Test::Cluster).
#   4. Node: the SQL API through Supabase RPC with supabase-js
#      (test/node/rpc.test.mjs; its npm packages come from tools/install-deps).
#   5. Browser: the export screen (ui/) in Debian's headless chromium,
#      driven by puppeteer-core (test/node/ui.test.mjs).
# Set GS_TEST_OUT to keep the output somewhere known.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$("$PG_CONFIG" --bindir)
pgxs=$(dirname "$("$PG_CONFIG" --pgxs)")/../..
out=${GS_TEST_OUT:-$(mktemp -d /tmp/gs_export_test.XXXXXX)}
mkdir -p "$out"
failed=()

REGRESS_TESTS=(install api_errors api_states api_options fresh_install rls_cost api_mapping install_later api_reset_delete_status api_sync api_pace)

echo "== pg_regress: SQL API =="
if ! "$pgxs/src/test/regress/pg_regress" \
	--temp-instance="$out/regress_instance" \
	--temp-config="$top/test/regress.conf" \
	--bindir="$bindir" \
	--inputdir="$top" \
	--outputdir="$out/regress" \
	--dbname=contrib_regression \
	"${REGRESS_TESTS[@]}"; then
	failed+=(pg_regress)
	[ -f "$out/regress/regression.diffs" ] && cat "$out/regress/regression.diffs"
fi

echo "== the remote stand-in's own tests =="
if ! (cd "$top/test/remote" && /usr/bin/python3 -m unittest discover -v 2>&1); then
	failed+=(stand_in)
fi

echo "== TAP: workers on real clusters =="
mkdir -p "$out/tap"
if ! (cd "$top/test" &&
	  PATH="$bindir:$PATH" TESTDIR="$out/tap" PG_REGRESS="$pgxs/src/test/regress/pg_regress" \
	  prove -v -I "$pgxs/src/test/perl" -I "$top/test/perl" t/*.pl); then
	failed+=(tap)
fi

echo "== Node: the SQL API through Supabase RPC (supabase-js) =="
if [ ! -d "$top/test/node/node_modules/@supabase/supabase-js" ]; then
	echo "test/node has no node_modules: run tools/install-deps (npm ci in test/node)"
	failed+=(node)
elif ! (cd "$top" && PG_CONFIG="$PG_CONFIG" node --test --test-reporter=spec test/node/rpc.test.mjs 2>&1); then
	failed+=(node)
fi

echo "== Browser: the export screen (ui/) in headless chromium (puppeteer-core) =="
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
	echo "no chromium at $chromium: run tools/install-deps (Debian's chromium), or set CHROMIUM"
	failed+=(browser)
elif [ ! -d "$top/test/node/node_modules/puppeteer-core" ]; then
	echo "test/node has no puppeteer-core: run tools/install-deps (npm ci in test/node)"
	failed+=(browser)
elif ! (cd "$top" && PG_CONFIG="$PG_CONFIG" CHROMIUM="$chromium" node --test --test-reporter=spec test/node/ui.test.mjs 2>&1); then
	failed+=(browser)
fi

suites=5
echo "output in $out"
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED: ${failed[*]}"
	echo "suites: $((suites - ${#failed[@]})) passed, ${#failed[@]} failed"
	exit 1
fi
echo "suites: $suites passed, 0 failed"
