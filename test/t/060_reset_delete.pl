# 060_reset_delete.pl: gs_export_reset and gs_export_delete on real exports
# (doc/contract.md, "Functions").
#
# A job paused while a batch is at the remote is reset at once: the reset
# waits for the worker to record that batch and go, then the job runs again
# from its start_date and completes, the remote equal to the source, its
# counters those of the second run alone, and the sync_events of both runs
# kept.  gs_export_status agrees with the job row.  While a worker still
# holds a job, reset and delete give up after a few seconds with 55000.  A
# job is deleted in the same way, and a new one created at once.  Two
# REPEATABLE READ sessions that reset a job each: one job becomes active,
# the other session gets 55000 naming it.  gs_export_grant_access grants
# the new functions, also to a role it served under 1.0 once the extension
# is updated.
use strict;
use warnings;

use lib '.';
use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

my $n = 1200;
GsExportTest::insert_leads($node, qq{
	SELECT g, timestamptz '2026-05-31 23:00:00+00' - (g * interval '37 minutes'), 'lead ' || g
	  FROM generate_series(1, $n) g
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Wait until a request that arrived after sequence number $after is at the
# remote, unanswered; returns its log entry.
sub wait_in_flight
{
	my ($after) = @_;
	return GsExportTest::wait_for('a batch at the remote', sub {
		my ($last) = grep { $_->{seq} > $after && !defined $_->{status} } @{ $remote->requests };
		return $last;
	}, 60);
}

sub last_seq
{
	my @r = @{ $remote->requests };
	return @r ? $r[-1]{seq} : 0;
}

# The leads sent by the requests up to sequence number $upto, once all of
# them are answered.
sub ids_sent_upto
{
	my ($upto) = @_;
	my @r = @{ GsExportTest::wait_for('the requests answered', sub {
		my @r = grep { $_->{seq} <= $upto } @{ $remote->requests };
		return (grep { !defined $_->{status} } @r) ? undef : \@r;
	}, 30) };
	my $ids = 0;
	$ids += scalar @{ $_->{ids} // [] } for @r;
	return $ids;
}

# ---------------------------------------------------------------------
# Reset of a job paused with a batch at the remote.
# ---------------------------------------------------------------------
my $job = GsExportTest::create_job($node,
	q{'2026-05-31', '2026-01-01', '{"batch_size": 50, "delay_ms": 50, "time_zone": "UTC"}'});
GsExportTest::wait_true($node,
	"SELECT exported_leads >= 300 FROM gestao_scouter_export_jobs WHERE id = '$job'");
my $first_started = sql("SELECT started_at FROM gestao_scouter_export_jobs WHERE id = '$job'");

# Hold the next batch at the remote for 3 s, and pause while it is there.
my $seq0 = last_seq();
$remote->faults(delay_ms => 3000);
my $in_flight = wait_in_flight($seq0);
sql("SELECT gs_export_pause('$job', 'to be reset')");
$remote->faults(delay_ms => 0);
is(sql("SELECT status FROM gestao_scouter_export_jobs WHERE id = '$job'"), 'paused',
	'the job is paused while its batch is at the remote');

# Reset at once.  In the reset's transaction, after it: the first run's
# events, all of them.
my $t0 = time;
my ($state, $out, $err) = GsExportTest::psql_as($node, undef, qq{
	BEGIN;
	SELECT gs_export_reset('$job');
	SELECT 'events=' || count(*) FROM sync_events WHERE job_id = '$job';
	SELECT 'errors=' || count(*) FROM gestao_scouter_export_errors WHERE job_id = '$job';
	SELECT 'row=' || status || '/' || total_leads || '/' || exported_leads || '/' || error_leads
	       || '/' || coalesce(processing_date::text, '-') || '/' || coalesce(started_at::text, '-')
	  FROM gestao_scouter_export_jobs WHERE id = '$job';
	COMMIT;});
my $took = time - $t0;
is($state, '', 'the reset succeeds') or diag($err);
cmp_ok($took, '>', 1, sprintf('it waited %.2f s for the worker to record the batch at the remote', $took));
cmp_ok($took, '<', 5, 'and no longer');
my ($run1_events) = $out =~ /^events=(\d+)$/m;
my ($run1_errors) = $out =~ /^errors=(\d+)$/m;
my ($row) = $out =~ /^row=(.*)$/m;
is($row, 'pending/0/0/0/-/-', 'reset: pending, counters, processing_date and started_at cleared');
is($run1_errors, 0, 'no error rows');
is(ids_sent_upto($in_flight->{seq}), $run1_events,
	"the first run's events ($run1_events) are every lead it sent, the batch that was at the remote included");
cmp_ok($run1_events, '>=', 350, 'the first run had sent at least 7 batches');
cmp_ok($run1_events, '<', $n, 'and not all of them');

is(GsExportTest::wait_status($node, $job, 'completed|failed|paused'), 'completed',
	'the reset job completes');
my $j = GsExportTest::job($node, $job);
is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$n/0",
	'counters exact for the second run alone');
is($j->{leads_in_range}, $n, 'leads_in_range counted again');
is("$j->{processing_date}/$j->{last_completed_date}", '2026-01-01/2026-01-01', 'walked down to end_date');
is($j->{pause_reason}, undef, 'no pause_reason');
cmp_ok(sql("SELECT started_at > '$first_started' FROM gestao_scouter_export_jobs WHERE id = '$job'"),
	'eq', 't', 'started again');
is($remote->count, $n, 'every lead on the remote');
is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], [], 'remote equals the source');
is(sql(qq{SELECT count(*) || '/' || count(DISTINCT lead_id) || '/' ||
	count(*) FILTER (WHERE e.created_at >= j.started_at) || '/' ||
	count(DISTINCT lead_id) FILTER (WHERE e.created_at >= j.started_at)
	FROM sync_events e JOIN gestao_scouter_export_jobs j ON j.id = e.job_id WHERE j.id = '$job'}),
	($run1_events + $n) . "/$n/$n/$n",
	'sync_events of both runs kept: the first run\'s, and one per lead of the second');
is(GsExportTest::sync_summary($node, $job), ($run1_events + $n) . "/$n/0/0/0", 'all of them successes');

# gs_export_status agrees with the row.
my $cols = 'status, start_date, end_date, processing_date, last_completed_date, leads_in_range,'
  . ' total_leads, exported_leads, error_leads, pause_reason, ignored_fields, created_at,'
  . ' started_at, completed_at';
is(sql("SELECT row($cols)::text FROM gs_export_status('$job')"),
	sql("SELECT row($cols)::text FROM gestao_scouter_export_jobs WHERE id = '$job'"),
	'gs_export_status agrees with the job row');
is(sql("SELECT percent || '/' || coalesce(eta::text, 'none') || '/' || (leads_per_second > 0)
	FROM gs_export_status()"), '100.0/none/true', 'the latest job: 100 %, no eta, a rate');

# ---------------------------------------------------------------------
# While a worker holds the job: 55000, after a few seconds.
# ---------------------------------------------------------------------
my $holder = $node->background_psql('postgres', on_error_stop => 1);
$holder->query_safe("SELECT pg_advisory_lock(1735617912, hashtext('$job'))");
for my $call ("gs_export_reset('$job')", "gs_export_delete('$job')")
{
	$t0 = time;
	($state, $out, $err) = GsExportTest::psql_as($node, undef, "SELECT $call");
	$took = time - $t0;
	is($state, '55000', ($call =~ s/\Q$job\E/J/r) . ' while a worker holds the job: 55000');
	like($err, qr/HINT:\s+The job's worker is still finishing its last batch: try again/,
		'the hint says the worker is finishing its batch, and to try again');
	cmp_ok($took, '>=', 4.5, sprintf('after %.2f s', $took));
	cmp_ok($took, '<', 10, 'not much longer');
}
is(sql("SELECT status FROM gestao_scouter_export_jobs WHERE id = '$job'"), 'completed', 'the job is as it was');
$holder->quit;

# ---------------------------------------------------------------------
# Delete of a job paused with a batch at the remote, and a new job at once.
# ---------------------------------------------------------------------
my $events_job1 = sql("SELECT count(*) FROM sync_events WHERE job_id = '$job'");
($state, $out, $err) = GsExportTest::psql_as($node, undef, "SELECT gs_export_delete('$job')");
is($state, '', 'the completed job is deleted');
is(sql("SELECT count(*) FROM gestao_scouter_export_jobs WHERE id = '$job'"), '0', 'its row is gone');
is(sql("SELECT count(*) FROM sync_events WHERE job_id = '$job'"), $events_job1, 'its sync_events are kept');

$remote->truncate;
$remote->reset;
my $job2 = GsExportTest::create_job($node,
	q{'2026-05-31', '2026-01-01', '{"batch_size": 50, "delay_ms": 50, "time_zone": "UTC"}'});
GsExportTest::wait_true($node,
	"SELECT exported_leads >= 200 FROM gestao_scouter_export_jobs WHERE id = '$job2'");
$seq0 = last_seq();
$remote->faults(delay_ms => 3000);
$in_flight = wait_in_flight($seq0);
# an error row, as an earlier batch could have left it
sql(qq{INSERT INTO gestao_scouter_export_errors (job_id, lead_id, error_message)
	VALUES ('$job2', 1, 'an earlier error')});
sql("SELECT gs_export_pause('$job2')");
$remote->faults(delay_ms => 0);
$t0 = time;
($state, $out, $err) = GsExportTest::psql_as($node, undef, qq{
	SELECT gs_export_delete('$job2');
	SELECT 'new=' || gs_export_create('2026-05-31', '2026-01-01', '{"batch_size": 500, "delay_ms": 0, "time_zone": "UTC"}');});
$took = time - $t0;
is($state, '', 'the paused job is deleted, and a new job created at once') or diag($err);
cmp_ok($took, '>', 1, sprintf('the delete waited %.2f s for the worker to record the batch at the remote', $took));
my ($job3) = $out =~ /^new=(\S+)$/m;
like($job3, qr/^[0-9a-f-]{36}$/, 'the new job has an id');
is(sql("SELECT count(*) FROM gestao_scouter_export_jobs WHERE id = '$job2'"), '0', 'the deleted job is gone');
is(sql("SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = '$job2'"), '0', 'and its error rows');
my $job2_events = sql("SELECT count(*) FROM sync_events WHERE job_id = '$job2'");
is(ids_sent_upto($in_flight->{seq}), $job2_events,
	"its sync_events ($job2_events) are kept: every lead it sent, the batch at the remote included");
is(GsExportTest::wait_status($node, $job3, 'completed|failed|paused'), 'completed', 'the new job completes');
$j = GsExportTest::job($node, $job3);
is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$n/0", 'with exact counters');
is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], [], 'remote equals the source');
is(sql("SELECT count(*) FROM gestao_scouter_export_jobs WHERE id = '$job2'"), '0',
	'the deleted job did not come back');

# ---------------------------------------------------------------------
# Two sessions reset a job each, in REPEATABLE READ with their snapshots
# taken first: one job becomes pending, the other session gets 55000 naming
# it.  In a database the launcher does not watch.
# ---------------------------------------------------------------------
my $db = 'gs';
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, slurp_file("$GsExportTest::TESTDIR/sql/tabuladormax.sql"));
$node->safe_psql($db, q{
	CREATE EXTENSION gs_export;
	INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
	VALUES ('http://127.0.0.1:9', 'k', true, true);
});
my ($ja, $jb) = split /\n/, $node->safe_psql($db, q{
	INSERT INTO gestao_scouter_export_jobs (status, start_date, pause_reason, total_leads)
	VALUES ('failed', '2026-01-31', 'a', 5), ('completed', '2026-01-31', NULL, 7)
	RETURNING id});
my $s1 = $node->background_psql($db, on_error_stop => 0);
my $s2 = $node->background_psql($db, on_error_stop => 0);
for my $s ($s1, $s2)
{
	$s->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
	$s->query_safe('SELECT count(*) FROM gestao_scouter_export_jobs');
}
$s1->query_safe("SELECT gs_export_reset('$ja')");
# s2 waits for s1's lock on the jobs table, then sees a's new state.
$s2->query_until(qr/reset b sent/, qq{\\echo reset b sent
	SELECT gs_export_reset('$jb');
	\\echo reset b done
});
GsExportTest::wait_true($node, q{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE query LIKE 'SELECT gs_export_reset%' AND wait_event_type = 'Lock'}, 30);
$s1->query_safe('COMMIT');
my $s2_out = $s2->query_until(qr/reset b done/, '');
my $s2_err = $s2->{stderr};
like($s2_err, qr/ERROR:\s+another export job is pending/, 'the second reset is refused (55000)');
like($s2_err, qr/\Q$ja\E/, 'naming the job the first one reset');
$s2->query('ROLLBACK');
$s1->quit;
$s2->quit;
is($node->safe_psql($db, q{SELECT string_agg(status || '/' || total_leads, ',' ORDER BY status)
	FROM gestao_scouter_export_jobs}), 'completed/7,pending/0', 'one job reset, the other as it was');

# ---------------------------------------------------------------------
# gs_export_grant_access grants the three functions too; and after ALTER
# EXTENSION UPDATE from 1.0, a role that it served under 1.0 has them.
# ---------------------------------------------------------------------
$node->safe_psql('postgres', q{
	CREATE ROLE app_users LOGIN NOINHERIT;     -- as Supabase's authenticated
	CREATE ROLE app_users2 LOGIN NOINHERIT;
	CREATE ROLE plain LOGIN IN ROLE gs_export_user;
	CREATE DATABASE gs10;
});
$node->safe_psql('gs10', slurp_file("$GsExportTest::TESTDIR/sql/tabuladormax.sql"));
$node->safe_psql('gs10', q{
	CREATE EXTENSION gs_export VERSION '1.0';
	SELECT gs_export_grant_access('app_users');
	ALTER EXTENSION gs_export UPDATE;
});
$node->safe_psql($db, q{SELECT gs_export_grant_access('app_users2')});
my $new_functions = q{('gs_export_reset(uuid)'), ('gs_export_delete(uuid)'), ('gs_export_status(uuid)')};
for my $case ([ 'gs10', 'app_users', 'upgraded from 1.0' ], [ $db, 'app_users2', 'a fresh 1.1' ])
{
	my ($d, $role, $what) = @$case;
	is($node->safe_psql($d, qq{
		SELECT string_agg(f || '=' || has_function_privilege('$role', f, 'EXECUTE'), ',' ORDER BY f)
		  FROM (VALUES $new_functions) v(f)}),
		'gs_export_delete(uuid)=true,gs_export_reset(uuid)=true,gs_export_status(uuid)=true',
		"$what: $role, served by gs_export_grant_access, may execute the three");
	is($node->safe_psql($d, qq{
		SELECT string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
		                  ',' ORDER BY CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END)
		  FROM (VALUES $new_functions) v(f), pg_proc p, aclexplode(p.proacl) a
		 WHERE p.oid = v.f::regprocedure AND a.grantee <> p.proowner}),
		"$role,gs_export_admin,gs_export_user", "$what: nobody else but it and the two gs_export roles");
	is($node->safe_psql($d, qq{SELECT has_table_privilege('$role', 'gestao_scouter_export_diffs', 'SELECT')}),
		't', "$what: $role may read a verify's diffs (1.2; row level security as the errors')");
	my ($st) = GsExportTest::psql_as($node, $role, 'SELECT * FROM gs_export_status()', dbname => $d);
	is($st, '42704', "$what: $role calls gs_export_status (no job it may see: 42704)");
	($st) = GsExportTest::psql_as($node, 'plain', 'SELECT * FROM gs_export_status()', dbname => $d);
	is($st, '42704', "$what: so does a member of gs_export_user");
}

$remote->stop;
$node->stop;
done_testing();
