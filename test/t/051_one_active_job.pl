# 051_one_active_job.pl: "one active job" holds at every isolation level
# (doc/contract.md: another job pending, running or paused is 55000, the hint
# naming it).  1.0 checked under a table lock, but in a snapshot that a
# REPEATABLE READ or SERIALIZABLE transaction had taken before the lock: two
# such sessions each got a job.  Here alice and bob (gs_export_user members,
# who cannot see each other's jobs) race through gs_export_create and
# gs_export_resume in REPEATABLE READ and SERIALIZABLE, both having taken
# their snapshot first; the unique index holds against direct writes too;
# and jobs already active several at a time are settled by CREATE EXTENSION
# and by ALTER EXTENSION UPDATE from 1.0.
#
# The jobs live in a database of their own, which the launcher does not
# watch (gs_export.database is postgres): no worker changes their state
# while the sessions race.
use strict;
use warnings;

use lib '.';
use GsExportTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

my $node = PostgreSQL::Test::Cluster->new('one_active');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'gs_export'
gs_export.database = 'postgres'
log_min_messages = info
});
$node->start;

my $db = 'gs';
my $tabuladormax = slurp_file("$GsExportTest::TESTDIR/sql/tabuladormax.sql");
$node->safe_psql('postgres', "CREATE DATABASE $db");
$node->safe_psql($db, $tabuladormax);
$node->safe_psql($db, q{
	CREATE INDEX ON leads (updated_at, id);
	CREATE EXTENSION gs_export;
	-- nothing listens on port 9 (and no launcher looks at this database)
	INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
	VALUES ('http://127.0.0.1:9', 'k', true, true);
	CREATE ROLE alice LOGIN IN ROLE gs_export_user;
	CREATE ROLE bob LOGIN IN ROLE gs_export_user;
	GRANT SELECT ON leads TO alice, bob;
});

my $uuid = qr/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;

sub su { return $node->safe_psql($db, $_[0]); }

# No job active; returns nothing.
sub end_all
{
	su(q{UPDATE gestao_scouter_export_jobs SET status = 'completed'
	      WHERE status IN ('pending', 'running', 'paused')});
}

sub active { return su(q{SELECT string_agg(id::text, ',' ORDER BY id) FROM gestao_scouter_export_jobs
                         WHERE status IN ('pending', 'running', 'paused')}) // ''; }

# A psql session as $user that goes on after an error, errors verbose.
sub session
{
	my ($user) = @_;
	my $s = $node->background_psql($db, on_error_stop => 0, extra_params => [ '-U', $user ]);
	$s->query_safe("\\set VERBOSITY verbose\n\\set SHOW_CONTEXT never");
	return $s;
}

# Run SQL in a session: (stdout, SQLSTATE or '', the whole stderr).  The
# losing sessions COMMIT (a rollback, after an error): were the rule broken,
# their job would stay.
sub run
{
	my ($s, $sql) = @_;
	my ($out) = $s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	my ($state) = $err =~ /ERROR:\s+([0-9A-Z]{5}):/;
	return ($out, $state // '', $err);
}

sub hint { my ($err) = @_; my ($h) = $err =~ /^HINT:\s+(.*)$/m; return $h // ''; }

# Start SQL in a session without waiting for it to end; then wait until the
# session's backend waits for a lock.
sub start_blocked
{
	my ($s, $user, $sql) = @_;
	$s->query_until(qr/started/, "\\echo started\n$sql\n");
	GsExportTest::wait_for("$user to wait for a lock", sub {
		su(qq{SELECT count(*) FROM pg_stat_activity
		       WHERE usename = '$user' AND wait_event_type = 'Lock'}) eq '1';
	}, 30);
}

# Collect what a started statement printed, once it has ended.
sub finish
{
	my ($s) = @_;
	return run($s, '');
}

my $create = q{SELECT gs_export_create('2026-01-31', '2026-01-01')};

for my $iso ('REPEATABLE READ', 'SERIALIZABLE')
{
	# --- both take their snapshot, then alice creates and commits, then bob
	end_all();
	my $a = session('alice');
	my $b = session('bob');
	run($_, "BEGIN ISOLATION LEVEL $iso; SELECT 1;") for ($a, $b);
	my ($job1, $s1) = run($a, $create);
	is($s1, '', "$iso: alice creates a job");
	like($job1, qr/^$uuid$/, "$iso: alice's job has an id");
	run($a, 'COMMIT');
	my ($out2, $s2, $e2) = run($b, $create);
	is($s2, '55000', "$iso: bob, whose snapshot predates alice's job, gets 55000");
	like(hint($e2), qr/\Q$job1\E/, "$iso: the hint names alice's job");
	run($b, 'COMMIT');
	is(active(), $job1, "$iso: one active job, alice's");

	# --- bob's create blocks on alice's uncommitted one; alice commits
	end_all();
	run($_, "BEGIN ISOLATION LEVEL $iso; SELECT 1;") for ($a, $b);
	($job1, $s1) = run($a, $create);
	is($s1, '', "$iso: alice creates a job and does not commit yet");
	start_blocked($b, 'bob', "$create;");
	pass("$iso: bob's create waits for alice's transaction");
	run($a, 'COMMIT');
	($out2, $s2, $e2) = finish($b);
	is($s2, '55000', "$iso: alice commits: bob gets 55000");
	like(hint($e2), qr/\Q$job1\E/, "$iso: the hint names alice's job");
	run($b, 'COMMIT');
	is(active(), $job1, "$iso: one active job, alice's");

	# --- the same, but alice rolls back: bob gets his job
	end_all();
	run($_, "BEGIN ISOLATION LEVEL $iso; SELECT 1;") for ($a, $b);
	($job1, $s1) = run($a, $create);
	is($s1, '', "$iso: alice creates a job again");
	start_blocked($b, 'bob', "$create;");
	run($a, 'ROLLBACK');
	($out2, $s2) = finish($b);
	is($s2, '', "$iso: alice rolls back: bob's create goes through");
	like($out2, qr/^$uuid$/, "$iso: bob's job has an id");
	run($b, 'COMMIT');
	is(active(), $out2, "$iso: one active job, bob's");

	# --- resume: alice's failed job, while bob's job (created after her
	# snapshot) is active
	end_all();
	my $failed = su(qq{SET ROLE alice; $create});
	su(qq{UPDATE gestao_scouter_export_jobs SET status = 'failed', pause_reason = 'HTTP 401'
	       WHERE id = '$failed'});
	run($a, "BEGIN ISOLATION LEVEL $iso; SELECT 1;");
	my $bobs = su(qq{SET ROLE bob; $create});
	like($bobs, qr/^$uuid$/, "$iso: bob creates a job after alice took her snapshot");
	my (undef, $s3, $e3) = run($a, "SELECT gs_export_resume('$failed')");
	is($s3, '55000', "$iso: alice resuming her failed job gets 55000");
	like(hint($e3), qr/\Q$bobs\E/, "$iso: the hint names bob's job");
	run($a, 'COMMIT');
	is(su("SELECT status FROM gestao_scouter_export_jobs WHERE id = '$failed'"), 'failed',
		"$iso: alice's job is still failed");
	is(active(), $bobs, "$iso: one active job, bob's");

	# --- resume blocked by bob's uncommitted create, which then commits
	end_all();
	run($a, "BEGIN ISOLATION LEVEL $iso; SELECT 1;");
	run($b, "BEGIN ISOLATION LEVEL $iso; SELECT 1;");
	($bobs, $s2) = run($b, $create);
	is($s2, '', "$iso: bob creates a job and does not commit yet");
	start_blocked($a, 'alice', "SELECT gs_export_resume('$failed');");
	run($b, 'COMMIT');
	(undef, $s3, $e3) = finish($a);
	is($s3, '55000', "$iso: bob commits: alice's resume gets 55000");
	like(hint($e3), qr/\Q$bobs\E/, "$iso: the hint names bob's job");
	run($a, 'COMMIT');
	is(active(), $bobs, "$iso: one active job, bob's");

	$a->quit;
	$b->quit;
}

# --- The index holds whoever writes, at every isolation level --------------
end_all();
my @done = split /\n/, su(q{SELECT id FROM gestao_scouter_export_jobs ORDER BY id LIMIT 2});
is(su(q{SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = 'gestao_scouter_export_jobs'::regclass AND i.indisunique AND i.indisvalid
           AND c.relname = 'gestao_scouter_export_jobs_one_active'
           AND pg_get_expr(i.indpred, i.indrelid) LIKE '%pending%running%paused%'}), '1',
	'the unique index on the active jobs is there');
my ($st) = GsExportTest::psql_as($node, undef, qq{
	UPDATE gestao_scouter_export_jobs SET status = 'running' WHERE id = '$done[0]';
	UPDATE gestao_scouter_export_jobs SET status = 'paused' WHERE id = '$done[1]';}, dbname => $db);
is($st, '23505', 'a superuser cannot make a second job active by hand either');
is(active(), $done[0], 'the first one stays active');
end_all();
for my $iso ('READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE')
{
	end_all();
	my $x = session($node->safe_psql('postgres', 'SELECT current_user'));
	my $y = session($node->safe_psql('postgres', 'SELECT current_user'));
	run($_, "BEGIN ISOLATION LEVEL $iso; SELECT 1;") for ($x, $y);
	my (undef, $sx) = run($x, "UPDATE gestao_scouter_export_jobs SET status = 'paused' WHERE id = '$done[0]'");
	is($sx, '', "$iso: by hand, one session makes a job paused");
	$y->query_until(qr/started/, "\\echo started\nUPDATE gestao_scouter_export_jobs SET status = 'running' WHERE id = '$done[1]';\n");
	GsExportTest::wait_for('the second writer to wait', sub {
		su(q{SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
		       AND query LIKE 'UPDATE gestao_scouter_export_jobs%'}) eq '1';
	}, 30);
	run($x, 'COMMIT');
	my (undef, $sy) = finish($y);
	like($sy, qr/^(23505|40001)$/, "$iso: another session making another job active at once fails ($sy)");
	run($y, 'ROLLBACK');
	is(active(), $done[0], "$iso: one active job");
	$x->quit;
	$y->quit;
}

# The error the API raises for a row the index refused.
end_all();
my $one = su(qq{SET ROLE alice; $create});
my ($cs, undef, $ce) = GsExportTest::psql_as($node, undef,
	q{SELECT _gs_export_active_conflict('gestao_scouter_export_jobs_one_active', NULL)}, dbname => $db);
is($cs, '55000', '_gs_export_active_conflict: 55000 for the index');
like($ce, qr/HINT:\s+.*\Q$one\E/, '_gs_export_active_conflict: the hint names the active job');
($cs) = GsExportTest::psql_as($node, undef,
	q{SELECT _gs_export_active_conflict('some_other_constraint', NULL)}, dbname => $db);
is($cs, '', '_gs_export_active_conflict: nothing for another constraint (the handler re-raises it)');
($cs, undef, $ce) = GsExportTest::psql_as($node, undef,
	qq{SELECT _gs_export_active_conflict('gestao_scouter_export_jobs_one_active', '$one')}, dbname => $db);
is($cs, '55000', '_gs_export_active_conflict: 55000 even when the job in the way has ended since');
like($ce, qr/HINT:\s+Try again/, '... saying to try again');
for my $user (qw(alice bob))
{
	my ($s) = GsExportTest::psql_as($node, $user,
		q{SELECT _gs_export_latest_active_job(NULL)}, dbname => $db);
	is($s, '42501', "$user may not call _gs_export_latest_active_job");
}

# --- Jobs already active several at a time ---------------------------------
# TabuladorMax's Edge Function left jobs running for ever; 1.0 let two
# sessions get a job each.  The newest active job is kept; the others
# become failed, resumable, with the reason; a WARNING names them.
my $olds = q{
	INSERT INTO gestao_scouter_export_jobs (id, status, start_date, created_at, processing_date, total_leads, exported_leads) VALUES
	  ('00000000-0000-4000-8000-000000000001', 'running',   '2025-06-30', now() - interval '400 days', '2025-03-01', 7, 7),
	  ('00000000-0000-4000-8000-000000000002', 'paused',    '2025-06-30', now() - interval '10 days',  '2025-05-01', 3, 2),
	  ('00000000-0000-4000-8000-000000000003', 'running',   '2025-06-30', now() - interval '1 day',    NULL, 0, 0),
	  ('00000000-0000-4000-8000-000000000004', 'completed', '2025-06-30', now(),                       NULL, 0, 0),
	  ('00000000-0000-4000-8000-000000000005', 'failed',    '2025-06-30', now() - interval '2 days',   NULL, 0, 0);
};
my $summary = q{SELECT string_agg(right(id::text, 1) || ':' || status || ':' || total_leads || ':'
                                  || coalesce(processing_date::text, '-'), ' ' ORDER BY id)
                  FROM gestao_scouter_export_jobs};
my $want = '1:failed:7:2025-03-01 2:failed:3:2025-05-01 3:running:0:- 4:completed:0:- 5:failed:0:-';
for my $how ('CREATE EXTENSION', 'ALTER EXTENSION UPDATE from 1.0')
{
	my $d = $how =~ /UPDATE/ ? 'upgraded' : 'fresh';
	$node->safe_psql('postgres', "CREATE DATABASE $d");
	$node->safe_psql($d, $tabuladormax);
	my ($ret, $out, $err);
	if ($how =~ /UPDATE/)
	{
		$node->safe_psql($d, "CREATE EXTENSION gs_export VERSION '1.0'");
		$node->safe_psql($d, $olds);
		($ret, $out, $err) = $node->psql($d, 'ALTER EXTENSION gs_export UPDATE');
	}
	else
	{
		$node->safe_psql($d, $olds);
		($ret, $out, $err) = $node->psql($d, 'CREATE EXTENSION gs_export');
	}
	is($ret, 0, "$how: succeeds with three active jobs in the table");
	is($node->safe_psql($d, q{SELECT extversion FROM pg_extension WHERE extname = 'gs_export'}),
		GsExportTest::current_version(), "$how: version " . GsExportTest::current_version());
	is($node->safe_psql($d, $summary), $want,
		"$how: the newest active job stays; the others are failed, their counters and position kept");
	like($err, qr/WARNING:\s+stopped 2 of 3 active export jobs/, "$how: a WARNING says so");
	like($err, qr/DETAIL:.*0003, the newest, stays running.*0001 \(was running\), .*0002 \(was paused\)/s,
		"$how: its DETAIL names the job kept and those stopped");
	like($node->safe_psql($d, q{SELECT pause_reason FROM gestao_scouter_export_jobs
	                            WHERE id = '00000000-0000-4000-8000-000000000002'}),
		qr/^was paused when gs_export 1\.1 was installed.*00000000-0000-4000-8000-000000000003.*gs_export_resume/,
		"$how: pause_reason says why, which job was kept, and how to go on");
	my ($s) = GsExportTest::psql_as($node, undef,
		q{UPDATE gestao_scouter_export_jobs SET status = 'running' WHERE id = '00000000-0000-4000-8000-000000000001'},
		dbname => $d);
	is($s, '23505', "$how: the index is in force");
	# a failed one goes on once the kept one has ended
	$node->safe_psql($d, q{
		INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
		VALUES ('http://127.0.0.1:9', 'k', true, true);
		UPDATE gestao_scouter_export_jobs SET status = 'completed' WHERE id = '00000000-0000-4000-8000-000000000003'});
	is($node->safe_psql($d, q{BEGIN; SELECT gs_export_resume('00000000-0000-4000-8000-000000000002');
		SELECT status || ':' || total_leads || ':' || processing_date FROM gestao_scouter_export_jobs
		 WHERE id = '00000000-0000-4000-8000-000000000002'; ROLLBACK;}), "\nrunning:3:2025-05-01",
		"$how: a stopped job resumes from where it was");
}

ok(!$node->log_contains(qr/terminated by signal|server process .* was terminated/),
	'no backend crashed');
$node->stop;
done_testing();
