# 090_statement_timeout.pl: batches the remote's statement timeout kills
# (500 with code 57014; Supabase's API roles have 3 s / 8 s statement
# timeouts).  The remote's fichas is made slow per row (a trigger that
# sleeps 6 ms per row of the statement) and the stand-in sets a statement
# timeout of 1050 ms, so requests above ~175 leads time out.  A job with
# batch_size 1000 splits what times out, keeps the size that went through
# for the rest of the job, and exports every lead exactly once; its
# requests are counted against a job with a fixed batch_size of 150.  A
# lead that times out even alone is retried as trouble that may pass, then
# the job pauses, and that lead is never an error; one that times out
# alone only for a while does not shrink the requests after it.  A 57014
# the stand-in injects (010_remote_faults tests the other transient
# answers) is split too.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

my $timeout_ms = 1050;
my $row_ms = 6;

# 2000 leads in the first half of 2026, newest (lowest id) first.
my $n = 2000;
GsExportTest::insert_leads($node, qq{
	SELECT g, timestamptz '2026-06-30 23:00:00+00' - (g * interval '7 minutes'), 'lead ' || g
	  FROM generate_series(1, $n) g
});

# Each row of an upsert waits until the statement is $row_ms ms per row
# old: a request of k rows takes k * $row_ms ms, however fast the machine.
$remote->{db}->safe_psql('remote', qq{
CREATE FUNCTION public.slow_rows() RETURNS trigger LANGUAGE plpgsql AS \$\$
DECLARE
    k integer := COALESCE(NULLIF(current_setting('gs_test.rows', true), ''), '0')::integer + 1;
BEGIN
    PERFORM set_config('gs_test.rows', k::text, true);
    PERFORM pg_sleep(GREATEST(0, EXTRACT(epoch FROM statement_timestamp()
                                         + k * interval '$row_ms ms' - clock_timestamp())));
    RETURN NEW;
END
\$\$;
CREATE TRIGGER slow_rows BEFORE INSERT ON public.fichas
    FOR EACH ROW EXECUTE FUNCTION public.slow_rows();
});

sub fresh_remote
{
	$remote->truncate;
	$remote->reset;
	$remote->faults(statement_timeout_ms => $timeout_ms);
}

# A job over the leads, as options; returns its id once it ended.
sub run_job
{
	my ($opts, $want) = @_;
	my $job = GsExportTest::create_job($node, "'2026-06-30', '2026-01-01', '$opts'");
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 300), $want // 'completed',
		"job $opts: " . ($want // 'completed'));
	GsExportTest::wait_no_worker($node);
	return $job;
}

# Every lead exported exactly once: counters, the remote's rows, one
# success sync_events row per lead, each lead in exactly one successful
# request.
sub check_once
{
	my ($job, $what) = @_;
	my $j = GsExportTest::job($node, $job);
	is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$n/0",
		"$what: counters exact (total/exported/errors)");
	is($remote->count, $n, "$what: the remote has every lead");
	is($node->safe_psql('postgres', "SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = '$job'"),
		'0', "$what: no error rows");
	is(GsExportTest::sync_summary($node, $job), "$n/$n/0/0/0",
		"$what: one success sync_events row per lead, nothing else");
	my %ok;
	for my $r (@{ $remote->requests })
	{
		next unless defined $r->{status} && $r->{status} =~ /^20[01]$/;
		$ok{$_}++ for @{ $r->{ids} };
	}
	my @not_once = grep { ($ok{$_} // 0) != 1 } 1 .. $n;
	is(scalar(@not_once), 0, "$what: every lead was in exactly one successful request");
}

# Requests: [total, timed out (500 57014), successful, largest successful].
sub request_counts
{
	my $reqs = $remote->requests;
	my @timeouts = grep { ($_->{status} // 0) == 500 } @$reqs;
	my @ok = grep { ($_->{status} // 0) =~ /^20[01]$/ } @$reqs;
	my $largest = 0;
	for (@ok) { $largest = $_->{n_rows} if ($_->{n_rows} // 0) > $largest; }
	return (scalar(@$reqs), scalar(@timeouts), scalar(@ok), $largest, $reqs);
}

###########################################################################
# 1. batch_size 1000: split down to what the remote takes in time, kept.
###########################################################################
fresh_remote();
my $t0 = time;
my $job = run_job('{"batch_size": 1000, "delay_ms": 0, "time_zone": "UTC"}');
my $took_split = time - $t0;
check_once($job, 'batch_size 1000');
my ($total, $timeouts, $ok, $largest, $reqs) = request_counts();
my @t = grep { ($_->{status} // 0) == 500 } @$reqs;
is(scalar(grep { ($_->{status} // 0) !~ /^(?:200|201|500)$/ } @$reqs), 0,
	'batch_size 1000: every answer was a success or a statement timeout');
is_deeply([ map { $_->{n_rows} } @t[0 .. 2] ], [ 1000, 500, 250 ],
	'batch_size 1000: 1000 timed out, then its first half, then that half\'s first half');
cmp_ok($timeouts, '<=', 4, "batch_size 1000: $timeouts requests timed out, no more than the first splits (and a stray one)");
cmp_ok($largest, '<=', 125, "batch_size 1000: no successful request held more than 125 leads (largest $largest)");
my $after = 0;
my $seen_ok = 0;
for my $r (@$reqs)
{
	$seen_ok ||= ($r->{status} // 0) =~ /^20[01]$/;
	$after++ if $seen_ok && ($r->{status} // 0) == 500;
}
cmp_ok($after, '<=', 1, 'batch_size 1000: once a size went through, later requests kept to it');
ok($node->log_contains(qr/job $job: the remote's statement timeout cancelled a request of 250 leads, and its halves went through: its requests now hold at most 125 leads/),
	'batch_size 1000: LOG line for the lowered size');
my $no_error = $node->safe_psql('postgres',
	"SELECT count(*) FROM sync_events WHERE job_id = '$job' AND status <> 'success'");
is($no_error, '0', 'batch_size 1000: no lead recorded as an error');

###########################################################################
# 2. A fixed batch_size of 150, for comparison.
###########################################################################
fresh_remote();
$t0 = time;
my $job150 = run_job('{"batch_size": 150, "delay_ms": 0, "time_zone": "UTC"}');
my $took_150 = time - $t0;
check_once($job150, 'batch_size 150');
my ($total150, $timeouts150, $ok150, $largest150) = request_counts();
is($timeouts150, 0, 'batch_size 150: no statement timeout');
is($total150, int(($n + 149) / 150), "batch_size 150: ceil($n / 150) requests");

diag(sprintf('statement timeout %d ms, %d ms per row, %d leads: batch_size 1000 needed %d requests '
		  . '(%d timed out, %d succeeded, the largest %d leads) in %.1f s; '
		  . 'a fixed batch_size 150 needed %d requests in %.1f s',
		$timeout_ms, $row_ms, $n, $total, $timeouts, $ok, $largest, $took_split, $total150, $took_150));

###########################################################################
# 3. A lead the remote takes too long to write even alone: retried as
#    trouble that may pass, then the job pauses; never an error of the lead.
###########################################################################
# Lead 5 takes 2 s in the first slow_lead_limit requests that hold it (a
# sequence counts them: a cancelled request does not roll it back).
$remote->{db}->safe_psql('remote', q{
CREATE SEQUENCE public.slow_lead_calls;
CREATE TABLE public.slow_lead_limit (calls bigint);
INSERT INTO public.slow_lead_limit VALUES (1000000);
CREATE FUNCTION public.slow_lead() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = 5 THEN
        IF nextval('public.slow_lead_calls') <= (SELECT calls FROM public.slow_lead_limit) THEN
            PERFORM pg_sleep(2);
        END IF;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER slow_lead BEFORE INSERT ON public.fichas
    FOR EACH ROW EXECUTE FUNCTION public.slow_lead();
});
$node->safe_psql('postgres', 'DELETE FROM leads WHERE id > 40');
$n = 40;
GsExportTest::set_gucs($node, 'gs_export.max_retries' => 3, 'gs_export.retry_max_delay_ms' => 200);
fresh_remote();
$job = run_job('{"batch_size": 8, "delay_ms": 0, "time_zone": "UTC"}', 'paused');
my $j = GsExportTest::job($node, $job);
like($j->{pause_reason}, qr/statement timeout cancelled the upsert of lead 5 even alone \(HTTP 500 57014: canceling statement due to statement timeout\) after 3 attempts/,
	"lone slow lead: paused, the reason names the lead and the timeout: $j->{pause_reason}");
is("$j->{total_leads}/$j->{error_leads}", '0/0', 'lone slow lead: nothing counted, no error');
is($node->safe_psql('postgres', "SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = '$job'"),
	'0', 'lone slow lead: no error row');
$reqs = $remote->requests;
is_deeply([ map { ($_->{status} // 'x') . ':' . join(',', @{ $_->{ids} // [] }) } @$reqs ],
	[
		'500:1,2,3,4,5,6,7,8', '201:1,2,3,4', '500:5,6,7,8', '500:5,6',
		'500:5', '500:5', '500:5'
	],
	'lone slow lead: split down to lead 5, which is retried alone until the retries run out');

# Slow only for a while (its first 4 requests: the batch, two halves, and
# once alone): once lead 5 goes through alone, the job goes on with
# requests of its batch_size (a lone lead says nothing of the size).
$remote->{db}->safe_psql('remote', q{
UPDATE public.slow_lead_limit SET calls = 4;
SELECT setval('public.slow_lead_calls', 1, false);
});
$remote->truncate;
$remote->reset;
$remote->faults(statement_timeout_ms => $timeout_ms);
$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 120), 'completed',
	'lone lead slow for a while: the resumed job completed');
GsExportTest::wait_no_worker($node);
$reqs = $remote->requests;
note('requests: ' . join(' ', map { ($_->{status} // 'x') . ':' . join(',', @{ $_->{ids} // [] }) } @$reqs));
is_deeply([ map { ($_->{status} // 'x') . ':' . join(',', @{ $_->{ids} // [] }) } @$reqs[0 .. 7] ],
	[
		'500:1,2,3,4,5,6,7,8', '201:1,2,3,4', '500:5,6,7,8', '500:5,6', '500:5', '201:5',
		'201:6', '201:7,8'
	],
	'lone lead slow for a while: split, retried alone, then through');
is_deeply([ map { $_->{n_rows} } @$reqs[8 .. $#$reqs] ], [ 8, 8, 8, 8 ],
	'lone lead slow for a while: the next batches go whole, 8 leads each');
check_once($job, 'lone lead slow for a while');

###########################################################################
# 4. A 57014 the stand-in injects (fail_next, PostgREST's body): split,
#    both halves go through, and the rest of the job keeps to the half.
###########################################################################
$remote->{db}->safe_psql('remote', 'DROP TRIGGER slow_lead ON public.fichas');
fresh_remote();
$remote->faults(fail_next => 1, status => 500,
	body => { code => '57014', details => undef, hint => undef,
		message => 'canceling statement due to statement timeout' });
$job = run_job('{"batch_size": 8, "delay_ms": 0, "time_zone": "UTC"}');
$reqs = $remote->requests;
is_deeply([ map { ($_->{status} // 'x') . ':' . join(',', @{ $_->{ids} // [] }) } @$reqs[0 .. 2] ],
	[ '500:1,2,3,4,5,6,7,8', '201:1,2,3,4', '201:5,6,7,8' ],
	'injected 57014: the batch is split, not sent again whole');
is_deeply([ map { $_->{n_rows} } @$reqs[3 .. $#$reqs] ], [ (4) x 8 ],
	'injected 57014: the rest of the job goes in requests of 4');
check_once($job, 'injected 57014');

GsExportTest::set_gucs($node, 'gs_export.max_retries' => undef, 'gs_export.retry_max_delay_ms' => undef);
$remote->stop;
$node->stop;
done_testing();
