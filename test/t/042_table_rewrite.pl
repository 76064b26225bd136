# 042_table_rewrite.pl: an ALTER TABLE that rewrites leads while a job
# runs.  The rewritten table's rows are new row versions: a read whose
# snapshot is older than the ALTER's commit sees none of them.  The worker
# must read leads with a snapshot taken once it holds its lock on leads, so
# that it never takes the rewritten table for an empty one and ends the job
# with leads never sent.
#
# Deterministic: a session holds the ALTER uncommitted (ACCESS EXCLUSIVE on
# leads) until the job worker waits for that lock, then commits.
#   1. ADD COLUMN extra uuid DEFAULT gen_random_uuid() (volatile default:
#      rewrite, the query's result unchanged);
#   2. ALTER COLUMN age TYPE numeric (rewrite, and a new result type).
# Each: the job completes with every lead of the range on the remote,
# total_leads = the number of leads, one success sync_events row per lead.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

# 500 leads over 2026-05-06 .. 2026-05-10 (UTC), 100 a day.
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-05-10 23:50:00+00' - g * interval '14 minutes', 'lead ' || g
	  FROM generate_series(1, 500) g
});
my $range = q{updated_at >= timestamptz '2026-05-06 00:00:00+00'
	AND updated_at < timestamptz '2026-05-11 00:00:00+00'};
my $n = $node->safe_psql('postgres', "SELECT count(*) FROM leads WHERE $range");
is($n, 500, "$n leads in the range");

sub rewrite_case
{
	my ($label, $alter) = @_;
	$remote->truncate;
	$remote->reset;
	my $relfilenode = $node->safe_psql('postgres', "SELECT pg_relation_filenode('leads')");
	my $job = GsExportTest::create_job($node,
		q{'2026-05-10', '2026-05-06', '{"batch_size": 20, "delay_ms": 500, "time_zone": "UTC"}'});
	GsExportTest::wait_true($node, qq{
		SELECT exported_leads >= 60 FROM gestao_scouter_export_jobs WHERE id = '$job'}, 30);

	# The ALTER, held uncommitted: it holds ACCESS EXCLUSIVE on leads.
	my $s = $node->background_psql('postgres', on_error_stop => 1);
	$s->query_safe('BEGIN');
	$s->query_safe($alter);
	my $t0 = time;
	# The worker's next read waits for that lock.
	GsExportTest::wait_true($node, q{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = 'gs_export job worker' AND wait_event_type = 'Lock'}, 30);
	my $j = GsExportTest::job($node, $job);
	is($j->{status}, 'running',
		sprintf('%s: the job worker waits on the ALTER\'s lock (after %.1f s, %d leads exported)',
			$label, time - $t0, $j->{exported_leads}));
	$s->query_safe('COMMIT');
	$s->quit;
	isnt($node->safe_psql('postgres', "SELECT pg_relation_filenode('leads')"), $relfilenode,
		"$label: the ALTER rewrote leads (new relfilenode)");

	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
		"$label: the job completed");
	$j = GsExportTest::job($node, $job);
	is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$n/0",
		"$label: total_leads = exported_leads = $n, no errors");
	is($remote->count, $n, "$label: every lead of the range on the remote");
	my @bad = GsExportTest::mismatches($node, $remote, $range);
	is_deeply([ @bad[0 .. ($#bad < 9 ? $#bad : 9)] ], [],
		"$label: every remote row equals its source lead" . (@bad ? ' (' . scalar(@bad) . ' differ)' : ''));
	is(GsExportTest::sync_summary($node, $job), "$n/$n/0/0/0",
		"$label: one success sync_events row per lead, no other rows");
	is($j->{last_completed_date}, '2026-05-06', "$label: last_completed_date is end_date");
}

rewrite_case('1 (ADD COLUMN volatile default)',
	'ALTER TABLE leads ADD COLUMN extra uuid DEFAULT gen_random_uuid()');
rewrite_case('2 (age TYPE numeric)', 'ALTER TABLE leads ALTER COLUMN age TYPE numeric');

$remote->stop;
$node->stop;
done_testing();
