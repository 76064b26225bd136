# 003_restart.pl: a job survives an immediate shutdown, a fast restart, and
# the killing of its worker or of the launcher; it finishes by itself with
# every lead counted once.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

my $n = 3000;
GsExportTest::insert_leads($node, qq{
	SELECT g, timestamptz '2026-08-31 23:00:00+00' - (g * interval '11 minutes'), 'lead ' || g
	  FROM generate_series(1, $n) g
});

my $job = GsExportTest::create_job($node,
	q{'2026-08-31', '2026-01-01', '{"batch_size": 50, "delay_ms": 40, "time_zone": "UTC"}'});

# 1. Immediate shutdown mid-job (no chance to record anything).
GsExportTest::wait_true($node,
	"SELECT exported_leads >= 400 FROM gestao_scouter_export_jobs WHERE id = '$job'");
$node->stop('immediate');
$node->start;
GsExportTest::wait_true($node, qq{SELECT exported_leads >= 800 FROM gestao_scouter_export_jobs WHERE id = '$job'});
ok(1, 'after an immediate shutdown the job goes on by itself');

# 2. Fast restart mid-job.
$node->restart;
GsExportTest::wait_true($node, qq{SELECT exported_leads >= 1200 FROM gestao_scouter_export_jobs WHERE id = '$job'});
ok(1, 'after a fast restart the job goes on by itself');

# 3. Kill the job worker: the launcher starts another.
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'gs_export job worker'");
ok($pid, "job worker running (pid $pid)");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
GsExportTest::wait_true($node, qq{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'gs_export job worker' AND pid <> $pid});
ok(1, 'a killed job worker is replaced');

# 4. Kill the launcher: the postmaster restarts it, the job goes on.
my $lpid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'gs_export launcher'");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($lpid)");
GsExportTest::wait_true($node, qq{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'gs_export launcher' AND pid <> $lpid}, 30);
ok(1, 'a killed launcher is restarted');

is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 180), 'completed', 'the job completed');
my $j = GsExportTest::job($node, $job);
is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$n/0",
	'every lead counted once: total = exported = leads');
is($remote->count, $n, 'every lead on the remote');
is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], [], 'remote equals the source');
is($node->safe_psql('postgres', qq{
	SELECT count(*) || '/' || count(DISTINCT lead_id) FROM sync_events
	 WHERE job_id = '$job' AND status = 'success'}), "$n/$n", 'no duplicate success rows');

# Never two workers on one job: no lead was sent by two workers at once,
# i.e. requests for the job never overlapped in time.
my @reqs = sort { $a->{started_at} <=> $b->{started_at} } @{ $remote->requests };
my $overlaps = 0;
for my $i (1 .. $#reqs)
{
	my $prev_end = $reqs[ $i - 1 ]{started_at} + $reqs[ $i - 1 ]{duration_ms} / 1000.0;
	$overlaps++ if $reqs[$i]{started_at} < $prev_end - 0.001;
}
is($overlaps, 0, 'requests never overlapped: one worker at a time');

$remote->stop;
$node->stop;
done_testing();
