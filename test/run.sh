#!/bin/bash
# test/run.sh: every test of gs_export, against real PostgreSQL servers that
# the tests start themselves.  Runs as an unprivileged user (PostgreSQL
# refuses root); needs gs_export built and installed (tools/test does both).
# The suites:
#   regress  pg_regress: the SQL API (sql/*.sql against expected/*.out, the
#            Makefile's REGRESS, as make installcheck runs them), on a
#            temporary instance with shared_preload_libraries = 'gs_export'.
#   standin  the remote stand-in's own tests (test/remote/tests).
#   tap      TAP tests of the workers (test/t/*.pl, PostgreSQL::Test::Cluster),
#            several at once (prove -j): each test has its own clusters,
#            sockets, stand-in ports and temporary directories.
#   node     the SQL API through Supabase RPC with supabase-js
#            (test/node/rpc.test.mjs), and Realtime's postgres_changes with
#            supabase-js (test/node/realtime.test.mjs); its npm packages come from
#            tools/install-deps).
#   browser  the export screen (ui/) in Debian's headless chromium, driven by
#            puppeteer-core (test/node/ui.test.mjs: every control, with the
#            stand-in's Realtime off, then on), following an export
#            through Realtime alone and falling back without it
#            (test/node/realtime-ui.test.mjs).
#   docs     every file that a document or a comment names exists
#            (tools/check-references).
# The TAP tests run beside the other suites (which run one after the other):
# each suite writes its own log under the output directory, and the logs are
# printed whole and in the order above (the TAP log as it grows).
#
# Usage: test/run.sh [-j N] [--serial] [--only SUITE[,SUITE...]] [TEST...]
#   TEST        t/001_export.pl (or test/t/001_export.pl, 001_export, 001):
#               that TAP test; api_errors (or sql/api_errors.sql): that
#               pg_regress test; test/node/rpc.test.mjs, test/node/ui.test.mjs:
#               the node or browser suite.  Only the suites named by a TEST
#               or by --only run.
#   -j N        TAP tests at once (default $GS_TEST_JOBS, or 4).
#   --serial    one suite, and one TAP test, at a time (as before -j).
# Set GS_TEST_OUT to keep the output somewhere known.  The last line says
# "suites: N passed, N failed".
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$("$PG_CONFIG" --bindir)
pgxs=$(dirname "$("$PG_CONFIG" --pgxs)")/../..

ALL_SUITES=(regress standin tap node browser docs)
# the pg_regress tests: the Makefile's REGRESS (what make installcheck runs)
REGRESS_TESTS=($(make -s --no-print-directory -C "$top" PG_CONFIG="$PG_CONFIG" print-regress))
[ ${#REGRESS_TESTS[@]} -gt 0 ] || { echo "run.sh: no REGRESS in the Makefile" >&2; exit 2; }
# The TAP tests that take longest start first, so that the last to finish
# is not a long one started late (080 waits for three pg_cron minutes).
TAP_FIRST=(080_sync_cron 100_in_flight 090_statement_timeout 023_resources 010_remote_faults
	042_table_rewrite 033_keys_and_transport 060_reset_delete 040_alter_column_type 050_upgrade
	020_crash_points 101_adaptive 091_alerts 041_remote_answers)

usage()
{
	sed -n '/^# Usage:/,/^# "suites:/s/^# \{0,1\}//p' "$0"
}

jobs=${GS_TEST_JOBS:-4}
serial=0
only=()
tap_sel=()
regress_sel=()
while [ $# -gt 0 ]; do
	case $1 in
	-h | --help) usage; exit 0 ;;
	-j) jobs=${2:?-j needs a number}; shift ;;
	-j*) jobs=${1#-j} ;;
	--jobs=*) jobs=${1#--jobs=} ;;
	--serial) serial=1 ;;
	--only) only+=(${2//,/ }); shift ;;
	--only=*) v=${1#--only=}; only+=(${v//,/ }) ;;
	-*) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	*.pl)
		f=t/$(basename "$1")
		[ -f "$top/test/$f" ] || { echo "run.sh: no TAP test $f in test/t" >&2; exit 2; }
		tap_sel+=("$f") ;;
	*rpc.test.mjs | *realtime.test.mjs) only+=(node) ;;
	*ui.test.mjs) only+=(browser) ;;
	*)
		name=$(basename "$1" .sql)
		matches=("$top"/test/t/"$name"*.pl)
		if [[ " ${REGRESS_TESTS[*]} " == *" $name "* ]]; then
			regress_sel+=("$name")
		elif [ -f "${matches[0]}" ] && [ ${#matches[@]} -eq 1 ]; then
			tap_sel+=("t/$(basename "${matches[0]}")")
		else
			echo "run.sh: $1 is no test (nor one TAP test's prefix): see test/run.sh --help" >&2
			exit 2
		fi ;;
	esac
	shift
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: -j wants a positive number, not $jobs" >&2; exit 2; }
[ $serial -eq 1 ] && jobs=1

# The suites to run: those named by a TEST or --only, else all of them.
[ ${#tap_sel[@]} -gt 0 ] && only+=(tap)
[ ${#regress_sel[@]} -gt 0 ] && only+=(regress)
suites=()
for s in "${ALL_SUITES[@]}"; do
	if [ ${#only[@]} -eq 0 ]; then
		suites+=("$s")
		continue
	fi
	for o in "${only[@]}"; do
		case $o in
		pg_regress) o=regress ;;
		stand_in | stand-in | remote) o=standin ;;
		rpc) o=node ;;
		ui) o=browser ;;
		esac
		[ "$o" = "$s" ] && { suites+=("$s"); break; }
	done
done
for o in "${only[@]}"; do
	case $o in
	regress | pg_regress | standin | stand_in | stand-in | remote | tap | node | rpc | browser | ui | docs) ;;
	*) echo "run.sh: no suite $o (suites: ${ALL_SUITES[*]})" >&2; exit 2 ;;
	esac
done
# One pg_regress test runs after install, as in the whole list (the others
# use what install set up).
if [ ${#regress_sel[@]} -eq 0 ]; then
	regress_sel=("${REGRESS_TESTS[@]}")
elif [[ " ${regress_sel[*]} " != *" install "* ]]; then
	regress_sel=(install "${regress_sel[@]}")
fi

out=${GS_TEST_OUT:-$(mktemp -d /tmp/gs_export_test.XXXXXX)}
mkdir -p "$out"

# --- the suites: each runs in its own process, output in $out/<suite>.log --
suite_title()
{
	case $1 in
	regress) echo "pg_regress: SQL API" ;;
	standin) echo "the remote stand-in's own tests" ;;
	tap) echo "TAP: workers on real clusters ($jobs at once)" ;;
	node) echo "Node: the SQL API through Supabase RPC (supabase-js)" ;;
	browser) echo "Browser: the export screen (ui/) in headless chromium (puppeteer-core)" ;;
	docs) echo "docs: every file a document or a comment names exists" ;;
	esac
}

# The name a failed suite has in the FAILED line.
suite_label()
{
	case $1 in
	regress) echo pg_regress ;;
	standin) echo stand_in ;;
	*) echo "$1" ;;
	esac
}

suite_regress()
{
	"$pgxs/src/test/regress/pg_regress" \
		--temp-instance="$out/regress_instance" \
		--temp-config="$top/test/regress.conf" \
		--bindir="$bindir" \
		--inputdir="$top" \
		--outputdir="$out/regress" \
		--dbname=contrib_regression \
		"${regress_sel[@]}" && return 0
	[ -f "$out/regress/regression.diffs" ] && cat "$out/regress/regression.diffs"
	return 1
}

suite_standin()
{
	cd "$top/test/remote" && /usr/bin/python3 -m unittest discover -v 2>&1
}

suite_docs()
{
	/usr/bin/python3 "$top/tools/check-references" 2>&1
}

suite_tap()
{
	local files=() f t
	if [ ${#tap_sel[@]} -gt 0 ]; then
		files=("${tap_sel[@]}")
	else
		for t in "${TAP_FIRST[@]}"; do
			[ -f "$top/test/t/$t.pl" ] && files+=("t/$t.pl")
		done
		for f in "$top"/test/t/*.pl; do
			t=$(basename "$f" .pl)
			[[ " ${TAP_FIRST[*]} " == *" $t "* ]] || files+=("t/$t.pl")
		done
	fi
	mkdir -p "$out/tap"
	# --merge: a test's diagnostics (stderr) are printed with its own
	# output, which prove -j prints whole when the test ends.
	cd "$top/test" || return 1
	PATH="$bindir:$PATH" TESTDIR="$out/tap" PG_REGRESS="$pgxs/src/test/regress/pg_regress" \
		prove -j "$jobs" -v --merge --timer -I "$pgxs/src/test/perl" -I "$top/test/perl" "${files[@]}" \
		| tee "$out/tap/prove.out"
	local rc=${PIPESTATUS[0]}
	# A test that died says why in its own log only (PostgreSQL::Test::Utils
	# sends a die's message there): show its end.
	for t in $(sed -n 's|^t/\([^ ]*\)\.pl  *(Wstat.*|\1|p' "$out/tap/prove.out"); do
		echo "--- the end of $out/tap/tmp_check/log/regress_log_$t:"
		tail -n 25 "$out/tap/tmp_check/log/regress_log_$t"
	done
	return "$rc"
}

suite_node()
{
	if [ ! -d "$top/test/node/node_modules/@supabase/supabase-js" ]; then
		echo "test/node has no node_modules: run tools/install-deps (npm ci in test/node)"
		return 1
	fi
	cd "$top" && PG_CONFIG="$PG_CONFIG" node --test --test-reporter=spec test/node/rpc.test.mjs test/node/realtime.test.mjs 2>&1
}

suite_browser()
{
	local chromium=${CHROMIUM:-/usr/bin/chromium}
	if [ ! -x "$chromium" ]; then
		echo "no chromium at $chromium: run tools/install-deps (Debian's chromium), or set CHROMIUM"
		return 1
	elif [ ! -d "$top/test/node/node_modules/puppeteer-core" ]; then
		echo "test/node has no puppeteer-core: run tools/install-deps (npm ci in test/node)"
		return 1
	elif [ ! -d "$top/ui/node_modules/@supabase/supabase-js" ]; then
		echo "ui/ has no supabase-js: run tools/install-deps (npm ci in ui)"
		return 1
	fi
	# the screen's tests with Realtime off (the fallback: polling), then on
	cd "$top" && PG_CONFIG="$PG_CONFIG" CHROMIUM="$chromium" node --test --test-reporter=spec test/node/ui.test.mjs test/node/realtime-ui.test.mjs 2>&1 &&
		echo "== the screen's tests again, Realtime on ==" &&
		PG_CONFIG="$PG_CONFIG" CHROMIUM="$chromium" GS_UI_REALTIME=1 node --test --test-reporter=spec test/node/ui.test.mjs 2>&1
}

# Run one suite into its log; its exit status goes to $out/<suite>.rc.
run_suite()
{
	local s=$1 t0=$SECONDS rc
	(suite_"$s") >"$out/$s.log" 2>&1 </dev/null
	rc=$?
	echo "($(suite_title "$s" | cut -d: -f1): $((SECONDS - t0)) s)" >>"$out/$s.log"
	echo "$rc" >"$out/$s.rc"
	return "$rc"
}

# Start a suite in the background: its pid in $pid.
start_suite()
{
	: >"$out/$1.log"
	run_suite "$1" &
	pid=$!
}

# Print a suite's log as it grows, until the suite (pid $2) has ended.
follow_suite()
{
	tail -n +1 -f --pid="$2" "$out/$1.log" 2>/dev/null
	wait "$2"
}

# --- run them: the TAP tests beside the rest, printed in order -----------
started=$SECONDS
others=()
tap_pid=
for s in "${suites[@]}"; do
	[ "$s" = tap ] || others+=("$s")
done
if [ $serial -eq 1 ]; then
	for s in "${suites[@]}"; do
		echo "== $(suite_title "$s") =="
		start_suite "$s"
		follow_suite "$s" "$pid"
	done
else
	if [[ " ${suites[*]} " == *" tap "* ]]; then
		start_suite tap
		tap_pid=$pid
	fi
	# The other suites one after the other; a line on fd 4 as each ends.
	exec 4< <(for s in "${others[@]}"; do run_suite "$s"; echo "$s"; done)
	for s in "${suites[@]}"; do
		echo "== $(suite_title "$s") =="
		if [ "$s" = tap ]; then
			follow_suite tap "$tap_pid"
		else
			read -r done <&4
			[ "$done" = "$s" ] || echo "run.sh: expected suite $s to end, got $done" >&2
			cat "$out/$s.log"
		fi
	done
	exec 4<&-
fi

failed=()
for s in "${suites[@]}"; do
	[ "$(cat "$out/$s.rc" 2>/dev/null)" = 0 ] || failed+=("$(suite_label "$s")")
done
n=${#suites[@]}
echo "output in $out ($((SECONDS - started)) s)"
if [ ${#failed[@]} -gt 0 ]; then
	echo "FAILED: ${failed[*]}"
	echo "suites: $((n - ${#failed[@]})) passed, ${#failed[@]} failed"
	exit 1
fi
echo "suites: $n passed, 0 failed"
