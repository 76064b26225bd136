# 102_pace_recovery.pl: the adaptive pace tells a noisy or flaky remote
# from an overloaded one, and comes back after trouble (issue 17, item 2;
# doc/architecture.md, "The pace").  Its behaviour is read at the
# stand-in (requests at once, leads per request), not its speed:
#   a. 13 % transient faults (429, 503, connection reset) at random: it
#      does not end at 1 request in flight with tiny batches;
#   b. a noisy latency (50-350 ms): the same;
#   c. a burst of faults (every request answered 503 for 2 s): it backs
#      off, then grows back to the requests in flight it had before.
# In each, every lead is exported exactly once.  How fast is the
# benchmark's business (bench/run --chaos).
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

my $n = 12000;
GsExportTest::insert_leads($node, qq{
	SELECT g, timestamptz '2026-04-20 23:00:00+00' - (g * interval '1 minute'), 'lead ' || g
	  FROM generate_series(1, $n) g
});

# 6 in flight at most, 25 leads a request at first, 50 at most
my $opts = '{"pace": "adaptive", "batch_size": 25, "batch_size_max": 50, "max_in_flight": 6, "time_zone": "UTC"}';
my $max_in_flight = 6;


# A job over the newest $days days of leads: (its id, its leads).
sub new_case
{
	my ($days, @faults) = @_;
	$remote->wait_idle;
	$remote->truncate;
	$remote->reset;
	$remote->faults(%$_) for @faults;
	my $from = sprintf('2026-04-%02d', 21 - $days);
	my $k = $node->safe_psql('postgres', "SELECT count(*) FROM leads WHERE updated_at >= '$from 00:00:00+00'");
	return (GsExportTest::create_job($node, qq{'2026-04-20', '$from', '$opts'}), $k);
}

sub check_outcome
{
	my ($job, $label, $k) = @_;
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 300), 'completed',
		"$label: the job completed");
	$remote->wait_idle;
	my $j = GsExportTest::job($node, $job);
	is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$k/$k/0", "$label: counters exact");
	is($remote->count, $k, "$label: the remote holds every lead");
	my %seen;
	for my $r (@{ $remote->requests })
	{
		next unless ($r->{status} // 0) =~ /^20/;
		$seen{$_}++ for @{ $r->{ids} // [] };
	}
	is(scalar(keys %seen), $k, "$label: every lead in a successful request");
	is(scalar(grep { $_ != 1 } values %seen), 0, "$label: each lead in exactly one successful request");
}

sub median
{
	my @v = sort { $a <=> $b } @_;
	return 0 unless @v;
	return $v[ int($#v / 2) ];
}

# The stand-in's requests in the order they arrived, each with "conc": the
# requests at the stand-in when it arrived, itself included (faults and
# resets too: the worker had them in flight).
sub profile
{
	my @r = sort { $a->{seq} <=> $b->{seq} } grep { defined $_->{duration_ms} } @{ $remote->requests };
	for my $x (@r)
	{
		my $t = $x->{started_at};
		$x->{conc} = scalar grep {
			$_->{started_at} <= $t && $t < $_->{started_at} + $_->{duration_ms} / 1000
		} @r;
	}
	return @r;
}

# Requests at once and leads per successful request, median, over the
# requests from $from (a fraction of the job's requests, or a seq) to the
# last few (when the job runs dry, fewer are left to send).
sub late_pace
{
	my ($r, $from_seq) = @_;
	my @r = @$r;
	my @mid = grep { $_->{seq} > $from_seq } @r[ 0 .. $#r - 2 * $max_in_flight ];
	my @ok = grep { ($_->{status} // 0) =~ /^20/ } @mid;
	return (median(map { $_->{conc} } @mid), median(map { $_->{n_rows} // 0 } @ok), scalar(@mid));
}

my $log_at = -s $node->logfile;
sub log_since { my $l = slurp_file($node->logfile, $log_at); $log_at = -s $node->logfile; return $l; }

# --- (a) 13 % transient faults ------------------------------------------------
{
	my ($job, $k) = new_case(4,
		{ delay_ms => 200, fault_rate => 0.13, fault_mix => [ '429', '503', 'reset' ],
		  fault_retry_after => undef, chaos_seed => 17 });
	check_outcome($job, '(a) 13 % faults', $k);
	my @r = profile();
	my $faults = $remote->stats->{chaos_faults};
	cmp_ok($faults, '>=', 0.05 * @r, "(a) the remote failed many requests ($faults of " . scalar(@r) . ')');
	my ($conc, $rows, $m) = late_pace(\@r, $r[-1]{seq} / 2);
	diag("(a) second half of the job: $m requests, median $conc at once, $rows leads each");
	cmp_ok($conc, '>=', $max_in_flight / 2,
		"(a) 13 % faults: in the second half of the job, still several requests at once (median $conc of $max_in_flight)");
	cmp_ok($rows, '>=', 50, "(a) 13 % faults: and batches at their largest (median $rows leads)");
	log_since();
}

# --- (b) a noisy latency ------------------------------------------------------
{
	my ($job, $k) = new_case(4, { delay_ms => 50, delay_max_ms => 350, chaos_seed => 18 });
	check_outcome($job, '(b) noisy', $k);
	my @r = profile();
	my ($conc, $rows, $m) = late_pace(\@r, $r[-1]{seq} / 2);
	diag("(b) second half of the job: $m requests, median $conc at once, $rows leads each");
	cmp_ok($conc, '>=', $max_in_flight / 2,
		"(b) noisy: in the second half of the job, still several requests at once (median $conc of $max_in_flight)");
	cmp_ok($rows, '>=', 50, "(b) noisy: and batches at their largest (median $rows leads)");
	log_since();
}

# --- (c) a burst of faults ----------------------------------------------------
{
	my ($job, $total) = new_case(8, { delay_ms => 200 });
	# the pace found: 60 requests in, before the burst
	GsExportTest::wait_for('60 requests', sub { $remote->stats->{requests} >= 60 }, 120);
	$remote->faults(burst_after_ms => 0, burst_for_ms => 2000, burst_fault => '503');
	GsExportTest::wait_for('the end of the burst',
		sub { ($remote->control('GET', 'faults')->{burst_remaining_ms} // 0) == 0 }, 60);
	my $after = $remote->stats->{requests};
	check_outcome($job, '(c) burst', $total);
	my @r = profile();
	my @burst = grep { ($_->{fault} // '') eq 'burst_503' } @r;
	cmp_ok(scalar(@burst), '>=', 3, '(c) the burst failed requests (' . scalar(@burst) . ')');
	my $first_burst = $burst[0]{seq};
	my @pre = grep { $_->{seq} > $first_burst - 30 && $_->{seq} < $first_burst } @r;
	my $pre = median(map { $_->{conc} } @pre);
	cmp_ok($pre, '>=', $max_in_flight / 2, "(c) before the burst, several requests at once (median $pre)");
	like(log_since(), qr/job $job: adaptive pace backs off/, '(c) the pace backed off in the burst');
	# after the burst, once the spans it failed are through: the last half
	# of the requests after it
	my $from = $after + ($r[-1]{seq} - $after) / 2;
	my ($conc, $rows, $k) = late_pace(\@r, $from);
	diag("(c) before the burst: median $pre at once; after it: $k requests, median $conc at once, $rows leads each");
	cmp_ok($k, '>=', 20, "(c) enough requests after the burst to judge ($k)");
	cmp_ok($conc, '>=', $pre - 1, "(c) after the burst, back to the requests at once of before (median $conc, before $pre)");
	cmp_ok($rows, '>=', 50, "(c) and to batches at their largest (median $rows leads)");
}

$remote->stop;
$node->stop;
done_testing();
