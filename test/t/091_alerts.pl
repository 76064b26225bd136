# 091_alerts.pl: the config's alert_url.  A tiny webhook receiver on
# 127.0.0.1 (Python's http.server) records what it gets and can answer 500
# or never answer.  An alert goes out once when a job completes, fails, or
# is paused by the remote's trouble, with the documented JSON and a
# one-line text, after the change committed; none on a user's pause; it is
# retried on a 500; a webhook that hangs or refuses costs the alert only,
# never the job; a shutdown cuts it short.  alert_url follows project_url's
# rules (plus a path and a query), in the config guard and in the worker.
# No key ever goes in an alert.
use strict;
use warnings;

use GsExportTest;
use HTTP::Tiny;
use IO::Socket::INET;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $json = JSON::PP->new->canonical;
my $http = HTTP::Tiny->new(timeout => 10);

###########################################################################
# The webhook receiver.
###########################################################################
my $dir = PostgreSQL::Test::Utils::tempdir;
open(my $fh, '>', "$dir/webhook.py") or die;
print $fh <<'PY';
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

state = {"fail_next": 0, "hang": False}
requests = []
lock = threading.Lock()

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="text/plain"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with lock:
            data = json.dumps(requests)
        self.reply(200, data, "application/json")

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_control":
            with lock:
                c = json.loads(raw)
                if c.pop("clear", False):
                    requests.clear()
                state.update(c)
            self.reply(200, "{}", "application/json")
            return
        with lock:
            fail = state["fail_next"] > 0
            if fail:
                state["fail_next"] -= 1
            hang = state["hang"]
            requests.append({"path": self.path, "method": self.command,
                             "headers": dict(self.headers.items()),
                             "body": raw.decode("utf-8", "replace"), "at": time.time(),
                             "answer": 500 if fail else (None if hang else 200)})
        if hang:
            time.sleep(120)
            return
        if fail:
            self.reply(500, "internal_error")
        else:
            self.reply(200, "ok")

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
PY
close($fh);
my $hook = IPC::Run::start([ '/usr/bin/python3', "$dir/webhook.py", "$dir/webhook.port" ],
	'>', "$dir/webhook.out", '2>', "$dir/webhook.err");
GsExportTest::wait_for('the webhook receiver', sub { -s "$dir/webhook.port" }, 30);
my $hook_port = slurp_file("$dir/webhook.port") + 0;
my $hook_base = "http://127.0.0.1:$hook_port";
# A Slack-style address: the path is the secret, which the log must not show.
my $hook_url = "$hook_base/services/T0GS/B0EXPORT/s3cr3tPathToken";

sub hook_control
{
	my (%c) = @_;
	my $res = $http->post("$hook_base/_control",
		{ content => $json->encode(\%c), headers => { 'Content-Type' => 'application/json' } });
	die "webhook control: $res->{status}" unless $res->{success};
}

sub hook_requests
{
	my $res = $http->get("$hook_base/_requests");
	die "webhook requests: $res->{status}" unless $res->{success};
	return decode_json($res->{content});
}

###########################################################################
# The export side.
###########################################################################
my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
my $n = 200;
GsExportTest::insert_leads($node, qq{
	SELECT g, timestamptz '2026-06-30 23:00:00+00' - (g * interval '97 minutes'), 'lead ' || g
	  FROM generate_series(1, $n) g
});

# The config, with $url (undef: none) as alert_url.
sub configure
{
	my ($url, %opts) = @_;
	GsExportTest::configure($node, $remote, %opts);
	$node->safe_psql('postgres',
		'UPDATE gestao_scouter_config SET alert_url = ' . (defined $url ? "'$url'" : 'NULL'));
}

sub new_job
{
	my ($opts) = @_;
	$opts //= '{"batch_size": 50, "delay_ms": 0, "time_zone": "UTC"}';
	$remote->truncate;
	return GsExportTest::create_job($node, "'2026-06-30', '2026-01-01', '$opts'");
}

# The server log's lines of gs_export's workers (the test's own statements
# are logged too, keys and all).
sub worker_log
{
	return join("\n", grep { /gs_export/ && !/091_alerts\.pl/ } split /\n/, slurp_file($node->logfile));
}

# Wait until the receiver holds $count requests; returns them.
sub wait_alerts
{
	my ($count, $timeout) = @_;
	return GsExportTest::wait_for("$count alert(s)",
		sub { my $r = hook_requests(); return @$r >= $count ? $r : undef; }, $timeout // 30);
}

# The alert's document, checked for its keys; returns it decoded.
sub alert_doc
{
	my ($req, $what) = @_;
	my $doc = eval { decode_json($req->{body}) };
	ok($doc && ref $doc eq 'HASH', "$what: the body is a JSON object") or diag($req->{body});
	is_deeply([ sort keys %$doc ],
		[qw(end_date error_leads exported_leads job_id reason start_date status text total_leads)],
		"$what: the document has exactly the documented keys");
	unlike($doc->{text}, qr/[\r\n]/, "$what: text is one line");
	is($req->{method}, 'POST', "$what: POST");
	like($req->{headers}{'Content-Type'}, qr{^application/json$}, "$what: Content-Type application/json");
	like($req->{headers}{'User-Agent'}, qr{^gs_export/}, "$what: User-Agent gs_export");
	is($req->{path}, '/services/T0GS/B0EXPORT/s3cr3tPathToken', "$what: to alert_url's path");
	return $doc;
}

###########################################################################
# 1. alert_url follows project_url's rules, plus a path and a query.
###########################################################################
configure(undef);
for my $bad ('ftp://hooks.example.com/x', 'https://user:pw@hooks.example.com/x',
	'https://hooks.example.com/x#frag', 'https://hooks.example.com/a b', 'hooks.example.com/x',
	'https:///x', "https://hooks.example.com/x\ny")
{
	my ($state) = GsExportTest::psql_as($node, undef,
		"UPDATE gestao_scouter_config SET alert_url = " . $node->safe_psql('postgres', "SELECT quote_literal(\$q\$$bad\$q\$)"));
	(my $shown = $bad) =~ s/\n/\\n/g;
	is($state, '23514', "alert_url '$shown' refused (23514)");
}
for my $good ('https://hooks.slack.com/services/T000/B000/XXXX',
	'https://outlook.webhook.office.com/webhookb2/a-b@c/IncomingWebhook/d/e',
	'http://127.0.0.1:8080/hook?token=abc&x=1', 'https://example.com')
{
	my ($state) = GsExportTest::psql_as($node, undef,
		"UPDATE gestao_scouter_config SET alert_url = '$good'");
	is($state, '', "alert_url '$good' accepted");
}
is($node->safe_psql('postgres',
	"SELECT column_default IS NULL AND is_nullable = 'YES' FROM information_schema.columns "
	  . "WHERE table_name = 'gestao_scouter_config' AND column_name = 'alert_url'"),
	't', 'alert_url is NULL by default');

###########################################################################
# 2. Completion: one alert, the documented JSON, sent after the commit.
###########################################################################
configure($hook_url);
my $job = new_job();
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed', 'completed');
my $reqs = wait_alerts(1);
my $doc = alert_doc($reqs->[0], 'completion');
is_deeply(
	{ map { $_ => $doc->{$_} } qw(job_id status reason total_leads exported_leads error_leads start_date end_date) },
	{
		job_id => $job, status => 'completed', reason => undef, total_leads => $n,
		exported_leads => $n, error_leads => 0, start_date => '2026-06-30', end_date => '2026-01-01'
	},
	'completion: job_id, status, reason, counts and days');
is($doc->{text},
	"gs_export: job $job completed: $n leads, $n exported, 0 errors (days 2026-06-30 down to 2026-01-01)",
	'completion: the one-line text');
GsExportTest::wait_no_worker($node);
usleep(500_000);
is(scalar(@{ hook_requests() }), 1, 'completion: exactly one alert');
ok($node->log_contains(qr/gs_export: job $job completed: alert to \Q$hook_base\E: sent \(HTTP 200\)/),
	'completion: LOG line says the alert was sent, naming only the webhook\'s host and port');
unlike(worker_log(), qr/s3cr3tPathToken/, 'the log of the workers never shows alert_url\'s path');

###########################################################################
# 3. A user's pause: no alert.  Resumed, completed: one.
###########################################################################
hook_control(clear => JSON::PP::true);
$job = new_job('{"batch_size": 50, "delay_ms": 700, "time_zone": "UTC"}');
GsExportTest::wait_true($node,
	"SELECT exported_leads >= 50 FROM gestao_scouter_export_jobs WHERE id = '$job'", 60);
$node->safe_psql('postgres', "SELECT gs_export_pause('$job', 'lunch')");
GsExportTest::wait_no_worker($node);
usleep(1_000_000);
is(scalar(@{ hook_requests() }), 0, 'user\'s pause: no alert');
$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'user\'s pause: resumed, completed');
$reqs = wait_alerts(1);
GsExportTest::wait_no_worker($node);
$reqs = hook_requests();
is(scalar(@$reqs), 1, 'user\'s pause: then one alert, on completion');
is(decode_json($reqs->[0]{body})->{status}, 'completed', 'user\'s pause: the alert is the completion\'s');

###########################################################################
# 4. Failure: the remote answers 401 (a wrong key).
###########################################################################
hook_control(clear => JSON::PP::true);
configure($hook_url, key => 'wrong-key-9d1e');
$job = new_job();
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'failed', '401: failed');
$reqs = wait_alerts(1);
$doc = alert_doc($reqs->[0], '401');
is("$doc->{job_id}/$doc->{status}/$doc->{total_leads}/$doc->{exported_leads}/$doc->{error_leads}",
	"$job/failed/0/0/0", '401: job_id, status failed, counts');
my $reason = GsExportTest::job($node, $job)->{pause_reason};
is($doc->{reason}, $reason, '401: reason is the job\'s pause_reason');
like($doc->{reason}, qr/HTTP 401/, "401: the reason names the answer: $doc->{reason}");
like($doc->{text}, qr/^gs_export: job $job failed: .*HTTP 401.* \(0 leads so far, 0 exported, 0 errors; days 2026-06-30 down to 2026-01-01\)$/,
	"401: the one-line text: $doc->{text}");
GsExportTest::wait_no_worker($node);
usleep(500_000);
is(scalar(@{ hook_requests() }), 1, '401: exactly one alert');

###########################################################################
# 4b. A reason that holds the key (something at project_url echoed it in a
#     2xx page, which the reason quotes): the alert has [key] instead.
###########################################################################
hook_control(clear => JSON::PP::true);
configure($hook_url);
$remote->faults(fail_next => 1, status => 200,
	body => "<html>Sign in. Your apikey $GsExportTest::API_KEY is not valid here.</html>");
$job = new_job();
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'failed', 'echoed key: failed');
$reqs = wait_alerts(1);
$doc = decode_json($reqs->[0]{body});
like($doc->{reason}, qr/Your apikey \[key\] is not valid/, "echoed key: the alert's reason has [key]: $doc->{reason}");
unlike($reqs->[0]{body}, qr/\Q$GsExportTest::API_KEY\E/, 'echoed key: not in the alert');
GsExportTest::wait_no_worker($node);
$remote->reset;

###########################################################################
# 5. Paused by the remote's trouble (the remote down, retries run out).
###########################################################################
hook_control(clear => JSON::PP::true);
configure($hook_url);
GsExportTest::set_gucs($node, 'gs_export.max_retries' => 3, 'gs_export.retry_max_delay_ms' => 200);
$remote->faults(down => JSON::PP::true);
$job = new_job();
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'paused', 'remote down: paused');
$reqs = wait_alerts(1);
$doc = alert_doc($reqs->[0], 'remote down');
is("$doc->{job_id}/$doc->{status}", "$job/paused", 'remote down: status paused');
like($doc->{reason}, qr/after 3 attempts/, "remote down: the reason: $doc->{reason}");
like($doc->{text}, qr/^gs_export: job $job paused: the remote is unavailable/, 'remote down: the text');
GsExportTest::wait_no_worker($node);
usleep(500_000);
is(scalar(@{ hook_requests() }), 1, 'remote down: exactly one alert');
$remote->faults(down => JSON::PP::false);
GsExportTest::set_gucs($node, 'gs_export.max_retries' => undef, 'gs_export.retry_max_delay_ms' => undef);
$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'remote back: resumed, completed');
GsExportTest::wait_no_worker($node);
$reqs = hook_requests();
is_deeply([ map { decode_json($_->{body})->{status} } @$reqs ], [ 'paused', 'completed' ],
	'remote back: one more alert, the completion\'s');

###########################################################################
# 6. The webhook answers 500 once: sent again, after a backoff.
###########################################################################
hook_control(clear => JSON::PP::true, fail_next => 1);
$job = new_job();
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed', 'webhook 500: completed');
$reqs = wait_alerts(2);
GsExportTest::wait_no_worker($node);
$reqs = hook_requests();
is_deeply([ map { $_->{answer} } @$reqs ], [ 500, 200 ], 'webhook 500: answered 500, sent again, taken');
is($reqs->[1]{body}, $reqs->[0]{body}, 'webhook 500: the same document');
my $gap = $reqs->[1]{at} - $reqs->[0]{at};
cmp_ok($gap, '>=', 0.2, sprintf('webhook 500: sent again %.2f s later (backoff)', $gap));
ok($node->log_contains(qr/job $job completed: alert to \Q$hook_base\E: sent \(HTTP 200\)/),
	'webhook 500: LOG says sent');

###########################################################################
# 7. The webhook never answers: the job completes on time; the alert gives
#    up after its timeout, once (it may have been taken).
###########################################################################
hook_control(clear => JSON::PP::true, hang => JSON::PP::true);
my $t0 = time;
$job = new_job();
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed', 'webhook hangs: completed');
my $took = time - $t0;
cmp_ok($took, '<', 5, sprintf('webhook hangs: the job completed in %.2f s', $took));
$reqs = wait_alerts(1);
isnt(GsExportTest::worker_pid($node), '', 'webhook hangs: the worker still waits for the webhook ...');
is(GsExportTest::job($node, $job)->{status}, 'completed', '... while the job is completed already');
my $t1 = time;
GsExportTest::wait_no_worker($node, 30);
my $left = time - $t1;
cmp_ok($left, '<', 8, sprintf('webhook hangs: the worker gave up and left %.2f s later', $left));
is(scalar(@{ hook_requests() }), 1, 'webhook hangs: not sent again after a timeout');
ok($node->log_contains(qr/job $job completed: alert to \Q$hook_base\E: Timeout was reached/),
	'webhook hangs: LOG says the alert timed out');
hook_control(hang => JSON::PP::false);

###########################################################################
# 8. The webhook refuses connections: the job completes on time; a few
#    attempts, then the alert is given up.
###########################################################################
# A port bound but not listening refuses connections, and stays ours: no
# other test running at the same time can take it meanwhile.
my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp') or die;
my $closed_port = $sock->sockport;
configure("http://127.0.0.1:$closed_port/hook");
$t0 = time;
$job = new_job();
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed', 'webhook refuses: completed');
$took = time - $t0;
cmp_ok($took, '<', 5, sprintf('webhook refuses: the job completed in %.2f s', $took));
$t1 = time;
GsExportTest::wait_no_worker($node, 30);
$left = time - $t1;
cmp_ok($left, '<', 6, sprintf('webhook refuses: the worker left %.2f s later', $left));
ok($node->log_contains(qr/job $job completed: alert to http:\/\/127\.0\.0\.1:$closed_port: Couldn't connect to server.*after 3 attempts/),
	'webhook refuses: LOG says it could not connect, after 3 attempts');

###########################################################################
# 9. An alert_url the worker's own check refuses (written while the guard
#    was off): no alert, a LOG line, the job completes.
###########################################################################
hook_control(clear => JSON::PP::true);
configure(undef);
$node->safe_psql('postgres', qq{
	ALTER TABLE gestao_scouter_config DISABLE TRIGGER gs_export_config_guard;
	UPDATE gestao_scouter_config SET alert_url = '$hook_base/a b';
	ALTER TABLE gestao_scouter_config ENABLE TRIGGER gs_export_config_guard;
});
$job = new_job();
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed', 'bad alert_url: completed');
GsExportTest::wait_no_worker($node);
is(scalar(@{ hook_requests() }), 0, 'bad alert_url: no alert');
ok($node->log_contains(qr/job $job completed, but no alert was sent: alert_url holds a character a URL may not hold/),
	'bad alert_url: LOG says why');

###########################################################################
# 10. No key in any alert, ever.
###########################################################################
my $all = '';
for my $r (@{ hook_requests() }) { $all .= $r->{body} . $json->encode($r->{headers}); }
unlike($all, qr/\Q$GsExportTest::API_KEY\E|wrong-key-9d1e/, 'no anon key in any alert');
unlike(join("\n", grep { /alert/ } split /\n/, worker_log()),
	qr/\Q$GsExportTest::API_KEY\E|wrong-key-9d1e/, 'no anon key in the alerts\' log lines either');

###########################################################################
# 11. A shutdown cuts a pending alert short.
###########################################################################
hook_control(clear => JSON::PP::true, hang => JSON::PP::true);
configure($hook_url);
$job = new_job();
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed', 'shutdown: completed');
wait_alerts(1);
$t0 = time;
$node->stop('fast');
$took = time - $t0;
cmp_ok($took, '<', 4, sprintf('shutdown: a fast shutdown during the alert took %.2f s', $took));

$hook->signal('TERM');
eval { $hook->finish; };
$remote->stop;
done_testing();
