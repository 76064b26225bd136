# 010_remote_faults.pl: remote trouble, provoked for real with the
# stand-in's fault switches.  Trouble that may pass (503 with Retry-After,
# dropped connections, an answer lost after the commit, timeouts, 408, 429,
# 5xx, 544, the remote down) is retried and every lead is counted once;
# when the retries run out the job pauses, resumably.  Trouble that will
# not pass (401, 403, 404, 540) fails the job at once, after one request.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $remote = GsExportTest::remote();
# A request given up on (a drop, a timeout, a gateway's 502/504/544) keeps
# its leads in doubt for gs_export.late_request_ms, and the job completes
# only after.  The stand-in's faults here apply nothing late but section
# 4's held answers, which sets its own.
my $node = GsExportTest::local_node('local', conf => "gs_export.late_request_ms = 500\n");
GsExportTest::configure($node, $remote);

# 200 leads in June 2026; with batches of 50, four requests per clean run.
my $n = 200;
my $bs = 50;
GsExportTest::insert_leads($node, qq{
	SELECT g, timestamptz '2026-06-30 23:00:00+00' - (g * interval '97 minutes'), 'lead ' || g
	  FROM generate_series(1, $n) g
});
my $all_ids = join(',', 1 .. $n);
# Batches in the order they are sent: newest (lowest id) first.
my @batches = map { [ map { $_ } ($_ * $bs + 1) .. ($_ + 1) * $bs ] } 0 .. ($n / $bs - 1);

my $options = qq{'{"batch_size": $bs, "delay_ms": 0, "time_zone": "UTC"}'};

sub new_job
{
	my ($opts) = @_;
	return GsExportTest::create_job($node, "'2026-06-30', '2026-01-01', " . ($opts // $options));
}

sub fresh_remote
{
	$remote->truncate;
	$remote->reset;
}

# What every finished job must show: completed, counters exact, the remote
# holds exactly the leads, one success sync_events row per lead and nothing
# else, and each lead sent in exactly one request that succeeded.
sub check_complete
{
	my ($job, $what, %skip_seq) = @_;
	my $j = GsExportTest::job($node, $job);
	is($j->{status}, 'completed', "$what: job completed");
	is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$n/0",
		"$what: counters exact (total/exported/errors)");
	is($remote->ids, $all_ids, "$what: the remote has exactly every lead");
	is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], [],
		"$what: every mapped column equals the source");
	is(GsExportTest::sync_summary($node, $job), "$n/$n/0/0/0",
		"$what: one success sync_events row per lead, nothing else");
	my %ok;
	for my $r (@{ $remote->requests })
	{
		next unless defined $r->{status} && $r->{status} =~ /^20[01]$/;
		next if defined $r->{fault} || $skip_seq{ $r->{seq} };
		$ok{$_}++ for @{ $r->{ids} };
	}
	my @not_once = grep { ($ok{$_} // 0) != 1 } 1 .. $n;
	is(scalar(@not_once), 0,
		"$what: every lead was in exactly one successful request"
		  . (@not_once ? " (not: @not_once[0 .. ($#not_once < 9 ? $#not_once : 9)])" : ''));
}

# Requests as [status-or-fault, ids joined] for compact comparisons.
sub req_summary
{
	my ($r) = @_;
	return (defined $r->{status} ? $r->{status} : 'dropped') . ':' . join(',', @{ $r->{ids} // [] });
}

my $first = join(',', @{ $batches[0] });
my $second = join(',', @{ $batches[1] });

###########################################################################
# 1. A burst of 503 with Retry-After: 1.
###########################################################################
fresh_remote();
$remote->faults(fail_next => 3, status => 503, retry_after => '1');
my $job = new_job();
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'503 burst: the job completed');
my $reqs = $remote->requests;
is_deeply([ map { req_summary($_) } @$reqs[0 .. 3] ],
	[ "503:$first", "503:$first", "503:$first", "201:$first" ],
	'503 burst: three 503 answers, then success for the same leads');
is(scalar(@$reqs), $n / $bs + 3, '503 burst: one extra request per 503, no more');
is($reqs->[0]{fault}, 'fail', 'the 503s were the injected ones');
for my $i (0 .. 2)
{
	my $end = $reqs->[$i]{started_at} + $reqs->[$i]{duration_ms} / 1000.0;
	my $gap = $reqs->[ $i + 1 ]{started_at} - $end;
	cmp_ok($gap, '>=', 0.95,
		sprintf('503 burst: attempt %d came %.3f s after the 503 (Retry-After: 1 honoured)', $i + 2, $gap));
}
check_complete($job, '503 burst');

###########################################################################
# 1b. 413 Payload Too Large: the batch is split in halves, not failed.
###########################################################################
fresh_remote();
$remote->faults(fail_next => 1, status => 413);
$job = new_job();
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'413: the job completed');
$reqs = $remote->requests;
my @halves = (join(',', @{ $batches[0] }[0 .. $bs / 2 - 1]), join(',', @{ $batches[0] }[$bs / 2 .. $bs - 1]));
is_deeply([ map { req_summary($_) } @$reqs[0 .. 2] ],
	[ "413:$first", "201:$halves[0]", "201:$halves[1]" ],
	'413: the refused batch is sent again as two halves');
check_complete($job, '413');

###########################################################################
# 2. Dropped connections: closed without an answer (FIN), then with RST.
###########################################################################
for my $reset (0, 1)
{
	my $what = $reset ? 'drops with RST' : 'drops';
	fresh_remote();
	$remote->faults(drop_next => 2, drop_with_reset => ($reset ? JSON::PP::true : JSON::PP::false));
	$job = new_job();
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
		"$what: the job completed");
	$reqs = $remote->requests;
	is_deeply([ map { req_summary($_) } @$reqs[0 .. 2] ],
		[ "dropped:$first", "dropped:$first", "201:$first" ],
		"$what: two dropped requests, then success for the same leads");
	is(scalar(@$reqs), $n / $bs + 2, "$what: one extra request per drop");
	check_complete($job, $what);
}

###########################################################################
# 3. The remote committed but the answer was lost: sent again, counted once.
###########################################################################
fresh_remote();
$remote->faults(drop_after_commit_next => 1);
$job = new_job();
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'lost answer: the job completed');
$reqs = $remote->requests;
is($reqs->[0]{fault}, 'drop_after_commit', 'lost answer: the first request was committed, its answer dropped');
is($reqs->[0]{would_status}, 201, 'lost answer: the remote had inserted the batch');
is(req_summary($reqs->[1]), "200:$first",
	'lost answer: the same batch is sent again; the remote only updates (200)');
is($remote->stats->{rows}, $n + $bs, 'lost answer: the remote upserted that batch twice');
check_complete($job, 'lost answer');

###########################################################################
# 4. Answers slower than gs_export.http_timeout_ms.
###########################################################################
fresh_remote();
# The stand-in applies each held request ~2 s after the worker gave up on
# it: the quarantine covers that.
GsExportTest::set_gucs($node, 'gs_export.http_timeout_ms' => 1000, 'gs_export.late_request_ms' => 3000);
$remote->faults(delay_next => 2, delay_ms => 3000);
$job = new_job();
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'slow answers: the job completed');
# The slow requests finish on the stand-in after the client gave up on them.
my $deadline = time + 30;
usleep(100_000) while time < $deadline && grep { !defined $_->{duration_ms} } @{ $remote->requests };
$reqs = $remote->requests;
is(join(' ', map { join(',', @{ $_->{ids} }) eq $first ? 'first' : 'other' } @$reqs[0 .. 2]),
	'first first first', 'slow answers: the first batch was sent three times');
cmp_ok($reqs->[0]{duration_ms}, '>=', 3000, 'slow answers: the stand-in did hold the first answer 3 s');
for my $i (0, 1)
{
	my $gap = $reqs->[ $i + 1 ]{started_at} - $reqs->[$i]{started_at};
	ok($gap >= 0.95 && $gap < 2.9,
		sprintf('slow answers: attempt %d started %.3f s after attempt %d: the client gave up after ~1 s',
			$i + 2, $gap, $i + 1));
}
is(scalar(@$reqs), $n / $bs + 2, 'slow answers: one extra request per timeout');
# The two slow requests did commit on the remote (the client had left).
check_complete($job, 'slow answers', 1 => 1, 2 => 1);
ok($node->log_contains(qr/gs_export: job $job completed: $n leads, $n exported, 0 errors/),
	'slow answers: LOG line with the counts');
GsExportTest::set_gucs($node, 'gs_export.http_timeout_ms' => undef, 'gs_export.late_request_ms' => undef);

###########################################################################
# 5. Other answers that may pass: 408, 429, 502, 504, 544.  (500 57014,
#    the remote's statement timeout, splits the batch: 090_statement_timeout.)
###########################################################################
my @transient = (
	[ 408, undef ],
	[ 429, undef ],
	[ 502, undef ],
	[ 504, undef ],
	[ 544, undef ],
);
for my $t (@transient)
{
	my ($status, $body) = @$t;
	my $what = "HTTP $status" . ($body ? " $body->{code}" : '');
	fresh_remote();
	$remote->faults(fail_next => 2, status => $status, ($body ? (body => $body) : ()));
	$job = new_job();
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
		"$what: retried, the job completed");
	$reqs = $remote->requests;
	is_deeply([ map { req_summary($_) } @$reqs[0 .. 2] ],
		[ "$status:$first", "$status:$first", "201:$first" ],
		"$what: two refusals, then success for the same leads");
	is(scalar(@$reqs), $n / $bs + 2, "$what: one extra request per refusal");
	check_complete($job, $what);
}

###########################################################################
# 6. The remote down for longer than the retry budget: paused, resumable.
#    It goes down while the worker waits between batches (delay_ms), so no
#    request is in flight when it does.
###########################################################################
fresh_remote();
GsExportTest::set_gucs($node, 'gs_export.max_retries' => 3, 'gs_export.retry_max_delay_ms' => 200);
$job = new_job(qq{'{"batch_size": $bs, "delay_ms": 800, "time_zone": "UTC"}'});
GsExportTest::wait_true($node,
	"SELECT exported_leads >= $bs FROM gestao_scouter_export_jobs WHERE id = '$job'", 60);
$remote->faults(down => JSON::PP::true);
is(GsExportTest::wait_status($node, $job, 'paused|completed|failed', 60), 'paused',
	'remote down: the job paused when the retries ran out');
GsExportTest::wait_no_worker($node);
my $j = GsExportTest::job($node, $job);
like($j->{pause_reason}, qr/refused|connect/i, "remote down: pause_reason says what happened: $j->{pause_reason}");
like($j->{pause_reason}, qr/\b3 attempts\b/, 'remote down: pause_reason gives the attempts');
ok(defined $j->{paused_at}, 'remote down: paused_at set');
my $done = $j->{total_leads};
ok($done >= $bs && $done < $n && $done % $bs == 0, "remote down: $done leads done before, in whole batches");
is("$j->{exported_leads}/$j->{error_leads}", "$done/0", 'remote down: counters consistent while paused');
is(GsExportTest::sync_summary($node, $job), "$done/$done/0/0/0",
	'remote down: no sync_events for the batch that failed');
is($remote->count, $done, 'remote down: the remote holds what the job counts');
my $seen_before = $remote->stats->{requests};
$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'paused',
	'remote still down: a resume pauses again');
like(GsExportTest::job($node, $job)->{pause_reason}, qr/3 attempts/, 'remote still down: same reason');
is($remote->stats->{requests}, $seen_before, 'remote still down: no request got through');
GsExportTest::wait_no_worker($node);
$remote->faults(down => JSON::PP::false);
$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'remote back: the resumed job completed');
is(GsExportTest::job($node, $job)->{pause_reason}, undef, 'remote back: pause_reason cleared');
check_complete($job, 'remote down then back');

# The budget is read again on a reload: a job retrying with a large budget
# pauses soon after it is made small.
fresh_remote();
GsExportTest::set_gucs($node, 'gs_export.max_retries' => 1000, 'gs_export.retry_max_delay_ms' => 200);
$remote->faults(fail_next => 100000, status => 503, retry_after => undef);
$job = new_job();
$deadline = time + 30;
usleep(50_000) while time < $deadline && $remote->stats->{requests} < 4;
cmp_ok($remote->stats->{requests}, '>=', 4, 'budget reload: the job keeps retrying the 503s');
is(GsExportTest::job($node, $job)->{status}, 'running', 'budget reload: still running');
GsExportTest::set_gucs($node, 'gs_export.max_retries' => 3);
is(GsExportTest::wait_status($node, $job, 'paused|completed|failed', 30), 'paused',
	'budget reload: paused once max_retries was lowered');
GsExportTest::wait_no_worker($node);
my $attempts = $remote->stats->{requests};
like(GsExportTest::job($node, $job)->{pause_reason}, qr/HTTP 503.* after $attempts attempts/,
	"budget reload: the reason gives the 503 and the $attempts attempts the remote saw");
$remote->reset;
$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'budget reload: resumed, the job completed');
check_complete($job, 'budget reload');

# A pause while the worker waits to retry (a long Retry-After) is seen at
# once, not when the wait ends, and no further attempt is made.
fresh_remote();
GsExportTest::set_gucs($node, 'gs_export.max_retries' => 1000, 'gs_export.retry_max_delay_ms' => 60000);
$remote->faults(fail_next => 1000, status => 503, retry_after => '60');
$job = new_job();
$deadline = time + 30;
usleep(50_000) while time < $deadline && $remote->stats->{requests} < 1;
my $t0 = time;
$node->safe_psql('postgres', "SELECT gs_export_pause('$job', 'pause while retrying')");
GsExportTest::wait_no_worker($node, 30);
my $took = time - $t0;
cmp_ok($took, '<', 5, sprintf('pause while retrying: the worker left %.2f s after the pause, not after Retry-After: 60', $took));
$j = GsExportTest::job($node, $job);
is("$j->{status}/$j->{pause_reason}/$j->{total_leads}", 'paused/pause while retrying/0',
	'pause while retrying: paused with the user\'s reason, nothing counted');
is($remote->stats->{requests}, 1, 'pause while retrying: no further attempt');
$remote->reset;
$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'pause while retrying: resumed, the job completed');
check_complete($job, 'pause while retrying');
GsExportTest::set_gucs($node, 'gs_export.max_retries' => undef, 'gs_export.retry_max_delay_ms' => undef);

###########################################################################
# 7. Trouble that will not pass: the job fails at once, after one request;
#    a resume once the cause is gone completes it.
###########################################################################
my @fatal = (
	[ '401 (wrong key)', 401, sub { GsExportTest::configure($node, $remote, key => 'wrong-key') },
		sub { GsExportTest::configure($node, $remote) } ],
	[ '403', 403, sub { $remote->faults(fail_next => 1, status => 403) }, sub { } ],
	[ '404', 404, sub { $remote->faults(fail_next => 1, status => 404, body => {}) }, sub { } ],
	[ '540 (project paused)', 540, sub { $remote->faults(paused_project => JSON::PP::true) },
		sub { $remote->faults(paused_project => JSON::PP::false) } ],
);
for my $f (@fatal)
{
	my ($what, $status, $provoke, $clear) = @$f;
	fresh_remote();
	$provoke->();
	$job = new_job();
	is(GsExportTest::wait_status($node, $job, 'failed|completed|paused', 60), 'failed',
		"$what: the job failed");
	GsExportTest::wait_no_worker($node);
	$j = GsExportTest::job($node, $job);
	like($j->{pause_reason}, qr/\b$status\b/, "$what: the reason names the answer: $j->{pause_reason}");
	$reqs = $remote->requests;
	is(scalar(@$reqs), 1, "$what: exactly one request reached the remote (no retries)");
	is($reqs->[0]{status}, $status, "$what: that request got $status");
	is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", '0/0/0', "$what: nothing counted");
	is(GsExportTest::sync_summary($node, $job), '0/0/0/0/0', "$what: no sync_events");
	$clear->();
	$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
		"$what: resumed with the cause gone, the job completed");
	check_complete($job, "$what, resumed");
}

# A failure in the middle of a job keeps what was done; the resume goes on
# from there without sending finished batches again.
fresh_remote();
$job = new_job(qq{'{"batch_size": $bs, "delay_ms": 800, "time_zone": "UTC"}'});
GsExportTest::wait_true($node,
	"SELECT exported_leads >= $bs FROM gestao_scouter_export_jobs WHERE id = '$job'", 60);
$remote->faults(fail_next => 1, status => 403);
is(GsExportTest::wait_status($node, $job, 'failed|completed|paused', 60), 'failed',
	'403 mid-job: the job failed');
GsExportTest::wait_no_worker($node);
$j = GsExportTest::job($node, $job);
$done = $j->{total_leads};
ok($done >= $bs && $done < $n && $done % $bs == 0, "403 mid-job: $done leads done before, in whole batches");
is(scalar(grep { defined $_->{status} && $_->{status} == 403 } @{ $remote->requests }), 1,
	'403 mid-job: one 403, no retry');
is(GsExportTest::sync_summary($node, $job), "$done/$done/0/0/0", '403 mid-job: no sync_events for the refused batch');
$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'403 mid-job: resumed, the job completed');
check_complete($job, '403 mid-job, resumed');

$remote->stop;
$node->stop;
done_testing();
