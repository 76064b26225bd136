# 093_key_scrub.pl: a remote (or a proxy in front of it) that echoes the
# apikey and Authorization headers it received in its answers -- in a 400
# that refuses rows, a 503 that outlasts the retries, a 2xx page -- gets
# neither key of the config (anon_key, service_role_key_encrypted), raw or
# in its "Bearer" form, JSON-escaped or cut short, into anything a user
# with gs_export_user reads (their job's error rows, sync_events,
# pause_reason, gs_export_status, NOTIFY), into an alert, or into the
# server log (at DEBUG1).  A key shorter than 8 characters is scrubbed
# where it stands as the key (a header's value, a JSON string of its own),
# not inside other words.  The stand-in's fail_next answers with a body
# that holds the keys verbatim: what an echo of the request's headers
# returns (the test checks that the headers carried them).
use strict;
use warnings;

use GsExportTest;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $json = JSON::PP->new->canonical;

my $remote = GsExportTest::remote();
# log_statement = none: the test's own statements, which hold the keys,
# are not what puts them in the log.
my $node = GsExportTest::local_node('scrub', conf => qq{
log_statement = none
log_min_messages = debug1
});
my $key = $GsExportTest::API_KEY;
my $srk = 'gs-test-service-role-key-8d2b6f0c';
# a key's beginning: what a message that quotes a cut answer would show
my @needles = ($key, $srk, substr($key, 0, 12), substr($srk, 0, 12));
my $short = 'Ab1x9';

GsExportTest::configure($node, $remote);
# alerts go to the stand-in, which logs their bodies (keep_bodies)
my $alert_url = $remote->url . '/rest/v1/gs_alerts';
$node->safe_psql('postgres', qq{
	UPDATE gestao_scouter_config SET service_role_key_encrypted = '$srk', alert_url = '$alert_url';
	CREATE ROLE alice LOGIN;
	GRANT gs_export_user TO alice;
	GRANT SELECT ON leads TO alice;
	-- TabuladorMax's own sync_events (test/sql/tabuladormax.sql) is its
	-- owner's to grant: as TabuladorMax would, to its users
	GRANT SELECT ON sync_events TO alice;
});
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-03-05 12:00:00+00' - g * interval '1 hour', 'lead ' || g
	  FROM generate_series(1, 30) g});

# alice LISTENs from the start to the end
my $listener = $node->background_psql('postgres', on_error_stop => 1,
	extra_params => [ '-U', 'alice' ]);
$listener->query_safe('LISTEN gs_export');

sub as_alice
{
	my ($sql) = @_;
	my ($state, $out, $err) = GsExportTest::psql_as($node, 'alice', $sql);
	die "as alice: $sql: $state $err" if $state ne '';
	return $out;
}

# A job of alice's, five leads a request, one request at a time.
sub alice_job
{
	return as_alice(q{SELECT gs_export_create('2026-03-06', '2026-03-01',
		'{"batch_size": 5, "delay_ms": 0, "max_in_flight": 1, "time_zone": "UTC"}')});
}

# Every text of the job that alice reads: its row as gs_export_status
# shows it, the jobs table's row, its error rows and its sync_events.
sub alice_reads
{
	my ($job) = @_;
	return as_alice(qq{
		SELECT (SELECT row_to_json(s)::text FROM gs_export_status('$job') s)
		    || E'\\n' || (SELECT row_to_json(j)::text FROM gestao_scouter_export_jobs j WHERE id = '$job')
		    || E'\\n' || coalesce((SELECT string_agg(row_to_json(e)::text, E'\\n' ORDER BY e.lead_id)
		                            FROM gestao_scouter_export_errors e WHERE job_id = '$job'), '')
		    || E'\\n' || coalesce((SELECT string_agg(row_to_json(v)::text, E'\\n' ORDER BY v.lead_id)
		                            FROM sync_events v WHERE job_id = '$job'), '')});
}

# The texts hold no key (nor a key's beginning).
sub no_key
{
	my ($text, $what) = @_;
	my @hits = grep { index($text, $_) >= 0 } @needles;
	is("@hits", '', "$what: no key") or diag(substr($text, 0, 3000));
}

# The alerts the stand-in got for a job.
sub alerts
{
	my ($job) = @_;
	return [ map { $json->decode($_->{body}) }
		  grep { ($_->{table} // '') eq 'gs_alerts' && ($_->{body} // '') =~ /\Q$job\E/ }
		  @{ $remote->requests } ];
}

sub wait_alert
{
	my ($job) = @_;
	return GsExportTest::wait_for("the alert of $job", sub { my $a = alerts($job); @$a ? $a : undef });
}

# The remote's error body: the headers it received, echoed in PostgREST's
# fields and in a nested object, one of them \u-escaped in the JSON text.
sub echo_body
{
	my ($code, $k, $s) = @_;
	my $body = $json->encode({
		code => $code,
		message => "request refused; it had apikey: $k and Authorization: Bearer $k"
		  . (defined $s ? " and x-service-key: $s" : ''),
		details => 'service key ' . ($s // 'none'),
		hint => $k,
		echo => { apikey => $k, authorization => "Bearer $k", $k => 'the key as a name' } });
	my $escaped = sprintf('\\u%04x', ord($k)) . substr($k, 1);
	$body =~ s/\}$/,"escaped":"$escaped"}/;
	return $body;
}

###########################################################################
# 1. A 400 that refuses each lead of the first batch, echoing the keys.
###########################################################################
$remote->faults(keep_bodies => JSON::PP::true, fail_next => 9, status => 400,
	body => echo_body('23514', $key, $srk));
my $job1 = alice_job();
is(GsExportTest::wait_status($node, $job1, 'completed|failed|paused', 60), 'completed', '400 echo: the job completes');
my $reqs = $remote->requests;
is($reqs->[0]{headers}{apikey}, $key, 'the remote received the key in apikey');
is($reqs->[0]{headers}{authorization}, "Bearer $key", 'and in Authorization');
is(as_alice("SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = '$job1'"), '5',
	'400 echo: alice reads 5 error rows');
is(as_alice("SELECT count(*) FROM sync_events WHERE job_id = '$job1' AND status = 'error'"), '5',
	'400 echo: and 5 error events');
my $r1 = alice_reads($job1);
like($r1, qr/apikey: \[key\] and Authorization: Bearer \[key\]/, '400 echo: the message is kept, the key replaced');
no_key($r1, '400 echo: error rows, sync_events, status');
is(as_alice(qq{SELECT count(*) FROM gestao_scouter_export_errors
	WHERE job_id = '$job1' AND response_body -> 'echo' ->> 'authorization' = 'Bearer [key]'
	  AND response_body ->> 'escaped' = '[key]' AND response_body ->> 'details' = 'service key [key]'
	  AND response_body -> 'echo' ->> '[key]' = 'the key as a name'}), '5',
	'400 echo: the bodies stay JSON, each string with the key replaced (nested, escaped, as a name)');
my $a1 = wait_alert($job1);
no_key($json->encode($a1), '400 echo: the completion alert');

###########################################################################
# 2. A 503 echoing the keys until the retries run out: paused.  The alert
#    goes to the stand-in too, which answers it the same 503.
###########################################################################
$remote->reset;
GsExportTest::set_gucs($node, 'gs_export.max_retries' => 2, 'gs_export.retry_max_delay_ms' => 200);
$remote->faults(keep_bodies => JSON::PP::true, fail_next => 1000, status => 503,
	retry_after => undef, body => echo_body('PGRST000', $key, $srk));
my $job2 = alice_job();
is(GsExportTest::wait_status($node, $job2, 'completed|failed|paused', 60), 'paused', '503 echo: paused');
my $a2 = wait_alert($job2);
my $r2 = alice_reads($job2);
like($r2, qr/the remote is unavailable \(HTTP 503 PGRST000: request refused; it had apikey: \[key\]/,
	'503 echo: pause_reason quotes the answer, the key replaced');
no_key($r2, '503 echo: pause_reason, status');
like($a2->[0]{reason}, qr/apikey: \[key\]/, '503 echo: the alert\'s reason has [key]');
no_key($json->encode($a2), '503 echo: the pause alert');
GsExportTest::wait_no_worker($node);
$remote->reset;
GsExportTest::set_gucs($node, 'gs_export.max_retries' => undef, 'gs_export.retry_max_delay_ms' => undef);
$node->safe_psql('postgres', "UPDATE gestao_scouter_export_jobs SET status = 'failed' WHERE id = '$job2'");

###########################################################################
# 3. A 2xx page (not PostgREST's answer) that echoes the key where the
#    quoted excerpt of the answer ends: the job fails, and no beginning of
#    the key is in its reason.
###########################################################################
$remote->faults(keep_bodies => JSON::PP::true, fail_next => 1, status => 200,
	body => '<html><body>' . ('x' x 173) . "$key Bearer $key $srk</body></html>");
my $job3 = alice_job();
is(GsExportTest::wait_status($node, $job3, 'completed|failed|paused', 60), 'failed', '2xx echo: failed');
my $a3 = wait_alert($job3);
my $r3 = alice_reads($job3);
like($r3, qr/the body began: .*xxx\[key\]/, '2xx echo: the reason quotes the answer, the key replaced');
no_key($r3, '2xx echo: pause_reason, status');
no_key($json->encode($a3), '2xx echo: the failure alert');
GsExportTest::wait_no_worker($node);
$remote->reset;

###########################################################################
# 4. A key of 5 characters: scrubbed where it is the key (a header's value
#    after "apikey" or "Bearer", a JSON string or name of its own), kept
#    inside other words.  After the 400s, the stand-in refuses the short
#    key (401): the job fails.
###########################################################################
$node->safe_psql('postgres', qq{UPDATE gestao_scouter_config
	SET anon_key = '$short', service_role_key_encrypted = NULL});
my $body4 = echo_body('23514', $short, undef);
$body4 =~ s/"hint":"\Q$short\E"/"hint":"lead X${short}Y"/ or die;
$remote->faults(keep_bodies => JSON::PP::true, fail_next => 9, status => 400, body => $body4);
my $job4 = alice_job();
is(GsExportTest::wait_status($node, $job4, 'completed|failed|paused', 60), 'failed', 'short key: failed (401 after the 400s)');
is($remote->requests->[0]{headers}{apikey}, $short, 'short key: the remote received it');
is(as_alice("SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = '$job4'"), '5',
	'short key: alice reads 5 error rows');
my $r4 = alice_reads($job4);
like($r4, qr/apikey: \[key\] and Authorization: Bearer \[key\]/, 'short key: replaced after apikey and Bearer');
is(as_alice(qq{SELECT count(*) FROM gestao_scouter_export_errors
	WHERE job_id = '$job4' AND response_body -> 'echo' ->> 'apikey' = '[key]'
	  AND response_body ->> 'escaped' = '[key]' AND response_body -> 'echo' ->> '[key]' = 'the key as a name'
	  AND response_body ->> 'hint' = 'lead X${short}Y'}), '5',
	'short key: replaced as a JSON string or name of its own, kept inside a word');
(my $r4_rest = $r4) =~ s/X\Q$short\EY//g;
unlike($r4_rest, qr/\Q$short\E/, 'short key: nowhere else in what alice reads');
my $a4 = wait_alert($job4);
unlike($json->encode($a4), qr/(?<!X)\Q$short\E/, 'short key: not in the alert');
GsExportTest::wait_no_worker($node);

###########################################################################
# Everything alice may read, what she heard, and the server log.
###########################################################################
for my $k (@needles)
{
	my ($found, $n) = GsExportTest::readable_relations_containing($node, 'alice', $k,
		skip => [ 'gestao_scouter_config', 'pg_statistic', 'pg_stats' ]);
	cmp_ok($n, '>', 50, "scanned $n relations as alice");
	is("@$found", '', "'$k' is in no relation alice may read");
}
my $heard = $listener->query_safe('SELECT 1');
$listener->quit;
my $n_heard = () = $heard =~ /Asynchronous notification "gs_export"/g;
cmp_ok($n_heard, '>=', 8, "alice heard $n_heard notifications");
no_key($heard, 'NOTIFY');
unlike($heard, qr/(?<!X)\Q$short\E/, 'NOTIFY: not the short key');

my $log = slurp_file($node->logfile);
like($log, qr/DEBUG/, 'the log is at DEBUG1');
like($log, qr/job \Q$job2\E paused: .*\[key\]/, 'the log has the pause, the key replaced');
for my $k (@needles, $short)
{
	my @lines = grep { /(?<!X)\Q$k\E/ } split /\n/, $log;
	is(scalar(@lines), 0, "'$k' is in no line of the server log")
	  or diag(join("\n", @lines[0 .. ($#lines < 5 ? $#lines : 5)]));
}

done_testing();
