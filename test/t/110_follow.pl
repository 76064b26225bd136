# 110_follow.pl: gs_export_follow keeps the remote equal to the leads.
#   - the backfill sends every lead of the scope (updated_at NULL too);
#   - then every INSERT, UPDATE and DELETE committed after the call, each
#     ending with the remote equal to the leads (every mapped column) and
#     the job's counts equal to its sync_events: an UPDATE that leaves
#     updated_at alone or sets it into the past; a transaction that
#     captured first and commits last; a delete and re-insert of one id;
#     an UPDATE that changes an id;
#   - deletes are scoped by the source column: a row of another source
#     with the same id is never touched;
#   - status: kind, backlog, lag, deleted_leads;
#   - a second call with the same options returns the follower, with
#     others 55000; gs_export_create to the same table 55000; a
#     follower does not hold back another job;
#   - the capture fails no write when its follower is paused, and the
#     backlog waits in the table;
#   - TRUNCATE leads pauses the follower, saying so; resume deletes the
#     scope's rows at the remote, then follows on;
#   - a filter: a lead that leaves it is deleted, one that enters is sent;
#     on_delete as an object soft-deletes (PATCH); "ignore" leaves it;
#   - gs_export_delete drops the capture triggers.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

my $N = 2000;
GsExportTest::insert_leads($node, qq{
	SELECT g, CASE WHEN g % 100 = 0 THEN NULL ELSE now() - g * interval '1 minute' END, 'lead ' || g
	  FROM generate_series(1, $N) g
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Wait until the remote equals the leads of $where (every mapped column).
sub wait_equal
{
	my ($what, $where, $timeout) = @_;
	$where //= 'true';
	my @bad;
	my $ok = eval {
		GsExportTest::wait_for($what, sub {
			@bad = GsExportTest::mismatches($node, $remote, $where);
			return !@bad;
		}, $timeout // 60);
	};
	ok($ok, "$what: the remote equals the leads")
	  or diag("differ: " . join(',', @bad[0 .. ($#bad < 20 ? $#bad : 19)]));
}

# The job's counters against its sync_events (a reset zeroes the counters
# and keeps the events: those since it started again).
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
		  FROM sync_events WHERE job_id = '$job'
		   AND created_at >= (SELECT started_at FROM gestao_scouter_export_jobs WHERE id = '$job')}),
	   "$what: counters equal the sync_events (since its last reset)");
}

my $job = sql(q{SELECT gs_export_follow('{"batch_size": 200}')});
like($job, qr/^[0-9a-f-]{36}$/, 'gs_export_follow returns a job id');
is(sql("SELECT kind || '/' || pass_kind FROM gestao_scouter_export_jobs WHERE id = '$job'"),
   'follow/backfill', 'a follower, in its backfill');
is(sql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'leads'::regclass AND tgname LIKE 'gs_export_follow_%'"),
   4, 'four capture triggers on leads');
wait_equal('backfill');
is($remote->count, $N, "every lead, $N, updated_at NULL included");

is(sql(q{SELECT gs_export_follow('{"batch_size": 200}')}), $job, 'the same call returns the follower');
my ($rc, $out, $err) = GsExportTest::psql_as($node, undef, q{SELECT gs_export_follow('{"batch_size": 300}')});
is($rc, '55000', 'other options for the same table: 55000');
like($err, qr/already has a follower/, '... naming it');
($rc, $out, $err) = GsExportTest::psql_as($node, undef, q{SELECT gs_export_create(current_date, NULL, '{}')});
is($rc, '55000', 'gs_export_create to the table a follower keeps: 55000');
($rc, $out, $err) = GsExportTest::psql_as($node, undef, q{SELECT gs_export_follow('{"changed_since": "2026-01-01"}')});
is($rc, '22023', 'a date option: 22023');
($rc, $out, $err) = GsExportTest::psql_as($node, undef, q{SELECT gs_export_follow('{"on_delete": "drop"}')});
is($rc, '22023', 'a bad on_delete: 22023');

GsExportTest::wait_true($node, "SELECT pass_kind = 'follow' FROM gestao_scouter_export_jobs WHERE id = '$job'", 30);

# Changes of every kind.
sql(q{UPDATE leads SET name = name || ' (same updated_at)' WHERE id BETWEEN 1 AND 50});
sql(q{UPDATE leads SET name = name || ' (into the past)', updated_at = '2001-01-01' WHERE id BETWEEN 51 AND 60});
sql(q{DELETE FROM leads WHERE id BETWEEN 61 AND 70});
GsExportTest::insert_leads($node, q{SELECT g, now(), 'new ' || g FROM generate_series(5001, 5100) g});
wait_equal('updates, deletes, inserts');
ok(eval { GsExportTest::wait_true($node, "SELECT deleted_leads = 10 FROM gestao_scouter_export_jobs WHERE id = '$job'", 30) },
   'deleted_leads: 10');
counts_match('after the changes', $job);

# A transaction that captured first and commits last.
my $late = $node->background_psql('postgres', on_error_stop => 1);
$late->query_safe(q{BEGIN; UPDATE leads SET name = 'late writer' WHERE id = 100;});
sql(q{UPDATE leads SET name = 'early writer' WHERE id = 101});
GsExportTest::wait_for('the early commit at the remote', sub { $remote->count("id = 101 AND name = 'early writer'") == 1 });
is($remote->count("id = 100 AND name = 'late writer'"), 0, 'the late one not yet: it has not committed');
$late->query_safe('COMMIT');
wait_equal('the late commit');
$late->quit;

# Delete and re-insert one id, several times; an id changed by an UPDATE.
for my $i (1 .. 3)
{
	sql(q{DELETE FROM leads WHERE id = 200});
	GsExportTest::insert_leads($node, qq{SELECT 200, now(), 'reborn $i'});
}
sql(q{UPDATE leads SET id = 9200 WHERE id = 201});
wait_equal('delete and re-insert; a changed id');

# A row of another source is never deleted.
$remote->{db}->safe_psql('remote',
	q{INSERT INTO fichas (id, name, sync_source) VALUES (777777, 'theirs', 'manual')});
sql(q{DELETE FROM leads WHERE id = 300});
GsExportTest::wait_true($node, "SELECT count(*) > 0 FROM sync_events WHERE job_id = '$job' AND lead_id = 300 AND event_type = 'delete'", 30);
is($remote->count("id = 777777"), 1, "another source's row stays");
$remote->{db}->safe_psql('remote', q{DELETE FROM fichas WHERE id = 777777});

# status
my $st = sql("SELECT kind || '/' || backlog || '/' || (lag >= interval '0')::int || '/' || deleted_leads FROM gs_export_status('$job')");
like($st, qr{^follow/\d+/1/\d+$}, "gs_export_status: kind, backlog, lag, deleted_leads ($st)");

# Paused: the writes go on, the backlog waits in the table, resume sends it.
sql("SELECT gs_export_pause('$job')");
GsExportTest::wait_no_worker($node);
sql(q{UPDATE leads SET name = name || ' (while paused)' WHERE id BETWEEN 400 AND 1400});
sql(q{DELETE FROM leads WHERE id BETWEEN 1401 AND 1410});
is(sql("SELECT backlog > 0 FROM gs_export_status('$job')"), 't', 'a paused follower has a backlog');
sql("SELECT gs_export_resume('$job')");
wait_equal('after the pause');
ok(eval { GsExportTest::wait_true($node, "SELECT backlog = 0 AND lag = interval '0' FROM gs_export_status('$job')", 30) },
   'backlog and lag back to 0');
counts_match('after the pause', $job);

# A reset backfills again and keeps the changes waiting: a lead deleted
# while paused is deleted at the remote after the backfill.
sql("SELECT gs_export_pause('$job')");
GsExportTest::wait_no_worker($node);
sql(q{DELETE FROM leads WHERE id = 500});
sql("SELECT gs_export_reset('$job')");
wait_equal('reset: the backfill, then the changes waiting');
is($remote->count('id = 500'), 0, 'a lead deleted while paused is gone at the remote after a reset');

# TRUNCATE pauses the follower; nothing is deleted until a resume.
my $before = $remote->count;
sql(q{TRUNCATE leads});
GsExportTest::wait_status($node, $job, 'paused', 30);
like(sql("SELECT pause_reason FROM gestao_scouter_export_jobs WHERE id = '$job'"), qr/truncated/,
	'TRUNCATE pauses the follower, saying so');
is($remote->count, $before, 'nothing deleted at the remote before a person decides');
GsExportTest::insert_leads($node, q{SELECT g, now(), 'after truncate ' || g FROM generate_series(1, 5) g});
sql("SELECT gs_export_resume('$job')");
wait_equal('resumed after TRUNCATE: the scope wiped, then followed');
is($remote->count, 5, 'only the leads inserted after the TRUNCATE');
counts_match('after TRUNCATE', $job);

# delete: the triggers go
sql("SELECT gs_export_pause('$job')");
GsExportTest::wait_no_worker($node);
sql("SELECT gs_export_delete('$job')");
is(sql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'leads'::regclass AND tgname LIKE 'gs_export_follow_%'"),
   0, 'gs_export_delete drops the capture triggers');
is(sql("SELECT count(*) FROM gs_export_changes"), 0, '... and its changes');

# A filter, and a soft delete.
GsExportTest::insert_leads($node, q{SELECT g, now(), 'f ' || g FROM generate_series(10, 60) g});
sql(q{UPDATE leads SET etapa = CASE WHEN id % 2 = 0 THEN 'novo' ELSE 'velho' END});
$remote->truncate;
my $f = sql(q{SELECT gs_export_follow('{"filter": {"etapa": ["novo"]}, "on_delete": {"compareceu": true}}')});
wait_equal('filtered backfill', q{etapa = 'novo'});
sql(q{UPDATE leads SET etapa = 'novo' WHERE id = 11});
sql(q{UPDATE leads SET etapa = 'velho' WHERE id = 12});
ok(eval { GsExportTest::wait_for('lead 11 sent, 12 soft-deleted', sub {
	$remote->count("id = 11") == 1 && $remote->count("id = 12 AND compareceu") == 1 }) },
   'a lead entering the filter is sent; one leaving it is soft-deleted (PATCH)');
# the remote has it before the follower records it
ok(eval { GsExportTest::wait_true($node, "SELECT deleted_leads = 1 FROM gestao_scouter_export_jobs WHERE id = '$f'", 30) },
   'one delete counted');
counts_match('filter', $f);

# TRUNCATE with a soft delete: the resume PATCHes every row of the scope.
my $rows = $remote->count;
my $del_before = sql("SELECT deleted_leads FROM gestao_scouter_export_jobs WHERE id = '$f'");
sql('TRUNCATE leads');
GsExportTest::wait_status($node, $f, 'paused', 30);
sql("SELECT gs_export_resume('$f')");
GsExportTest::wait_for('every row soft-deleted', sub { $remote->count('compareceu') == $rows });
is($remote->count, $rows, 'a soft delete keeps the rows');
ok(eval { GsExportTest::wait_true($node,
	"SELECT deleted_leads = $del_before + $rows FROM gestao_scouter_export_jobs WHERE id = '$f'", 30) },
   'each row soft-deleted is a delete');
counts_match('TRUNCATE, soft delete', $f);
GsExportTest::insert_leads($node, q{SELECT g, now(), 'again ' || g FROM generate_series(10, 60) g});
sql(q{UPDATE leads SET etapa = CASE WHEN id % 2 = 0 THEN 'novo' ELSE 'velho' END});
ok(eval { GsExportTest::wait_for('the leads inserted again sent', sub { $remote->count("name LIKE 'again %'") == 26 }) },
   'inserted again after the TRUNCATE: sent');

# A capture trigger dropped: changes may go uncaptured, the follower fails
# saying so; a reset creates it again and sends every lead again.
my $trg = sql("SELECT tgname FROM pg_trigger WHERE tgrelid = 'leads'::regclass AND tgname LIKE '%_update'");
sql("DROP TRIGGER $trg ON leads");
sql(q{UPDATE leads SET name = name || ' (uncaptured)' WHERE id = 14});
is(GsExportTest::wait_status($node, $f, 'failed', 30), 'failed', 'a follower missing a capture trigger fails');
like(sql("SELECT pause_reason FROM gestao_scouter_export_jobs WHERE id = '$f'"), qr/capture triggers/, '... saying why');
sql("SELECT gs_export_reset('$f')");
is(sql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'leads'::regclass AND tgname LIKE 'gs_export_follow_%'"),
   4, 'gs_export_reset creates it again');
ok(eval { GsExportTest::wait_for('lead 14 sent again', sub { $remote->count("id = 14 AND name LIKE '%(uncaptured)'") == 1 }) },
   '... and the backfill sends what was missed');

# DROP EXTENSION, with a follower: no CASCADE needed, the triggers go.
my ($drc, $dout, $derr) = GsExportTest::psql_as($node, undef, 'DROP EXTENSION gs_export');
is($drc, '', 'DROP EXTENSION with a follower succeeds without CASCADE') or diag($derr);
is(sql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'leads'::regclass AND tgname LIKE 'gs_export_follow_%'"),
   0, '... and takes the capture triggers with it');
is(sql(q{WITH u AS (UPDATE leads SET name = 'after drop' WHERE id = 16 RETURNING id) SELECT count(*) FROM u}),
   1, 'leads is written to as before');

done_testing();
