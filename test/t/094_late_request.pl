# 094_late_request.pl: a request given up on that reaches the remote later
# must not overwrite a newer version of its leads, and the job must not say
# completed while it may (issue 17, item 1; doc/architecture.md, "Requests
# given up on").
#
# gs_export.http_timeout_ms is 2 s; the stand-in holds the job's first
# request 7 s (delay_next: a gateway that forwards it late) and then
# applies it, as a real remote does with a request whose client left.  The
# worker gives up on it at 2 s and sends the same batch again.  While the
# held request is out, the test changes its leads: a catch-up pass reads
# their new version.
#   a. gs_export.late_request_ms = 0 (no quarantine, 1.1's behaviour): the
#      catch-up pass sends the new version at once, the held request lands
#      over it, and the job says completed with those leads stale at the
#      remote: the negative control, proof that this test can fail;
#   b. late_request_ms = 8 s (the held request lands ~5 s after the worker
#      gave up on it): the new version waits until the quarantine ends, and
#      every lead at the remote is its newest local version, each version
#      counted once;
#   c. the same with max_in_flight 8;
#   d. the job is paused during the quarantine and resumed at once: the new
#      worker sends nothing before the quarantine (kept on the job's row)
#      is over;
#   e. no lead changes: the job completes only once the quarantine is over;
#   f. the worker killed while the held request is out (no one gave up on
#      it): the restarted worker's claim puts the job in doubt.
use strict;
use warnings;

use GsExportTest;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local', conf => "gs_export.http_timeout_ms = 2000\nrestart_after_crash = on\n");
GsExportTest::configure($node, $remote);
my $json = JSON::PP->new;

# 300 leads in June 2026 (UTC), newest first by id; batches of 100.
my $n = 300;
my $bs = 100;
my $hold_ms = 7000;
my $quarantine_ms = 8000;

sub fresh_leads
{
	$node->safe_psql('postgres', 'DELETE FROM leads');
	GsExportTest::insert_leads($node, qq{
		SELECT g, timestamptz '2026-06-30 23:00:00+00' - (g * interval '97 minutes'), 'lead ' || g
		  FROM generate_series(1, $n) g
	});
}

sub job_sql
{
	my ($job, $expr) = @_;
	return $node->safe_psql('postgres', "SELECT $expr FROM gestao_scouter_export_jobs WHERE id = '$job'");
}

# The held request: the first one the stand-in got (delay_next is then
# used up), and its leads, from its body as the stand-in received it.
sub held_request
{
	my ($what) = @_;
	my $held = GsExportTest::wait_for("$what: the held request",
		sub {
			return undef if $remote->control('GET', 'faults')->{delay_next} != 0;
			my ($r) = grep { ($_->{table} // '') eq 'fichas' } @{ $remote->requests };
			return $r;
		}, 30);
	return ($held, sort { $a <=> $b } map { $_->{id} } @{ $json->decode($held->{body}) });
}

# One run of the scenario.  %o: late_ms, in_flight, change (the held
# request's leads get a new version while it is out), pause (the job is
# paused once its worker gave up on the held request, and resumed at
# once).  Returns the job's id, the held request's lead ids, the time the
# job took, the held request's log entry and the resume's time.
sub run_case
{
	my ($what, %o) = @_;
	GsExportTest::set_gucs($node, 'gs_export.late_request_ms' => $o{late_ms});
	fresh_leads();
	$remote->truncate;
	$remote->reset;
	$remote->faults(keep_bodies => JSON::PP::true, delay_next => 1, delay_ms => $hold_ms);
	my $t0 = time;
	my $job = GsExportTest::create_job($node, qq{'2026-06-30', '2026-06-01',
		'{"batch_size": $bs, "delay_ms": 0, "max_in_flight": $o{in_flight}, "time_zone": "UTC"}'});

	my ($held, @held_ids) = held_request($what);
	is(scalar(@held_ids), $bs, "$what: the held request holds a batch of $bs leads");

	if ($o{change})
	{
		# Their new version, while the held request is out: the worker
		# gives up on it only at 2 s, so the range pass is still under way
		# and the catch-up pass that follows it reads these changes.
		my $ids = join(',', @held_ids);
		$node->safe_psql('postgres',
			"UPDATE leads SET name = name || ' v2', updated_at = now() WHERE id IN ($ids)");
		ok(defined((grep { $_->{seq} == $held->{seq} && !defined $_->{duration_ms} } @{ $remote->requests })[0]),
			"$what: changed while the held request was still at the remote");
	}
	my $resumed;
	if ($o{pause})
	{
		GsExportTest::wait_true($node, "SELECT doubt_until IS NOT NULL FROM gestao_scouter_export_jobs WHERE id = '$job'", 30);
		$node->safe_psql('postgres', "SELECT gs_export_pause('$job')");
		GsExportTest::wait_status($node, $job, 'paused', 30);
		GsExportTest::wait_no_worker($node, 30);
		is(job_sql($job, 'doubt_until > now()'), 't', "$what: paused during the quarantine");
		$resumed = time;
		$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
	}

	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 90), 'completed',
		"$what: the job completed");
	my $took = time - $t0;
	# The held request lands (its upsert commits) after the client left.
	$remote->wait_idle(30);
	my ($landed) = grep { $_->{seq} == $held->{seq} } @{ $remote->requests };
	cmp_ok($landed->{duration_ms}, '>=', $hold_ms, "$what: the held request reached the remote after ${hold_ms} ms");
	like($landed->{status}, qr/^20[01]$/, "$what: and the remote applied it");
	diag(sprintf('%s: job done in %.1f s', $what, $took));
	return ($job, \@held_ids, $took, $landed, $resumed);
}

# What a case with a quarantine must show: every lead current at the
# remote, counted once per version sent, the quarantine on the row, and
# the job completed only after it.
sub check_quarantined
{
	my ($what, $job, $held, $changed) = @_;
	my $j = GsExportTest::job($node, $job);
	is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], [],
		"$what: every lead at the remote is its newest local version");
	is($remote->count("name LIKE '% v2'"), $changed ? scalar(@$held) : 0,
		"$what: the new versions are there");
	is($remote->count('true'), $n, "$what: every lead, once");
	is($j->{exported_leads} . '/' . $j->{error_leads}, "$j->{total_leads}/0", "$what: exported = total, no error");
	is(job_sql($job, "(SELECT count(*) FROM sync_events e WHERE e.job_id = '$job')"), $j->{total_leads},
		"$what: total = the job's events");
	ok($node->log_contains(qr/job $job: the fate of a request of $bs leads is unknown \(Timeout was reached.*the remote may still apply it until/),
		"$what: giving up on the held request is logged");
	ok(defined $j->{doubt_until}, "$what: the quarantine is on the job row ($j->{doubt_until})");
	is(job_sql($job, 'completed_at >= doubt_until'), 't', "$what: completed only once the quarantine was over");
	return $j;
}

###########################################################################
# a. No quarantine: the held request overwrites the new version.
###########################################################################
my ($job, $held, $took, $landed) = run_case('no quarantine', late_ms => 0, in_flight => 1, change => 1);
is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], $held,
	'no quarantine: exactly the held request\'s leads are stale at the remote (the test can fail)');
is($remote->count("name LIKE '% v2'"), 0, 'no quarantine: none of their new versions survived');
is(job_sql($job, "completed_at < started_at + interval '$hold_ms ms'"), 't',
	'no quarantine: the job said completed before the held request could land');
is(job_sql($job, 'doubt_until IS NULL'), 't', 'no quarantine: none on the job row');

###########################################################################
# b, c. A quarantine of 8 s: the new version waits for it.
###########################################################################
for my $in_flight (1, 8)
{
	my $what = "quarantine, max_in_flight $in_flight";
	($job, $held, $took, $landed) = run_case($what, late_ms => $quarantine_ms, in_flight => $in_flight, change => 1);
	check_quarantined($what, $job, $held, 1);

	# Counted once per version: the range pass sent all 300 (the held
	# batch's attempts count once), the catch-up pass the 100 changed.
	is(job_sql($job, "total_leads || '/' || exported_leads || '/' || error_leads"),
		($n + $bs) . '/' . ($n + $bs) . '/0', "$what: counters exact (total/exported/errors)");
	is(GsExportTest::sync_summary($node, $job), ($n + $bs) . "/$n/0/0/0",
		"$what: one success event per lead version, nothing else");
	is($node->safe_psql('postgres', qq{
		SELECT string_agg(lead_id::text, ',' ORDER BY lead_id) FROM (
		  SELECT lead_id FROM sync_events WHERE job_id = '$job' AND status = 'success'
		   GROUP BY lead_id HAVING count(*) = 2) s}), join(',', @$held),
		"$what: the leads with two events are exactly the changed ones");

	# The new version went only once the held request could no longer
	# land: after the quarantine, which began when the worker gave up.
	my @v2 = grep { ($_->{body} // '') =~ / v2"/ } @{ $remote->requests };
	is(scalar(grep { $_->{status} =~ /^20[01]$/ } @v2), 1, "$what: the new version was sent, in one request");
	cmp_ok($v2[0]{started_at}, '>', $landed->{started_at} + $landed->{duration_ms} / 1000,
		"$what: after the held request had landed");
	cmp_ok($v2[0]{started_at}, '>=', job_sql($job, 'extract(epoch FROM doubt_until)') - 0.05,
		"$what: once the quarantine was over");
}

###########################################################################
# d. Paused during the quarantine and resumed at once: the next worker
#    waits the quarantine out (the job's row keeps it) before it sends.
###########################################################################
my $resumed;
($job, $held, $took, $landed, $resumed) = run_case('pause and resume', late_ms => $quarantine_ms,
	in_flight => 1, change => 1, pause => 1);
check_quarantined('pause and resume', $job, $held, 1);
my @after = grep { $_->{started_at} > $resumed } @{ $remote->requests };
ok(scalar(@after) >= 1, 'pause and resume: the resumed worker sent the rest');
cmp_ok($after[0]{started_at}, '>=', job_sql($job, 'extract(epoch FROM doubt_until)') - 0.05,
	'pause and resume: its first request went once the quarantine was over');
ok($node->log_contains(qr/job $job: a request given up on may still reach the remote until .*; the job waits until then/),
	'pause and resume: the resumed worker says it waits');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM (
	  SELECT lead_id, count(*) AS n FROM sync_events WHERE job_id = '$job' AND status = 'success'
	   GROUP BY lead_id) s
	 WHERE n > 2 OR (n = 2 AND lead_id NOT IN (${\ join(',', @$held) }))}), 0,
	'pause and resume: only the changed leads were counted twice, none more');

###########################################################################
# e. Nothing changes: the job still completes only after the quarantine.
###########################################################################
($job, $held, $took, $landed) = run_case('quarantine, no change', late_ms => $quarantine_ms, in_flight => 1);
check_quarantined('quarantine, no change', $job, $held, 0);
is(job_sql($job, "total_leads || '/' || exported_leads || '/' || error_leads"), "$n/$n/0",
	'quarantine, no change: counters exact (total/exported/errors)');
is(GsExportTest::sync_summary($node, $job), "$n/$n/0/0/0",
	'quarantine, no change: one success event per lead, nothing else');
ok($node->log_contains(qr/job $job: a request given up on may still reach the remote until .*; the job waits until then/),
	'quarantine, no change: the wait before completing is logged');

###########################################################################
# f. The worker killed (SIGKILL: the server restarts) while the held
#    request is out, before it gave up on it: nothing told anyone its fate.
#    The next worker's claim finds that the one before did not leave in
#    order (worker_since) and puts the job in doubt: the new version of the
#    held request's leads is sent only after the quarantine, and the remote
#    ends current.  (Without that, the restarted worker sends the new
#    version at once, and the held request lands over it.)
###########################################################################
{
	my $what = 'killed worker';
	GsExportTest::set_gucs($node, 'gs_export.late_request_ms' => $quarantine_ms);
	fresh_leads();
	$remote->truncate;
	$remote->reset;
	$remote->faults(keep_bodies => JSON::PP::true, delay_next => 1, delay_ms => $hold_ms);
	$job = GsExportTest::create_job($node, qq{'2026-06-30', '2026-06-01',
		'{"batch_size": $bs, "delay_ms": 0, "max_in_flight": 1, "time_zone": "UTC"}'});
	my ($h, @ids) = held_request($what);
	my $pid = GsExportTest::worker_pid($node);
	ok($pid, "$what: the worker is at it ($pid)");
	kill 'KILL', $pid;
	# the server restarts after the crash; then the leads change
	$node->poll_query_until('postgres', 'SELECT true') or die 'the server did not come back';
	$node->safe_psql('postgres',
		"UPDATE leads SET name = name || ' v2', updated_at = now() WHERE id IN (${\ join(',', @ids) })");
	ok(defined((grep { $_->{seq} == $h->{seq} && !defined $_->{duration_ms} } @{ $remote->requests })[0]),
		"$what: changed while the held request was still at the remote");
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 90), 'completed',
		"$what: the job completed after the restart");
	$remote->wait_idle(30);
	my ($l) = grep { $_->{seq} == $h->{seq} } @{ $remote->requests };
	like($l->{status} // '', qr/^20[01]$/, "$what: the held request reached the remote and was applied");
	is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], [],
		"$what: every lead at the remote is its newest local version");
	is($remote->count("name LIKE '% v2'"), scalar(@ids), "$what: the new versions are there");
	ok($node->log_contains(qr/job $job: a request given up on may still reach the remote until .*; the job waits until then/),
		"$what: the restarted worker says it waits");
	my $j = GsExportTest::job($node, $job);
	is($j->{exported_leads} . '/' . $j->{error_leads}, "$j->{total_leads}/0", "$what: exported = total, no error");
}

$remote->stop;
$node->stop;
done_testing();
