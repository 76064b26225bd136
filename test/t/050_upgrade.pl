# 050_upgrade.pl: ALTER EXTENSION gs_export UPDATE from each released version.
#
# 1. Catalog equality: a 1.0 install (and one of each later released version) with rows in it, upgraded, has exactly
#    the objects, columns, constraints, indexes, triggers, row level
#    security, policies, privileges, memberships and roles of a fresh
#    CREATE EXTENSION gs_export -- in an empty database and in one that
#    already holds TabuladorMax's tables with rows.  One query
#    (test/sql/catalog_description.sql) describes each database; the two
#    descriptions must be equal line for line.
# 2. A live upgrade with a job in the middle: the current library meeting a 1.0
#    schema (new binaries installed, server restarted, no ALTER EXTENSION
#    yet) runs no job and logs that ALTER EXTENSION gs_export UPDATE is
#    needed; once updated, the job goes on from its last recorded position:
#    each remaining lead sent once, none of those already done, every lead
#    counted once.
use strict;
use warnings;

use GsExportTest;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

# The version a fresh CREATE EXTENSION installs (gs_export.control), and
# the released versions an installed gs_export may be upgraded from.
my ($current) = slurp_file("$GsExportTest::TESTDIR/../gs_export.control") =~ /^default_version\s*=\s*'([^']+)'/m
  or die "no default_version in gs_export.control";
(my $current_re = $current) =~ s/\./\\./g;
my @released = ('1.0', '1.1');

my $tabuladormax_sql = slurp_file("$GsExportTest::TESTDIR/sql/tabuladormax.sql");
my $describe_sql = slurp_file("$GsExportTest::TESTDIR/sql/catalog_description.sql");

# A database's description, also kept as a file next to the test's logs.
sub describe
{
	my ($node, $db, $tag) = @_;
	my $text = $node->safe_psql($db, $describe_sql);
	my $file = "$PostgreSQL::Test::Utils::log_path/050_upgrade_description_${db}"
	  . (defined $tag ? "_$tag" : '') . '.txt';
	open(my $fh, '>', $file) or die "could not write $file: $!";
	print $fh "$text\n";
	close $fh;
	return [ split /\n/, $text ];
}

# The lines each of two descriptions has that the other has not (as
# multisets).
sub diff_lines
{
	my ($got, $want) = @_;
	my %count;
	$count{$_}++ for @$got;
	$count{$_}-- for @$want;
	return ([ sort grep { $count{$_} > 0 } keys %count ],
		[ sort grep { $count{$_} < 0 } keys %count ]);
}

# Compare two descriptions; on a difference, print the differing lines.
sub same_description
{
	my ($got, $want, $got_name, $want_name, $what) = @_;
	my ($only_got, $only_want) = diff_lines($got, $want);
	my $ok = ok(!@$only_got && !@$only_want, $what);
	if (!$ok)
	{
		diag("only in $got_name: $_") for @$only_got;
		diag("only in $want_name: $_") for @$only_want;
	}
	return $ok;
}

# The jobs, as the contract sees them (TabuladorMax's columns and the
# owner), to see that the update keeps them: "id\tcolumn\tvalue" lines.
my @job_keys = qw(status start_date end_date processing_date last_completed_date
  total_leads exported_leads error_leads pause_reason paused_at created_at
  started_at completed_at created_by owner_role);
my $json = JSON::PP->new->canonical->allow_nonref;

sub jobs_as_contract_sees
{
	my ($node, $db) = @_;
	my @lines;
	for my $row (split /\n/, $node->safe_psql($db,
		'SELECT to_jsonb(j) FROM gestao_scouter_export_jobs j ORDER BY id'))
	{
		my $j = $json->decode($row);
		push @lines, map { "$j->{id}\t$_\t" . (exists $j->{$_} ? $json->encode($j->{$_}) : 'MISSING') }
		  @job_keys;
	}
	return \@lines;
}

###########################################################################
# 1. Catalog equality: upgraded 1.0 (and every later released version)
#    against a fresh install of the current version.
###########################################################################

my $node = GsExportTest::local_node('catalog', tabuladormax => 0);

for my $case ([ 'empty', 0 ], [ 'tabuladormax', 1 ])
{
	my ($label, $with_tables) = @$case;
	my ($u, $f) = ("u_$label", "f_$label");

	for my $db ($u, $f)
	{
		$node->safe_psql('postgres', "CREATE DATABASE $db");
		next unless $with_tables;
		# TabuladorMax before gs_export: its tables, with rows.
		$node->safe_psql($db, $tabuladormax_sql);
		$node->safe_psql($db, q{
			CREATE INDEX ON leads (updated_at, id);
			INSERT INTO leads (id, name, updated_at, sync_source)
			SELECT g, 'lead ' || g, timestamptz '2026-03-01 12:00:00+00' - g * interval '5 hours', 'bitrix'
			  FROM generate_series(1, 20) g;
			INSERT INTO sync_events (event_type, direction, lead_id, status)
			SELECT 'update', 'bitrix_to_supabase', g, 'success' FROM generate_series(1, 5) g;
			INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
			VALUES ('https://old.supabase.co', 'old-key', true, false);
			INSERT INTO gestao_scouter_export_jobs
			       (status, start_date, end_date, total_leads, exported_leads, started_at, completed_at)
			VALUES ('completed', '2025-10-17', '2025-10-01', 42, 42, now() - interval '1 day', now());
		});
	}

	# u: 1.0, used, then updated.
	$node->safe_psql($u, "CREATE EXTENSION gs_export VERSION '1.0'");
	is($node->safe_psql($u, "SELECT extversion FROM pg_extension WHERE extname = 'gs_export'"),
		'1.0', "$label: database $u has gs_export 1.0");
	$node->safe_psql($u, q{
		INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
		VALUES ('https://xxxx.supabase.co', 'gs-key', true, true)});

	my $job;
	if ($with_tables)
	{
		# Through the API when the library lets it (a 1.1 library may
		# refuse to work on a 1.0 schema); else as 1.0's API would.
		my ($out, $err) = ('', '');
		my $ret = $node->psql($u, q{SELECT gs_export_create('2026-03-01', '2026-02-20',
			'{"batch_size": 10, "delay_ms": 0, "time_zone": "UTC"}')},
			stdout => \$out, stderr => \$err);
		if ($ret == 0 && $out =~ /^[0-9a-f-]{36}$/)
		{
			$job = $out;
			pass("$label: job created with gs_export_create on 1.0");
		}
		else
		{
			diag("$label: gs_export_create on the 1.0 schema failed ($err); creating the job as 1.0's _gs_export_create does");
			$job = $node->safe_psql($u, q{SELECT _gs_export_create(current_user::regrole::oid, NULL, false,
				'2026-03-01', '2026-02-20', '{"batch_size": 10, "delay_ms": 0, "time_zone": "UTC"}')});
		}
	}
	else
	{
		# No leads table here: a job row as 1.0's worker leaves a paused one.
		$job = $node->safe_psql($u, q{
			INSERT INTO gestao_scouter_export_jobs
			       (status, start_date, end_date, options, batch_size, delay_ms, time_zone, owner_role,
			        processing_date, total_leads, exported_leads, error_leads, pause_reason, paused_at,
			        cursor_updated_at, cursor_id, started_at, changes_since)
			VALUES ('paused', '2026-03-01', '2026-02-20', '{"batch_size": 10}', 10, 500, 'UTC',
			        current_user, '2026-02-27', 30, 29, 1, 'Manual', now(),
			        '2026-02-27 10:00:00+00', 17, now() - interval '1 hour', now() - interval '1 hour')
			RETURNING id});
	}
	$node->safe_psql($u, qq{
		INSERT INTO sync_events (event_type, direction, lead_id, status, error_message, sync_duration_ms, job_id)
		VALUES ('update', 'supabase_to_gestao_scouter', 7, 'success', NULL, 12, '$job'),
		       ('update', 'supabase_to_gestao_scouter', 8, 'error', 'bad value', 12, '$job');
		INSERT INTO gestao_scouter_export_errors (job_id, lead_id, error_message, response_status)
		VALUES ('$job', 8, 'bad value', 400);
	});
	my $jobs_before = jobs_as_contract_sees($node, $u);
	my $config_before = $node->safe_psql($u,
		"SELECT string_agg(concat_ws('|', id, project_url, anon_key, active, sync_enabled), E'\\n' ORDER BY id) FROM gestao_scouter_config");
	my $events_before = $node->safe_psql($u,
		"SELECT string_agg(concat_ws('|', id, lead_id, status, job_id), E'\\n' ORDER BY id) FROM sync_events");
	my @desc_1_0 = @{ describe($node, $u, '1.0') };

	# f: fresh install of the default version.
	$node->safe_psql($f, 'CREATE EXTENSION gs_export');

	$node->safe_psql($u, 'ALTER EXTENSION gs_export UPDATE');
	for my $db ($u, $f)
	{
		is($node->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'gs_export'"),
			$current, "$label: database $db has gs_export $current");
	}

	my @desc_u = @{ describe($node, $u) };
	my @desc_f = @{ describe($node, $f) };

	# The description sees what it must (a description that sees nothing
	# would compare equal too).
	for my $re (
		qr/^extension gs_export version=$current_re /,
		qr/^member function public\.gs_export_create\(/,
		qr/^function public\.gs_export_create\(start_date date, end_date date, options jsonb\) /,
		qr/^function public\.gs_export_create\(.* acl gs_export_user EXECUTE /,
		qr/^function public\._gs_export_create\(.* config=search_path=/,
		qr/^relation public\.gestao_scouter_export_jobs kind=r .* rls=t /,
		qr/^relation public\.gestao_scouter_export_jobs acl gs_export_user SELECT /,
		qr/^column public\.gestao_scouter_export_jobs\.cursor_id type=bigint /,
		qr/^column public\.sync_events\.job_id type=uuid /,
		qr/^constraint public\.gestao_scouter_config gestao_scouter_config_project_url_http CHECK .* NOT VALID$/,
		qr/^index public\.sync_events CREATE INDEX sync_events_job_id_idx /,
		qr/^trigger public\.gestao_scouter_config CREATE TRIGGER gs_export_config_guard /,
		qr/^policy public\.gestao_scouter_export_jobs gs_export_jobs_visible permissive=t cmd=r roles=PUBLIC using=/,
		qr/^role gs_export_user /,
		qr/^role gs_export_admin /,
		qr/^extension config public\.gestao_scouter_export_errors /,
	  )
	{
		ok((grep { $_ =~ $re } @desc_f), "$label: the description has a line like $re");
	}
	ok((grep { /^extension gs_export version=1\.0 / } @desc_1_0)
		  && !same_quietly(\@desc_1_0, \@desc_f),
		"$label: the description tells 1.0 from $current");

	# The comparison finds what differs: a grant revoked, a default
	# changed, row level security forced (changes rolled back).
	my @tampered = split /\n/, $node->safe_psql($u, qq{
		BEGIN;
		REVOKE EXECUTE ON FUNCTION gs_export_pause(uuid, text) FROM gs_export_user;
		ALTER TABLE gestao_scouter_export_jobs ALTER COLUMN batch_size SET DEFAULT 7;
		ALTER TABLE gestao_scouter_export_errors FORCE ROW LEVEL SECURITY;
		$describe_sql
		ROLLBACK;
	});
	my ($only_t, $only_f) = diff_lines(\@tampered, \@desc_f);
	ok((grep { /^function public\.gs_export_pause\(.* acl gs_export_user EXECUTE / } @$only_f)
		  && (grep { /^column public\.gestao_scouter_export_jobs\.batch_size .*default=7 identity=/ } @$only_t)
		  && (grep { /^relation public\.gestao_scouter_export_errors .*force_rls=t / } @$only_t),
		"$label: the comparison finds a revoked grant, a changed default, forced row level security")
	  or diag(join("\n", map("tampered only: $_", @$only_t), map("fresh only: $_", @$only_f)));

	same_description(\@desc_u, \@desc_f, "upgraded $u", "fresh $f",
		"$label: upgraded 1.0 and fresh $current have the same catalog (" . scalar(@desc_f) . " lines)");

	# From every later released version too: installed as it was
	# released, upgraded, it equals the fresh install.
	for my $from (grep { $_ ne '1.0' && $_ ne $current } @released)
	{
		(my $m = "m${from}_$label") =~ s/\./_/g;
		$node->safe_psql('postgres', "CREATE DATABASE $m");
		$node->safe_psql($m, "$tabuladormax_sql; CREATE INDEX ON leads (updated_at, id);") if $with_tables;
		$node->safe_psql($m, "CREATE EXTENSION gs_export VERSION '$from'");
		is($node->safe_psql($m, "SELECT extversion FROM pg_extension WHERE extname = 'gs_export'"),
			$from, "$label: database $m has gs_export $from");
		$node->safe_psql($m, 'ALTER EXTENSION gs_export UPDATE');
		my @desc_m = @{ describe($node, $m) };
		same_description(\@desc_m, \@desc_f, "upgraded $m", "fresh $f",
			"$label: upgraded $from and fresh $current have the same catalog (" . scalar(@desc_f) . " lines)");
	}

	# Rows are kept.
	is_deeply(jobs_as_contract_sees($node, $u), $jobs_before, "$label: the update keeps the jobs as they were");
	# 1.2 knows a job's owner by identity: resolved once from owner_role.
	is($node->safe_psql($u, q{SELECT count(*) FILTER (WHERE owner_role IS NOT NULL)
		|| '/' || count(*) FILTER (WHERE owner_oid::regrole::text = owner_role)
		|| '/' || count(*) FILTER (WHERE owner_role IS NULL AND owner_oid IS NULL)
		|| '/' || count(*) FROM gestao_scouter_export_jobs}),
		$with_tables ? '1/1/1/2' : '1/1/0/1',
		"$label: each job's owner_oid is its owner_role's role (none for a job without one)");
	is($node->safe_psql($u,
		"SELECT string_agg(concat_ws('|', id, project_url, anon_key, active, sync_enabled), E'\\n' ORDER BY id) FROM gestao_scouter_config"),
		$config_before, "$label: the update keeps the config rows");
	is($node->safe_psql($u,
		"SELECT string_agg(concat_ws('|', id, lead_id, status, job_id), E'\\n' ORDER BY id) FROM sync_events"),
		$events_before, "$label: the update keeps sync_events");
	is($node->safe_psql($u, "SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = '$job'"),
		'1', "$label: the update keeps the job's error rows");
}

sub same_quietly
{
	my ($a, $b) = @_;
	return join("\n", @$a) eq join("\n", @$b);
}

$node->stop;

###########################################################################
# 2. A live upgrade with a job in the middle.
###########################################################################

my $remote = GsExportTest::remote();

# As GsExportTest::local_node, with gs_export created at 1.0.
my $live = PostgreSQL::Test::Cluster->new('live');
$live->init;
$live->append_conf('postgresql.conf', q{
shared_preload_libraries = 'gs_export'
gs_export.database = 'postgres'
gs_export.retry_max_delay_ms = 1000
log_min_messages = info
});
$live->start;
$live->safe_psql('postgres', $tabuladormax_sql);
$live->safe_psql('postgres', 'CREATE INDEX ON leads (updated_at, id)');
$live->safe_psql('postgres', "CREATE EXTENSION gs_export VERSION '1.0'");
GsExportTest::configure($live, $remote);

# 300 leads, one every 37 minutes back from now: about eight days.
my $n = 300;
GsExportTest::insert_leads($live, qq{
	SELECT g, now() - interval '1 minute' - g * interval '37 minutes', 'lead ' || g
	  FROM generate_series(1, $n) g
});
is($live->safe_psql('postgres',
	"SELECT count(DISTINCT (updated_at AT TIME ZONE current_setting('TimeZone'))::date) > 3 FROM leads"),
	't', 'the leads span several days');

my $first100_sql = 'SELECT id FROM leads ORDER BY updated_at DESC, id DESC LIMIT 100';
my @first = split /\n/, $live->safe_psql('postgres', $first100_sql);
my %first = map { $_ => 1 } @first;
my @rest = grep { !$first{$_} } split /\n/, $live->safe_psql('postgres', 'SELECT id FROM leads ORDER BY id');
is(scalar(@rest), 200, '200 leads after the first 100');

# The first 100 leads on the remote, as an export sends them: every column
# that fichas and leads share (sync_source aside), last_sync_at, and
# sync_source = 'tabuladormax'.
my %remote_cols = map { $_ => 1 } split /\n/, $remote->{db}->safe_psql('remote',
	"SELECT attname FROM pg_attribute WHERE attrelid = 'fichas'::regclass AND attnum > 0 AND NOT attisdropped");
my @cols = grep { $remote_cols{$_} && $_ ne 'sync_source' } split /\n/, $live->safe_psql('postgres',
	"SELECT attname FROM pg_attribute WHERE attrelid = 'leads'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum");
my $cols = join(', ', @cols);
my $rows = $live->safe_psql('postgres', "SELECT json_agg(t) FROM (SELECT $cols FROM leads WHERE id IN ($first100_sql)) t");
$remote->{db}->safe_psql('remote', qq{
	INSERT INTO fichas ($cols, last_sync_at, sync_source)
	SELECT $cols, now(), 'tabuladormax'
	  FROM json_populate_recordset(NULL::fichas, \$gs_rows\$$rows\$gs_rows\$)});
is($remote->count, 100, 'the remote holds the first 100 leads');
is_deeply([ GsExportTest::mismatches($live, $remote, "id IN ($first100_sql)") ], [],
	'the first 100 on the remote equal the source');

# The job, as a 1.0 worker leaves it after two batches of 50, in one
# transaction so that no launcher ever sees it otherwise.  Created through
# the API when the library lets it; else as 1.0's API does.
my ($job, $via) = split / /, $live->safe_psql('postgres', qq{
DO \$setup\$
DECLARE
	job uuid;
	via text := 'gs_export_create';
	tz text;
	c_ts timestamptz;
	c_id bigint;
	c_day date;
BEGIN
	BEGIN
		job := public.gs_export_create(current_date, NULL, '{"batch_size": 50, "delay_ms": 0}');
	EXCEPTION WHEN OTHERS THEN
		via := '_gs_export_create';
		job := public._gs_export_create(current_user::regrole::oid, NULL, false,
		                                current_date, NULL, '{"batch_size": 50, "delay_ms": 0}');
	END;
	SELECT time_zone INTO tz FROM gestao_scouter_export_jobs WHERE id = job;
	SELECT updated_at, id INTO c_ts, c_id FROM leads ORDER BY updated_at DESC, id DESC OFFSET 99 LIMIT 1;
	c_day := (c_ts AT TIME ZONE tz)::date;
	UPDATE gestao_scouter_export_jobs
	   SET status = 'running', started_at = now() - interval '2 seconds', changes_since = now(),
	       catchup_pass = 0, cursor_updated_at = c_ts, cursor_id = c_id,
	       processing_date = c_day,
	       last_completed_date = CASE WHEN c_day < start_date THEN c_day + 1 END,
	       total_leads = 100, exported_leads = 100, error_leads = 0, updated_at = now()
	 WHERE id = job;
	INSERT INTO sync_events (event_type, direction, lead_id, status, sync_duration_ms, job_id)
	SELECT 'update', 'supabase_to_gestao_scouter', l.id, 'success', 20, job
	  FROM ($first100_sql) l;
	PERFORM set_config('gs_test.job', job::text || ' ' || via, false);
END
\$setup\$;
SELECT current_setting('gs_test.job');
});
like($job, qr/^[0-9a-f-]{36}$/, "a job mid-way (created with $via)");

my $job_state_sql = qq{
	SELECT concat_ws('|', status, total_leads, exported_leads, error_leads, cursor_updated_at,
	                 cursor_id, processing_date, last_completed_date)
	  FROM gestao_scouter_export_jobs WHERE id = '$job'};
my $state_mid = $live->safe_psql('postgres', $job_state_sql);

# New binaries, server restarted, extension not yet updated.
my $log_offset = -s $live->logfile;
$live->restart;
my $t0 = time;
my $update_line = qr/^(?!.*\bstatement: ).*ALTER EXTENSION gs_export UPDATE/m;
my $logged = eval {
	GsExportTest::wait_for('the launcher to ask for ALTER EXTENSION gs_export UPDATE',
		sub { $live->log_contains($update_line, $log_offset) }, 30);
};
ok($logged, 'the server log says ALTER EXTENSION gs_export UPDATE is needed');
usleep(100_000) while time - $t0 < 5;
is($remote->stats->{requests}, 0, 'before the update, nothing is sent to the remote');
is($live->safe_psql('postgres', $job_state_sql), $state_mid,
	'before the update, the job waits in its state and position');

# The update: the job goes on from where it was.
$live->safe_psql('postgres', 'ALTER EXTENSION gs_export UPDATE');
is($live->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'gs_export'"),
	$current, "gs_export updated to $current");
my $status = eval { GsExportTest::wait_status($live, $job, 'completed|failed|paused', 120) };
is($status // "not finished: $@", 'completed', 'after the update, the job completed');

my $j = GsExportTest::job($live, $job);
is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$n/0",
	'every lead counted once: total = exported = 300, no errors');
is($remote->count, $n, 'every lead on the remote');
is_deeply([ GsExportTest::mismatches($live, $remote, 'true') ], [],
	'the remote equals the source');

my $reqs = $remote->requests;
my %sent;
$sent{$_}++ for map { @{ $_->{ids} // [] } } @$reqs;
my $rows_sent = 0;
$rows_sent += $_->{n_rows} // 0 for @$reqs;
is($rows_sent, 200, 'the requests carried 200 leads in all');
is(join(', ', map { "$_ sent $sent{$_} times" } grep { $first{$_} } sort { $a <=> $b } keys %sent), '',
	'none of the first 100 leads was sent again');
is(join(', ', map { "$_ sent " . ($sent{$_} // 0) . ' times' } grep { ($sent{$_} // 0) != 1 } @rest), '',
	'each of the 200 remaining leads was sent exactly once');
is(GsExportTest::sync_summary($live, $job), "$n/$n/0/0/0",
	'one success sync_events row per lead, no other');
my $oldest_day = $live->safe_psql('postgres',
	"SELECT (min(updated_at) AT TIME ZONE '$j->{time_zone}')::date FROM leads");
is("$j->{processing_date}/$j->{last_completed_date}", "$oldest_day/$oldest_day",
	'processing_date and last_completed_date end at the day of the oldest lead');

$remote->stop;
$live->stop;
done_testing();
