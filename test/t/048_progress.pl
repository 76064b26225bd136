# 048_progress.pl: what a progress display reads from the job row.
# leads_in_range is counted when the job starts (the leads of its days, as
# its owner reads them: row level security on leads applies), and
# recent_leads_per_second follows the batches.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

# 400 leads over 2026-05-01 .. 2026-05-20 (UTC), 30 after, 30 before, and a
# few in no day at all.
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-05-20 23:00:00+00' - (g * interval '71 minutes'), 'lead ' || g
	  FROM generate_series(1, 400) g
	UNION ALL SELECT 1000 + g, timestamptz '2026-05-25 10:00:00+00' + g * interval '1 minute', 'after'
	  FROM generate_series(1, 30) g
	UNION ALL SELECT 2000 + g, timestamptz '2026-04-20 10:00:00+00' + g * interval '1 minute', 'before'
	  FROM generate_series(1, 30) g
	UNION ALL SELECT 3001, NULL, 'no day'
	UNION ALL SELECT 3002, 'infinity', 'no day'
	UNION ALL SELECT 3003, '-infinity', 'no day'
});
my $in_range = $node->safe_psql('postgres', q{
	SELECT count(*) FROM leads WHERE updated_at >= '2026-05-01 00:00+00' AND updated_at < '2026-05-21 00:00+00'});
is($in_range, 400, 'the data set has 400 leads in the range');

# Before its worker starts (in the creating transaction) it is not known.
is($node->safe_psql('postgres', q{BEGIN;
	SELECT gs_export_create('2026-05-20', '2026-05-01', '{"time_zone": "UTC"}') AS j \gset
	SELECT leads_in_range IS NULL FROM gestao_scouter_export_jobs WHERE id = :'j';
	ROLLBACK}), 't', 'leads_in_range is NULL before the job starts');
my $job = GsExportTest::create_job($node,
	q{'2026-05-20', '2026-05-01', '{"batch_size": 20, "delay_ms": 50, "time_zone": "UTC"}'});
GsExportTest::wait_true($node,
	"SELECT total_leads >= 100 FROM gestao_scouter_export_jobs WHERE id = '$job'");
my $row = GsExportTest::job($node, $job);
is($row->{leads_in_range}, 400, 'leads_in_range: the leads of the days, counted when the job started');
cmp_ok($row->{recent_leads_per_second}, '>', 0, "a recent rate while running: $row->{recent_leads_per_second} leads/s");
is(GsExportTest::wait_status($node, $job, 'completed|failed'), 'completed', 'the job completes');
$row = GsExportTest::job($node, $job);
is("$row->{leads_in_range}/$row->{total_leads}", '400/400', 'all of the range processed');

# The whole history: the count covers every day down to the oldest lead,
# but no lead in no day.
$remote->truncate;
my $job2 = GsExportTest::create_job($node,
	q{'2026-06-30', NULL, '{"batch_size": 100, "delay_ms": 0, "time_zone": "UTC"}'});
is(GsExportTest::wait_status($node, $job2, 'completed|failed'), 'completed', 'a job without end_date completes');
is(GsExportTest::job($node, $job2)->{leads_in_range}, 460, 'its leads_in_range has every lead of a day');

# As the owner reads them: a role that sees only even ids counts those.
$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN;
	GRANT gs_export_user TO alice;
	GRANT SELECT ON leads TO alice;
	ALTER TABLE leads ENABLE ROW LEVEL SECURITY;
	CREATE POLICY alice_even ON leads FOR SELECT TO alice USING (id % 2 = 0);
});
$remote->truncate;
my $job3 = $node->safe_psql('postgres', q{SET ROLE alice;
	SELECT gs_export_create('2026-05-20', '2026-05-01', '{"batch_size": 100, "delay_ms": 0, "time_zone": "UTC"}')});
is(GsExportTest::wait_status($node, $job3, 'completed|failed'), 'completed', "alice's job completes");
my $j3 = GsExportTest::job($node, $job3);
is("$j3->{leads_in_range}/$j3->{total_leads}", '200/200', "alice's range counts only the leads she may read");

$remote->stop;
done_testing();
