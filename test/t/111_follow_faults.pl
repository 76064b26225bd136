# 111_follow_faults.pl: a follower (gs_export_follow) under faults.  Each
# case ends with the remote equal to the leads (every mapped column) and
# the follower's counters equal to its sync_events:
#   0. a writer open across gs_export_follow: one that wrote a lead before
#      the call and commits after it, and a REPEATABLE READ one whose
#      snapshot predates the call and that writes after the backfill
#      passed its lead: both delivered (the backfill and the capture
#      overlap, no gap);
#   1. kill -9 of the follower's worker mid-burst (crash recovery; the
#      launcher starts it again);
#   2. an immediate shutdown mid-burst;
#   3. the remote down: (a) for less than the retries last: the follower
#      rides it out, never paused; (b) for longer: the follower pauses,
#      saying the remote is unavailable, and a person resumes it; the
#      application's writes succeed meanwhile;
#   4. a follower paused with 100,000 changes waiting (backlog, lag),
#      resumed: drained, backlog and lag back to 0; (4b) 10,000 single-row
#      transactions on distinct leads while it follows: none lost;
#   5. delete and re-insert of the same ids, many times, with a soft delete
#      (on_delete an object): the leads end present and current;
#   6. an upgrade: a job created on 1.1 with the 1.2 library waits for
#      ALTER EXTENSION gs_export UPDATE, then completes; a follower on 1.2
#      then keeps the remote equal.
use strict;
use warnings;

use GsExportTest;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $t_start = time;
my $remote = GsExportTest::remote();
# kill -9 of a worker needs the postmaster's crash restart (off in TAP).
my $node = GsExportTest::local_node('local', conf => "restart_after_crash = on\n");
GsExportTest::configure($node, $remote);

my $N = 10000;
GsExportTest::insert_leads($node, qq{
	SELECT g, CASE WHEN g % 100 = 0 THEN NULL ELSE now() - g * interval '1 minute' END, 'lead ' || g
	  FROM generate_series(1, $N) g
});

my $cur = $node;
sub sql { return $cur->safe_psql('postgres', $_[0]); }

# Wait until the remote equals the leads of $where (every mapped column).
sub wait_equal
{
	my ($what, $where, $timeout) = @_;
	$where //= 'true';
	my @bad;
	my $ok = eval {
		GsExportTest::wait_for($what, sub {
			@bad = GsExportTest::mismatches($cur, $remote, $where);
			return !@bad;
		}, $timeout // 60);
	};
	ok($ok, "$what: the remote equals the leads")
	  or diag("differ: " . join(',', @bad[0 .. ($#bad < 20 ? $#bad : 19)]));
}

# The job's counters against its sync_events.
sub counts_match
{
	my ($what, $job) = @_;
	is(sql(qq{
		SELECT j.exported_leads || '/' || j.deleted_leads || '/' || j.error_leads
		  FROM gestao_scouter_export_jobs j WHERE j.id = '$job'}),
	   sql(qq{
		SELECT count(*) FILTER (WHERE event_type = 'update' AND status = 'success') || '/' ||
		       count(*) FILTER (WHERE event_type = 'delete' AND status = 'success') || '/' ||
		       count(*) FILTER (WHERE status = 'error')
		  FROM sync_events WHERE job_id = '$job'}),
	   "$what: counters equal the sync_events");
}

# The follower's sync_events so far.
sub events { my ($job) = @_; return sql("SELECT count(*) FROM sync_events WHERE job_id = '$job'"); }

# A burst of changes from its own session: 100 transactions, each updating
# 150 leads of 1..5000, inserting 50 new ones (ids from $base), deleting
# 25 of those the transaction before inserted and 20 of the first leads
# from $del_from; about 24,500 changes, spread over a second or two.
# Returns the IPC::Run handle (the session may be cut by the case).
sub start_burst
{
	my ($base, $del_from) = @_;
	my $burst = qq{DO \$burst\$
BEGIN
	FOR i IN 1..100 LOOP
		UPDATE leads SET name = name || '+', age = age + 1
		 WHERE id BETWEEN (i * 150) % 5000 + 1 AND (i * 150) % 5000 + 150;
		INSERT INTO leads (id, updated_at, name, age, raw, sync_source)
		SELECT $base + i * 100 + k, now(), 'burst ' || i, k, jsonb_build_object('k', k), 'bitrix'
		  FROM generate_series(0, 49) k;
		DELETE FROM leads WHERE id BETWEEN $base + (i - 1) * 100 AND $base + (i - 1) * 100 + 24;
		DELETE FROM leads WHERE id BETWEEN $del_from + (i - 1) * 20 AND $del_from + i * 20 - 1;
		COMMIT;
		PERFORM pg_sleep(0.01);
	END LOOP;
END
\$burst\$;};
	my ($out, $err) = ('', '');
	return IPC::Run::start([ 'psql', '-X', '-q', '-d', $cur->connstr('postgres'), '-c', $burst ],
		'>', \$out, '2>', \$err);
}

###########################################################################
# 0. A writer open across gs_export_follow.  Writer A (REPEATABLE READ)
#    updated lead 5 before the call and commits after it; writer B
#    (REPEATABLE READ) took its snapshot before the call and updates lead
#    6 after the backfill sent it.  The call waits for A (the capture
#    triggers lock leads against writers in flight); if it did not, the
#    backfill would send lead 5 as it was and A's change would be lost.
###########################################################################
my $wa = $node->background_psql('postgres', on_error_stop => 1);
my $wb = $node->background_psql('postgres', on_error_stop => 1);
my $fc = $node->background_psql('postgres', on_error_stop => 1);
$wb->query_safe(q{BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM leads;});
$wa->query_safe(q{BEGIN ISOLATION LEVEL REPEATABLE READ; UPDATE leads SET name = 'writer A' WHERE id = 5;});
my $fc_pid = $fc->query_safe('SELECT pg_backend_pid()');
$fc->query_until(qr/calling/, qq{\\echo calling\nSELECT gs_export_follow('{"batch_size": 200}');\n});
my $how = GsExportTest::wait_for('the call to wait for writer A, or the backfill to send lead 5', sub {
	return 'the call waits' if sql("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $fc_pid") eq 't';
	return 'lead 5 sent' if $remote->count('id = 5') > 0;
	return undef;
});
note("writer A still open: $how");
$wa->query_safe('COMMIT');
my ($job) = $fc->query_safe("SELECT 'returned'") =~ /([0-9a-f-]{36})/;
like($job // '', qr/^[0-9a-f-]{36}$/, 'gs_export_follow returned once writer A was done');
GsExportTest::wait_true($node, "SELECT pass_kind = 'follow' FROM gestao_scouter_export_jobs WHERE id = '$job'", 60);
ok($remote->count('id = 6') == 1, 'the backfill sent lead 6 before writer B writes it');
$wb->query_safe(q{UPDATE leads SET name = 'writer B' WHERE id = 6; COMMIT;});
wait_equal('writers open across gs_export_follow', undef, 30);
is($remote->count(q{(id = 5 AND name = 'writer A') OR (id = 6 AND name = 'writer B')}), 2,
	"writer A's change (made before the call) and B's (snapshot before the call) are at the remote");
counts_match('backfill', $job);
$_->quit for ($wa, $wb, $fc);

###########################################################################
# 1. kill -9 of the follower's worker mid-burst.
###########################################################################
{
	my $t0 = time;
	my $e0 = events($job);
	my $h = start_burst(100000, 5001);
	GsExportTest::wait_for('the follower to work through the burst', sub { events($job) >= $e0 + 1000 });
	my $pid = GsExportTest::worker_pid($node);
	like($pid, qr/^\d+$/, "1: the follower's worker, pid $pid");
	my $burst_on = $h->pumpable;
	my $log_offset = -s $node->logfile;
	is(kill('KILL', $pid), 1, '1: SIGKILL sent to the worker' . ($burst_on ? ', the burst still writing' : ''));
	GsExportTest::wait_for('the postmaster to reinitialise',
		sub { $node->log_contains(qr/all server processes terminated; reinitializing/, $log_offset) });
	ok($node->poll_query_until('postgres', 'SELECT true'), '1: the cluster accepts connections again');
	eval { $h->finish };
	note('1: the burst was ' . ($burst_on ? 'cut by the crash' : 'over before the kill'));
	# what the crash cut short of the burst, and more, after it
	sql(q{UPDATE leads SET name = name || ' after the crash' WHERE id BETWEEN 4000 AND 4500});
	sql(q{DELETE FROM leads WHERE id BETWEEN 4501 AND 4510});
	wait_equal('1: kill -9 mid-burst');
	GsExportTest::wait_true($node, "SELECT backlog = 0 FROM gs_export_status('$job')", 30);
	counts_match('1: kill -9 mid-burst', $job);
	is(sql("SELECT status FROM gestao_scouter_export_jobs WHERE id = '$job'"), 'running', '1: the follower runs on');
	note(sprintf('1: %.1f s', time - $t0));
}

###########################################################################
# 2. An immediate shutdown mid-burst.
###########################################################################
{
	my $t0 = time;
	my $e0 = events($job);
	my $h = start_burst(200000, 7001);
	GsExportTest::wait_for('the follower to work through the burst', sub { events($job) >= $e0 + 1000 });
	my $burst_on = $h->pumpable;
	$node->stop('immediate');
	$node->start;
	eval { $h->finish };
	pass('2: immediate shutdown ' . ($burst_on ? 'mid-burst' : 'after the burst, mid-drain') . ', started again');
	sql(q{UPDATE leads SET name = name || ' after the restart' WHERE id BETWEEN 3000 AND 3500});
	wait_equal('2: immediate shutdown mid-burst');
	GsExportTest::wait_true($node, "SELECT backlog = 0 FROM gs_export_status('$job')", 30);
	counts_match('2: immediate shutdown', $job);
	note(sprintf('2: %.1f s', time - $t0));
}

###########################################################################
# 3a. The remote down for 2 s: fewer than the retries of
#     gs_export.max_retries (8, from 250 ms doubling to
#     retry_max_delay_ms = 1000, at least about 2.9 s in all): the
#     follower rides it out and is never paused.
###########################################################################
{
	$remote->faults(down_for_ms => 2000);
	ok(eval { sql(q{UPDATE leads SET name = name || ' (remote down)' WHERE id BETWEEN 1 AND 300}); 1 },
		'3a: writes to leads succeed while the remote is down');
	sql(q{DELETE FROM leads WHERE id BETWEEN 301 AND 310});
	wait_equal('3a: the remote down for 2 s');
	my $j = GsExportTest::job($node, $job);
	is($j->{status} . '/' . ($j->{pause_reason} // ''), 'running/', '3a: the follower rode it out, never paused');
	counts_match('3a: remote down for 2 s', $job);
}

###########################################################################
# 3b. The remote down for longer than the retries last
#     (gs_export.max_retries = 3, retry_max_delay_ms = 200): the follower
#     pauses itself, saying the remote is unavailable.  The capture fails
#     no write meanwhile; the backlog waits in the table; once the remote
#     is back a person resumes the follower.
###########################################################################
{
	GsExportTest::set_gucs($node, 'gs_export.max_retries' => 3, 'gs_export.retry_max_delay_ms' => 200);
	$remote->faults(down => JSON::PP::true);
	ok(eval { sql(q{UPDATE leads SET name = name || ' (remote gone)' WHERE id BETWEEN 500 AND 1500}); 1 },
		'3b: an UPDATE of 1000 leads succeeds while the remote is down');
	ok(eval { sql(q{DELETE FROM leads WHERE id BETWEEN 1501 AND 1520}); 1 }, '3b: a DELETE too');
	ok(eval { GsExportTest::insert_leads($node, q{SELECT g, now(), 'while down ' || g FROM generate_series(300001, 300050) g}); 1 },
		'3b: an INSERT too');
	is(GsExportTest::wait_status($node, $job, 'paused', 60), 'paused', '3b: the follower paused itself');
	like(sql("SELECT pause_reason FROM gestao_scouter_export_jobs WHERE id = '$job'"), qr/remote is unavailable/,
		'3b: ... saying the remote is unavailable');
	GsExportTest::wait_no_worker($node);
	ok(eval { sql(q{UPDATE leads SET age = age + 1 WHERE id BETWEEN 1600 AND 1700}); 1 },
		'3b: writes succeed while the follower is paused and the remote down');
	is(sql("SELECT backlog > 0 FROM gs_export_status('$job')"), 't', '3b: the changes wait in the backlog');
	$remote->faults(down => JSON::PP::false);
	GsExportTest::set_gucs($node, 'gs_export.max_retries' => undef, 'gs_export.retry_max_delay_ms' => undef);
	sql("SELECT gs_export_resume('$job')");
	wait_equal('3b: the remote down, the follower paused, resumed');
	GsExportTest::wait_true($node, "SELECT backlog = 0 FROM gs_export_status('$job')", 30);
	counts_match('3b: remote down, resumed', $job);
}

###########################################################################
# 4. Paused with 100,000 changes waiting.
###########################################################################
{
	sql("SELECT gs_export_pause('$job')");
	GsExportTest::wait_no_worker($node);
	my $n = sql('SELECT count(*) FROM leads');
	my $stmts = int(100000 / $n) + 1;
	sql(qq{UPDATE leads SET age = age + 1, name = name || '.'}) for 1 .. $stmts;
	my $st = sql("SELECT backlog || '/' || (lag > interval '0')::int FROM gs_export_status('$job')");
	my ($backlog, $lag) = split m{/}, $st;
	cmp_ok($backlog, '>=', 100000, "4: paused, $backlog changes waiting ($stmts UPDATEs of $n leads)");
	is($lag, '1', '4: lag > 0');
	my $t0 = time;
	sql("SELECT gs_export_resume('$job')");
	wait_equal('4: the long backlog drained', undef, 120);
	ok(eval { GsExportTest::wait_true($node, "SELECT backlog = 0 AND lag = interval '0' FROM gs_export_status('$job')", 60) },
	   '4: backlog and lag back to 0');
	note(sprintf('4: %d changes drained in %.1f s', $backlog, time - $t0));
	counts_match('4: long backlog', $job);
}

###########################################################################
# 4b. 10,000 single-row transactions, each changing another lead (a third
#     of them deletes), while the follower takes and reads: every one is
#     delivered.  A change that commits between the snapshot the worker's
#     transaction starts with and the take's must still be read: its
#     queue rows are taken and consumed with the batch.
###########################################################################
{
	my $t0 = time;
	sql(q{DO $single$
BEGIN
	FOR i IN 1..10000 LOOP
		IF i % 3 = 0 THEN
			DELETE FROM leads WHERE id = i;
		ELSE
			UPDATE leads SET name = 'single ' || i WHERE id = i;
		END IF;
		COMMIT;
	END LOOP;
END
$single$;});
	wait_equal('4b: 10,000 single-row transactions', undef, 30);
	GsExportTest::wait_true($node, "SELECT backlog = 0 FROM gs_export_status('$job')", 30);
	counts_match('4b: single-row transactions', $job);
	note(sprintf('4b: %.1f s', time - $t0));
}

###########################################################################
# 5. Delete and re-insert of the same ids, many times, with a soft delete.
#    Leads 500042..500046 end present, 500047..500049 end deleted.  A lead re-inserted
#    after its soft delete reached the remote is upserted: its mapped
#    columns (compareceu among them) are the lead's again.  The remote's
#    own sync_status, which the soft delete set and no lead column maps,
#    gets its default again: the upsert names it without a value
#    (Prefer: missing=default).
###########################################################################
{
	sql("SELECT gs_export_pause('$job')");
	GsExportTest::wait_no_worker($node);
	sql("SELECT gs_export_delete('$job')");
	my $soft = sql(q{SELECT gs_export_follow('{"backfill": false, "on_delete": {"compareceu": true, "sync_status": "pending"}}')});
	GsExportTest::insert_leads($node, q{SELECT g, now(), 'to be reborn ' || g FROM generate_series(500042, 500049) g});
	wait_equal('5: leads 500042..500049 sent');
	sql(q{DELETE FROM leads WHERE id BETWEEN 500042 AND 500049});
	ok(eval { GsExportTest::wait_for('leads 500042..500049 soft-deleted at the remote',
		sub { $remote->count(q{id BETWEEN 500042 AND 500049 AND compareceu AND sync_status = 'pending'}) == 8 }); },
		'5: leads 500042..500049 deleted: soft-deleted at the remote')
	  or diag($remote->{db}->safe_psql('remote', 'SELECT id, compareceu, sync_status, sync_source FROM fichas WHERE id BETWEEN 500040 AND 500050'));
	sql(q{DO $reborn$
BEGIN
	FOR i IN 1..60 LOOP
		INSERT INTO leads (id, updated_at, name, age, compareceu, sync_source)
		SELECT g, now(), 'reborn ' || i, i, false, 'bitrix' FROM generate_series(500042, 500049) g;
		COMMIT;
		DELETE FROM leads WHERE id BETWEEN 500042 AND 500049;
		COMMIT;
	END LOOP;
	INSERT INTO leads (id, updated_at, name, age, compareceu, sync_source)
	SELECT g, now(), 'reborn last', 61, false, 'bitrix' FROM generate_series(500042, 500049) g;
	COMMIT;
	DELETE FROM leads WHERE id BETWEEN 500047 AND 500049;
END
$reborn$;});
	my @bad;
	my $ok = eval {
		GsExportTest::wait_for('the remote to settle', sub {
			@bad = GsExportTest::mismatches($node, $remote, 'true');
			return "@bad" eq '500047 500048 500049'
			  && $remote->count(q{id BETWEEN 500047 AND 500049 AND compareceu AND sync_status = 'pending'}) == 3;
		}, 60);
	};
	ok($ok, '5: the remote equals the leads but for 500047..500049, soft-deleted')
	  or diag("differ: @bad");
	is($remote->count(q{id BETWEEN 500042 AND 500046 AND name = 'reborn last' AND NOT compareceu}), 5,
		'5: 500042..500046 present and current, compareceu the lead\'s again');
	GsExportTest::wait_true($node, "SELECT backlog = 0 FROM gs_export_status('$soft')", 30);
	counts_match('5: delete and re-insert, soft delete', $soft);
	# the upsert names the soft delete's columns (missing=default): the
	# remote's default comes back
	is($remote->count(q{id BETWEEN 500042 AND 500046 AND sync_status IS DISTINCT FROM 'pending'}), 5,
		'5: the soft delete\'s sync_status is undone when the lead comes back');
	sql("SELECT gs_export_pause('$soft')");
	GsExportTest::wait_no_worker($node);
	sql("SELECT gs_export_delete('$soft')");
}
$node->stop;

###########################################################################
# 6. An upgrade.  The 1.2 library runs no job on a 1.1 schema (it asks for
#    ALTER EXTENSION gs_export UPDATE, 050_upgrade), so a job created on
#    1.1 waits; the update lets it run to completion; then a follower.
#    (No follower can run across this update: followers are new in 1.2.
#    A no-op ALTER EXTENSION gs_export UPDATE TO '1.2' under a running
#    follower runs no script, so it is not tested: it would prove nothing.)
###########################################################################
{
	$remote->truncate;
	$remote->reset;
	my $up = PostgreSQL::Test::Cluster->new('up');
	$up->init;
	$up->append_conf('postgresql.conf', q{
shared_preload_libraries = 'gs_export'
gs_export.database = 'postgres'
gs_export.retry_max_delay_ms = 1000
gs_export.late_request_ms = 3000
log_min_messages = info
});
	$up->start;
	$cur = $up;
	sql(slurp_file("$GsExportTest::TESTDIR/sql/tabuladormax.sql"));
	sql('CREATE INDEX ON leads (updated_at, id)');
	sql(q{CREATE EXTENSION gs_export VERSION '1.1'});
	GsExportTest::configure($up, $remote);
	GsExportTest::insert_leads($up, q{
		SELECT g, now() - interval '1 minute' - g * interval '7 minutes', 'old ' || g FROM generate_series(1, 1000) g});
	my $log_offset = -s $up->logfile;
	# Through 1.1's API when the 1.2 library lets it; else as 1.1's
	# _gs_export_create writes the job (a job made before the binaries
	# were replaced).
	my ($export, $err) = ('', '');
	$up->psql('postgres', q{SELECT gs_export_create(current_date, NULL, '{"batch_size": 100}')},
		stdout => \$export, stderr => \$err);
	if ($export !~ /^[0-9a-f-]{36}$/)
	{
		note("6: gs_export_create on the 1.1 schema with the 1.2 library failed: $err");
		$export = sql(q{
			INSERT INTO gestao_scouter_export_jobs
			       (status, start_date, end_date, options, batch_size, delay_ms, time_zone,
			        owner_role, total_leads, exported_leads, error_leads, effective_options)
			SELECT 'pending', current_date, NULL, '{"batch_size": 100}', (r ->> 'batch_size')::integer,
			       (r ->> 'delay_ms')::integer, r ->> 'time_zone', current_user, 0, 0, 0, r
			  FROM _gs_export_resolve_options('{"batch_size": 100}') r
			RETURNING id});
	}
	GsExportTest::wait_for('the launcher to ask for ALTER EXTENSION gs_export UPDATE',
		sub { $up->log_contains(qr/^(?!.*\bstatement: ).*ALTER EXTENSION gs_export UPDATE/m, $log_offset) });
	is(sql("SELECT status FROM gestao_scouter_export_jobs WHERE id = '$export'") . '/' . $remote->count, 'pending/0',
		'6: on 1.1 the job waits for the update');
	sql('ALTER EXTENSION gs_export UPDATE');
	is(sql(q{SELECT extversion FROM pg_extension WHERE extname = 'gs_export'}), GsExportTest::current_version(),
		'6: updated');
	is(GsExportTest::wait_status($up, $export, 'completed|failed|paused', 60), 'completed', '6: the 1.1 job completed');
	wait_equal('6: the export after the update');
	is(sql("SELECT exported_leads || '/' || error_leads FROM gestao_scouter_export_jobs WHERE id = '$export'"),
		'1000/0', '6: every lead counted once');
	my $f = sql(q{SELECT gs_export_follow('{"backfill": false}')});
	GsExportTest::wait_true($up, "SELECT status = 'running' FROM gestao_scouter_export_jobs WHERE id = '$f'", 30);
	sql(q{UPDATE leads SET name = name || ' (1.2)' WHERE id BETWEEN 1 AND 100});
	sql(q{DELETE FROM leads WHERE id BETWEEN 101 AND 110});
	GsExportTest::insert_leads($up, q{SELECT g, now(), 'new ' || g FROM generate_series(2001, 2020) g});
	wait_equal('6: a follower after the update');
	GsExportTest::wait_true($up, "SELECT backlog = 0 FROM gs_export_status('$f')", 30);
	counts_match('6: the follower after the update', $f);
	is(sql("SELECT deleted_leads FROM gestao_scouter_export_jobs WHERE id = '$f'"), 10, '6: 10 deletes');
	$up->stop;
}

note(sprintf('111_follow_faults: %.1f s', time - $t_start));
$remote->stop;
done_testing();
