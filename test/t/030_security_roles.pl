# 030_security_roles.pl: who may see and steer a job, with real LOGIN roles
# on a real cluster and a job that really runs: its owner, another user, an
# admin, a superuser, a role outside gs_export, a role without SELECT on
# leads.  Jobs, errors and sync_events through row level security; pause
# and resume through the functions (42704 for a job one may not see, word
# for word as for one that does not exist); no direct writes; internal
# functions closed; search_path pinned and not hijackable; and a job reads
# leads with its owner's privileges: SELECT revoked before or while it runs,
# row level security on leads.
use strict;
use warnings;

use lib '.';
use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = GsExportTest::remote();
# A fresh install: sync_events is gs_export's own, with its row level
# security; leads as in TabuladorMax.
my $node = GsExportTest::local_node('sec', tabuladormax => 0);
my ($leads_ddl) = slurp_file("$GsExportTest::TESTDIR/sql/tabuladormax.sql")
  =~ /(CREATE TABLE public\.leads \(.*?\n\);)/s;
die 'no leads table in tabuladormax.sql' unless $leads_ddl;
$node->safe_psql('postgres', "$leads_ddl\nCREATE INDEX ON leads (updated_at, id);");
GsExportTest::configure($node, $remote);
# 60 leads between 2026-03-02 and 2026-03-05 (Sao Paulo); a third are
# erin's (scouter), the rest someone else's.
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-03-05 12:00:00-03' - g * interval '1 hour', 'lead ' || g
	  FROM generate_series(1, 60) g});
$node->safe_psql('postgres',
	q{UPDATE leads SET scouter = CASE WHEN id % 3 = 0 THEN 'erin' ELSE 'someone' END});

my $su = $node->safe_psql('postgres', 'SELECT current_user');
$node->safe_psql('postgres', q{
	CREATE ROLE alice LOGIN;      -- a user: owns the job
	CREATE ROLE bob LOGIN;        -- another user
	CREATE ROLE carol LOGIN;      -- an admin (gs_export_admin only)
	CREATE ROLE root2 LOGIN SUPERUSER;
	CREATE ROLE outsider LOGIN;   -- reads leads, no gs_export role
	CREATE ROLE nosel LOGIN;      -- a user who may not read leads
	CREATE ROLE dave LOGIN;       -- loses SELECT on leads
	CREATE ROLE erin LOGIN;       -- sees only her leads (row level security)
	GRANT gs_export_user TO alice, bob, nosel, dave, erin;
	GRANT gs_export_admin TO carol;
	GRANT SELECT ON leads TO alice, bob, carol, outsider, dave, erin;
});
is($node->safe_psql('postgres',
	q{SELECT relrowsecurity FROM pg_class WHERE oid = 'sync_events'::regclass}),
	't', 'setup: sync_events is gs_export\'s own, with row level security');

sub as
{
	my ($user, $sql) = @_;
	return GsExportTest::psql_as($node, $user, $sql);
}

# What $user gets from a query: its output, or "ERROR <sqlstate>".
sub seen
{
	my ($user, $sql) = @_;
	my ($state, $out) = as($user, $sql);
	return $state eq '' ? $out : "ERROR $state";
}

sub job_row
{
	my ($job, $cols) = @_;
	return $node->safe_psql('postgres',
		"SELECT $cols FROM gestao_scouter_export_jobs WHERE id = '$job'");
}

# ---------------------------------------------------------------------
# alice's job, kept running: one lead per batch, a minute apart.
# ---------------------------------------------------------------------
my ($state, $job) = as('alice', q{SELECT gs_export_create('2026-03-06', '2026-03-01',
	'{"batch_size": 1, "delay_ms": 60000, "time_zone": "America/Sao_Paulo"}')});
is($state, '', 'alice creates a job');
like($job, qr/^[0-9a-f-]{36}$/, 'and gets its id');
is(job_row($job, 'owner_role'), 'alice', 'the job belongs to alice');
GsExportTest::wait_true($node,
	"SELECT exported_leads >= 1 FROM gestao_scouter_export_jobs WHERE id = '$job'", 60);
$node->safe_psql('postgres', qq{
	INSERT INTO gestao_scouter_export_errors (job_id, lead_id, error_message)
	VALUES ('$job', 1, 'an error of alice''s job')});
my $ghost = '6d0f7c1e-0000-4000-8000-00000000dead';

# --- Reading: jobs, errors, sync_events ---
my %q = (
	jobs => "SELECT count(*) FROM gestao_scouter_export_jobs WHERE id = '$job'",
	errors => "SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = '$job'",
	events => "SELECT count(*) > 0 FROM sync_events WHERE job_id = '$job'",
);
my %expect = (
	alice => [ '1', '1', 't' ],
	carol => [ '1', '1', 't' ],
	root2 => [ '1', '1', 't' ],
	bob => [ '0', '0', 'f' ],
	nosel => [ '0', '0', 'f' ],
	outsider => [ 'ERROR 42501', 'ERROR 42501', 'ERROR 42501' ],
);
for my $user (qw(alice carol root2 bob nosel outsider))
{
	my $i = 0;
	for my $t (qw(jobs errors events))
	{
		is(seen($user, $q{$t}), $expect{$user}[ $i++ ], "$user reading the $t of alice's job");
	}
}
is(seen('bob', 'SELECT count(*) FROM gestao_scouter_export_jobs'), '0',
	'bob sees no job at all in the table');
is(seen('bob', 'SELECT count(*) FROM sync_events'), '0', 'bob sees no sync_events at all');
# A user's session settings do not open the policy (no Supabase here).
is(seen('bob', qq{SET request.jwt.claims = '{"sub": "00000000-0000-4000-8000-000000000001"}';
	SET request.jwt.claim.sub = 'x'; SELECT count(*) FROM gestao_scouter_export_jobs}), '0',
	'JWT settings in a plain session do not show bob alice\'s job');

# --- Steering: 42704 for a job one may not see, exactly as for none ---
sub normalized
{
	my ($err, @ids) = @_;
	$err =~ s/\Q$_\E/<id>/g for @ids;
	$err =~ s/^psql:<stdin>:\d+: //mg;
	return $err;
}
for my $user (qw(bob nosel))
{
	for my $call ("gs_export_pause('%s')", "gs_export_pause('%s', 'bob was here')",
		"gs_export_pause(job_id => '%s', reason => NULL)", "gs_export_resume('%s')")
	{
		my ($s1, undef, $e1) = as($user, 'SELECT ' . sprintf($call, $job));
		my ($s2, undef, $e2) = as($user, 'SELECT ' . sprintf($call, $ghost));
		my $what = sprintf($call, 'J');
		is($s1, '42704', "$user: $what on alice's job is 42704");
		is($s2, '42704', "$user: $what on a job that does not exist is 42704");
		is(normalized($e1, $job, $ghost), normalized($e2, $job, $ghost),
			"$user: $what: same message, detail and hint as for a job that does not exist");
	}
}
is(job_row($job, q{status || '/' || coalesce(pause_reason, '-')}), 'running/-',
	'the attempts left alice\'s job as it was');
is(seen('outsider', "SELECT gs_export_pause('$job')"), 'ERROR 42501', 'outsider cannot call pause');
is(seen('outsider', 'SELECT gs_export_create()'), 'ERROR 42501', 'outsider cannot call create');

# The admin pauses, the owner resumes, a superuser pauses, another user
# cannot resume, the owner resumes and pauses.
is(seen('carol', "SELECT gs_export_pause('$job', 'by the admin')"), '', 'the admin pauses alice\'s job');
is(job_row($job, q{status || '/' || pause_reason}), 'paused/by the admin', 'paused, with the admin\'s reason');
is(seen('bob', "SELECT gs_export_resume('$job')"), 'ERROR 42704', 'bob cannot resume it');
is(seen('nosel', "SELECT gs_export_resume('$job')"), 'ERROR 42704', 'nosel cannot resume it');
is(job_row($job, 'status'), 'paused', 'still paused');
is(seen('alice', "SELECT gs_export_resume('$job')"), '', 'alice resumes her job');
is(job_row($job, 'status'), 'running', 'running again');
is(seen('root2', "SELECT gs_export_pause('$job', 'by a superuser')"), '', 'a superuser pauses it');
is(seen('bob', "SELECT gs_export_pause('$job')"), 'ERROR 42704', 'bob cannot pause a paused job of alice either (42704, not 55000)');
is(seen('carol', "SELECT gs_export_resume('$job')"), '', 'the admin resumes it');
is(seen('alice', "SELECT gs_export_pause('$job', 'by alice')"), '', 'alice pauses it');
is(job_row($job, q{status || '/' || pause_reason || '/' || owner_role}), 'paused/by alice/alice',
	'paused by alice; still alice\'s job');

# --- No direct writes, not even by the owner ---
for my $stmt (
	"UPDATE gestao_scouter_export_jobs SET owner_role = '$su' WHERE id = '$job'",
	"UPDATE gestao_scouter_export_jobs SET status = 'running' WHERE id = '$job'",
	"INSERT INTO gestao_scouter_export_jobs (status, start_date, owner_role) VALUES ('pending', '2026-03-06', '$su')",
	"DELETE FROM gestao_scouter_export_jobs WHERE id = '$job'",
	'TRUNCATE gestao_scouter_export_jobs CASCADE',
	"INSERT INTO gestao_scouter_export_errors (job_id, lead_id) VALUES ('$job', 2)",
	"DELETE FROM gestao_scouter_export_errors WHERE job_id = '$job'",
	'TRUNCATE gestao_scouter_export_errors',
	"INSERT INTO sync_events (event_type, direction, lead_id, status, job_id) VALUES ('update', 'x', 1, 'success', '$job')",
	"UPDATE sync_events SET status = 'error' WHERE job_id = '$job'",
	"DELETE FROM sync_events WHERE job_id = '$job'",
	'TRUNCATE sync_events')
{
	for my $user (qw(alice bob))
	{
		(my $what = $stmt) =~ s/\Q$job\E/J/g;
		is(seen($user, $stmt), 'ERROR 42501', "$user may not: $what");
	}
}
is(job_row($job, q{owner_role || '/' || status}), 'alice/paused', 'the job row is unchanged');
is($node->safe_psql('postgres', "SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = '$job'"),
	'1', 'its error row is still there');

# --- The internal functions are closed; EXECUTE as documented ---
my $extfuncs = q{
	SELECT p.oid FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
	 WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
	   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'gs_export')};
my $internal = $node->safe_psql('postgres', qq{
	SELECT count(*) FROM ($extfuncs) f JOIN pg_proc p USING (oid)
	 WHERE p.proname LIKE '\\_gs\\_export\\_%' AND p.proname <> '_gs_export_whoami'});
cmp_ok($internal, '>=', 8, "the extension has $internal internal functions");
for my $user (qw(alice bob carol outsider))
{
	is($node->safe_psql('postgres', qq{
		SELECT coalesce(string_agg(p.oid::regprocedure::text, ', '), '')
		  FROM ($extfuncs) f JOIN pg_proc p USING (oid)
		 WHERE p.proname LIKE '\\_gs\\_export\\_%' AND p.proname <> '_gs_export_whoami'
		   AND has_function_privilege('$user', p.oid, 'EXECUTE')}),
		'', "$user may execute no internal function");
}
is(seen('alice', "SELECT _gs_export_resume(10, NULL, true, '$job')"), 'ERROR 42501',
	'alice cannot call _gs_export_resume claiming to be the bootstrap superuser');
is(seen('bob', "SELECT _gs_export_pause((SELECT oid FROM pg_roles WHERE rolname = 'alice'), NULL, false, '$job', 'x')"),
	'ERROR 42501', 'bob cannot call _gs_export_pause claiming to be alice');
for my $f ('gs_export_create(date,date,jsonb)', 'gs_export_pause(uuid,text)', 'gs_export_resume(uuid)')
{
	is($node->safe_psql('postgres', qq{
		SELECT string_agg(g, ',' ORDER BY g) FROM (
		  SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END AS g
		    FROM pg_proc p, aclexplode(p.proacl) a
		   WHERE p.oid = '$f'::regprocedure AND a.privilege_type = 'EXECUTE'
		     AND a.grantee <> p.proowner) s}),
		'gs_export_admin,gs_export_user', "EXECUTE on $f: only gs_export_user and gs_export_admin (not PUBLIC)");
}

# --- search_path: pinned on every function that runs with more rights ---
is($node->safe_psql('postgres', qq{
	SELECT coalesce(string_agg(p.oid::regprocedure::text, ', '), '')
	  FROM ($extfuncs) f JOIN pg_proc p USING (oid) JOIN pg_language l ON l.oid = p.prolang
	 WHERE (p.prosecdef OR l.lanname IN ('plpgsql', 'sql'))
	   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c
	                    WHERE c ~ '^search_path=pg_catalog(, *pg_temp)?\$')}),
	'', 'every SECURITY DEFINER and SQL-language function of the extension pins search_path to pg_catalog, pg_temp');
is(seen('alice', q{SELECT count(*) FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid
	WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'gs_export') AND p.prosecdef
	  AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')}),
	'0', 'no SECURITY DEFINER function without a pinned search_path');

# A hostile search_path: alice's own schema first, with look-alikes of
# pg_catalog functions and of the uuid "=" that always say yes and leave a
# trace.  gs_export must not call any of them, least of all as its owner.
$node->safe_psql('postgres', 'CREATE SCHEMA trap AUTHORIZATION alice');
($state) = as('alice', q{
	CREATE TABLE trap.calls (who name, what text);
	CREATE FUNCTION trap.trace(what text) RETURNS void LANGUAGE sql
	  AS $$ INSERT INTO trap.calls VALUES (current_user, what) $$;
	CREATE FUNCTION trap.now() RETURNS timestamptz LANGUAGE plpgsql
	  AS $$ BEGIN PERFORM trap.trace('now'); RETURN '2000-01-01'; END $$;
	CREATE FUNCTION trap.pg_has_role(oid, name, text) RETURNS boolean LANGUAGE plpgsql
	  AS $$ BEGIN PERFORM trap.trace('pg_has_role3'); RETURN true; END $$;
	CREATE FUNCTION trap.pg_has_role(name, text) RETURNS boolean LANGUAGE plpgsql
	  AS $$ BEGIN PERFORM trap.trace('pg_has_role2'); RETURN true; END $$;
	CREATE FUNCTION trap.current_setting(text, boolean) RETURNS text LANGUAGE plpgsql
	  AS $$ BEGIN PERFORM trap.trace('current_setting'); RETURN NULL; END $$;
	CREATE FUNCTION trap.to_regprocedure(text) RETURNS regprocedure LANGUAGE plpgsql
	  AS $$ BEGIN PERFORM trap.trace('to_regprocedure'); RETURN NULL; END $$;
	CREATE FUNCTION trap.uuid_yes(uuid, uuid) RETURNS boolean LANGUAGE plpgsql
	  AS $$ BEGIN PERFORM trap.trace('uuid ='); RETURN true; END $$;
	CREATE OPERATOR trap.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = trap.uuid_yes);
	CREATE FUNCTION trap.name_yes(name, name) RETURNS boolean LANGUAGE plpgsql
	  AS $$ BEGIN PERFORM trap.trace('name ='); RETURN true; END $$;
	CREATE OPERATOR trap.= (LEFTARG = name, RIGHTARG = name, FUNCTION = trap.name_yes);
	GRANT USAGE ON SCHEMA trap TO PUBLIC;
	GRANT INSERT ON trap.calls TO PUBLIC;
});
is($state, '', 'alice sets her traps');
is(seen('alice', q{SET search_path = trap, pg_catalog, public;
	SELECT now() = '2000-01-01'::timestamptz,
	       '00000000-0000-0000-0000-000000000001'::uuid = '00000000-0000-0000-0000-000000000002'::uuid}),
	't|t', 'control: with that search_path the traps do catch unqualified calls');
$node->safe_psql('postgres', 'TRUNCATE trap.calls');
my $bob_job;
{
	# bob gets a job of his own to aim at (alice's is ended first)
	$node->safe_psql('postgres', qq{UPDATE gestao_scouter_export_jobs SET status = 'failed',
		pause_reason = 'ended by the test' WHERE id = '$job'});
	my $s;
	($s, $bob_job) = as('bob', q{SELECT gs_export_create('2026-03-06', '2026-03-01',
		'{"batch_size": 1, "delay_ms": 60000, "time_zone": "America/Sao_Paulo"}')});
	is($s, '', 'bob creates a job');
	GsExportTest::wait_true($node,
		"SELECT exported_leads >= 1 FROM gestao_scouter_export_jobs WHERE id = '$bob_job'", 60);
}
for my $call ("gs_export_pause('$bob_job', 'trapped')", "gs_export_resume('$bob_job')",
	"gs_export_pause('$bob_job', NULL)")
{
	is(seen('alice', "SET search_path = trap, pg_catalog, public; SELECT $call"), 'ERROR 42704',
		"with her search_path alice still gets 42704 for " . ($call =~ s/\Q$bob_job\E/J/gr) . " on bob's job");
}
is(seen('alice', q{SET search_path = trap, pg_catalog, public;
	SELECT gs_export_create(options => '{"batch_size": 5}')}), 'ERROR 55000',
	'and a create with that search_path still sees the active job (55000)');
is(job_row($bob_job, 'status'), 'running', 'bob\'s job runs on');
is($node->safe_psql('postgres', q{SELECT coalesce(string_agg(who || ':' || what, ', '), '') FROM trap.calls}),
	'', 'none of alice\'s look-alikes was called by gs_export');
is(seen('bob', "SELECT gs_export_pause('$bob_job')"), '', 'bob pauses his job');
$node->safe_psql('postgres', qq{UPDATE gestao_scouter_export_jobs SET status = 'failed',
	pause_reason = 'ended by the test' WHERE id = '$bob_job'});

# ---------------------------------------------------------------------
# A job reads leads with its owner's privileges.
# ---------------------------------------------------------------------
my $fast = q{'2026-03-06', '2026-03-01', '{"batch_size": 5, "delay_ms": 0, "time_zone": "America/Sao_Paulo"}'};

# nosel: no SELECT on leads, no job.
is(seen('nosel', "SELECT gs_export_create($fast)"), 'ERROR 42501',
	'a user without SELECT on leads cannot create a job');

# (a) dave creates a job and loses SELECT before it starts (same transaction).
$remote->truncate;
$remote->reset;
my $dave_job = $node->safe_psql('postgres', qq{
	BEGIN;
	SET ROLE dave;
	SELECT gs_export_create($fast);
	RESET ROLE;
	REVOKE SELECT ON leads FROM dave;
	COMMIT;});
like($dave_job, qr/^[0-9a-f-]{36}$/, 'dave created a job, then lost SELECT on leads');
is(GsExportTest::wait_status($node, $dave_job, 'completed|failed|paused', 60), 'failed',
	'the job fails');
like(job_row($dave_job, 'pause_reason'), qr/permission denied/i,
	'pause_reason says permission denied');
is($remote->stats->{requests}, 0, 'no request reached the remote');
is($remote->count, 0, 'no lead reached the remote');
is($node->safe_psql('postgres', "SELECT count(*) FROM sync_events WHERE job_id = '$dave_job'"),
	'0', 'no sync_events');

# (a') dave loses SELECT while his job runs.
$node->safe_psql('postgres', 'GRANT SELECT ON leads TO dave');
$remote->reset;
my $s;
($s, $dave_job) = as('dave', q{SELECT gs_export_create('2026-03-06', '2026-03-01',
	'{"batch_size": 5, "delay_ms": 700, "time_zone": "America/Sao_Paulo"}')});
is($s, '', 'dave has SELECT again and creates a slow job');
GsExportTest::wait_true($node,
	"SELECT exported_leads >= 5 FROM gestao_scouter_export_jobs WHERE id = '$dave_job'", 60);
$node->safe_psql('postgres', 'REVOKE SELECT ON leads FROM dave');
is(GsExportTest::wait_status($node, $dave_job, 'completed|failed|paused', 60), 'failed',
	'SELECT revoked while it runs: the job fails');
like(job_row($dave_job, 'pause_reason'), qr/permission denied/i, 'with permission denied');
my $exported = job_row($dave_job, 'exported_leads');
cmp_ok($exported, '<', 60, "it stopped after $exported of 60 leads");
is($remote->count, $exported, 'the remote has only the leads exported before the revoke');

# (b) Row level security on leads: erin sees only her own.
$node->safe_psql('postgres', q{
	ALTER TABLE leads ENABLE ROW LEVEL SECURITY;
	CREATE POLICY leads_own ON leads FOR SELECT TO erin USING (scouter = current_user);
	CREATE POLICY leads_all ON leads FOR SELECT TO alice, bob, carol, outsider, dave USING (true);
});
my $erin_ids = $node->safe_psql('postgres',
	q{SELECT string_agg(id::text, ',' ORDER BY id) FROM leads WHERE scouter = 'erin'});
cmp_ok($node->safe_psql('postgres', q{SELECT count(*) FROM leads WHERE scouter <> 'erin'}), '>', 0,
	'there are leads erin may not read');
is(seen('erin', 'SELECT count(*) FROM leads'), '20', 'erin reads 20 leads herself');
$remote->truncate;
$remote->reset;
my $erin_job;
($s, $erin_job) = as('erin', "SELECT gs_export_create($fast)");
is($s, '', 'erin creates a job');
is(GsExportTest::wait_status($node, $erin_job, 'completed|failed|paused', 60), 'completed',
	'erin\'s job completes');
is($remote->ids, $erin_ids, 'only erin\'s leads reached the remote');
is(job_row($erin_job, q{total_leads || '/' || exported_leads}), '20/20', 'counters: 20 leads');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM sync_events e JOIN leads l ON l.id = e.lead_id
	 WHERE e.job_id = '$erin_job' AND l.scouter <> 'erin'}), '0',
	'no sync_events for leads erin may not read');

ok(!$node->log_contains(qr/terminated by signal|server process .* was terminated/),
	'no backend crashed');
$remote->stop;
$node->stop;
done_testing();
