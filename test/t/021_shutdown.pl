# 021_shutdown.pl: a slow remote never holds up a shutdown.  With a request
# in flight that the remote would answer only after 60 s (and an HTTP
# timeout of 120 s), a fast and a smart shutdown end within seconds, and the
# job goes on after the start.  pg_cancel_backend() of the job worker in the
# middle of a request pauses the job, and a resume finishes it.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local', conf => "gs_export.http_timeout_ms = 120000\n");
GsExportTest::configure($node, $remote);

my $n = 300;
GsExportTest::insert_leads($node, qq{
	SELECT g, timestamptz '2026-07-10 23:00:00+00' - (g * interval '13 minutes'), 'lead ' || g
	  FROM generate_series(1, $n) g
});
my $src_ids = $node->safe_psql('postgres', "SELECT string_agg(id::text, ',' ORDER BY id) FROM leads");


sub unanswered
{
	return grep { !defined $_->{duration_ms} } @{ $remote->requests };
}

# Start a job on an empty remote and wait until a request hangs: the
# remote holds it for 60 s.  Returns the job id and the request.
sub job_with_request_in_flight
{
	my ($job, $req);
	for my $try (1 .. 5)
	{
		$remote->truncate;
		$remote->reset;
		$job = GsExportTest::create_job($node,
			q{'2026-07-10', '2026-07-01', '{"batch_size": 50, "delay_ms": 100, "time_zone": "UTC"}'});
		GsExportTest::wait_true($node,
			"SELECT exported_leads >= 50 FROM gestao_scouter_export_jobs WHERE id = '$job'");
		$remote->faults(delay_next => 1, delay_ms => 60000);
		# Once delay_next is used up, the worker (one request at a time) has
		# the delayed request in flight.  On a busy machine (tests run side
		# by side) the job may have sent its last batch before the fault was
		# set: then it ends, and the case starts again.
		my $got = GsExportTest::wait_for('the delayed request in flight, or the job ended', sub {
			if ($remote->control('GET', 'faults')->{delay_next} == 0)
			{
				my @u = unanswered();
				return @u ? { req => $u[-1] } : undef;
			}
			return GsExportTest::job($node, $job)->{status} =~ /^(?:completed|failed|paused)$/
			  ? { ended => 1 } : undef;
		});
		$req = $got->{req};
		last if $req;
		die "$try jobs ended before a request could be held" if $try == 5;
		diag("try $try: the job ended before the fault was set; again");
	}
	GsExportTest::wait_true($node, "SELECT count(*) = 1 FROM pg_stat_activity"
		  . " WHERE backend_type = 'gs_export job worker' AND query = 'gs_export: sending a batch'"
		  . " AND state = 'active'", 10);
	return ($job, $req);
}

sub check_outcome
{
	my ($job, $label) = @_;
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
		"$label: the job completed");
	my $j = GsExportTest::job($node, $job);
	is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$n/0",
		"$label: counters exact (total = exported = leads, no errors)");
	is($remote->ids, $src_ids, "$label: the remote holds exactly the leads");
	is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], [],
		"$label: every remote row equals its source lead");
	is(GsExportTest::sync_summary($node, $job), "$n/$n/0/0/0",
		"$label: one success sync_events row per lead, no other rows");
}

# --- fast shutdown with a 60 s request in flight ----------------------------
{
	my ($job, $req) = job_with_request_in_flight();
	my $t0 = time;
	$node->stop('fast');
	my $took = time - $t0;
	cmp_ok($took, '<', 10, sprintf('fast shutdown took %.2f s with a 60 s request in flight', $took));
	ok(scalar(grep { $_->{seq} == $req->{seq} } unanswered()),
		'fast: the remote had still not answered when the server was down');
	$node->start;
	check_outcome($job, 'fast');
}

# --- smart shutdown (no client session open) --------------------------------
{
	my ($job, $req) = job_with_request_in_flight();
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"),
		0, 'smart: no other client session is open');
	my $t0 = time;
	$node->stop('smart');
	my $took = time - $t0;
	cmp_ok($took, '<', 10, sprintf('smart shutdown took %.2f s with a 60 s request in flight', $took));
	ok(scalar(grep { $_->{seq} == $req->{seq} } unanswered()),
		'smart: the remote had still not answered when the server was down');
	$node->start;
	check_outcome($job, 'smart');
}

# --- pg_cancel_backend() of the job worker mid-request ----------------------
{
	my ($job, $req) = job_with_request_in_flight();
	my $pid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'gs_export job worker'");
	my $t0 = time;
	is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"), 't',
		"cancel: pg_cancel_backend($pid) signalled the job worker");
	# Either the worker gives up the request and goes on (a new request or
	# a state change), or it stops; it must not sit in the 60 s request.
	my $what = GsExportTest::wait_for('the worker to react to the cancel', sub {
		my $r = $node->safe_psql('postgres', qq{
			SELECT j.status || '|' || COALESCE(a.pid::text, 'gone') || '|' || COALESCE(a.query, '')
			  FROM gestao_scouter_export_jobs j
			  LEFT JOIN pg_stat_activity a ON a.backend_type = 'gs_export job worker'
			 WHERE j.id = '$job'});
		my ($st, $wpid) = split /\|/, $r;
		return ($st ne 'running' || $wpid ne $pid || $remote->stats->{requests} > $req->{seq}) ? $r : undef;
	}, 20);
	my $react = time - $t0;
	cmp_ok($react, '<', 10, sprintf('cancel: the worker reacted within %.2f s, not after the 60 s request', $react));
	my $j = GsExportTest::job($node, $job);
	diag("cancel: after pg_cancel_backend: status=$j->{status}, pause_reason="
		  . ($j->{pause_reason} // 'NULL') . ", worker/activity: $what, leads recorded $j->{total_leads}");
	is($j->{status}, 'paused', 'cancel: a cancelled worker pauses its job');
	like($j->{pause_reason} // '', qr/^cancelled: canceling statement due to user request/,
		'cancel: pause_reason says it was cancelled');
	cmp_ok($j->{total_leads}, '<', $n, 'cancel: it had not finished');
	is("$j->{exported_leads}/$j->{error_leads}", "$j->{total_leads}/0",
		'cancel: counters consistent after the cancel');
	if ($j->{status} ne 'running')
	{
		GsExportTest::wait_true($node,
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'gs_export job worker'", 30);
		$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
		like(GsExportTest::wait_status($node, $job, 'running|completed|failed|paused', 10),
			qr/^(running|completed)$/, "cancel: the job was $j->{status}; gs_export_resume() took it up again");
	}
	check_outcome($job, 'cancel');
}

$remote->stop;
$node->stop;
done_testing();
