# 080_sync_cron.pl: gs_export_sync on a schedule, as doc/sync.md says to
# run it: pg_cron (Debian's postgresql-15-cron, 1.4) preloaded beside
# gs_export, a role of gs_export_user schedules
#     SELECT gs_export_sync('{"delay_ms": 0, "look_back": "0 seconds"}')
#   (no look-back: each sync sends exactly what changed since the last)
# every minute (pg_cron 1.4 schedules by the minute: three ticks, about
# three minutes).  Between the ticks leads change, new ones come, and one
# change is made by a transaction that stays open across a sync's start
# and commits after that sync has completed.  The remote converges to the
# source, each lead is sent once per version (once, plus once per change),
# and every job belongs to the cron job's owner.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# tools/install-deps installs it; elsewhere it may be missing
my $pkglibdir = `pg_config --pkglibdir`;
chomp $pkglibdir;
plan skip_all => "pg_cron is not installed ($pkglibdir/pg_cron.so): apt install postgresql-15-cron"
  unless -e "$pkglibdir/pg_cron.so";

my $remote = GsExportTest::remote();
# autovacuum's transactions would lower the changes horizon now and then
my $node = GsExportTest::local_node('local', cron => 1, conf => "autovacuum = off\n");
GsExportTest::configure($node, $remote);

my $N = 300;
GsExportTest::insert_leads($node, qq{
	SELECT g, now() - interval '1 hour' - g * interval '37 minutes', 'lead ' || g
	  FROM generate_series(1, $N) g
});

$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_cron;
	CREATE ROLE cron_owner LOGIN;
	GRANT gs_export_user TO cron_owner;
	GRANT SELECT ON leads TO cron_owner;
	GRANT USAGE ON SCHEMA cron TO cron_owner;
});
my $t0 = time;
my ($st, $out, $err) = GsExportTest::psql_as($node, 'cron_owner', q{
	SELECT cron.schedule('gs-export', '* * * * *', $$SELECT gs_export_sync('{"delay_ms": 0, "look_back": "0 seconds"}')$$);
});
is($st, '', 'cron_owner schedules gs_export_sync every minute') or diag($err);
is($node->safe_psql('postgres', q{SELECT username || ' ' || schedule FROM cron.job WHERE jobname = 'gs-export'}),
	'cron_owner * * * * *', 'the cron job is cron_owner\'s');

# The sync jobs completed so far, oldest first.
sub syncs
{
	my $rows = $node->safe_psql('postgres', q{
		SELECT id FROM gestao_scouter_export_jobs WHERE is_sync AND status = 'completed'
		 ORDER BY created_at});
	return [ split /\n/, $rows ];
}

# Wait for the n-th completed sync (a minute at the most, and a little),
# looking twice a second: a tick is a minute away.
sub wait_syncs
{
	my ($n, $what) = @_;
	my $deadline = time + 100;
	my $ids = syncs();
	while (@$ids < $n)
	{
		die "timed out waiting for $what (sync $n)" if time > $deadline;
		usleep(500_000);
		$ids = syncs();
	}
	diag(sprintf('%s: sync %d completed %.0f s after the schedule', $what, $n, time - $t0));
	return $ids->[ $n - 1 ];
}

# Tick 1: every lead.
my $s1 = wait_syncs(1, 'first tick');
my $j1 = GsExportTest::job($node, $s1);
is($j1->{total_leads}, $N, 'the first sync exports every lead');
is($j1->{owner_role}, 'cron_owner', 'the job belongs to the cron job\'s owner');
is($j1->{created_by}, undef, 'no Supabase user');
is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], [], 'the remote equals the source');

# Between tick 1 and tick 2: 10 leads change, 5 new ones; then a
# transaction opens, changes 3 more, and stays open.
my @a = split /\n/, $node->safe_psql('postgres', q{
	UPDATE leads SET updated_at = now(), name = name || ' (a)' WHERE id % 30 = 0 RETURNING id});
is(scalar @a, 10, '10 leads changed after the first sync');
GsExportTest::insert_leads($node, q{SELECT g, now(), 'new lead ' || g FROM generate_series(301, 305) g});
my @new = (301 .. 305);
my $open = $node->background_psql('postgres', on_error_stop => 1);
my @t = (7, 77, 177);
my ($t_start) = grep { /^\d{4}-\d\d-\d\d / } split /\n/, $open->query_safe(q{
	BEGIN;
	UPDATE leads SET updated_at = now(), name = name || ' (t: committed after a sync began)'
	 WHERE id IN (7, 77, 177);
	SELECT now();
});
ok(defined $t_start, "a transaction open since $t_start has changed 3 leads");

# Tick 2: the 10 and the 5, not the 3 (not committed yet).
my $s2 = wait_syncs(2, 'second tick');
my $j2 = GsExportTest::job($node, $s2);
is($j2->{total_leads}, 15, 'the second sync: the 10 changed leads and the 5 new ones');
is($node->safe_psql('postgres', "SELECT synced_through = '$t_start' FROM gestao_scouter_export_jobs WHERE id = '$s2'"),
	't', 'its synced_through is the start of the transaction still open');
is($remote->count('id IN (' . join(',', @t) . ") AND name LIKE '%(t:%'"), 0,
	'the open transaction\'s changes are not on the remote yet');
$open->query_safe('COMMIT');
$open->quit;

# After tick 2: one of the 10 changes again, and 3 more.
my @b = split /\n/, $node->safe_psql('postgres', q{
	UPDATE leads SET updated_at = now(), name = name || ' (b)' WHERE id IN (30, 31, 32, 33) RETURNING id});

# Tick 3: the 3 of the transaction committed late, and the 4.
my $s3 = wait_syncs(3, 'third tick');
my $j3 = GsExportTest::job($node, $s3);
is($j3->{total_leads}, 7, 'the third sync: the late transaction\'s 3 leads and the 4 changed since');
is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], [], 'the remote has converged to the source');

# Each lead sent once per version.
my %want = map { $_ => 1 } (1 .. $N, @new);
$want{$_}++ for (@a, @t, @b);
my %sent;
$sent{$_}++ for map { @{ $_->{ids} // [] } } @{ $remote->requests };
my @wrong = grep { ($sent{$_} // 0) != ($want{$_} // 0) } sort { $a <=> $b } keys %{ { %want, %sent } };
is_deeply(\@wrong, [], 'each lead sent once, and once more per change')
  or diag(join(' ', map { "$_: sent " . ($sent{$_} // 0) . ", want " . ($want{$_} // 0) } @wrong[0 .. ($#wrong < 9 ? $#wrong : 9)]));
is($sent{30}, 3, 'lead 30, changed twice: sent three times');

# Every sync job the cron job made is the cron owner's, and none failed.
is($node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT owner_role || '/' || status, ',') FROM gestao_scouter_export_jobs WHERE is_sync}),
	'cron_owner/completed', 'every sync job is cron_owner\'s, and completed');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE d.status = 'succeeded') >= 3 AND count(*) FILTER (WHERE d.status = 'failed') = 0
	  FROM cron.job_run_details d JOIN cron.job j USING (jobid) WHERE j.jobname = 'gs-export'}), 't',
	'cron ran it three times at least, and it never failed');

($st, $out, $err) = GsExportTest::psql_as($node, 'cron_owner', q{SELECT cron.unschedule('gs-export')});
is($st, '', 'unscheduled');
diag(sprintf('whole test: %.0f s after the schedule', time - $t0));

$remote->stop;
$node->stop;
done_testing();
