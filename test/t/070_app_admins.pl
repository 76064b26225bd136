# 070_app_admins.pl: the app's admins and managers (doc/contract.md,
# "Security"; doc/security.md).  A Supabase-like cluster as in
# 031_supabase.pl: roles anon, authenticated, service_role (NOINHERIT) and
# authenticator, which switches to a request's role and sets
# request.jwt.claims; a schema auth with uid() reading the claims; the
# default privileges of a Supabase project.  Every request below is one
# transaction of authenticator as PostgREST makes it: SET LOCAL ROLE,
# SET LOCAL request.jwt.claims (what set_config(..., true) does).
#
# Databases (the launcher runs in "postgres", where gs_export is not
# installed: jobs stay as the tests put them):
#   app      TabuladorMax's has_role(_user_id uuid, _role public.app_role),
#            an enum, backed by user_roles; gs_export's own tables;
#            gs_export_grant_access('authenticated', config => true).
#   textsig  has_role(uuid, text), as 1.0 knew it, with a manager.
#   tmax     TabuladorMax's own tables from before gs_export, its config
#            with the app's own "public CRUD" policy; DROP EXTENSION and
#            CREATE EXTENSION again.
#   upgraded 1.0 installed and granted with the 2-argument grant_access,
#            then ALTER EXTENSION UPDATE.
#
# Users: A and B (agents), ADM (admin), MGR (manager), SUP (supervisor).
use strict;
use warnings;

use lib '.';
use GsExportTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my %uid = (
	A => '00000000-0000-4000-8000-00000000000a',
	B => '00000000-0000-4000-8000-00000000000b',
	ADM => '00000000-0000-4000-8000-0000000000ad',
	MGR => '00000000-0000-4000-8000-0000000000ee',
	SUP => '00000000-0000-4000-8000-00000000005e',
);

my $node = PostgreSQL::Test::Cluster->new('app_admins');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'gs_export'
gs_export.database = 'postgres'
log_min_messages = info
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE ROLE anon NOLOGIN NOINHERIT;
	CREATE ROLE authenticated NOLOGIN NOINHERIT;
	CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
	CREATE ROLE authenticator LOGIN NOINHERIT;
	GRANT anon, authenticated, service_role TO authenticator;
	CREATE ROLE ops LOGIN NOINHERIT;
});

# A Supabase project before the app's tables, and the app's roles: has_role
# with the role's type $type ('public.app_role', an enum, or 'text').
sub supabase
{
	my ($type) = @_;
	my $enum = $type eq 'text' ? ''
	  : "CREATE TYPE public.app_role AS ENUM ('admin', 'manager', 'supervisor', 'agent');";
	return qq{
	GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
	ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
	ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
	ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
	CREATE SCHEMA auth;
	GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
	CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS \$\$
	  SELECT nullif(coalesce(current_setting('request.jwt.claim.sub', true),
	                         (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')), '')::uuid \$\$;
	$enum
	CREATE TABLE public.user_roles (user_id uuid NOT NULL, role $type NOT NULL, PRIMARY KEY (user_id, role));
	ALTER TABLE public.user_roles ENABLE ROW LEVEL SECURITY;
	CREATE FUNCTION public.has_role(_user_id uuid, _role $type) RETURNS boolean
	  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
	  AS \$\$ SELECT EXISTS (SELECT 1 FROM public.user_roles WHERE user_id = _user_id AND role = _role) \$\$;
	INSERT INTO public.user_roles VALUES
	  ('$uid{A}', 'agent'), ('$uid{B}', 'agent'), ('$uid{ADM}', 'admin'),
	  ('$uid{MGR}', 'manager'), ('$uid{SUP}', 'supervisor');
	};
}

my $tabuladormax = slurp_file("$GsExportTest::TESTDIR/sql/tabuladormax.sql");
my ($leads_ddl) = $tabuladormax =~ /(CREATE TABLE public\.leads \(.*?\n\);)/s;
die 'no leads table in tabuladormax.sql' unless $leads_ddl;
$leads_ddl .= "\nCREATE INDEX ON leads (updated_at, id);";

sub su_sql
{
	my ($db, $sql) = @_;
	return $node->safe_psql($db, $sql);
}

# A request as $role with the JWT of user $who (undef: no "sub"); its
# output, or "ERROR <sqlstate>".
sub req
{
	my ($db, $role, $who, $sql) = @_;
	my ($state, $out) = GsExportTest::psql_as($node, 'authenticator',
		GsExportTest::jwt_sql($role, defined $who ? $uid{$who} : undef, $sql), dbname => $db);
	return $state eq '' ? $out : "ERROR $state";
}
sub as_user { my ($db, $who, $sql) = @_; return req($db, 'authenticated', $who, $sql); }

# As a plain login role (no JWT).
sub as_role
{
	my ($db, $role, $sql) = @_;
	my ($state, $out) = GsExportTest::psql_as($node, $role, $sql, dbname => $db);
	return $state eq '' ? $out : "ERROR $state";
}

# As the superuser, errors as "ERROR <sqlstate>" (for what the old code
# may refuse, so that the test goes on).
sub su_try
{
	my ($db, $sql) = @_;
	my ($state, $out) = GsExportTest::psql_as($node, undef, $sql, dbname => $db);
	return $state eq '' ? $out : "ERROR $state";
}

my $range = q{'2026-01-31', '2026-01-01'};
my $config_row = q{INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
	VALUES ('http://127.0.0.1:9', 'app-key-0001', true, true);};

# =====================================================================
# app: has_role(uuid, public.app_role)
# =====================================================================
su_sql('postgres', 'CREATE DATABASE app');
su_sql('app', supabase('public.app_role') . "\n$leads_ddl\nCREATE EXTENSION gs_export;\n$config_row");
is(su_try('app', q{SELECT gs_export_grant_access('authenticated', config => true)}), '',
	'app: gs_export_grant_access(\'authenticated\', config => true)');
is(su_try('app', q{SELECT gs_export_grant_access('ops', admin => true)}), '',
	'app: the 1.0 call gs_export_grant_access(\'ops\', admin => true) still works');
is(su_try('app', q{SELECT gs_export_grant_access('authenticated')}), '',
	'app: the 1.0 call gs_export_grant_access(\'authenticated\') still works');

is(as_user('app', 'A', 'SELECT auth.uid()'), $uid{A}, 'app: setup: a request as A has auth.uid() = A');
is(as_user('app', 'ADM', q{SELECT has_role(auth.uid(), 'admin')}), 't', 'app: setup: ADM is an admin (enum has_role)');

# Three jobs, one at a time (one may be active): A's, B's, SUP's.
my %job;
for my $who (qw(A B SUP))
{
	my $got = as_user('app', $who, "SELECT gs_export_create($range);");
	like($got, qr/^[0-9a-f-]{36}$/, "app: $who creates a job");
	$job{$who} = $got;
	su_sql('app', "UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = '$got'");
}
my %name = reverse %job;
for my $who (qw(A B SUP))
{
	su_sql('app', qq{
		INSERT INTO gestao_scouter_export_errors (job_id, lead_id, error_message) VALUES ('$job{$who}', 1, 'e');
		INSERT INTO sync_events (event_type, direction, lead_id, status, job_id)
		VALUES ('update', 'supabase_to_gestao_scouter', 1, 'success', '$job{$who}');});
}
is(su_try('app', "SELECT string_agg(created_by::text, ',' ORDER BY created_by) FROM gestao_scouter_export_jobs"),
	join(',', sort map { $uid{$_} } qw(A B SUP)), 'app: each job belongs to its user (created_by)');

# What a request sees: the jobs (by their users' names), and the errors
# and sync_events rows.
my $seen_sql = q{SELECT coalesce((SELECT string_agg(id::text, ',') FROM gestao_scouter_export_jobs), '')
	|| '|' || (SELECT count(*) FROM gestao_scouter_export_errors)
	|| '|' || (SELECT count(*) FROM sync_events);};
sub seen
{
	my ($db, $role, $who) = @_;
	my $got = req($db, $role, $who, $seen_sql);
	return $got if $got =~ /^ERROR/;
	my ($ids, $errors, $events) = split /\|/, $got, -1;
	my $jobs = join(',', sort map { $name{$_} // $_ } grep { length } split /,/, $ids);
	return "$jobs|$errors|$events";
}
is(seen('app', 'authenticated', 'A'), 'A|1|1', 'app: A sees her job, its error and its event');
is(seen('app', 'authenticated', 'B'), 'B|1|1', 'app: B sees his job only');
is(seen('app', 'authenticated', 'SUP'), 'SUP|1|1', 'app: SUP (supervisor) sees his job only, like a plain user');
is(seen('app', 'authenticated', 'ADM'), 'A,B,SUP|3|3', 'app: ADM (admin) sees every job, error and event');
is(seen('app', 'authenticated', 'MGR'), 'A,B,SUP|3|3', 'app: MGR (manager) sees every job, error and event');
is(seen('app', 'authenticated', undef), '|0|0', 'app: authenticated without a sub sees nothing');
like(seen('app', 'anon', 'ADM'), qr/^(\|0\|0|ERROR 42501)$/, 'app: anon, even with ADM\'s sub, sees nothing');

# Pause and resume every job as every user, each from a known state.
sub set_status
{
	my ($db, $id, $status) = @_;
	su_try($db, "UPDATE gestao_scouter_export_jobs SET status = '$status', pause_reason = NULL WHERE id = '$id'");
}
sub status_of
{
	my ($db, $id) = @_;
	return su_try($db, "SELECT status FROM gestao_scouter_export_jobs WHERE id = '$id'");
}
for my $who (qw(A B SUP ADM MGR))
{
	for my $owner (qw(A B SUP))
	{
		my $may = ($who eq $owner || $who eq 'ADM' || $who eq 'MGR');
		my $id = $job{$owner};
		set_status('app', $id, 'pending');
		is(as_user('app', $who, "SELECT gs_export_pause('$id', 'by $who');"), $may ? '' : 'ERROR 42704',
			"app: $who pauses $owner\'s job: " . ($may ? 'done' : '42704'));
		is(status_of('app', $id), $may ? 'paused' : 'pending', '... and the job is ' . ($may ? 'paused' : 'still pending'));
		set_status('app', $id, 'paused');
		is(as_user('app', $who, "SELECT gs_export_resume('$id');"), $may ? '' : 'ERROR 42704',
			"app: $who resumes $owner\'s job: " . ($may ? 'done' : '42704'));
		is(status_of('app', $id), $may ? 'running' : 'paused', '... and the job is ' . ($may ? 'running' : 'still paused'));
		set_status('app', $id, 'completed');
	}
}
set_status('app', $job{A}, 'pending');
is(req('app', 'anon', 'ADM', "SELECT gs_export_pause('$job{A}');"), 'ERROR 42501',
	'app: anon with ADM\'s sub cannot pause a job');
is(status_of('app', $job{A}), 'pending', '... and the job is still pending');
set_status('app', $job{A}, 'completed');

# ---------------------------------------------------------------------
# app: the config.  Admins through authenticated (config => true);
# managers and other users see no row, insert none (42501: the row
# violates row level security), update and delete none.
# ---------------------------------------------------------------------
my @tprivs = qw(SELECT INSERT UPDATE DELETE TRUNCATE REFERENCES TRIGGER);
sub tprivs
{
	my ($db, $role, $table) = @_;
	$table //= 'gestao_scouter_config';
	return su_sql($db, qq{SELECT coalesce(string_agg(p, ','), '') FROM unnest(array['@{[ join "','", @tprivs ]}']) p
		WHERE has_table_privilege('$role', '$table', p)});
}
is(tprivs('app', 'authenticated'), 'SELECT,INSERT,UPDATE,DELETE',
	'app: authenticated may SELECT, INSERT, UPDATE, DELETE the config (not TRUNCATE)');
is(tprivs('app', 'anon'), '', 'app: anon has no privilege on the config');
is(su_try('app', q{SELECT relrowsecurity FROM pg_class WHERE oid = 'gestao_scouter_config'::regclass}), 't',
	'app: the config has row level security');

is(as_user('app', 'ADM', 'SELECT count(*) FROM gestao_scouter_config;'), '1', 'app: ADM reads the config row');
is(as_user('app', 'ADM', 'SELECT anon_key FROM gestao_scouter_config;'), 'app-key-0001', '... and its key');
is(as_user('app', 'ADM', q{INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
	VALUES ('https://adm.example', 'adm-key', false, false);}), '', 'app: ADM inserts a config row');
is(as_user('app', 'ADM', q{UPDATE gestao_scouter_config SET anon_key = 'adm-key-2' WHERE project_url = 'https://adm.example';}),
	'', 'app: ADM updates it');
is(su_try('app', q{SELECT anon_key FROM gestao_scouter_config WHERE project_url = 'https://adm.example'}), 'adm-key-2',
	'... and the update is there');
is(as_user('app', 'ADM', q{DELETE FROM gestao_scouter_config WHERE project_url = 'https://adm.example';}), '',
	'app: ADM deletes it');
is(su_try('app', 'SELECT count(*) FROM gestao_scouter_config'), '1', '... and it is gone');
is(as_user('app', 'ADM', q{UPDATE gestao_scouter_config SET default_options = '{"batch_size": 0}';}), 'ERROR 22023',
	'app: ADM\'s bad default_options: 22023 (the config guard checks what an app admin writes)');

for my $who (qw(MGR A SUP), undef)
{
	my $name = $who // 'authenticated without a sub';
	is(as_user('app', $who, 'SELECT count(*) FROM gestao_scouter_config;'), '0', "app: $name sees no config row");
	my ($state, undef, $err) = GsExportTest::psql_as($node, 'authenticator', GsExportTest::jwt_sql('authenticated',
		defined $who ? $uid{$who} : undef, q{INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
		VALUES ('https://evil.example', 'evil-key-77', true, true);}), dbname => 'app');
	is($state, '42501', "app: $name cannot insert a config row (42501)");
	unlike($err, qr/evil-key-77/, '... and the error does not quote the row');
	is(as_user('app', $who, q{UPDATE gestao_scouter_config SET project_url = 'https://evil.example', anon_key = 'stolen';}), '',
		"app: $name updates the config: no row is visible, none changes");
	is(as_user('app', $who, 'DELETE FROM gestao_scouter_config;'), '', "app: $name deletes from the config: none visible");
	is(su_try('app', q{SELECT string_agg(project_url || ' ' || anon_key, ';') FROM gestao_scouter_config}),
		'http://127.0.0.1:9 app-key-0001', '... and the config row is as it was');
}
is(req('app', 'anon', 'ADM', 'SELECT count(*) FROM gestao_scouter_config;'), 'ERROR 42501',
	'app: anon, even with ADM\'s sub, cannot read the config');
is(req('app', 'anon', 'ADM', q{INSERT INTO gestao_scouter_config (project_url, anon_key) VALUES ('https://a.example', 'k');}),
	'ERROR 42501', 'app: anon, even with ADM\'s sub, cannot write the config');

# gs_export_admin members keep the whole config (ops: admin => true, NOINHERIT).
is(as_role('app', 'ops', 'SELECT count(*) FROM gestao_scouter_config;'), '1', 'app: ops (gs_export_admin) reads the config');
is(as_role('app', 'ops', q{INSERT INTO gestao_scouter_config (project_url, anon_key, active) VALUES ('https://ops.example', 'ops-key', false);
	DELETE FROM gestao_scouter_config WHERE project_url = 'https://ops.example' RETURNING anon_key;}), 'ops-key',
	'app: ops writes the config');

# gs_export_grant_access: one function, 1.0's defaults, for its owner and
# superusers only; never anon.
is(su_try('app', q{SELECT string_agg(pg_get_function_arguments(oid), ' / ') FROM pg_proc WHERE proname = 'gs_export_grant_access'}),
	'grantee regrole, admin boolean DEFAULT false, config boolean DEFAULT false',
	'app: one gs_export_grant_access(grantee regrole, admin boolean DEFAULT false, config boolean DEFAULT false)');
is(su_try('app', q{SELECT string_agg(r, ',') FROM unnest(array['public', 'anon', 'authenticated', 'service_role', 'gs_export_user', 'gs_export_admin']) r
	WHERE has_function_privilege(r, 'gs_export_grant_access(regrole, boolean, boolean)', 'EXECUTE')}), '',
	'app: nobody but the owner and superusers may execute gs_export_grant_access');
is(as_user('app', 'ADM', q{SELECT gs_export_grant_access('anon', config => true);}), 'ERROR 42501',
	'app: ADM cannot call gs_export_grant_access (42501)');
for my $call (q{'anon'}, q{'anon', config => true}, q{'anon', admin => true})
{
	is(su_try('app', "SELECT gs_export_grant_access($call)"), 'ERROR 0LP01', "app: gs_export_grant_access($call) is refused");
}
is(tprivs('app', 'anon'), '', 'app: anon still has no privilege on the config');
is(tprivs('app', 'anon', 'gestao_scouter_export_jobs'), '', '... nor on the jobs');
is(su_try('app', q{SELECT pg_has_role('anon', 'gs_export_user', 'MEMBER') OR pg_has_role('anon', 'gs_export_admin', 'MEMBER')}),
	'f', '... and is no member of gs_export_user or gs_export_admin');

# The functions added: search_path pinned; no default privilege left on
# them but EXECUTE for PUBLIC on what row level security calls.
is(su_try('app', q{SELECT string_agg(p.oid::regprocedure::text, ', ' ORDER BY p.proname)
	  FROM pg_proc p
	 WHERE p.proname IN ('gs_export_app_user', 'gs_export_config_admin', 'gs_export_grant_access', '_gs_export_whoami')
	   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c = 'search_path=pg_catalog, pg_temp')}), '',
	'app: the new functions pin search_path = pg_catalog, pg_temp');
is(su_try('app', q{SELECT string_agg(p.proname || ':' || CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, ', ' ORDER BY p.proname)
	  FROM pg_proc p, aclexplode(p.proacl) a
	 WHERE p.proname IN ('gs_export_app_user', 'gs_export_config_admin', 'gs_export_grant_access')
	   AND a.grantee <> p.proowner}), 'gs_export_app_user:PUBLIC, gs_export_config_admin:PUBLIC',
	'app: EXECUTE: PUBLIC on the two functions of row level security, nobody on gs_export_grant_access');

# A has_role the caller may not execute is passed over: no error, no
# admin, no manager.
su_sql('app', q{REVOKE EXECUTE ON FUNCTION public.has_role(uuid, public.app_role) FROM PUBLIC, anon, authenticated, service_role});
is(as_user('app', 'ADM', q{SELECT has_function_privilege('public.has_role(uuid, public.app_role)', 'EXECUTE')}), 'f',
	'app: setup: authenticated may no longer execute has_role');
is(seen('app', 'authenticated', 'ADM'), '|0|0', 'app: ADM without has_role: sees no job, no error');
is(seen('app', 'authenticated', 'MGR'), '|0|0', 'app: MGR without has_role: sees no job, no error');
is(seen('app', 'authenticated', 'A'), 'A|1|1', 'app: A without has_role: still sees hers');
set_status('app', $job{A}, 'pending');
is(as_user('app', 'ADM', "SELECT gs_export_pause('$job{A}');"), 'ERROR 42704', 'app: ADM without has_role: 42704 on A\'s job');
is(as_user('app', 'A', "SELECT gs_export_pause('$job{A}');"), '', 'app: A without has_role: pauses her job');
is(as_user('app', 'A', "SELECT gs_export_resume('$job{A}');"), '', 'app: ... and resumes it');
set_status('app', $job{A}, 'completed');
is(as_user('app', 'ADM', 'SELECT count(*) FROM gestao_scouter_config;'), '0', 'app: ADM without has_role: no config row, no error');

# =====================================================================
# textsig: has_role(uuid, text)
# =====================================================================
su_sql('postgres', 'CREATE DATABASE textsig');
su_sql('textsig', supabase('text') . "\n$leads_ddl\nCREATE EXTENSION gs_export;\n$config_row");
is(su_try('textsig', q{SELECT gs_export_grant_access('authenticated')}), '',
	'textsig: gs_export_grant_access(\'authenticated\')');
is(su_try('textsig', q{SELECT gs_export_grant_access('authenticated', config => true)}), '',
	'textsig: gs_export_grant_access(\'authenticated\', config => true)');
%job = ();
$job{A} = as_user('textsig', 'A', "SELECT gs_export_create($range);");
like($job{A}, qr/^[0-9a-f-]{36}$/, 'textsig: A creates a job');
%name = reverse %job;
is(seen('textsig', 'authenticated', 'ADM'), 'A|0|0', 'textsig: ADM (text has_role admin) sees A\'s job');
is(seen('textsig', 'authenticated', 'MGR'), 'A|0|0', 'textsig: MGR (text has_role manager) sees A\'s job');
is(seen('textsig', 'authenticated', 'B'), '|0|0', 'textsig: B does not');
for my $who (qw(ADM MGR B))
{
	my $may = $who ne 'B';
	set_status('textsig', $job{A}, 'pending');
	is(as_user('textsig', $who, "SELECT gs_export_pause('$job{A}');"), $may ? '' : 'ERROR 42704',
		"textsig: $who pauses A's job: " . ($may ? 'done' : '42704'));
	set_status('textsig', $job{A}, 'paused');
	is(as_user('textsig', $who, "SELECT gs_export_resume('$job{A}');"), $may ? '' : 'ERROR 42704',
		"textsig: $who resumes A's job: " . ($may ? 'done' : '42704'));
	is(status_of('textsig', $job{A}), $may ? 'running' : 'paused', '... and the job is ' . ($may ? 'running' : 'paused'));
}
is(as_user('textsig', 'ADM', 'SELECT count(*) FROM gestao_scouter_config;'), '1', 'textsig: ADM reads the config');
is(as_user('textsig', 'MGR', 'SELECT count(*) FROM gestao_scouter_config;'), '0', 'textsig: MGR does not');
su_sql('textsig', q{REVOKE EXECUTE ON FUNCTION public.has_role(uuid, text) FROM PUBLIC, anon, authenticated, service_role});
is(seen('textsig', 'authenticated', 'MGR'), '|0|0', 'textsig: without EXECUTE on has_role, MGR sees nothing, no error');
set_status('textsig', $job{A}, 'pending');
is(as_user('textsig', 'ADM', "SELECT gs_export_pause('$job{A}');"), 'ERROR 42704',
	'textsig: without EXECUTE on has_role, ADM gets 42704 on A\'s job');
is(as_user('textsig', 'ADM', 'SELECT count(*) FROM gestao_scouter_config;'), '0',
	'textsig: without EXECUTE on has_role, ADM sees no config row, no error');

# =====================================================================
# tmax: TabuladorMax's own config from before gs_export, with the app's
# own broader policy; DROP EXTENSION leaves it with gs_export's policies.
# =====================================================================
su_sql('postgres', 'CREATE DATABASE tmax');
su_sql('tmax', supabase('public.app_role') . "\n$tabuladormax\nCREATE INDEX ON leads (updated_at, id);\n$config_row" . q{
	-- the original's later migration: "public CRUD" on the config
	ALTER TABLE gestao_scouter_config ENABLE ROW LEVEL SECURITY;
	CREATE POLICY "Anyone can manage the config" ON gestao_scouter_config FOR ALL TO authenticated
	  USING (true) WITH CHECK (true);
	CREATE EXTENSION gs_export;});
is(su_try('tmax', q{SELECT gs_export_grant_access('authenticated', config => true)}), '',
	'tmax: gs_export_grant_access(\'authenticated\', config => true)');
sub tmax_config
{
	return join(' ', map { "$_=" . as_user('tmax', $_, 'SELECT count(*) FROM gestao_scouter_config;') } qw(ADM MGR A))
	  . ' anon=' . req('tmax', 'anon', 'ADM', 'SELECT count(*) FROM gestao_scouter_config;');
}
is(tmax_config(), 'ADM=1 MGR=0 A=0 anon=ERROR 42501',
	'tmax: the config: ADM reads it; MGR and A see nothing despite the app\'s policy; anon is refused');
is(as_user('tmax', 'MGR', q{INSERT INTO gestao_scouter_config (project_url, anon_key) VALUES ('https://m.example', 'm');}),
	'ERROR 42501', 'tmax: MGR cannot insert a config row');
is(as_user('tmax', 'ADM', q{UPDATE gestao_scouter_config SET sync_enabled = true RETURNING anon_key;}), 'app-key-0001',
	'tmax: ADM updates the config');

su_sql('tmax', 'DROP EXTENSION gs_export');
is(su_try('tmax', q{SELECT string_agg(polname, ',' ORDER BY polname) FROM pg_policy
	WHERE polrelid = 'gestao_scouter_config'::regclass AND polname LIKE 'gs\_export\_%'}),
	'gs_export_config_admins,gs_export_config_admins_only', 'tmax: after DROP EXTENSION the config keeps its policies');
is(su_try('tmax', q{SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc
	WHERE proname IN ('gs_export_app_user', 'gs_export_config_admin')}),
	'gs_export_app_user,gs_export_config_admin', '... and the functions they call');
is(tmax_config(), 'ADM=1 MGR=0 A=0 anon=ERROR 42501', 'tmax: after DROP EXTENSION the config is still for admins only');

is(su_try('tmax', 'CREATE EXTENSION gs_export'), '', 'tmax: CREATE EXTENSION again');
is(su_try('tmax', q{SELECT gs_export_grant_access('authenticated', config => true)}), '', 'tmax: ... and grant again');
is(tmax_config(), 'ADM=1 MGR=0 A=0 anon=ERROR 42501', 'tmax: the config is for admins only again');
is(su_try('tmax', q{SELECT count(*) FROM pg_policy WHERE polrelid = 'gestao_scouter_config'::regclass AND polname LIKE 'gs\_export\_%'}),
	'2', 'tmax: two policies of gs_export\'s on the config, not more');

# =====================================================================
# upgraded: 1.0 with its 2-argument gs_export_grant_access, then 1.1
# =====================================================================
su_sql('postgres', 'CREATE DATABASE upgraded');
su_sql('upgraded', supabase('public.app_role') . "\n$leads_ddl");
is(su_try('upgraded', qq{CREATE EXTENSION gs_export VERSION '1.0';
	$config_row
	SELECT gs_export_grant_access('authenticated');
	ALTER EXTENSION gs_export UPDATE TO '1.1';}), '', 'upgraded: 1.0, grant_access(\'authenticated\'), update to 1.1');
is(su_try('upgraded', q{SELECT string_agg(oid::regprocedure::text, ',') FROM pg_proc WHERE proname = 'gs_export_grant_access'}),
	'gs_export_grant_access(regrole,boolean,boolean)', 'upgraded: only the 3-argument gs_export_grant_access is left');
is(tprivs('upgraded', 'authenticated'), '', 'upgraded: authenticated has no config privilege (not granted yet)');
is(su_try('upgraded', q{SELECT gs_export_grant_access('authenticated', config => true)}), '',
	'upgraded: gs_export_grant_access(\'authenticated\', config => true)');
%job = ();
$job{A} = as_user('upgraded', 'A', "SELECT gs_export_create($range);");
like($job{A}, qr/^[0-9a-f-]{36}$/, 'upgraded: A creates a job');
%name = reverse %job;
is(seen('upgraded', 'authenticated', 'MGR'), 'A|0|0', 'upgraded: MGR sees A\'s job');
is(as_user('upgraded', 'MGR', "SELECT gs_export_pause('$job{A}');"), '', 'upgraded: MGR pauses it');
is(as_user('upgraded', 'ADM', 'SELECT count(*) FROM gestao_scouter_config;'), '1', 'upgraded: ADM reads the config');
is(as_user('upgraded', 'MGR', 'SELECT count(*) FROM gestao_scouter_config;'), '0', 'upgraded: MGR does not');

ok(!$node->log_contains(qr/terminated by signal|server process .* was terminated/), 'no backend crashed');
$node->stop;
done_testing();
