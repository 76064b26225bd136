# 101_adaptive.pl: pace "adaptive" (doc/contract.md, "Pace").  It must export
# every lead exactly once, whatever it does to its pace, and find a pace
# that suits the remote:
#   a. a near remote: the batch grows from batch_size towards
#      batch_size_max;
#   b. a far remote (150 ms a request): it also keeps several requests in
#      flight;
#   c. a gateway that answers 429 beyond 2 requests at once (Retry-After):
#      it backs off, learns the limit, and few of its requests are refused;
#   d. 413 Payload Too Large: it backs off (the batch) and goes on; two
#      isolated 503s are retried and are no reason to back off (they are
#      noise; 102_pace_recovery.pl has a remote that is down for a while);
#   e. more requests waiting for their retry than the requests in flight it
#      backed off to: they go one by one (they once waited for each other).
# How fast is the benchmark's business (bench/run --wan), not this test's.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

my $n = 3000;
GsExportTest::insert_leads($node, qq{
	SELECT g, timestamptz '2026-04-20 23:00:00+00' - (g * interval '4 minutes'), 'lead ' || g
	  FROM generate_series(1, $n) g
});
my $src_ids = join(',', 1 .. $n);


sub new_case
{
	my ($opts, @faults) = @_;
	$remote->wait_idle;
	$remote->truncate;
	$remote->reset;
	$remote->faults(%$_) for @faults;
	return GsExportTest::create_job($node, qq{'2026-04-20', '2026-04-01', '$opts'});
}


sub largest_request
{
	my $max = 0;
	for my $r (@{ $remote->requests })
	{
		my $k = scalar(@{ $r->{ids} // [] });
		$max = $k if $k > $max;
	}
	return $max;
}

sub check_outcome
{
	my ($job, $label) = @_;
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 180), 'completed',
		"$label: the job completed");
	$remote->wait_idle;
	my $j = GsExportTest::job($node, $job);
	is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$n/0", "$label: counters exact");
	is(GsExportTest::sync_summary($node, $job), "$n/$n/0/0/0", "$label: one sync_events row per lead");
	is($remote->ids, $src_ids, "$label: the remote holds exactly every lead");
	my %seen;
	for my $r (@{ $remote->requests })
	{
		next unless ($r->{status} // 0) =~ /^20/;
		$seen{$_}++ for @{ $r->{ids} // [] };
	}
	is(scalar(grep { $_ != 1 } values %seen), 0, "$label: each lead in exactly one successful request");
	return $j;
}

my $log_at = -s $node->logfile;
sub log_since { my $l = slurp_file($node->logfile, $log_at); $log_at = -s $node->logfile; return $l; }

# --- (a) near ---------------------------------------------------------------
{
	my $job = new_case('{"pace": "adaptive", "batch_size": 25, "batch_size_max": 800, "max_in_flight": 4, "time_zone": "UTC"}');
	check_outcome($job, '(a) near');
	my $largest = largest_request();
	cmp_ok($largest, '>', 100, "(a) near: the batch grew from 25 (largest request $largest leads)");
	cmp_ok($largest, '<=', 800, '(a) near: never past batch_size_max');
	like(log_since(), qr/job $job started: adaptive pace from batches of 25 up to 800, up to 4 in flight/,
		'(a) the start line says the pace is adaptive');
}

# --- (b) far ------------------------------------------------------------------
{
	my $job = new_case('{"pace": "adaptive", "batch_size": 25, "batch_size_max": 400, "max_in_flight": 6, "time_zone": "UTC"}',
		{ delay_ms => 150 });
	check_outcome($job, '(b) far');
	my $conc = $remote->max_concurrent;
	cmp_ok($conc, '>', 1, "(b) far: several requests in flight ($conc at most)");
	cmp_ok($conc, '<=', 6, '(b) far: never more than max_in_flight');
	is(largest_request(), 400, '(b) far: the batch grew to batch_size_max');
	log_since();
}

# --- (c) a gateway that allows 2 requests at once -----------------------------
{
	my $job = new_case('{"pace": "adaptive", "batch_size": 25, "batch_size_max": 50, "max_in_flight": 8, "time_zone": "UTC"}',
		{ delay_ms => 100, max_concurrent => 2 });
	check_outcome($job, '(c) rate-limited');
	my $reqs = $remote->requests;
	my $refused = grep { ($_->{status} // 0) == 429 } @$reqs;
	my $share = $refused / scalar(@$reqs);
	cmp_ok($refused, '>=', 1, "(c) rate-limited: it met the limit ($refused refused of " . scalar(@$reqs) . ')');
	cmp_ok($share, '<=', 0.10, sprintf('(c) rate-limited: few refused (%.1f %%)', 100 * $share));
	# where they were refused: how many requests the stand-in was working on
	for my $r (grep { ($_->{status} // 0) == 429 } @$reqs)
	{
		my $at = $r->{started_at};
		my $busy = grep { $_ != $r && ($_->{status} // 0) != 429 && $_->{started_at} <= $at
			  && $_->{started_at} + ($_->{duration_ms} // 0) / 1000 > $at } @$reqs;
		diag("(c) request $r->{seq} refused with $busy others at the remote");
	}
	like(log_since(), qr/job $job: adaptive pace backs off \(429 Too Many Requests\)/,
		'(c) rate-limited: the log says it backed off');
}

# --- (d) 413, and two isolated 503s -----------------------------------------------
{
	# the first request is refused as too large; two 503s come later
	my $job = new_case('{"pace": "adaptive", "batch_size": 50, "batch_size_max": 800, "max_in_flight": 4, "time_zone": "UTC"}',
		{ delay_ms => 20 }, { fail_next => 1, status => 413 });
	GsExportTest::wait_for('the 413', sub { grep { ($_->{status} // 0) == 413 } @{ $remote->requests } });
	GsExportTest::wait_true($node,
		"SELECT exported_leads >= 500 OR status <> 'running' FROM gestao_scouter_export_jobs WHERE id = '$job'", 60);
	$remote->faults(fail_next => 2, status => 503);
	check_outcome($job, '(d) 413 and 503');
	my $log = log_since();
	like($log, qr/job $job: adaptive pace backs off \(413 Payload Too Large\): 25 leads per request/,
		'(d) 413: the batch was halved');
	is(largest_request(), 50, '(d) 413: no request larger than the refused one since');
	my @r503 = grep { ($_->{status} // 0) == 503 } @{ $remote->requests };
	is(scalar(@r503), 2, '(d) 503: two were answered');
	unlike($log, qr/job $job: adaptive pace backs off \((?!413)/,
		'(d) 503: two isolated ones are no reason to back off');
}

# --- (e) more requests to retry than the window it backed off to -------------------
{
	# three requests in flight are refused with 503 at once: the window
	# halves below three, and the three retries must still go, one by one
	my $job = new_case('{"pace": "adaptive", "batch_size": 40, "batch_size_max": 40, "max_in_flight": 4, "time_zone": "UTC"}',
		{ delay_ms => 150 });
	GsExportTest::wait_for('three requests at once', sub { $remote->stats->{max_concurrent_seen} >= 3 }, 60);
	$remote->faults(fail_next => 3, status => 503);
	check_outcome($job, '(e) 503 to three in flight');
	is(scalar(grep { ($_->{status} // 0) == 503 } @{ $remote->requests }), 3, '(e) three were refused');
}

$remote->stop;
$node->stop;
done_testing();
