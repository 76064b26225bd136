# 033_keys_and_transport.pl: the remote's key stays in gestao_scouter_config
# (readable and writable by admins only) and nowhere else -- not in the
# server log (at DEBUG1), not in the stand-in's log, not in any table or
# view a user, an admin or a superuser can read (jobs, errors, sync_events,
# pg_stat_activity...), not in error messages -- while a request is in
# flight and after a job that failed with a 401.  Transport: project_url
# must be http(s)://host[:port] when written (CHECK
# gestao_scouter_config_project_url_http) and is checked again before use
# (rows written before the constraint); redirects are not followed;
# certificates and host names are checked; the key cannot smuggle headers.
use strict;
use warnings;

use lib '.';
use GsExportTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $remote = GsExportTest::remote();
# log_statement = none: the test's own INSERT of the key must not be what
# puts it in the log (PostgreSQL::Test::Cluster logs every statement).
my $node = GsExportTest::local_node('keys', conf => qq{
log_statement = none
log_min_messages = debug1
});
GsExportTest::configure($node, $remote);
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-03-05 12:00:00-03' - g * interval '1 hour', 'lead ' || g
	  FROM generate_series(1, 30) g});
$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN; CREATE ROLE carol LOGIN; CREATE ROLE outsider LOGIN;
	GRANT gs_export_user TO alice, bob;
	GRANT gs_export_admin TO carol;
	GRANT SELECT ON leads TO alice, bob, carol, outsider;
});
my $port = $remote->{port};
my $key = $GsExportTest::API_KEY;
my $wrong = 'gs-wrong-key-' . join('', map { ('a' .. 'z')[ int rand 26 ] } 1 .. 16);
my $range = q{'2026-03-06', '2026-03-01', '{"batch_size": 10, "delay_ms": 0, "time_zone": "America/Sao_Paulo"}'};

sub as
{
	my ($user, $sql) = @_;
	my ($state, $out) = GsExportTest::psql_as($node, $user, $sql);
	return $state eq '' ? $out : "ERROR $state";
}

sub run_job
{
	my ($args, $user) = @_;
	my $job = defined $user
	  ? as($user, 'SELECT gs_export_create(' . ($args // $range) . ')')
	  : GsExportTest::create_job($node, $args // $range);
	my $st = GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60);
	$node->safe_psql('postgres', qq{UPDATE gestao_scouter_export_jobs SET status = 'failed'
		WHERE id = '$job' AND status = 'paused'});
	return ($job, $st, $node->safe_psql('postgres',
		"SELECT coalesce(pause_reason, '') FROM gestao_scouter_export_jobs WHERE id = '$job'"));
}

# ---------------------------------------------------------------------
# Who may read and write the config.
# ---------------------------------------------------------------------
for my $user (qw(alice bob outsider))
{
	for my $stmt ('SELECT count(*) FROM gestao_scouter_config',
		'SELECT anon_key FROM gestao_scouter_config',
		"INSERT INTO gestao_scouter_config (project_url, anon_key) VALUES ('http://127.0.0.1:9', 'k')",
		"UPDATE gestao_scouter_config SET project_url = 'http://127.0.0.1:9'",
		'DELETE FROM gestao_scouter_config',
		'TRUNCATE gestao_scouter_config')
	{
		is(as($user, "BEGIN; $stmt; ROLLBACK;"), 'ERROR 42501', "$user may not: $stmt");
	}
}
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_roles r
	WHERE r.rolname IN ('alice', 'bob', 'outsider', 'gs_export_user', 'public')
	  AND has_column_privilege(r.oid, 'gestao_scouter_config', 'anon_key', 'SELECT')}), '0',
	'no user holds SELECT on the anon_key column');
is(as('carol', 'SELECT count(*) FROM gestao_scouter_config'), '1', 'the admin reads the config');
is(as('carol', "BEGIN; UPDATE gestao_scouter_config SET sync_enabled = true; ROLLBACK;"), '',
	'the admin writes the config');

# ---------------------------------------------------------------------
# While a request is in flight: pg_stat_activity, as a user and as a
# superuser.
# ---------------------------------------------------------------------
$remote->faults(delay_next => 1, delay_ms => 3000);
my $job = GsExportTest::create_job($node, $range);
GsExportTest::wait_true($node, q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'gs_export job worker'}, 30);
my $t0 = time;
usleep(100_000) while time - $t0 < 10 && !@{ $remote->requests };
ok(scalar @{ $remote->requests }, 'a request is in flight');
for my $user ('alice', undef)
{
	my ($found, $n) = GsExportTest::readable_relations_containing($node, $user, $key,
		skip => [ 'gestao_scouter_config', 'pg_statistic', 'pg_stats' ]);
	cmp_ok($n, '>', 50, 'scanned ' . $n . ' relations as ' . ($user // 'superuser'));
	is("@$found", '', 'in flight: the key is in no relation ' . ($user // 'a superuser') . ' may read but the config');
}
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed', 'the job completes');
is($remote->requests->[0]{headers}{apikey}, $key, 'the key went out in the apikey header');

# ---------------------------------------------------------------------
# A job that fails with a 401.
# ---------------------------------------------------------------------
$node->safe_psql('postgres', "UPDATE gestao_scouter_config SET anon_key = '$wrong'");
$remote->reset;
my ($job401, $st, $reason) = run_job(undef, 'alice');    # alice's job: she sees its row
is($st, 'failed', 'with a wrong key the job fails');
like($reason, qr/401/, "pause_reason says 401 ($reason)");
my $reqs = $remote->requests;
is($reqs->[0]{headers}{apikey}, $wrong, 'the wrong key did go out (so the worker held it)');
is(scalar(grep { grep { /apikey|\Q$wrong\E|\Q$key\E/ } ($_->{path}, keys %{ $_->{query} }, values %{ $_->{query} }) } @$reqs),
	0, 'no key in any request\'s URL');
my $log = slurp_file($node->logfile);
like($log, qr/gs_export: job \Q$job401\E failed/, 'the log has the failure');
like($log, qr/DEBUG/, 'the log is at DEBUG1');
for my $k ([ 'the wrong key', $wrong ], [ 'the right key', $key ])
{
	my @lines = grep { /\Q$k->[1]\E/ } split /\n/, $log;
	is(scalar(@lines), 0, "$k->[0] is in no line of the server log") or diag(join("\n", @lines[0 .. ($#lines < 4 ? $#lines : 4)]));
	is(scalar(grep { /\Q$k->[1]\E/ } split /\n/, slurp_file($remote->{log})), 0,
		"$k->[0] is in no line of the stand-in's log");
}
for my $user ('alice', 'bob', 'outsider', 'carol', undef)
{
	my $skip = [ 'gestao_scouter_config', 'pg_statistic', 'pg_stats' ];
	for my $k ([ 'wrong key', $wrong ], [ 'right key', $key ])
	{
		my ($found) = GsExportTest::readable_relations_containing($node, $user, $k->[1], skip => $skip);
		is("@$found", '', "after the 401: the $k->[0] is in no relation " . ($user // 'a superuser')
			  . ' may read but the config');
	}
}
# controls: the scan does find what is there
is(join(',', @{ (GsExportTest::readable_relations_containing($node, 'alice', 'Invalid API key'))[0] }),
	'gestao_scouter_export_jobs', 'control: the scan finds the 401 message in the jobs alice sees');
is(join(',', @{ (GsExportTest::readable_relations_containing($node, undef, $wrong))[0] }),
	'gestao_scouter_config', 'control: the scan finds the key in the config, for a superuser');
for my $user (qw(alice bob carol))
{
	is(as($user, qq{SELECT count(*) FROM gestao_scouter_export_jobs j
		WHERE strpos(j::text, convert_from(decode('@{[ unpack('H*', $wrong) ]}', 'hex'), 'UTF8')) > 0}), '0',
		"$user: the key is in none of the jobs he sees");
}

# Errors about the config must not show the key either: a bad URL or a
# missing one, written by an admin (the statement itself holds no key).
for my $stmt (q{UPDATE gestao_scouter_config SET project_url = 'ftp://files.example'},
	q{UPDATE gestao_scouter_config SET project_url = NULL})
{
	my ($state, undef, $err) = GsExportTest::psql_as($node, 'carol', "$stmt;");
	like($state, qr/^23/, "$stmt: refused ($state)");
	unlike($err, qr/\Q$wrong\E/, "$stmt: the error message does not show the key");
}
is(scalar(grep { /\Q$wrong\E/ } split /\n/, slurp_file($node->logfile)), 0,
	'nor does the server log after those errors');

# ---------------------------------------------------------------------
# project_url when written: http(s)://host[:port], nothing else.
# ---------------------------------------------------------------------
GsExportTest::configure($node, $remote);
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_constraint
	WHERE conrelid = 'gestao_scouter_config'::regclass AND contype = 'c'
	  AND conname = 'gestao_scouter_config_project_url_http'}), '1',
	'the CHECK constraint gestao_scouter_config_project_url_http is there');
my @bad = ('ftp://127.0.0.1/', 'file:///etc/passwd', 'gopher://h.example/', 'dict://127.0.0.1:11211/',
	'ldap://h.example/', 'javascript:alert(1)', 'data:text/plain,x', 'http://', 'http:///x', 'http:/h.example',
	'//h.example', 'h.example', 'http://user:pw@h.example', 'http://h.example/path', 'http://h.example/?q=1',
	'http://h.example#frag', 'https://h.example/rest/v1/fichas?x=', 'http://h.example:123456',
	"http://h.example\r\nX-Injected: yes", ' http://h.example', 'http://h.example ', 'http://h.example%2F@evil.example',
	'http://[::1', 'http://-h.example', 'http://h.example:');
for my $url (@bad)
{
	(my $show = $url) =~ s/\r\n/\\r\\n/g;
	my ($state) = GsExportTest::psql_as($node, 'carol',
		"BEGIN; INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled) VALUES (\$u\$$url\$u\$, 'k', true, false); ROLLBACK;");
	is($state, '23514', "project_url '$show' is refused when written (23514)");
}
for my $url ('https://xxxx.supabase.co', 'https://xxxx.supabase.co/', 'http://127.0.0.1:54321',
	'http://[::1]:8080', 'http://localhost')
{
	my ($state) = GsExportTest::psql_as($node, 'carol',
		"BEGIN; UPDATE gestao_scouter_config SET project_url = '$url'; ROLLBACK;");
	is($state, '', "project_url '$url' is accepted");
}

# ---------------------------------------------------------------------
# Servers of our own that count every connection: a plain HTTP one, and two
# HTTPS ones with self-signed certificates, one for another host name, one
# for 127.0.0.1.  All answer 401 to whatever reaches them.
# ---------------------------------------------------------------------
my $dir = PostgreSQL::Test::Utils::tempdir;
my @servers;
for my $s ([ 'wrong', 'DNS:wrong.example', '/CN=wrong.example' ], [ 'right', 'IP:127.0.0.1', '/CN=127.0.0.1' ])
{
	my ($name, $san, $subj) = @$s;
	system("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
		  . " -keyout '$dir/$name.key' -out '$dir/$name.crt' -days 2 -subj '$subj'"
		  . " -addext 'subjectAltName=$san' >'$dir/openssl.log' 2>&1") == 0
	  or die 'openssl failed: ' . slurp_file("$dir/openssl.log");
}
open(my $fh, '>', "$dir/counting_server.py") or die;
print $fh <<'PY';
import http.server, os, ssl, sys
mode, cert, key, portfile, countfile = sys.argv[1:6]
class H(http.server.BaseHTTPRequestHandler):
    def setup(self):
        # every connection that gets this far (after the TLS handshake)
        with open(countfile, 'a') as f:
            f.write('connection\n')
        super().setup()
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        with open(countfile, 'a') as f:
            f.write('request\n')
        body = b'{"message":"Invalid API key"}'
        self.send_response(401)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
if mode == 'https':
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(portfile + '.tmp', 'w') as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + '.tmp', portfile)
srv.serve_forever()
PY
close $fh;
my %srv;
for my $s ([ 'plain', 'http' ], [ 'wrong', 'https' ], [ 'right', 'https' ])
{
	my ($name, $mode) = @$s;
	open(my $c, '>', "$dir/$name.count") or die;
	close $c;
	my $h = IPC::Run::start([ '/usr/bin/python3', "$dir/counting_server.py", $mode, "$dir/$name.crt",
			"$dir/$name.key", "$dir/$name.port", "$dir/$name.count" ], '>', "$dir/$name.out", '2>', "$dir/$name.err");
	my $deadline = time + 20;
	usleep(50_000) while !-s "$dir/$name.port" && time < $deadline;
	die "server $name did not start: " . slurp_file("$dir/$name.err") unless -s "$dir/$name.port";
	$srv{$name} = { port => slurp_file("$dir/$name.port") + 0, count => "$dir/$name.count" };
	push @servers, $h;
}
# Connections (after the TLS handshake), or HTTP requests, a server got.
sub hits
{
	my ($name, $what) = @_;
	$what //= 'connection';
	return scalar(() = slurp_file($srv{$name}{count}) =~ /^$what$/mg);
}
my $cport = $srv{plain}{port};

# ---------------------------------------------------------------------
# ... and before use: rows written before the constraint and the trigger
# existed (the constraint is NOT VALID for them) are checked again by the
# worker, which sends nothing.
# ---------------------------------------------------------------------
my $condef = $node->safe_psql('postgres', q{SELECT pg_get_constraintdef(oid) FROM pg_constraint
	WHERE conname = 'gestao_scouter_config_project_url_http'});
like($condef, qr/NOT VALID/, 'the constraint is NOT VALID (old rows are kept)');
sub old_row
{
	my ($url) = @_;
	$node->safe_psql('postgres', qq{
		BEGIN;
		ALTER TABLE gestao_scouter_config DROP CONSTRAINT gestao_scouter_config_project_url_http;
		ALTER TABLE gestao_scouter_config DISABLE TRIGGER gs_export_config_guard;
		DELETE FROM gestao_scouter_config;
		INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
		VALUES (\$u\$$url\$u\$, '$key', true, true);
		ALTER TABLE gestao_scouter_config ENABLE TRIGGER gs_export_config_guard;
		ALTER TABLE gestao_scouter_config ADD CONSTRAINT gestao_scouter_config_project_url_http $condef;
		COMMIT;});
}
# control: a good old row pointing at the counting server is used
old_row("http://127.0.0.1:$cport");
my ($j0, $s0, $r0) = run_job();
is("$s0/" . hits('plain'), 'failed/1', "control: a good old row is used; the counting server counts ($r0)");
for my $url ("ftp://127.0.0.1:$cport/", 'file:///etc/passwd', "dict://127.0.0.1:$cport/",
	"gopher://127.0.0.1:$cport/", "http://user:secret\@127.0.0.1:$cport", "http://127.0.0.1:$cport/rest/v1/fichas?x=",
	"http://127.0.0.1:$cport/elsewhere", "http://127.0.0.1:$cport/?", "http://127.0.0.1:$cport#")
{
	old_row($url);
	my $before = hits('plain');
	my ($j, $s, $r) = run_job();
	is($s, 'failed', "an old row with project_url '$url': the job fails");
	like($r, qr/project_url/, "... saying why ($r)");
	is(hits('plain') - $before, 0, '... and nothing was sent');
}
GsExportTest::configure($node, $remote);
$remote->truncate;

# ---------------------------------------------------------------------
# Redirects are not followed.
# ---------------------------------------------------------------------
for my $status (301, 302, 303, 307, 308)
{
	$remote->reset;
	$remote->faults(fail_next => 1, status => $status, body => { message => 'moved' },
		headers => { Location => "http://127.0.0.1:$port/rest/v1/fichas?redirected=1&on_conflict=id&columns=id" });
	my ($j, $s, $r) = run_job();
	my @r = @{ $remote->requests };
	is(scalar(@r), 1, "$status: one request, not followed");
	is(scalar(grep { exists $_->{query}{redirected} } @r), 0, "$status: the Location was never asked for");
	is($s, 'failed', "$status: the job fails ($r)");
	is($remote->count, 0, "$status: nothing exported");
}

# ---------------------------------------------------------------------
# TLS: certificates and host names are checked.
# ---------------------------------------------------------------------
sub use_url
{
	my ($url) = @_;
	$node->safe_psql('postgres', qq{UPDATE gestao_scouter_config SET project_url = '$url', anon_key = '$key'});
}
open(my $bundle, '>', "$dir/ca.pem") or die;
print $bundle slurp_file("$dir/wrong.crt"), slurp_file("$dir/right.crt");
close $bundle;

# (a) a certificate nobody vouches for
use_url("https://127.0.0.1:$srv{right}{port}");
my ($ja, $sa, $ra) = run_job();
is($sa, 'failed', 'an untrusted certificate: the job fails');
like($ra, qr/certificate|SSL/i, "... for the certificate ($ra)");
is(hits('right', 'request'), 0, '... and no HTTP request was made');

# (b) trusted, but for another host name
GsExportTest::set_gucs($node, 'gs_export.ca_file' => "$dir/ca.pem");
use_url("https://127.0.0.1:$srv{wrong}{port}");
my ($jb, $sb, $rb) = run_job();
is($sb, 'failed', 'a trusted certificate for another host name: the job fails');
like($rb, qr/certificate|SSL|host/i, "... for the host name ($rb)");
is(hits('wrong', 'request'), 0, '... and no HTTP request was made');

# (c) control: trusted and for this host, the request goes through
use_url("https://127.0.0.1:$srv{right}{port}");
my ($jc, $sc, $rc) = run_job();
is($sc, 'failed', 'a good certificate: the request goes through (and the server says 401)');
like($rc, qr/401/, "... 401 ($rc)");
cmp_ok(hits('right', 'request'), '>=', 1, '... the server got the request');
GsExportTest::set_gucs($node, 'gs_export.ca_file' => undef);
$_->kill_kill for @servers;

# ---------------------------------------------------------------------
# The key cannot smuggle headers (CR LF in anon_key).
# ---------------------------------------------------------------------
GsExportTest::configure($node, $remote);
$remote->truncate;
$remote->reset;
my ($st_cr) = GsExportTest::psql_as($node, 'postgres',
	qq{UPDATE gestao_scouter_config SET anon_key = '$key' || E'\\r\\nX-Injected: yes'});
is($st_cr, '23514', 'a key with CR LF is refused when written');
# an old row from before the check: the worker refuses it too
$node->safe_psql('postgres', qq{
	ALTER TABLE gestao_scouter_config DISABLE TRIGGER gs_export_config_guard;
	UPDATE gestao_scouter_config SET anon_key = '$key' || E'\\r\\nX-Injected: yes';
	ALTER TABLE gestao_scouter_config ENABLE TRIGGER gs_export_config_guard;});
my ($jh, $sh, $rh) = run_job();
my @smuggled = grep { exists $_->{headers}{'x-injected'} } @{ $remote->requests };
is(scalar(@smuggled), 0, 'no request carried a header smuggled in the key');
is($sh, 'failed', "a key with CR LF: the job fails ($rh)");
is($remote->count, 0, 'nothing was exported with it');
GsExportTest::configure($node, $remote);

ok(!$node->log_contains(qr/terminated by signal|PANIC/), 'no process crashed');
$remote->stop;
$node->stop;
done_testing();
