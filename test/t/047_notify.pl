# 047_notify.pl: live updates.  A session that LISTENs gs_export sees a
# job's progress (one notification per recorded batch, one per change of
# state) with doc/contract.md's payload and nothing more; gs_export.notify =
# off silences it; where the publication supabase_realtime exists, the jobs
# and errors tables join it.
use strict;
use warnings;

use GsExportTest;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-05-31 23:00:00+00' - (g * interval '37 minutes'), 'lead ' || g
	  FROM generate_series(1, 300) g
});

# Every notification psql printed, as decoded payloads.
sub notifications
{
	my ($out) = @_;
	my @n;
	while ($out =~ /Asynchronous notification "gs_export" with payload "(.*?)" received from server process/g)
	{
		push @n, decode_json($1);
	}
	return @n;
}

my $listener = $node->background_psql('postgres');
$listener->query_safe('LISTEN gs_export');

my $job = GsExportTest::create_job($node,
	q{'2026-05-31', NULL, '{"batch_size": 50, "delay_ms": 0, "time_zone": "UTC"}'});
is(GsExportTest::wait_status($node, $job, 'completed|failed'), 'completed', 'the job completes');
my $out = $listener->query_safe('SELECT 1');
my @n = grep { $_->{job_id} eq $job } notifications($out);

ok(@n >= 8, 'notifications arrived: ' . scalar(@n));
is_deeply([ sort keys %{ $n[0] } ],
	[ qw(error_leads exported_leads job_id processing_date status total_leads) ],
	'the payload holds the contract\'s fields and nothing else');
is($n[0]{status}, 'pending', 'the first says pending (the job was created)');
is($n[-1]{status}, 'completed', 'the last says completed');
is("$n[-1]{total_leads}/$n[-1]{exported_leads}/$n[-1]{error_leads}", '300/300/0',
	'the last carries the final counts');
my @totals = map { $_->{total_leads} } grep { $_->{status} eq 'running' } @n;
is_deeply([ grep { $_ % 50 == 0 && $_ > 0 } @totals ], [ 50, 100, 150, 200, 250, 300 ],
	'one notification per recorded batch, counts growing');
unlike($out, qr/\Q$GsExportTest::API_KEY\E/, 'no key in any payload');

# Pause and resume are changes of state too.
my $job2;
$node->safe_psql('postgres', q{UPDATE leads SET updated_at = updated_at - interval '1 second'});
$job2 = GsExportTest::create_job($node,
	q{'2026-05-31', NULL, '{"batch_size": 10, "delay_ms": 2000, "time_zone": "UTC"}'});
GsExportTest::wait_true($node,
	"SELECT total_leads > 0 FROM gestao_scouter_export_jobs WHERE id = '$job2'");
$node->safe_psql('postgres', "SELECT gs_export_pause('$job2')");
$node->safe_psql('postgres', "SELECT gs_export_resume('$job2')");
$node->safe_psql('postgres', "SELECT gs_export_pause('$job2')");
$out = $listener->query_safe('SELECT 1');
my @states = map { $_->{status} } grep { $_->{job_id} eq $job2 } notifications($out);
my $seq = join(' ', @states);
like($seq, qr/paused running.* paused$|paused running paused$/, "pause, resume, pause notified in order: $seq");

# Off: no notification at all.
$node->append_conf('postgresql.conf', 'gs_export.notify = off');
$node->reload;
GsExportTest::wait_true($node,
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'gs_export job worker'", 30);
$out = $listener->query_safe('SELECT 1');	# what came before is not counted
$node->safe_psql('postgres', "SELECT gs_export_resume('$job2')");
$node->safe_psql('postgres', "SELECT gs_export_pause('$job2')");
$out = $listener->query_safe('SELECT 1');
is(scalar(grep { $_->{job_id} eq $job2 } notifications($out)), 0,
	'gs_export.notify = off: nothing is sent');
$listener->quit;

# Supabase Realtime: the publication, where it exists, gets the tables.
$node->safe_psql('postgres', 'CREATE DATABASE rt');
$node->safe_psql('rt', 'CREATE PUBLICATION supabase_realtime');
$node->safe_psql('rt', 'CREATE EXTENSION gs_export');
is($node->safe_psql('rt', q{SELECT string_agg(tablename, ',' ORDER BY tablename)
	FROM pg_publication_tables WHERE pubname = 'supabase_realtime'}),
	'gestao_scouter_export_errors,gestao_scouter_export_jobs',
	'the jobs and errors tables are in supabase_realtime');
$node->safe_psql('postgres', 'CREATE DATABASE nort');
$node->safe_psql('nort', 'CREATE EXTENSION gs_export');
is($node->safe_psql('nort', 'SELECT count(*) FROM pg_publication'), '0',
	'without it, no publication is made');

$remote->stop;
done_testing();
