# 095_owner_identity.pl: a job belongs to its owner's identity, not to a
# name (issue 17, item 6), and a pause with a reset or a delete in the same
# transaction is refused at once, saying why (item 7).
#
# 1. bob (a gs_export_user) exports, then pauses a second job mid-way.
#    bob is dropped and a new role named bob is made: the new bob sees
#    neither job (table, status, resume, reset, delete: 42704, as for a job
#    that does not exist); an admin still sees both; resumed by the admin,
#    the paused job is not run as the new bob: its worker fails it, saying
#    its owner was dropped, and nothing more reaches the remote.
# 2. A job with a batch held at the remote, paused and reset (or deleted)
#    in one transaction: 55000 at once, "in the transaction that stopped
#    it" -- not after five seconds with "its worker is still finishing a
#    batch" (the worker waits for that very transaction).  Committed
#    separately, the same reset goes through.
use strict;
use warnings;

use lib '.';
use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-05-31 23:00:00+00' - (g * interval '37 minutes'), 'lead ' || g
	  FROM generate_series(1, 600) g
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub make_bob
{
	sql(q{
		CREATE ROLE bob LOGIN;
		GRANT gs_export_user TO bob;
		GRANT SELECT ON leads TO bob;
	});
}

# ---------------------------------------------------------------------
# 1. A dropped owner's jobs do not pass to a namesake.
# ---------------------------------------------------------------------
make_bob();
my ($st, $out, $err) = GsExportTest::psql_as($node, 'bob',
	q{SELECT gs_export_create('2026-05-31', '2026-05-20', '{"batch_size": 100, "delay_ms": 0, "time_zone": "UTC"}')});
is($st, '', 'bob creates a job') or diag($err);
my ($done) = $out =~ /([0-9a-f-]{36})/;
GsExportTest::wait_status($node, $done, 'completed');

# A second job of bob's, paused with leads left: the remote slowed so that
# the pause lands mid-way.
$remote->faults(delay_ms => 300);
($st, $out, $err) = GsExportTest::psql_as($node, 'bob',
	q{SELECT gs_export_create('2026-05-19', NULL, '{"batch_size": 20, "delay_ms": 0, "time_zone": "UTC"}')});
is($st, '', 'bob creates a second job') or diag($err);
my ($paused) = $out =~ /([0-9a-f-]{36})/;
GsExportTest::wait_true($node,
	"SELECT exported_leads >= 20 FROM gestao_scouter_export_jobs WHERE id = '$paused'");
($st, $out, $err) = GsExportTest::psql_as($node, 'bob', "SELECT gs_export_pause('$paused', 'for later')");
is($st, '', 'bob pauses it') or diag($err);
GsExportTest::wait_true($node, q{SELECT count(*) = 0 FROM pg_stat_activity
	WHERE backend_type = 'gs_export job worker'});
$remote->faults(delay_ms => 0);
my $left = sql("SELECT total_leads FROM gestao_scouter_export_jobs WHERE id = '$paused'");

is(sql("SELECT string_agg(owner_oid::regrole::text, ',') FROM gestao_scouter_export_jobs WHERE id IN ('$done', '$paused')"),
	'bob,bob', 'both jobs are owned by bob, by identity');
my $old_oid = sql(q{SELECT oid FROM pg_roles WHERE rolname = 'bob'});

# bob goes; a new bob comes.
sql(q{DROP OWNED BY bob; DROP ROLE bob;});
make_bob();
isnt(sql(q{SELECT oid FROM pg_roles WHERE rolname = 'bob'}), $old_oid, 'the new bob is another role');

($st, $out, $err) = GsExportTest::psql_as($node, 'bob',
	"SELECT count(*) FROM gestao_scouter_export_jobs WHERE id IN ('$done', '$paused')");
is($st, '', 'the new bob may read the jobs table');
is($out, '0', 'the new bob sees neither of the old bob\'s jobs');
for my $call ("gs_export_status('$done')", "gs_export_resume('$paused')",
	"gs_export_reset('$done')", "gs_export_delete('$done')")
{
	($st, $out, $err) = GsExportTest::psql_as($node, 'bob', "SELECT $call");
	is($st, '42704', "the new bob: $call is 42704, as for a job that does not exist");
}
($st, $out, $err) = GsExportTest::psql_as($node, 'bob', 'SELECT job_id FROM gs_export_status()');
isnt($out, $paused, 'the new bob\'s latest job is not the old bob\'s');
is(sql("SELECT count(*) FROM gestao_scouter_export_jobs WHERE id IN ('$done', '$paused')"), '2',
	'an admin still sees both jobs');

# Resumed by an admin, the old bob's job is not run as the new bob.
my $requests_before = scalar @{ $remote->requests };
sql("SELECT gs_export_resume('$paused')");
is(GsExportTest::wait_status($node, $paused, 'failed|completed'), 'failed',
	'resumed, the dropped owner\'s job fails');
like(sql("SELECT pause_reason FROM gestao_scouter_export_jobs WHERE id = '$paused'"),
	qr/owner role .* does not exist \(it was dropped\)/, 'its reason: the owner was dropped');
is(scalar @{ $remote->requests }, $requests_before, 'nothing more reached the remote');
is(sql("SELECT total_leads FROM gestao_scouter_export_jobs WHERE id = '$paused'"), $left,
	'its counters are as bob left them');

# ---------------------------------------------------------------------
# 2. Pause and reset (or delete) in one transaction.
# ---------------------------------------------------------------------
sql("SELECT gs_export_delete('$paused')");
$remote->faults(delay_ms => 200);	# 30 batches: the job is still running below
my $job = GsExportTest::create_job($node,
	q{'2026-05-31', NULL, '{"batch_size": 20, "delay_ms": 0, "time_zone": "UTC"}'});
GsExportTest::wait_true($node,
	"SELECT exported_leads >= 40 FROM gestao_scouter_export_jobs WHERE id = '$job'");
# the next batches are held at the remote for 3 s each
my $seq0 = @{ $remote->requests } ? $remote->requests->[-1]{seq} : 0;
$remote->faults(delay_ms => 3000);
GsExportTest::wait_for('a batch at the remote', sub {
	return grep { $_->{seq} > $seq0 && !defined $_->{status} } @{ $remote->requests };
}, 60);

for my $what ([ 'reset', 'gs_export_reset' ], [ 'deleted', 'gs_export_delete' ])
{
	my ($done_word, $fn) = @$what;
	my $t0 = time;
	($st, $out, $err) = GsExportTest::psql_as($node, undef, qq{
		BEGIN;
		SELECT gs_export_pause('$job', 'then $fn');
		SELECT $fn('$job');
		COMMIT;});
	my $took = time - $t0;
	is($st, '55000', "pause and $fn in one transaction: 55000");
	like($err, qr/cannot be $done_word in the transaction that stopped it/,
		"$fn says that this transaction stopped the job") or diag($err);
	like($err, qr/HINT:\s+Commit the pause first/, "$fn: the hint says what to do");
	cmp_ok($took, '<', 4, sprintf('%s said so at once (%.2f s), without waiting out its five seconds', $fn, $took));
	is(sql("SELECT status FROM gestao_scouter_export_jobs WHERE id = '$job'"), 'running',
		"the transaction rolled back: the job still runs");
}

# Paused and committed, then reset: goes through once the worker recorded
# its batch.
sql("SELECT gs_export_pause('$job', 'then reset')");
$remote->faults(delay_ms => 0);
($st, $out, $err) = GsExportTest::psql_as($node, undef, "SELECT gs_export_reset('$job')");
is($st, '', 'committed first, the pause is followed by a reset') or diag($err);
is(GsExportTest::wait_status($node, $job, 'completed'), 'completed', 'the reset job runs to the end');
is(sql("SELECT total_leads = exported_leads AND error_leads = 0 FROM gestao_scouter_export_jobs WHERE id = '$job'"),
	't', 'every lead counted once');

done_testing();
