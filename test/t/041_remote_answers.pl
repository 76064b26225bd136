# 041_remote_answers.pl: answers no PostgREST would give, and how the
# worker waits for an answer.  A 2xx that is not PostgREST's answer to
# return=minimal (a proxy's HTML page with 200, 201 with a body, 204) fails
# the job with a clear reason and counts nothing; a resume once the remote
# is right completes it.  An error body that is JSON to a lenient parser
# but not to jsonb is kept out of response_body instead of failing the job.
# While a request is held by the remote the worker sleeps (no busy loop),
# a pause is seen after the batch, and a terminate ends it at once.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

# 40 leads in June 2026; newest (lowest id) first.
my $n = 40;
my $bs = 10;
GsExportTest::insert_leads($node, qq{
	SELECT g, timestamptz '2026-06-30 23:00:00+00' - (g * interval '7 hours'), 'lead ' || g
	  FROM generate_series(1, $n) g
});
my $all_ids = join(',', 1 .. $n);

sub new_job
{
	my ($batch_size) = @_;
	$batch_size //= $bs;
	return GsExportTest::create_job($node,
		qq{'2026-06-30', '2026-01-01', '{"batch_size": $batch_size, "delay_ms": 0, "time_zone": "UTC"}'});
}

sub fresh_remote
{
	$remote->truncate;
	$remote->reset;
}

# Completed, counters exact ($errors leads refused), the remote holds every
# lead that was not refused, one sync_events row per lead.
sub check_complete
{
	my ($job, $what, $errors) = @_;
	$errors //= 0;
	my $ok = $n - $errors;
	my $j = GsExportTest::job($node, $job);
	is($j->{status}, 'completed', "$what: job completed");
	is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$ok/$errors",
		"$what: counters exact (total/exported/errors)");
	is($remote->count, $ok, "$what: the remote holds the $ok leads that went through");
	is(GsExportTest::sync_summary($node, $job), "$ok/$ok/$errors/$errors/0",
		"$what: one sync_events row per lead, nothing else");
}

# Fields of /proc/<pid>/stat after the command name: [0] is the state,
# [11] utime and [12] stime, in clock ticks.
sub proc_stat
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/stat") or return undef;
	my $line = <$fh>;
	close($fh);
	return undef unless defined $line && $line =~ /\)\s+(.*)$/;
	return [ split / /, $1 ];
}

sub cpu_ticks
{
	my ($pid) = @_;
	my $f = proc_stat($pid) or die "no process $pid";
	return $f->[11] + $f->[12];
}

# Times the process went to sleep of its own accord (waits that ended).
sub voluntary_switches
{
	my ($pid) = @_;
	my $status = slurp_file("/proc/$pid/status");
	return $status =~ /^voluntary_ctxt_switches:\s+(\d+)/m ? $1 : die "no process $pid";
}

sub proc_alive
{
	my ($pid) = @_;
	my $f = proc_stat($pid);
	return defined $f && $f->[0] ne 'Z';
}

# The request the stand-in holds (no answer yet), once there is one.
sub held_request
{
	return GsExportTest::wait_for('a request held by the remote', sub {
		return undef if $remote->control('GET', 'faults')->{delay_next} != 0;
		my @u = grep { !defined $_->{duration_ms} } @{ $remote->requests };
		return $u[-1];
	});
}

###########################################################################
# (a), (b) A 2xx that no PostgREST would send: the job fails at once, with
# the answer in its reason, nothing counted; a resume completes it.
###########################################################################
my $html = "<!DOCTYPE html>\n<html>\r\n<head><title>Corporate proxy: sign in</title></head>\n"
  . "<body>\t<form action=\"/login\">Please sign in" . (' to continue' x 40) . "</form></body></html>\n";
my @not_postgrest = (
	[ '200 with an HTML login page', 200, 'HTML',
		{ body => $html, headers => { 'Content-Type' => 'text/html; charset=utf-8' } },
		qr/Corporate proxy: sign in/ ],
	[ '201 with a JSON body', 201, '[{"id":1}]',
		{ body => '[{"id":1}]', headers => { 'Content-Type' => 'application/json' } },
		qr/\Q[{"id":1}]\E/ ],
	[ '204', 204, '', { body => '' }, qr/HTTP 204 is not PostgREST's answer/ ],
);
for my $c (@not_postgrest)
{
	my ($what, $status, undef, $fault, $excerpt) = @$c;
	fresh_remote();
	$remote->faults(fail_next => 1, status => $status, %$fault);
	my $job = new_job();
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'failed',
		"$what: the job failed");
	GsExportTest::wait_no_worker($node);
	my $j = GsExportTest::job($node, $job);
	my $reason = $j->{pause_reason} // '';
	like($reason, qr/\bHTTP $status\b/, "$what: the reason gives the status: $reason");
	like($reason, qr/not PostgREST's answer/, "$what: the reason says it is not PostgREST's answer");
	like($reason, $excerpt, "$what: the reason quotes the body (or says there was none)");
	unlike($reason, qr/[\x00-\x1f\x7f]/, "$what: no control characters in the reason");
	cmp_ok(length($reason), '<', 600, "$what: the reason quotes only the start of the body");
	is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", '0/0/0',
		"$what: no lead counted (exported_leads = 0)");
	is(GsExportTest::sync_summary($node, $job), '0/0/0/0/0', "$what: no sync_events rows");
	my $reqs = $remote->requests;
	is(scalar(@$reqs), 1, "$what: one request, not retried");
	is($reqs->[0]{status}, $status, "$what: that request got $status");
	is($remote->count, 0, "$what: the remote stored nothing");

	$remote->reset;
	# (psql, not safe_psql: a job that wrongly completed cannot be resumed,
	# and the checks below say so.)
	$node->psql('postgres', "SELECT gs_export_resume('$job')");
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
		"$what: resumed once the remote is right, the job completed");
	is($remote->ids, $all_ids, "$what, resumed: the remote has every lead");
	is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], [],
		"$what, resumed: every remote row equals its lead");
	check_complete($job, "$what, resumed");
}

# A proxy that echoes the request's headers: the key it quotes goes into no
# job row and no log line.
fresh_remote();
$remote->faults(fail_next => 1, status => 200,
	body => "<html>you sent apikey: $GsExportTest::API_KEY</html>");
my $log_offset = -s $node->logfile;
my $echo = new_job();
is(GsExportTest::wait_status($node, $echo, 'completed|failed|paused', 60), 'failed',
	'a 200 echoing the key: the job failed');
my $echo_reason = GsExportTest::job($node, $echo)->{pause_reason} // '';
like($echo_reason, qr/\[key\]/, "the key is blanked out of the reason: $echo_reason");
unlike($echo_reason, qr/\Q$GsExportTest::API_KEY\E/, 'no key in pause_reason');
unlike(substr(slurp_file($node->logfile), $log_offset), qr/\Q$GsExportTest::API_KEY\E/,
	'no key in the server log');
$node->safe_psql('postgres', "UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = '$echo'");

# PostgREST's own successes still count: 201 for new rows, then 200 when
# every row already existed (a second job over the same leads).
fresh_remote();
my $job = new_job();
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'PostgREST 201: the job completed');
check_complete($job, 'PostgREST 201');
$remote->reset;
$job = new_job();
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'PostgREST 200 (all updated): the job completed');
is_deeply([ sort keys %{ $remote->stats->{by_status} } ], [ '200' ],
	'PostgREST 200: every answer was 200 with no body');
check_complete($job, 'PostgREST 200');

###########################################################################
# (c) An error body that json-c takes but jsonb refuses: the lead is an
# error with response_body NULL; the job goes on and completes.  A body
# jsonb takes is kept.
###########################################################################
my @bodies = (
	[ '\u0000 escape', '{"code":"23505","message":"x\u0000y"}', 0 ],
	[ 'NaN', '{"code":"23505","message":"x","details":NaN}', 0 ],
	[ 'trailing garbage', '{"code":"23505","message":"x"} <html>', 0 ],
	[ 'valid JSON', '{"code":"23505","details":"Key (id)=(1) already exists.","hint":null,'
		  . '"message":"duplicate key value violates unique constraint \\"fichas_pkey\\" \\/ \\u0041"}', 1 ],
);
for my $b (@bodies)
{
	my ($what, $body, $kept) = @$b;
	fresh_remote();
	$remote->faults(fail_next => 1, status => 409, body => $body,
		headers => { 'Content-Type' => 'application/json; charset=utf-8' });
	$job = new_job(1);
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
		"409 body with $what: the job completed");
	my $j = GsExportTest::job($node, $job);
	is($j->{pause_reason}, undef, "409 body with $what: no failure reason");
	check_complete($job, "409 body with $what", 1);
	my $err = $node->safe_psql('postgres', qq{
		SELECT lead_id || '|' || response_status || '|' || (response_body IS NULL)
		       || '|' || COALESCE(response_body ->> 'message', '')
		  FROM gestao_scouter_export_errors WHERE job_id = '$job'});
	is($err, $kept ? '1|409|false|duplicate key value violates unique constraint "fichas_pkey" / A' : '1|409|true|',
		"409 body with $what: lead 1 is the error, response_body "
		  . ($kept ? 'kept' : 'NULL'));
}
ok(!$node->log_contains(qr/server process .* was terminated by signal/),
	'no backend crashed');

###########################################################################
# (d) A request the remote holds for 5 s: the worker sleeps meanwhile; a
# pause is seen once the batch is over; a terminate ends the worker at once.
###########################################################################
fresh_remote();
$remote->faults(delay_next => 1, delay_ms => 5000);
$job = new_job();
my $req = held_request();
my $took;
my $pid = GsExportTest::wait_for('the job worker', sub { GsExportTest::worker_pid($node) });
$node->safe_psql('postgres', "SELECT gs_export_pause('$job', 'paused while the remote works')");
my $t0 = time;
my $ticks0 = cpu_ticks($pid);
my $sw0 = voluntary_switches($pid);
usleep(3_000_000);
my $ticks1 = cpu_ticks($pid);
my $sw1 = voluntary_switches($pid);
my $t1 = time;
ok(!defined((grep { $_->{seq} == $req->{seq} && defined $_->{duration_ms} } @{ $remote->requests })[0]),
	'pause: the request was still held throughout the measure');
cmp_ok($ticks1 - $ticks0, '<=', 5,
	sprintf('pause: the worker used %d clock ticks of CPU in %.2f s of held request (no busy loop)',
		$ticks1 - $ticks0, $t1 - $t0));
# The wait ends when curl's timer is due or after at most a second: a
# handful of wake-ups in 3 s, not one per 100 ms.
cmp_ok($sw1 - $sw0, '<=', 12,
	sprintf('pause: the worker woke up %d times in %.2f s of held request (no polling)',
		$sw1 - $sw0, $t1 - $t0));
is(GsExportTest::wait_status($node, $job, 'paused|completed|failed', 30), 'paused',
	'pause: the job is paused');
GsExportTest::wait_no_worker($node, 30);
my $j = GsExportTest::job($node, $job);
is($j->{pause_reason}, 'paused while the remote works', 'pause: with the user\'s reason');
cmp_ok($j->{total_leads}, '<', $n, 'pause: the job stopped before the end');
is("$j->{exported_leads}/$j->{error_leads}", "$j->{total_leads}/0", 'pause: counters consistent');

# A pause while a request is held, which then fails with 503 and a long
# Retry-After: the worker does not sit out the Retry-After nor try again.
GsExportTest::set_gucs($node, 'gs_export.retry_max_delay_ms' => 60000);
$remote->faults(delay_next => 1, delay_ms => 2000, fail_next => 1, status => 503, retry_after => '30');
$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
$req = held_request();
$node->safe_psql('postgres', "SELECT gs_export_pause('$job', 'paused before a retry')");
$t0 = time;
GsExportTest::wait_no_worker($node, 60);
$took = time - $t0;
cmp_ok($took, '<', 8, sprintf('pause, then 503: the worker left %.2f s after the pause, not after Retry-After: 30', $took));
$j = GsExportTest::job($node, $job);
is("$j->{status}/$j->{pause_reason}", 'paused/paused before a retry', 'pause, then 503: paused with the user\'s reason');
my @after = grep { $_->{seq} > $req->{seq} } @{ $remote->requests };
is(scalar(@after), 0, 'pause, then 503: no further attempt');
GsExportTest::set_gucs($node, 'gs_export.retry_max_delay_ms' => undef);

# Resume into another held request, and terminate the worker in it.
$remote->faults(delay_next => 1, delay_ms => 5000);
$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
$req = held_request();
$pid = GsExportTest::wait_for('the job worker', sub { GsExportTest::worker_pid($node) });
$t0 = time;
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"), 't',
	"terminate: pg_terminate_backend($pid) signalled the job worker");
usleep(10_000) while proc_alive($pid) && time - $t0 < 10;
$took = time - $t0;
ok(!proc_alive($pid), 'terminate: the worker is gone');
cmp_ok($took, '<', 1, sprintf('terminate: the worker ended %.3f s after the signal, in a held request', $took));
ok(!defined((grep { $_->{seq} == $req->{seq} && defined $_->{duration_ms} } @{ $remote->requests })[0]),
	'terminate: the remote had not answered yet');

# The job is still running: the launcher starts a new worker that finishes.
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'terminate: the job completed with a new worker');
is($remote->ids, $all_ids, 'terminate: the remote has every lead');
$j = GsExportTest::job($node, $job);
is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$n/0",
	'terminate: counters exact');

$remote->stop;
$node->stop;
done_testing();
