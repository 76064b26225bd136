# 046_infinite_dates.pl: leads with updated_at 'infinity' and '-infinity'.
# An infinite updated_at belongs to no day, like NULL: such leads are not
# exported, and the job is unaffected -- its total counts the finite leads
# only, processing_date and last_completed_date stay finite (the day of the
# oldest finite lead at the end, with no end date), and doc/usage.md's
# monitoring query works while and after the job runs.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

# 50 leads over 2026-08-01 .. 2026-08-05 (UTC), one 'infinity', one '-infinity'.
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-08-05 22:00:00+00' - g * interval '2 hours 17 minutes', 'lead ' || g
	  FROM generate_series(1, 50) g
	UNION ALL SELECT 9001, timestamptz 'infinity', 'infinity'
	UNION ALL SELECT 9002, timestamptz '-infinity', '-infinity'
});
my $oldest = $node->safe_psql('postgres',
	q{SELECT min((updated_at AT TIME ZONE 'UTC')::date) FROM leads WHERE isfinite(updated_at)});
is($oldest, '2026-08-01', 'the oldest finite lead is on 2026-08-01');

# Every position a job records, kept by a trigger.
$node->safe_psql('postgres', q{
	CREATE TABLE job_positions (job_id uuid, processing_date date, last_completed_date date,
	                            seen_at timestamptz DEFAULT clock_timestamp());
	CREATE FUNCTION log_job_position() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = public, pg_catalog AS $$
	BEGIN
		INSERT INTO public.job_positions (job_id, processing_date, last_completed_date)
		VALUES (NEW.id, NEW.processing_date, NEW.last_completed_date);
		RETURN NULL;
	END $$;
	CREATE TRIGGER log_job_position AFTER INSERT OR UPDATE ON gestao_scouter_export_jobs
	   FOR EACH ROW EXECUTE FUNCTION log_job_position();
});

# doc/usage.md, "Monitoring", the first query.
my $monitoring = q{
SELECT id, status, processing_date, last_completed_date,
       total_leads, exported_leads, error_leads, pause_reason,
       round(100.0 * (start_date - processing_date) / NULLIF(start_date - end_date + 1, 0), 1) AS pct_days
  FROM gestao_scouter_export_jobs
 WHERE status IN ('pending', 'running', 'paused')
 ORDER BY created_at DESC LIMIT 1;
};

sub run_sql
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my $ret = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err);
	return ($ret, $out, $err);
}

my $job = GsExportTest::create_job($node,
	q{start_date => '2026-08-06', options => '{"batch_size": 5, "delay_ms": 150, "time_zone": "UTC"}'});

# The monitoring query, over and over while the job runs.
my ($runs, $rows, @errors) = (0, 0);
my $deadline = time + 60;
while (time < $deadline)
{
	my $st = $node->safe_psql('postgres', "SELECT status FROM gestao_scouter_export_jobs WHERE id = '$job'");
	my ($ret, $out, $err) = run_sql($monitoring);
	$runs++;
	$rows++ if $out =~ /\Q$job\E/;
	push @errors, $err if $ret != 0;
	last if $st =~ /^(completed|failed|paused)$/;
	usleep(50_000);
}
diag("monitoring query ran $runs times, $rows times showing the job");
cmp_ok($rows, '>=', 3, 'the monitoring query saw the job running');
is_deeply([ @errors[0 .. ($#errors < 2 ? $#errors : 2)] ], [], 'the monitoring query never failed while the job ran');

is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 30), 'completed', 'the job completed');
my $j = GsExportTest::job($node, $job);
is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", '50/50/0', 'total = exported = 50: the infinite leads are not counted');
is($remote->count, 50, 'the remote holds the 50 finite leads');
is($remote->count('id > 9000'), 0, 'neither infinite lead is on the remote');
is($node->safe_psql('postgres', "SELECT count(*) FROM sync_events WHERE lead_id > 9000"), 0,
	'no sync_events row for the infinite leads');
is(GsExportTest::sync_summary($node, $job), '50/50/0/0/0', 'one success sync_events row per finite lead');
is($node->safe_psql('postgres', qq{
	SELECT isfinite(processing_date) || '/' || isfinite(last_completed_date)
	  FROM gestao_scouter_export_jobs WHERE id = '$job'}), 'true/true',
	'processing_date and last_completed_date are finite');
is("$j->{processing_date}/$j->{last_completed_date}", "$oldest/$oldest",
	'processing_date and last_completed_date are the day of the oldest finite lead');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM job_positions
	 WHERE job_id = '$job' AND (NOT isfinite(processing_date) OR NOT isfinite(last_completed_date))}),
	0, 'no infinite processing_date or last_completed_date was ever recorded');

# The same query for this job once it is over (its status filter aside).
(my $for_job = $monitoring) =~ s/WHERE status IN \('pending', 'running', 'paused'\)/WHERE id = '$job'/;
my ($ret, $out, $err) = run_sql($for_job);
is($ret, 0, 'the monitoring query runs on the completed job') or diag($err);
like($out, qr/^\Q$job\E\|completed\|/, 'and shows it');
($ret, $out, $err) = run_sql($monitoring);
is($ret, 0, 'the monitoring query runs after the job') or diag($err);

$remote->stop;
$node->stop;
done_testing();
