# 002_pause_resume.pl: a pause stops the worker within one batch, even in
# the middle of a long delay; resume finishes the job without sending the
# finished batches again.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-05-31 23:00:00+00' - (g * interval '17 minutes'), 'lead ' || g
	  FROM generate_series(1, 2000) g
});
my $n = 2000;

my $job = GsExportTest::create_job($node,
	q{'2026-05-31', '2026-01-01', '{"batch_size": 50, "delay_ms": 150, "time_zone": "UTC"}'});
GsExportTest::wait_true($node,
	"SELECT exported_leads >= 300 FROM gestao_scouter_export_jobs WHERE id = '$job'");
$node->safe_psql('postgres', "SELECT gs_export_pause('$job', 'testing pause')");
my $requests_at_pause = $remote->stats->{requests};

# The worker goes away by itself.
GsExportTest::wait_true($node,
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'gs_export job worker'", 30);
my $j = GsExportTest::job($node, $job);
is($j->{status}, 'paused', 'job is paused');
is($j->{pause_reason}, 'testing pause', 'pause_reason recorded');
ok(defined $j->{paused_at}, 'paused_at set');
cmp_ok($remote->stats->{requests} - $requests_at_pause, '<=', 1,
	'at most the batch in flight is sent after the pause');
is($j->{total_leads}, $j->{exported_leads}, 'counters consistent while paused');
cmp_ok($j->{total_leads}, '<', $n, 'the job stopped before the end');
is($remote->count, $j->{exported_leads}, 'remote holds what the job counts as exported');
my $requests_paused = $remote->stats->{requests};
sleep 1;
is($remote->stats->{requests}, $requests_paused, 'no requests while paused');

$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
is(GsExportTest::wait_status($node, $job, 'completed|failed'), 'completed', 'resumed job completes');
$j = GsExportTest::job($node, $job);
is($j->{pause_reason}, undef, 'resume cleared pause_reason');
is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$n/0", 'counters exact');
is($remote->count, $n, 'every lead on the remote');
is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], [], 'remote equals the source');

my %seen;
$seen{$_}++ for map { @{ $_->{ids} } } @{ $remote->requests };
is(scalar(keys %seen), $n, 'every lead was sent');
is(scalar(grep { $_ > 1 } values %seen), 0, 'no lead was sent twice: finished batches are not resent');
is($node->safe_psql('postgres',
	"SELECT count(*) || '/' || count(DISTINCT lead_id) FROM sync_events WHERE job_id = '$job'"),
	"$n/$n", 'one sync_events row per lead');

# A pause during a long delay is seen at once, not when the delay ends.
$remote->truncate;
$remote->reset;
my $job2 = GsExportTest::create_job($node,
	q{'2026-05-31', '2026-01-01', '{"batch_size": 10, "delay_ms": 60000}'});
GsExportTest::wait_true($node,
	"SELECT exported_leads = 10 FROM gestao_scouter_export_jobs WHERE id = '$job2'");
my $t0 = time;
$node->safe_psql('postgres', "SELECT gs_export_pause('$job2')");
GsExportTest::wait_true($node,
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'gs_export job worker'", 30);
my $took = time - $t0;
cmp_ok($took, '<', 5, sprintf('the worker left %.2f s after the pause, not after the 60 s delay', $took));
$j = GsExportTest::job($node, $job2);
is("$j->{status}/$j->{pause_reason}/$j->{total_leads}", 'paused/Manual/10', 'paused after one batch');

# Pausing a pending job keeps it from ever starting.
$node->safe_psql('postgres', "UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = '$job2'");
my $job3 = $node->safe_psql('postgres', q{
	BEGIN;
	SELECT gs_export_create('2026-05-31', '2026-01-01', '{"delay_ms": 0}') AS id \gset
	SELECT gs_export_pause(:'id');
	COMMIT;
	SELECT :'id';
});
$job3 =~ s/^\s+|\s+$//g;
sleep 1;
$j = GsExportTest::job($node, $job3);
is("$j->{status}/$j->{total_leads}", 'paused/0', 'a job paused while pending never starts');
is($j->{started_at}, undef, 'started_at stays empty');

$remote->stop;
$node->stop;
done_testing();
