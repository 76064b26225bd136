# 032_hostile_input.pl: every function and every text the user controls
# (option keys and values, the pause reason, the config columns), fed with
# NULLs, reversed and absurd dates, huge and negative numbers, unknown
# keys, bad time zones, and strings built to inject SQL, JSON, format
# directives or HTTP headers.  Each answer must be a clean error with the
# SQLSTATE of doc/contract.md, or the text stored as text; never a crash, and
# nothing changed beyond what was asked (a fingerprint of the database is
# the same before and after every rejected call).  Then a few hostile
# inputs that are accepted are run for real by a worker.
use strict;
use warnings;

use lib '.';
use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('hostile');
GsExportTest::configure($node, $remote);
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-03-05 12:00:00-03' - g * interval '1 hour', 'lead ' || g
	  FROM generate_series(1, 30) g});
$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN; GRANT gs_export_user TO alice; GRANT SELECT ON leads TO alice;
	CREATE ROLE carol LOGIN; GRANT gs_export_admin TO carol; GRANT SELECT ON leads TO carol;
});
my $pid_file = $node->data_dir . '/postmaster.pid';
my ($postmaster) = split /\n/, slurp_file($pid_file);
my $launcher = $node->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'gs_export launcher'});

# A fingerprint of everything a call could change by mistake.
my $fingerprint_sql = q{
	SELECT md5(string_agg(x, E'\n' ORDER BY x)) FROM (
	  SELECT 'job ' || j::text FROM gestao_scouter_export_jobs j
	  UNION ALL SELECT 'cfg ' || c::text FROM gestao_scouter_config c
	  UNION ALL SELECT 'leads ' || md5(string_agg(l::text, ',' ORDER BY l.id)) FROM leads l
	  UNION ALL SELECT 'events ' || count(*) FROM sync_events
	  UNION ALL SELECT 'errors ' || count(*) FROM gestao_scouter_export_errors
	  UNION ALL SELECT 'rel ' || c.oid::regclass::text || ' ' || coalesce(c.relacl::text, '') || c.relrowsecurity
	    FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
	  UNION ALL SELECT 'proc ' || p.oid::regprocedure::text || coalesce(p.proacl::text, '') || md5(p.prosrc)
	    FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace
	  UNION ALL SELECT 'policy ' || polname || pg_get_expr(polqual, polrelid) FROM pg_policy
	  UNION ALL SELECT 'role ' || rolname || rolsuper || rolcanlogin FROM pg_roles
	  UNION ALL SELECT 'member ' || roleid::regrole || '>' || member::regrole FROM pg_auth_members
	  UNION ALL SELECT 'setting ' || r.setrole || ' ' || r.setconfig::text FROM pg_db_role_setting r
	) s(x)};
sub fingerprint { return $node->safe_psql('postgres', $fingerprint_sql); }

# A literal no hostile string can break out of.
sub lit
{
	my ($s) = @_;
	die "tag in string" if $s =~ /\$h0stile\$/;
	return "\$h0stile\$$s\$h0stile\$";
}

my $crashes = 0;
# Run $sql as $user; returns the SQLSTATE ('' if it succeeded) and output.
sub run
{
	my ($user, $sql) = @_;
	my ($state, $out, $err) = GsExportTest::psql_as($node, $user, $sql);
	$crashes++ if $state eq 'CRASH';
	return ($state, $out);
}

my $before = fingerprint();

# ---------------------------------------------------------------------
# Arguments of the three functions (as a user; every call in a
# transaction rolled back, so that an accepted one leaves nothing).
# ---------------------------------------------------------------------
my $ghost = '0f0f0f0f-0000-4000-8000-0000000b0b0b';
my $deep = '[' x 3000 . ']' x 3000;
my $many = '{' . join(',', map { qq("k$_": $_) } 1 .. 5000) . '}';
my @calls = (
	# NULLs
	[ 'gs_export_create(NULL)', '22004' ],
	[ 'gs_export_create(NULL, NULL, NULL)', '22004' ],
	[ q{gs_export_create(start_date => NULL, options => '{"unknown": 1}')}, '22004' ],
	[ q{gs_export_create('2026-01-31', NULL, 'null'::jsonb)}, '22023' ],
	[ 'gs_export_pause(NULL, NULL)', '22004' ],
	[ "gs_export_pause('$ghost', NULL)", '42704' ],
	[ 'gs_export_resume(NULL)', '22004' ],
	[ q{gs_export_resume('00000000-0000-0000-0000-000000000000')}, '42704' ],
	[ q{gs_export_resume('ffffffff-ffff-ffff-ffff-ffffffffffff')}, '42704' ],
	# reversed and absurd dates
	[ q{gs_export_create('0001-01-01', '9999-12-31')}, '22023' ],
	[ q{gs_export_create('4714-11-24 BC', '2026-01-01')}, '22023' ],
	[ q{gs_export_create('infinity', '-infinity')}, '22023' ],
	[ q{gs_export_create('-infinity')}, '22023' ],
	[ q{gs_export_create('2026-01-01', 'infinity')}, '22023' ],
	[ q{gs_export_create('294277-01-01', '294276-01-01')}, '22023', 'days past the end of timestamptz' ],
	[ q{gs_export_create('9999-12-31', '4714-11-24 BC', '{"time_zone": "UTC"}')}, '' ],
	# numbers
	[ q{gs_export_create(options => '{"batch_size": 1e400}')}, '22023' ],
	[ q{gs_export_create(options => '{"batch_size": -1e400}')}, '22023' ],
	[ q{gs_export_create(options => '{"batch_size": 1e-400}')}, '22023' ],
	[ q{gs_export_create(options => '{"batch_size": 123456789012345678901234567890}')}, '22023' ],
	[ q{gs_export_create(options => '{"batch_size": -0}')}, '22023' ],
	[ q{gs_export_create(options => '{"batch_size": 10000.000000000000000001}')}, '22023' ],
	[ q{gs_export_create(options => '{"batch_size": 2147483648}')}, '22023' ],
	[ q{gs_export_create(options => '{"batch_size": 1, "batch_size": 0}')}, '22023' ],
	[ q{gs_export_create(options => '{"batch_size": [1]}')}, '22023' ],
	[ q{gs_export_create(options => '{"batch_size": {"value": 1}}')}, '22023' ],
	[ q{gs_export_create(options => '{"batch_size": null}')}, '22023' ],
	[ q{gs_export_create(options => '{"delay_ms": 1e400}')}, '22023' ],
	[ q{gs_export_create(options => '{"delay_ms": -2147483649}')}, '22023' ],
	[ q{gs_export_create(options => '{"delay_ms": 60000.0000001}')}, '22023' ],
	[ q{gs_export_create(options => '{"batch_size": 10000, "delay_ms": 60000}')}, '' ],
	[ q{gs_export_create(options => '{"batch_size": 1.000, "delay_ms": 0e5}')}, '' ],
	# keys and shapes
	[ q{gs_export_create(options => '{"": 1}')}, '22023' ],
	[ q{gs_export_create(options => '{"batch_size ": 1}')}, '22023' ],
	[ q{gs_export_create(options => '{"BATCH_SIZE": 1}')}, '22023' ],
	[ qq{gs_export_create(options => '{"batch_size": 10, "x": $deep}')}, '22023', 'a key holding 3000 nested arrays' ],
	[ qq{gs_export_create(options => '$many')}, '22023', '5000 unknown keys' ],
	# time zones
	[ q{gs_export_create(options => '{"time_zone": "+03:00"}')}, '22023' ],
	[ q{gs_export_create(options => '{"time_zone": "UTC+3"}')}, '22023' ],
	[ q{gs_export_create(options => '{"time_zone": " UTC"}')}, '22023' ],
	[ q{gs_export_create(options => '{"time_zone": "America/Sao_Paulo\n"}')}, '22023' ],
	[ q{gs_export_create(options => '{"time_zone": null}')}, '22023' ],
	[ q{gs_export_create(options => '{"time_zone": ["UTC"]}')}, '22023' ],
	[ q{gs_export_create(options => '{"time_zone": "Etc/GMT+12"}')}, '' ],
	[ q{gs_export_create(options => '{"time_zone": "Pacific/Kiritimati"}')}, '' ],
	# not even of the right type: PostgreSQL's own clean errors
	[ q{gs_export_create(start_date => 'yesterday-ish')}, '22007' ],
	[ q{gs_export_create(options => '{"batch_size": }')}, '22P02' ],
	[ q{gs_export_pause('not-a-uuid')}, '22P02' ],
	[ q{gs_export_pause('''; DROP TABLE leads; --')}, '22P02' ],
);
for my $c (@calls)
{
	my ($call, $want, $why) = @$c;
	my ($state) = run('alice', "BEGIN;\nSELECT $call;\nROLLBACK;");
	my $name = length($call) > 120 ? substr($call, 0, 100) . '...' : $call;
	is($state, $want, "$name: " . ($want eq '' ? 'accepted' : $want) . ($why ? " ($why)" : ''));
}
is(fingerprint(), $before, 'nothing changed');

# GUC defaults out of range: PostgreSQL refuses them (22023).
for my $set ('SET gs_export.batch_size = 0', 'SET gs_export.batch_size = 10001',
	'SET gs_export.batch_delay_ms = -1', 'SET gs_export.batch_delay_ms = 2147483647')
{
	my ($state) = run('alice', "$set;\nSELECT gs_export_create();");
	is($state, '22023', "$set: 22023");
}
# A session time zone that is no IANA name becomes the job's time zone:
# it must be one the worker can use.
{
	my ($state, $out) = run('alice', q{BEGIN; SET LOCAL TimeZone = '<+0330>-03:30';
		SELECT gs_export_create('2026-03-06', '2026-03-01') AS id \gset
		SELECT time_zone FROM gestao_scouter_export_jobs WHERE id = :'id';
		ROLLBACK;});
	ok($state eq '22023' || ($state eq '' && $out eq '<+0330>-03:30'),
		"a POSIX session TimeZone: refused (22023) or kept as the job's time zone (got: $state $out)");
}

# ---------------------------------------------------------------------
# Hostile strings in every text: option keys and values, the pause reason,
# the config columns.
# ---------------------------------------------------------------------
my @hostile = (
	q{'; DROP TABLE leads; --},
	q{'); DELETE FROM gestao_scouter_config; --},
	q{$$; DROP TABLE leads; $$},
	q{" , "batch_size": 1, "x": "},
	q{"}, q{\\}, q{\"}, q{\u0000}, q{\x00},
	q{%s%s%s%s%n%x%p %1$s},
	"line\r\nX-Injected: yes\r\n\r\n{\"evil\": 1}",
	q{<script>alert(1)</script>},
	q{../../../../../etc/passwd},
	"\xc3\xa7\xc3\xa3o \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80 \xe2\x80\xae",
	"tab\tand\x0bform\ffeed",
	' ',
	'',
	'x' x 200_000,
);
my $i = 0;
for my $h (@hostile)
{
	$i++;
	my $l = lit($h);
	my $label = "hostile string #$i";
	my ($state, $out);

	($state) = run('alice', "BEGIN; SELECT gs_export_create(options => jsonb_build_object($l, 1)); ROLLBACK;");
	is($state, '22023', "$label as an option key: 22023");
	for my $key (qw(time_zone batch_size delay_ms))
	{
		($state) = run('alice', "BEGIN; SELECT gs_export_create(options => jsonb_build_object('$key', $l)); ROLLBACK;");
		is($state, '22023', "$label as $key: 22023");
	}

	# the reason of a pause: stored as given
	($state, $out) = run('alice', qq{BEGIN;
		SELECT gs_export_create('2026-03-06', '2026-03-01') AS id \\gset
		SELECT gs_export_pause(:'id', $l);
		SELECT pause_reason = $l FROM gestao_scouter_export_jobs WHERE id = :'id';
		ROLLBACK;});
	is($state . '/' . (split /\n/, $out)[-1], '/t', "$label as the reason of a pause: stored as it is");

	# the config, by an admin: a bad URL is refused; keys are kept as text,
	# unless they hold control characters (they would go into HTTP headers)
	($state) = run('carol', "BEGIN; UPDATE gestao_scouter_config SET project_url = $l; ROLLBACK;");
	is($state, '23514', "$label as project_url: 23514 (the URL check)");
	for my $col (qw(anon_key service_role_key_encrypted))
	{
		($state, $out) = run('carol', qq{BEGIN;
			UPDATE gestao_scouter_config SET $col = $l;
			SELECT bool_and($col = $l) FROM gestao_scouter_config;
			ROLLBACK;});
		if ($h =~ /[\x00-\x1f\x7f]/)
		{
			is($state, '23514', "$label as $col: refused, it holds control characters");
		}
		else
		{
			is("$state/$out", '/t', "$label as $col: stored as it is");
		}
	}
}
is(fingerprint(), $before, 'nothing changed after the hostile strings');
is($crashes, 0, 'no connection was lost');

# ---------------------------------------------------------------------
# Accepted hostile inputs, run for real.
# ---------------------------------------------------------------------
sub finish
{
	my ($job, $why) = @_;
	my $st = eval { GsExportTest::wait_status($node, $job, 'completed|failed|paused', 30) } // 'stuck';
	# never leave an active job behind for the next case
	$node->safe_psql('postgres', qq{UPDATE gestao_scouter_export_jobs SET status = 'failed',
		pause_reason = coalesce(pause_reason, 'ended by the test') WHERE id = '$job'
		AND status IN ('pending', 'running', 'paused')});
	return $st;
}
my $all = $node->safe_psql('postgres', 'SELECT count(*) FROM leads WHERE updated_at IS NOT NULL');

# The widest range there is.
my ($state, $job) = run('alice', q{SELECT gs_export_create('9999-12-31', '4714-11-24 BC',
	'{"batch_size": 7, "delay_ms": 0, "time_zone": "UTC"}')});
is($state, '', 'a job over all days from 9999 down to 4714 BC');
is(finish($job), 'completed', 'it completes');
is($remote->count, $all, 'every lead was exported');

# The last day a date can hold: refused, or at least a clean end.
$remote->truncate;
($state, $job) = run('alice', q{SELECT gs_export_create('5874897-12-31', '5874897-12-30', '{"delay_ms": 0}')});
is($state, '22023', 'start_date 5874897-12-31 is refused at once');
if ($state eq '')
{
	my $st = finish($job);
	diag("the job of 5874897-12-31 was accepted and ended $st: "
		  . $node->safe_psql('postgres', "SELECT pause_reason FROM gestao_scouter_export_jobs WHERE id = '$job'"));
	like($st, qr/^(completed|failed)$/, 'if accepted, its worker ends it cleanly');
}

# An end day whose midnight, in its time zone (Tokyo's local mean time,
# +09:18:59), is before the first timestamptz.
($state, $job) = run('alice', q{SELECT gs_export_create('2026-03-06', '4714-11-24 BC',
	'{"delay_ms": 0, "time_zone": "Asia/Tokyo"}')});
if ($state eq '')
{
	my $st = finish($job);
	my $reason = $node->safe_psql('postgres', "SELECT coalesce(pause_reason, '') FROM gestao_scouter_export_jobs WHERE id = '$job'");
	is($st, 'completed', "end_date 4714-11-24 BC in Asia/Tokyo: accepted, so it must complete (ended $st: $reason)");
}
else
{
	is($state, '22023', 'end_date 4714-11-24 BC in Asia/Tokyo: refused with 22023');
}

# A pause reason of 200 000 characters, committed, then resumed.
$remote->truncate;
($state, $job) = run('alice', q{SELECT gs_export_create('2026-03-06', '2026-03-01',
	'{"batch_size": 1, "delay_ms": 60000, "time_zone": "America/Sao_Paulo"}')});
is($state, '', 'a slow job');
GsExportTest::wait_true($node, "SELECT exported_leads >= 1 FROM gestao_scouter_export_jobs WHERE id = '$job'", 60);
my $long = "'; DROP TABLE leads; --" . ('%s%n' x 50_000);
($state) = run('alice', "SELECT gs_export_pause('$job', " . lit($long) . ')');
is($state, '', 'paused with a reason of 200 000 characters of injection and format directives');
is($node->safe_psql('postgres', "SELECT md5(pause_reason) = md5(" . lit($long) . ") FROM gestao_scouter_export_jobs WHERE id = '$job'"),
	't', 'the reason is stored as it is');
($state) = run('alice', "SELECT gs_export_resume('$job')");
is($state, '', 'resumed');
GsExportTest::wait_true($node, "SELECT exported_leads >= 2 FROM gestao_scouter_export_jobs WHERE id = '$job'", 60);
is($node->safe_psql('postgres', "SELECT status || '/' || (pause_reason IS NULL) FROM gestao_scouter_export_jobs WHERE id = '$job'"),
	'running/true', 'the job runs on and the reason is cleared');
run('alice', "SELECT gs_export_pause('$job')");
finish($job);

# A key that is an injection: sent as it is, refused by the remote (401).
$remote->reset;
my $evil = q<x'; DROP TABLE leads; --"}, {"apikey": ">;
$node->safe_psql('postgres', 'UPDATE gestao_scouter_config SET anon_key = ' . lit($evil));
($state, $job) = run('alice', q{SELECT gs_export_create('2026-03-06', '2026-03-01', '{"delay_ms": 0}')});
is($state, '', 'a job with an injection for a key');
is(finish($job), 'failed', 'it fails');
like($node->safe_psql('postgres', "SELECT pause_reason FROM gestao_scouter_export_jobs WHERE id = '$job'"),
	qr/401/, 'with the remote\'s 401');
my $reqs = $remote->requests;
is(scalar(@$reqs) > 0 ? $reqs->[0]{headers}{apikey} : undef, $evil, 'the key went out as it is');
is($node->safe_psql('postgres', q{SELECT to_regclass('public.leads') IS NOT NULL}), 't', 'leads is still there');
GsExportTest::configure($node, $remote);

# ---------------------------------------------------------------------
# Still standing.
# ---------------------------------------------------------------------
my ($postmaster_after) = split /\n/, slurp_file($pid_file);
is($postmaster_after, $postmaster, 'the postmaster is the same');
is($node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'gs_export launcher'}),
	$launcher, 'the launcher is the same process');
ok(!$node->log_contains(qr/terminated by signal|was terminated by exception|PANIC/), 'no process crashed');
is($crashes, 0, 'no connection was lost');

$remote->stop;
$node->stop;
done_testing();
