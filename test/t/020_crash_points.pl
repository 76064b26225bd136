# 020_crash_points.pl: a job is cut down at chosen points of its life, each
# reached for certain before the cut, and must finish by itself with every
# lead of the range on the remote and counted exactly once:
#   a. immediate shutdown while a request is in flight (remote slowed);
#   b. immediate shutdown after the remote committed a batch but before the
#      worker recorded it: (b1) the answer was lost (drop_after_commit), the
#      retry hangs; (b2) the remote answered 201, the recording transaction
#      waits on a row lock the test holds;
#   c. immediate shutdown while the worker waits between two batches;
#   d. SIGKILL of the job worker mid-request: the postmaster reinitialises
#      (crash recovery) and the job finishes on its own.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $remote = GsExportTest::remote();
# Test clusters run with restart_after_crash = off; (d) needs the restart.
my $node = GsExportTest::local_node('local', conf => "restart_after_crash = on\n");
GsExportTest::configure($node, $remote);

# 290 leads over 2026-06-07 .. 2026-06-10 (UTC), plus a few outside.
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-06-10 23:00:00+00' - (g * interval '17 minutes'), 'lead ' || g
	  FROM generate_series(1, 290) g
	UNION ALL
	SELECT 900 + g, timestamptz '2026-06-11 08:00:00+00' + g * interval '1 hour', 'after ' || g
	  FROM generate_series(1, 5) g
	UNION ALL
	SELECT 950 + g, timestamptz '2026-05-20 08:00:00+00' + g * interval '1 hour', 'before ' || g
	  FROM generate_series(1, 5) g
});
my $in_range = q{updated_at >= timestamptz '2026-06-01 00:00:00+00'
	AND updated_at < timestamptz '2026-06-11 00:00:00+00'};
my $n = $node->safe_psql('postgres', "SELECT count(*) FROM leads WHERE $in_range");
is($n, 290, 'the data set has 290 leads in the range');
my $src_ids = $node->safe_psql('postgres',
	"SELECT string_agg(id::text, ',' ORDER BY id) FROM leads WHERE $in_range");

# --- helpers --------------------------------------------------------------



# The stand-in's request log entries that have no answer yet.
sub unanswered
{
	return grep { !defined $_->{duration_ms} } @{ $remote->requests };
}


# Wait until the stand-in has finished every request it got (a request
# whose client went away is still processed, and committed, by the remote).
sub wait_remote_idle
{
	GsExportTest::wait_for('the remote to finish its requests', sub { scalar(unanswered()) == 0 }, 60);
}

sub sync_rows_for
{
	my ($job, $ids) = @_;
	return $node->safe_psql('postgres', "SELECT count(*) FROM sync_events WHERE job_id = '$job'"
		. " AND lead_id IN (" . join(',', @$ids) . ")");
}

sub remote_has
{
	my ($ids) = @_;
	return $remote->count('id IN (' . join(',', @$ids) . ')');
}

# Requests after seq $since that carried lead $id and were answered 2xx.
sub resent_ok
{
	my ($since, $id) = @_;
	return scalar grep {
		     $_->{seq} > $since
		  && defined $_->{status}
		  && $_->{status} =~ /^20/
		  && grep { $_ == $id } @{ $_->{ids} // [] }
	} @{ $remote->requests };
}

# Everything doc/contract.md promises once a job is over.
sub check_outcome
{
	my ($job, $label) = @_;
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
		"$label: the job completed by itself");
	wait_remote_idle();
	my $j = GsExportTest::job($node, $job);
	is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$n/0",
		"$label: counters exact (total = exported = leads, no errors)");
	is($j->{last_completed_date}, '2026-06-01', "$label: last_completed_date is end_date");
	is($remote->ids, $src_ids, "$label: the remote holds exactly the leads of the range");
	is_deeply([ GsExportTest::mismatches($node, $remote, $in_range) ], [],
		"$label: every remote row equals its source lead");
	is(GsExportTest::sync_summary($node, $job), "$n/$n/0/0/0",
		"$label: one success sync_events row per lead, no other rows");
	is($node->safe_psql('postgres', qq{
		SELECT count(*) FROM (SELECT lead_id, status FROM sync_events WHERE job_id = '$job'
		                       GROUP BY 1, 2 HAVING count(*) > 1) d}),
		0, "$label: at most one sync_events row per lead and outcome");
}

# A fresh start for each case: empty remote, no faults, empty log.
sub new_case
{
	my ($opts) = @_;
	wait_remote_idle();
	$remote->truncate;
	$remote->reset;
	return GsExportTest::create_job($node,
		qq{'2026-06-10', '2026-06-01', '$opts'});
}

# A job (batches of 50, 300 ms apart) with a request the remote holds 3 s,
# after its first batch was recorded.  On a busy machine (tests run side by
# side) the job may send its last batch before the fault is set: then it
# ends, and the case starts again.  Once delay_next is used up, the worker
# (one request at a time) has the held request in flight.  Returns the job
# and that request.
sub case_with_request_held
{
	for my $try (1 .. 5)
	{
		my $job = new_case('{"batch_size": 50, "delay_ms": 300, "time_zone": "UTC"}');
		GsExportTest::wait_true($node,
			"SELECT exported_leads >= 50 FROM gestao_scouter_export_jobs WHERE id = '$job'");
		$remote->faults(delay_next => 1, delay_ms => 3000);
		my $got = GsExportTest::wait_for('the delayed request in flight, or the job ended', sub {
			if ($remote->control('GET', 'faults')->{delay_next} == 0)
			{
				my @u = unanswered();
				return @u ? { req => $u[-1] } : undef;
			}
			return GsExportTest::job($node, $job)->{status} =~ /^(?:completed|failed|paused)$/
			  ? { ended => 1 } : undef;
		});
		return ($job, $got->{req}) if $got->{req};
		diag("try $try: the job ended before the fault was set; again");
	}
	die 'five jobs ended before a request could be held';
}

sub restart_immediate
{
	my $t0 = time;
	$node->stop('immediate');
	$node->start;
	return time - $t0;
}

# --- (a) immediate shutdown while a request is in flight --------------------
{
	my $t0 = time;
	my ($job, $req) = case_with_request_held();
	GsExportTest::wait_true($node, "SELECT count(*) = 1 FROM pg_stat_activity"
		  . " WHERE backend_type = 'gs_export job worker' AND query = 'gs_export: sending a batch'"
		  . " AND state = 'active'", 5);
	my $before = GsExportTest::job($node, $job);
	ok(scalar(unanswered()) == 1, "(a) request $req->{seq} still in flight when the server is stopped");
	restart_immediate();
	check_outcome($job, '(a) in flight');
	# The request cut short carried the batch after the last recorded one:
	# it was sent again after the restart, and counted once.
	my ($cut) = grep { $_->{seq} == $req->{seq} } @{ $remote->requests };
	my $first = $cut->{ids}[0];
	ok(defined $first, "(a) the cut request carried leads ($cut->{n_rows})");
	ok(resent_ok($req->{seq}, $first), "(a) its lead $first was sent again after the restart");
	cmp_ok($before->{total_leads}, '<', $n, "(a) the cut came mid-job ($before->{total_leads} leads recorded)");
	diag(sprintf('(a) took %.1f s', time - $t0));
}

# --- (b1) remote committed, answer lost, worker has not recorded -------------
{
	my $t0 = time;
	my $job = new_case('{"batch_size": 50, "delay_ms": 300, "time_zone": "UTC"}');
	GsExportTest::wait_true($node,
		"SELECT exported_leads >= 50 FROM gestao_scouter_export_jobs WHERE id = '$job'");
	# The next request is committed by the remote, which then closes the
	# connection without answering; it and the worker's retry wait 2 s first.
	$remote->faults(drop_after_commit_next => 1, delay_next => 2, delay_ms => 2000);
	my $dropped = GsExportTest::wait_for('a request dropped after commit', sub {
		my @r = grep { ($_->{fault} // '') eq 'drop_after_commit' } @{ $remote->requests };
		$r[0] });
	my ($retry) = GsExportTest::wait_for('the retry in flight', sub {
		my @u = grep { $_->{seq} > $dropped->{seq} } unanswered(); $u[0] });
	my @ids = @{ $dropped->{ids} };
	is(remote_has(\@ids), scalar(@ids), '(b1) the remote committed the dropped batch ('
		  . scalar(@ids) . ' leads)');
	is(sync_rows_for($job, \@ids), 0, '(b1) the worker has recorded none of them');
	ok(scalar(grep { $_->{seq} == $retry->{seq} } unanswered()),
		'(b1) the retry is still in flight when the server is stopped');
	restart_immediate();
	check_outcome($job, '(b1) committed, not recorded');
	ok(resent_ok($retry->{seq}, $ids[0]), "(b1) the unrecorded batch was sent again after the restart");
	diag(sprintf('(b1) took %.1f s', time - $t0));
}

# --- (b2) remote answered 201, the recording transaction has not committed --
{
	my $t0 = time;
	my $job = new_case('{"batch_size": 50, "delay_ms": 300, "time_zone": "UTC"}');
	GsExportTest::wait_true($node,
		"SELECT exported_leads >= 50 FROM gestao_scouter_export_jobs WHERE id = '$job'");
	# Hold a row lock on the job: the worker's recording transaction (which
	# updates the job row) waits on it after the remote answered.
	my $locker = $node->background_psql('postgres', on_error_stop => 1);
	$locker->query_safe(
		"BEGIN; SELECT 1 FROM gestao_scouter_export_jobs WHERE id = '$job' FOR SHARE;");
	GsExportTest::wait_true($node, "SELECT count(*) = 1 FROM pg_stat_activity"
		  . " WHERE backend_type = 'gs_export job worker' AND query = 'gs_export: recording a batch'"
		  . " AND wait_event_type = 'Lock'", 10);
	my @done = grep { defined $_->{status} } @{ $remote->requests };
	my $last = $done[-1];
	is($last->{status}, 201, "(b2) the remote answered request $last->{seq} with 201");
	my @ids = @{ $last->{ids} };
	is(remote_has(\@ids), scalar(@ids), '(b2) the remote committed its ' . scalar(@ids) . ' leads');
	is(sync_rows_for($job, \@ids), 0, '(b2) no committed sync_events row for them yet');
	restart_immediate();
	eval { $locker->quit; };
	check_outcome($job, '(b2) answered, not recorded');
	ok(resent_ok($last->{seq}, $ids[0]), "(b2) the unrecorded batch was sent again after the restart");
	diag(sprintf('(b2) took %.1f s', time - $t0));
}

# --- (c) immediate shutdown during the delay between batches ----------------
{
	my $t0 = time;
	my $job = new_case('{"batch_size": 150, "delay_ms": 5000, "time_zone": "UTC"}');
	GsExportTest::wait_true($node,
		"SELECT exported_leads = 150 FROM gestao_scouter_export_jobs WHERE id = '$job'", 30);
	GsExportTest::wait_true($node, "SELECT count(*) = 1 FROM pg_stat_activity"
		  . " WHERE backend_type = 'gs_export job worker' AND query = 'gs_export: waiting'", 10);
	my $reqs = $remote->requests;
	is(scalar(@$reqs) . '/' . ($reqs->[0]{status} // 'none'), '1/201',
		'(c) one batch sent and answered, the worker waits before the next');
	my $took = restart_immediate();
	check_outcome($job, '(c) between batches');
	my %seen;
	$seen{$_}++ for map { @{ $_->{ids} // [] } } @{ $remote->requests };
	is(scalar(grep { $_ > 1 } values %seen), 0,
		'(c) the recorded batch was not sent again: no lead sent twice');
	diag(sprintf('(c) took %.1f s (stop+start %.1f s)', time - $t0, $took));
}

# --- (d) SIGKILL of the job worker: crash recovery, then the job goes on -----
{
	my $t0 = time;
	my ($job, $req) = case_with_request_held();
	my $pid = GsExportTest::worker_pid($node);
	like($pid, qr/^\d+$/, "(d) job worker pid $pid");
	my $log_offset = -s $node->logfile;
	my $postmaster = $node->{_pid};
	is(kill('KILL', $pid), 1, "(d) SIGKILL sent to the job worker $pid");
	my $crashlog = GsExportTest::wait_for('the postmaster to reinitialise', sub {
		my $l = slurp_file($node->logfile, $log_offset);
		$l =~ /all server processes terminated; reinitializing/ ? $l : undef });
	like($crashlog, qr/terminating any other active server processes|was terminated by signal 9/,
		'(d) the postmaster saw the crash and reset the cluster');
	ok(kill(0, $postmaster), '(d) the same postmaster is still up (crash recovery, not a stop)');
	# connections are refused until crash recovery is over
	ok($node->poll_query_until('postgres', 'SELECT true'), '(d) the cluster accepts connections again');
	check_outcome($job, '(d) crash recovery');
	my $newpid = $node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity"
		  . " WHERE backend_type = 'gs_export launcher'");
	is($newpid, 1, '(d) a launcher runs again after the crash');
	diag(sprintf('(d) took %.1f s', time - $t0));
}

wait_remote_idle();
$remote->stop;
$node->stop;
done_testing();
