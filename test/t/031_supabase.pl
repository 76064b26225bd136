# 031_supabase.pl: gs_export in a Supabase-like database.  Roles anon,
# authenticated, service_role and authenticator (PostgREST's login role,
# which switches to the JWT's role per request and sets
# request.jwt.claims); a schema auth with uid() reading the claims as
# Supabase's does; public.has_role(uuid, text) backed by user_roles; the
# default privileges of a Supabase project (every new table and function
# of public granted to anon, authenticated and service_role).
#
# Database "postgres": TabuladorMax as it is before gs_export, with the
# original's row level security (leads: a user reads the leads he is
# responsible for, admins all; the jobs table with the original's three
# policies; sync_events readable by app users), then CREATE EXTENSION and
# gs_export_grant_access('authenticated') as doc/supabase.md says.  Real jobs run
# here.  Database "fresh": the same project without TabuladorMax's tables
# (only leads), for gs_export's own tables, grants and policies (SQL only:
# the launcher runs jobs in "postgres").
#
# Users: A and B (app users), C (app admin: has_role(C, 'admin')); mallory
# is a database role, not an app user, who sets the JWT settings herself.
use strict;
use warnings;

use lib '.';
use GsExportTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $A = '00000000-0000-4000-8000-00000000000a';
my $B = '00000000-0000-4000-8000-00000000000b';
my $C = '00000000-0000-4000-8000-00000000000c';

my $remote = GsExportTest::remote();
my $node = PostgreSQL::Test::Cluster->new('supabase');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'gs_export'
gs_export.database = 'postgres'
gs_export.retry_max_delay_ms = 1000
log_min_messages = info
});
$node->start;
my $su = $node->safe_psql('postgres', 'SELECT current_user');

$node->safe_psql('postgres', q{
	CREATE ROLE anon NOLOGIN NOINHERIT;
	CREATE ROLE authenticated NOLOGIN NOINHERIT;
	CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
	CREATE ROLE authenticator LOGIN NOINHERIT;
	GRANT anon, authenticated, service_role TO authenticator;
	CREATE ROLE mallory LOGIN;
});

# What a Supabase project's database has before the app's tables
# (supabase/postgres init scripts; e.g. supabase/realtime
# dev/postgres/00-setup.sql).
my $supabase = qq{
	GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
	ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
	ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
	ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
	CREATE SCHEMA auth;
	GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
	CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS \$\$
	  SELECT nullif(coalesce(current_setting('request.jwt.claim.sub', true),
	                         (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')), '')::uuid \$\$;
	CREATE TABLE public.user_roles (user_id uuid NOT NULL, role text NOT NULL, PRIMARY KEY (user_id, role));
	ALTER TABLE public.user_roles ENABLE ROW LEVEL SECURITY;
	CREATE FUNCTION public.has_role(_user_id uuid, _role text) RETURNS boolean
	  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
	  AS \$\$ SELECT EXISTS (SELECT 1 FROM public.user_roles WHERE user_id = _user_id AND role = _role) \$\$;
	INSERT INTO public.user_roles VALUES ('$C', 'admin');
};
my $tabuladormax = slurp_file("$GsExportTest::TESTDIR/sql/tabuladormax.sql");
my ($leads_ddl) = $tabuladormax =~ /(CREATE TABLE public\.leads \(.*?\n\);)/s;
die 'no leads table in tabuladormax.sql' unless $leads_ddl;
# The leads: an app user reads those he is responsible for, admins all.
my $leads_rls = q{
	CREATE INDEX ON leads (updated_at, id);
	ALTER TABLE leads ENABLE ROW LEVEL SECURITY;
	CREATE POLICY "Users read their leads, admins all" ON leads FOR SELECT TO authenticated
	  USING (responsible_user_id = auth.uid() OR has_role(auth.uid(), 'admin'));
};

$node->safe_psql('postgres', $supabase);
$node->safe_psql('postgres', $tabuladormax);
$node->safe_psql('postgres', $leads_rls . q{
	-- the original's policies (doc/original.md, "Its policies")
	ALTER TABLE gestao_scouter_export_jobs ENABLE ROW LEVEL SECURITY;
	CREATE POLICY "Users can view own export jobs" ON gestao_scouter_export_jobs FOR SELECT
	  USING (created_by = auth.uid() OR has_role(auth.uid(), 'admin'));
	CREATE POLICY "Users can create export jobs" ON gestao_scouter_export_jobs FOR INSERT
	  WITH CHECK (created_by = auth.uid());
	CREATE POLICY "Users can update own export jobs" ON gestao_scouter_export_jobs FOR UPDATE
	  USING (created_by = auth.uid() OR has_role(auth.uid(), 'admin'));
	-- the app shows its sync log to its users
	ALTER TABLE sync_events ENABLE ROW LEVEL SECURITY;
	CREATE POLICY "Users can view sync events" ON sync_events FOR SELECT TO authenticated USING (true);
	ALTER TABLE gestao_scouter_config ENABLE ROW LEVEL SECURITY;
	CREATE POLICY "Admins manage the config" ON gestao_scouter_config TO authenticated
	  USING (has_role(auth.uid(), 'admin')) WITH CHECK (has_role(auth.uid(), 'admin'));
	CREATE EXTENSION gs_export;
	SELECT gs_export_grant_access('authenticated');
	GRANT gs_export_user TO mallory;
});
GsExportTest::configure($node, $remote);

# 40 leads: A is responsible for ids = 0 mod 4, B for 1 mod 4, nobody else.
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-03-05 12:00:00-03' - g * interval '1 hour', 'lead ' || g
	  FROM generate_series(1, 40) g});
$node->safe_psql('postgres', qq{
	UPDATE leads SET responsible_user_id = CASE id % 4 WHEN 0 THEN '$A'::uuid WHEN 1 THEN '$B'::uuid END});

# One PostgREST request as $role with the JWT "sub" $sub (undef: none).
sub req
{
	my ($role, $sub, $sql, $db) = @_;
	return GsExportTest::psql_as($node, 'authenticator', GsExportTest::jwt_sql($role, $sub, $sql),
		dbname => $db // 'postgres');
}

# Its output, or "ERROR <sqlstate>".
sub got
{
	my ($state, $out) = req(@_);
	return $state eq '' ? $out : "ERROR $state";
}

sub su_sql
{
	my ($sql, $db) = @_;
	return $node->safe_psql($db // 'postgres', $sql);
}

is(got('authenticated', $A, 'SELECT auth.uid()'), $A, 'setup: a request as A has auth.uid() = A');
is(got('authenticated', $A, 'SELECT count(*) FROM leads'), '10', 'setup: A reads 10 leads');
is(got('authenticated', $C, 'SELECT count(*) FROM leads'), '40', 'setup: C, an app admin, reads all 40');

my $range = q{'2026-03-06', '2026-03-01', '{"batch_size": 100, "delay_ms": 0, "time_zone": "America/Sao_Paulo"}'};

# ---------------------------------------------------------------------
# A's job reads the leads as A.
# ---------------------------------------------------------------------
my ($state, $ja) = req('authenticated', $A, "SELECT gs_export_create($range);");
is($state, '', 'A creates a job through RPC');
is(su_sql("SELECT created_by || '/' || owner_role FROM gestao_scouter_export_jobs WHERE id = '$ja'"),
	"$A/authenticated", 'the job belongs to authenticated and to A (created_by)');
is(GsExportTest::wait_status($node, $ja, 'completed|failed|paused', 60), 'completed', 'A\'s job completes');
my $a_ids = su_sql(qq{SELECT string_agg(id::text, ',' ORDER BY id) FROM leads WHERE responsible_user_id = '$A'});
is(su_sql(qq{SELECT count(*) FROM leads WHERE responsible_user_id IS DISTINCT FROM '$A'}), '30',
	'30 leads are hidden from A');
my @remote_ids = grep { length } split /,/, ($remote->ids // '');
my %mine = map { $_ => 1 } split /,/, $a_ids;
is(scalar(grep { !$mine{$_} } @remote_ids), 0, 'no lead hidden from A reached the remote');
is($remote->ids, $a_ids,
	'every lead A may read reached the remote (the job read leads as A: auth.uid() = created_by)');

# ---------------------------------------------------------------------
# Who sees A's job, its errors and its sync_events.
# ---------------------------------------------------------------------
su_sql(qq{INSERT INTO gestao_scouter_export_errors (job_id, lead_id, error_message) VALUES ('$ja', 4, 'an error of A''s job');
	INSERT INTO sync_events (event_type, direction, lead_id, status, job_id)
	VALUES ('update', 'supabase_to_gestao_scouter', 4, 'success', '$ja');});
my %q = (
	job => "SELECT count(*) FROM gestao_scouter_export_jobs WHERE id = '$ja';",
	errors => "SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = '$ja';",
	events => "SELECT count(*) > 0 FROM sync_events WHERE job_id = '$ja';",
);
my @who = (
	[ 'A', 'authenticated', $A, '1', '1', 't' ],
	[ 'C (app admin)', 'authenticated', $C, '1', '1', 't' ],
	[ 'B', 'authenticated', $B, '0', '0', 'f' ],
	[ 'anon', 'anon', undef, '0', '0', 'f' ],
);
for my $w (@who)
{
	my ($name, $role, $sub, @want) = @$w;
	my $i = 0;
	for my $t (qw(job errors events))
	{
		my $got = got($role, $sub, $q{$t});
		$got = $want[$i] if $want[$i] ne 't' && $got eq 'ERROR 42501';    # refused is fine too
		is($got, $want[$i], "$name reading the $t of A's job");
		$i++;
	}
}

# ---------------------------------------------------------------------
# Writing the jobs table past the API: the original's policies let a user
# insert and update rows "of his own" -- with any owner_role.
# ---------------------------------------------------------------------
$remote->truncate;
$remote->reset;
my ($is) = req('authenticated', $A, qq{
	INSERT INTO gestao_scouter_export_jobs (status, start_date, end_date, created_by, owner_role,
	                                        batch_size, delay_ms, time_zone)
	VALUES ('pending', '2026-03-06', '2026-03-01', '$A', '$su', 100, 0, 'America/Sao_Paulo');});
is($is, '42501', 'A cannot insert a job row directly (owner_role of her choice)');
my ($us) = req('authenticated', $A,
	"UPDATE gestao_scouter_export_jobs SET owner_role = '$su' WHERE id = '$ja';");
is(su_sql("SELECT owner_role FROM gestao_scouter_export_jobs WHERE id = '$ja'"), 'authenticated',
	"A cannot change her job's owner_role directly (UPDATE: " . ($us || 'accepted') . ')');
if ($is eq '')
{
	# Then the launcher (it looks every 10 s) runs it as the superuser.
	my $deadline = time + 25;
	usleep(200_000)
	  while time < $deadline
	  && su_sql(q{SELECT count(*) FROM gestao_scouter_export_jobs WHERE status IN ('pending', 'running')}) ne '0';
	diag('direct insert: the remote got ' . $remote->count . ' leads');
}
@remote_ids = grep { length } split /,/, ($remote->ids // '');
is(scalar(grep { !$mine{$_} } @remote_ids), 0,
	'no lead hidden from A reached the remote through a job row written by A');
for my $t (qw(gestao_scouter_export_jobs gestao_scouter_export_errors))
{
	for my $role (qw(anon authenticated))
	{
		# TRUNCATE is not subject to row level security
		is(su_sql("SELECT has_table_privilege('$role', '$t', 'TRUNCATE')"), 'f', "$role may not TRUNCATE $t");
	}
}
is(got('anon', undef, 'TRUNCATE gestao_scouter_export_errors;'), 'ERROR 42501',
	'anon cannot TRUNCATE gestao_scouter_export_errors');
is(su_sql("SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = '$ja'"), '1',
	'the error row of A\'s job is still there');
for my $role (qw(anon authenticated))
{
	is(su_sql(qq{SELECT coalesce(string_agg(p, ','), '') FROM unnest(array['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p
		WHERE has_table_privilege('$role', 'gestao_scouter_config', p)}), '',
		"$role has no privilege on gestao_scouter_config (granted before, revoked by CREATE EXTENSION)");
}
is(got('authenticated', $C, 'SELECT count(*) FROM gestao_scouter_config;'), 'ERROR 42501',
	'an app admin has no access to the keys through the API roles');

# ---------------------------------------------------------------------
# A fresh Supabase database: gs_export's own tables, grants, policies.
# ---------------------------------------------------------------------
su_sql('CREATE DATABASE fresh');
su_sql($supabase, 'fresh');
su_sql("$leads_ddl\n$leads_rls\nCREATE EXTENSION gs_export;\nSELECT gs_export_grant_access('authenticated');", 'fresh');
su_sql(q{INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
	VALUES ('http://127.0.0.1:9', 'k', true, true)}, 'fresh');
sub fgot { my ($role, $sub, $sql) = @_; return got($role, $sub, $sql, 'fresh'); }

my @tables = qw(gestao_scouter_export_jobs gestao_scouter_export_errors gestao_scouter_export_diffs sync_events gestao_scouter_config);
for my $role (qw(anon authenticated))
{
	is(su_sql(qq{
		SELECT coalesce(string_agg(t || ':' || p, ', ' ORDER BY t, p), '')
		  FROM unnest(array['@{[ join "','", @tables ]}']) t,
		       unnest(array['INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p
		 WHERE has_table_privilege('$role', t, p)}, 'fresh'),
		'', "fresh: $role may not write gs_export's tables (none of INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER)");
}
# authenticated is NOINHERIT: what it reads, gs_export_grant_access granted it
# directly (a verify's diffs too: the screen's "Verificar destino" reads them)
is(su_sql(q{SELECT string_agg(t, ',' ORDER BY t) FROM unnest(array['gestao_scouter_export_jobs',
	'gestao_scouter_export_errors', 'gestao_scouter_export_diffs']) t
	WHERE has_table_privilege('authenticated', t, 'SELECT')}, 'fresh'),
	'gestao_scouter_export_diffs,gestao_scouter_export_errors,gestao_scouter_export_jobs',
	'fresh: authenticated may SELECT the jobs, the errors and the diffs (row level security applies)');
is(su_sql(q{SELECT has_table_privilege('anon', 'gestao_scouter_export_diffs', 'SELECT')}, 'fresh'), 'f',
	'fresh: anon may not SELECT the diffs');
is(su_sql(q{
	SELECT coalesce(string_agg(p.oid::regprocedure::text, ', '), '')
	  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
	 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'gs_export')
	   AND p.proname <> '_gs_export_whoami' AND has_function_privilege('anon', p.oid, 'EXECUTE')}, 'fresh'),
	'', 'fresh: anon may execute no gs_export function');
is(su_sql(q{
	SELECT coalesce(string_agg(p.oid::regprocedure::text, ', '), '')
	  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
	 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'gs_export')
	   AND p.proname LIKE '\_gs\_export\_%' AND p.proname <> '_gs_export_whoami'
	   AND has_function_privilege('authenticated', p.oid, 'EXECUTE')}, 'fresh'),
	'', 'fresh: authenticated may execute no internal function');
is(su_sql(q{SELECT has_function_privilege('authenticated', 'gs_export_create(date,date,jsonb)', 'EXECUTE')
	AND has_function_privilege('authenticated', 'gs_export_pause(uuid,text)', 'EXECUTE')
	AND has_function_privilege('authenticated', 'gs_export_resume(uuid)', 'EXECUTE')}, 'fresh'),
	't', 'fresh: authenticated may execute the three API functions');
is(fgot('anon', undef, 'TRUNCATE gestao_scouter_export_errors, gestao_scouter_export_jobs, sync_events;'),
	'ERROR 42501', 'fresh: anon cannot TRUNCATE the jobs, errors and sync_events');

my $f1;
($state, $f1) = req('authenticated', $A, "SELECT gs_export_create($range);", 'fresh');
is($state, '', 'fresh: A creates a job (it stays pending here)');
su_sql(qq{INSERT INTO gestao_scouter_export_errors (job_id, lead_id, error_message) VALUES ('$f1', 4, 'e');
	INSERT INTO sync_events (event_type, direction, lead_id, status, job_id)
	VALUES ('update', 'supabase_to_gestao_scouter', 4, 'success', '$f1');}, 'fresh');
my $three = "SELECT (SELECT count(*) FROM gestao_scouter_export_jobs WHERE id = '$f1') || '/' ||
	(SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = '$f1') || '/' ||
	(SELECT count(*) FROM sync_events WHERE job_id = '$f1');";
is(fgot('authenticated', $A, $three), '1/1/1', 'fresh: A sees her job, its error and its event');
is(fgot('authenticated', $B, $three), '0/0/0', 'fresh: B sees none of them');
like(fgot('anon', $A, $three), qr{^(0/0/0|ERROR 42501)$}, 'fresh: anon, even with A\'s sub, sees none of them');
is(fgot('authenticated', $C, $three), '1/1/1',
	'fresh: C (has_role admin) sees the job, its error and its event (row level security)');
is(fgot('authenticated', undef, $three), '0/0/0',
	'fresh: a request as authenticated without a sub sees none of them');
my ($mr, $mout) = GsExportTest::psql_as($node, 'mallory',
	qq{SET request.jwt.claims = '{"sub": "$A"}'; $three}, dbname => 'fresh');
is($mr eq '' ? $mout : "ERROR $mr", '0/0/0', 'fresh: mallory with A\'s sub in her settings sees none of them');

# Steering A's job through the functions; each attempt starts from a
# known state, so that one failure does not hide the next.
su_sql(q{CREATE ROLE opsadmin LOGIN; GRANT gs_export_admin TO opsadmin;
	GRANT USAGE ON SCHEMA auth TO mallory;}, 'fresh');
sub fset
{
	my ($st) = @_;
	su_sql("UPDATE gestao_scouter_export_jobs SET status = '$st', pause_reason = NULL WHERE id = '$f1'", 'fresh');
}
sub fstatus { return su_sql("SELECT status FROM gestao_scouter_export_jobs WHERE id = '$f1'", 'fresh'); }
sub mallory
{
	my ($sql) = @_;
	my ($st, $out) = GsExportTest::psql_as($node, 'mallory',
		qq{SET request.jwt.claims = '{"sub": "$A", "role": "authenticated"}'; $sql}, dbname => 'fresh');
	return $st eq '' ? $out : "ERROR $st";
}
my @attempts = (
	# [ who, role or 'mallory'/'opsadmin', sub, call, from state, expected ]
	[ 'B', 'authenticated', $B, "gs_export_pause('$f1')", 'pending', 'ERROR 42704' ],
	[ 'B, NULL reason', 'authenticated', $B, "gs_export_pause('$f1', NULL)", 'pending', 'ERROR 42704' ],
	[ 'anon', 'anon', undef, "gs_export_pause('$f1')", 'pending', 'ERROR 42501' ],
	[ 'anon with A\'s sub', 'anon', $A, "gs_export_pause('$f1')", 'pending', 'ERROR 42501' ],
	[ 'authenticated without a sub', 'authenticated', undef, "gs_export_pause('$f1', 'no sub')", 'pending', 'ERROR 42704' ],
	[ 'mallory (another role) with A\'s sub', 'mallory', $A, "gs_export_pause('$f1', 'mallory')", 'pending', 'ERROR 42704' ],
	[ 'opsadmin (gs_export_admin, a plain role)', 'opsadmin', undef, "gs_export_pause('$f1', 'ops')", 'pending', '' ],
	[ 'C (has_role admin)', 'authenticated', $C, "gs_export_pause('$f1', 'app admin')", 'pending', '' ],
	[ 'A (owner)', 'authenticated', $A, "gs_export_pause('$f1')", 'pending', '' ],
	[ 'B', 'authenticated', $B, "gs_export_resume('$f1')", 'paused', 'ERROR 42704' ],
	[ 'authenticated without a sub', 'authenticated', undef, "gs_export_resume('$f1')", 'paused', 'ERROR 42704' ],
	[ 'mallory (another role) with A\'s sub', 'mallory', $A, "gs_export_resume('$f1')", 'paused', 'ERROR 42704' ],
	[ 'opsadmin (gs_export_admin, a plain role)', 'opsadmin', undef, "gs_export_resume('$f1')", 'paused', '' ],
	[ 'C (has_role admin)', 'authenticated', $C, "gs_export_resume('$f1')", 'paused', '' ],
	[ 'A (owner)', 'authenticated', $A, "gs_export_resume('$f1')", 'paused', '' ],
);
for my $t (@attempts)
{
	my ($who, $role, $sub, $call, $from, $want) = @$t;
	fset($from);
	my $got = $role eq 'mallory' ? mallory("SELECT $call;")
	  : $role eq 'opsadmin' ? do {
		my ($st, $out) = GsExportTest::psql_as($node, 'opsadmin', "SELECT $call;", dbname => 'fresh');
		$st eq '' ? $out : "ERROR $st";
	  }
	  : fgot($role, $sub, "SELECT $call;");
	(my $what = $call) =~ s/\Q$f1\E/J/g;
	is($got, $want, "fresh: $who: $what on A's $from job: " . ($want eq '' ? 'done' : $want));
	my $after = fstatus();
	is($after, $from, "fresh: ... and the job is still $from") if $want ne '';
}
fset('pending');

# Broken claims: a clean error, nothing created.
my $jobs_before = su_sql('SELECT count(*) FROM gestao_scouter_export_jobs', 'fresh');
for my $claims ('{"sub": "not-a-uuid"}', 'not json', q{{"sub": "'); DROP TABLE leads; --"}})
{
	my ($bs, undef, $be) = GsExportTest::psql_as($node, 'authenticator',
		"BEGIN; SET LOCAL ROLE authenticated; SET LOCAL request.jwt.claims = \$c\$$claims\$c\$;
		 SELECT gs_export_create($range); COMMIT;", dbname => 'fresh');
	is($bs, '22P02', "fresh: claims $claims: a clean error (22P02)");
}
is(su_sql('SELECT count(*) FROM gestao_scouter_export_jobs', 'fresh'), $jobs_before, 'fresh: no job was created');
is(su_sql(q{SELECT to_regclass('public.leads') IS NOT NULL}, 'fresh'), 't', 'fresh: leads is still there');

ok(!$node->log_contains(qr/terminated by signal|server process .* was terminated/), 'no backend crashed');
$remote->stop;
$node->stop;
done_testing();
