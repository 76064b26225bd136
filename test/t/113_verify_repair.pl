# 113_verify_repair.pl: the proof (contract 1.2, "Proof").
#   - gs_export_verify on a remote equal to the leads finds nothing, by
#     version and by content (numbers, timestamps in another time zone,
#     JSON: normalised); on a tampered remote (rows deleted, rows edited,
#     an updated_at edited newer, rows of ours that are no lead, leads
#     deleted, rows of another source, leads changed after the export) it
#     finds exactly each kind, by version and by content; gs_export_repair
#     makes the remote equal (rows of another source untouched), and a
#     verify finds nothing again;
#   - gs_export_retry_errors: an export whose remote refuses some leads (a
#     CHECK constraint there) leaves error rows; once the constraint is
#     gone, a retry sends exactly those leads again, as they are now, and
#     their error rows get resolved_at; the remote equals the leads; a
#     second retry has nothing to do (55000);
#   - bad input and visibility: 42704 for an unknown job or another user's,
#     22023 for a repair of a job that is not a verify or a bad option,
#     42501 for a role outside gs_export, 55000 for a repair of a verify
#     that found nothing;
#   - a retry for a remote table a follower keeps goes into the follower's
#     queue (its id is returned), and resolves the error rows all the same.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use HTTP::Tiny;

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

my $N = 600;
GsExportTest::insert_leads($node, qq{
	SELECT g, now() - g * interval '1 second', 'lead ' || g FROM generate_series(1, $N) g
});

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub rsql { return $remote->{db}->safe_psql('remote', $_[0]); }

# Wait until the remote equals the leads (every mapped column), but for
# the remote rows of another source.
sub wait_equal
{
	my ($what) = @_;
	my @bad;
	my $ok = eval {
		GsExportTest::wait_for($what, sub {
			my %other = map { $_ => 1 } split /,/,
			  rsql(q{SELECT string_agg(id::text, ',') FROM fichas WHERE sync_source <> 'tabuladormax'});
			@bad = grep { !$other{$_} } GsExportTest::mismatches($node, $remote, 'true');
			return !@bad;
		}, 60);
	};
	ok($ok, "$what: the remote equals the leads")
	  or diag("differ: " . join(',', @bad[0 .. ($#bad < 20 ? $#bad : 19)]));
}

sql(q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE bob LOGIN;
	CREATE ROLE outsider LOGIN;
	GRANT gs_export_user TO alice, bob;
	GRANT SELECT ON leads TO alice, bob, outsider;
});

# --- retry ---------------------------------------------------------------
# The remote refuses every lead whose id ends in 13 or 37 of each hundred.
rsql(q{ALTER TABLE fichas ADD CONSTRAINT refuse_some CHECK (id % 100 NOT IN (13, 37))});
my $refused = 2 * $N / 100;
my (undef, $export) = GsExportTest::psql_as($node, 'alice', q{SELECT gs_export_create(current_date, NULL, '{"batch_size": 100}')});
like($export, qr/^[0-9a-f-]{36}$/, 'an export by alice');
GsExportTest::wait_status($node, $export, 'completed');
is(sql("SELECT count(DISTINCT lead_id) FROM gestao_scouter_export_errors WHERE job_id = '$export' AND resolved_at IS NULL"),
   $refused, "the export: $refused error rows, unresolved");
is($remote->count, $N - $refused, 'the others at the remote');

# the refused leads change meanwhile: the retry sends them as they are now
sql(q{UPDATE leads SET name = name || ' (changed)' WHERE id % 100 IN (13, 37)});

my ($rc, $out, $err) = GsExportTest::psql_as($node, 'bob', "SELECT gs_export_retry_errors('$export')");
is($rc, '42704', "another user's job: 42704");
($rc, $out, $err) = GsExportTest::psql_as($node, 'outsider', "SELECT gs_export_retry_errors('$export')");
is($rc, '42501', 'a role outside gs_export: 42501');
($rc, $out, $err) = GsExportTest::psql_as($node, 'alice', "SELECT gs_export_retry_errors(gen_random_uuid())");
is($rc, '42704', 'an unknown job: 42704');
($rc, $out, $err) = GsExportTest::psql_as($node, 'alice', "SELECT gs_export_repair('$export')");
is($rc, '22023', 'a repair of a job that is not a verify: 22023');
like($err, qr/not a verify job/, '... saying so');

rsql(q{ALTER TABLE fichas DROP CONSTRAINT refuse_some});
($rc, $out, $err) = GsExportTest::psql_as($node, 'alice', "SELECT gs_export_retry_errors('$export')");
is($rc, '', 'gs_export_retry_errors by the owner') or diag($err);
my $retry = $out;
like($retry, qr/^[0-9a-f-]{36}$/, '... returns a job id');
is(sql("SELECT kind || '/' || leads_in_range || '/' || (options ->> 'retry_of') FROM gestao_scouter_export_jobs WHERE id = '$retry'"),
   "retry/$refused/$export", "a job of kind retry over the $refused leads");
GsExportTest::wait_status($node, $retry, 'completed');
is(sql("SELECT exported_leads || '/' || error_leads FROM gestao_scouter_export_jobs WHERE id = '$retry'"),
   "$refused/0", 'the retry sent them, no error');
is(sql("SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = '$export' AND resolved_at IS NULL"),
   0, 'every error row of the export resolved');
is(sql("SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = '$export' AND resolved_at > created_at"),
   sql("SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = '$export'"), '... after they were made');
is(sql("SELECT count(*) FROM sync_events WHERE job_id = '$retry' AND status = 'success' AND event_type = 'update'"),
   $refused, 'one sync_events row per lead sent');
wait_equal('after the retry');
is($remote->count(q{name LIKE '%(changed)'}), $refused, 'the leads as they are now');
($rc, $out, $err) = GsExportTest::psql_as($node, 'alice', "SELECT gs_export_retry_errors('$export')");
is($rc, '55000', 'a second retry: nothing left to send, 55000');
like($err, qr/no unresolved error rows/, '... saying so');

# --- a retry beside a follower --------------------------------------------
rsql(q{ALTER TABLE fichas ADD CONSTRAINT refuse_some CHECK (id % 100 <> 42) NOT VALID});
sql(q{UPDATE leads SET name = name || ' again' WHERE id % 100 IN (41, 42)});
my $export2 = sql(q{SELECT gs_export_create(current_date, NULL, '{"batch_size": 100}')});
GsExportTest::wait_status($node, $export2, 'completed');
is(sql("SELECT count(*) FROM gestao_scouter_export_errors WHERE job_id = '$export2' AND resolved_at IS NULL"),
   $N / 100, 'a second export: its error rows');
my $follower = sql(q{SELECT gs_export_follow('{"backfill": false}')});
rsql(q{ALTER TABLE fichas DROP CONSTRAINT refuse_some});
my $via = sql("SELECT gs_export_retry_errors('$export2')");
is($via, $follower, 'a retry for a table a follower keeps: the follower takes it (its id)');
ok(eval { GsExportTest::wait_true($node, "SELECT count(*) = 0 FROM gestao_scouter_export_errors WHERE job_id = '$export2' AND resolved_at IS NULL", 60) },
   '... and its error rows get resolved_at');
wait_equal('after the retry through the follower');
is(sql("SELECT count(*) FROM gestao_scouter_export_jobs WHERE kind = 'retry'"), 1, '... no retry job of its own');
sql("SELECT gs_export_pause('$follower')");
GsExportTest::wait_no_worker($node);
sql("SELECT gs_export_delete('$follower')");

# --- verify and repair ----------------------------------------------------
# The kinds a verify found: "kind:ids kind:ids ...".
sub diffs
{
	my ($job) = @_;
	return sql(qq{
		SELECT string_agg(kind || ':' || ids, ' ' ORDER BY kind)
		  FROM (SELECT kind, string_agg(lead_id::text, ',' ORDER BY lead_id) AS ids
		          FROM gestao_scouter_export_diffs WHERE job_id = '$job' GROUP BY kind) d});
}

sub verify
{
	my ($options, $user) = @_;
	my ($rc, $out, $err) = GsExportTest::psql_as($node, $user, "SELECT gs_export_verify('$options')");
	die "gs_export_verify: $err" if $rc ne '';
	GsExportTest::wait_status($node, $out, 'completed', 60);
	return $out;
}

wait_equal('before the verify');
# the remote answers in another time zone: timestamps are compared as instants
$remote->{db}->safe_psql('postgres', q{ALTER DATABASE remote SET timezone TO 'America/Sao_Paulo'});
# (the stand-in's pooled connections end, the new ones take it)
$remote->{db}->safe_psql('postgres', q{
	SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	 WHERE datname = 'remote' AND pid <> pg_backend_pid()});
ok(eval {
	GsExportTest::wait_for('timestamps at -03:00', sub {
		my $res = HTTP::Tiny->new->get($remote->url . '/rest/v1/fichas?select=criado&id=eq.100',
			{ headers => { apikey => $GsExportTest::API_KEY,
					Authorization => "Bearer $GsExportTest::API_KEY" } });
		return $res->{content} =~ /-03:00"/;
	}, 30);
}, 'the remote answers timestamps at -03:00 (the leads were sent at +00:00)');
my $clean = verify('{"compare": "content", "batch_size": 100}');
is(sql("SELECT kind || '/' || total_leads || '/' || leads_in_range FROM gestao_scouter_export_jobs WHERE id = '$clean'"),
   "verify/$N/$N", "a verify job: $N leads compared, of $N");
is(diffs($clean), '', 'an equal remote: no difference by content');
my $clean_v = verify('{}');
is(sql("SELECT effective_options ->> 'compare' FROM gestao_scouter_export_jobs WHERE id = '$clean_v'"),
   'version', 'compare "version" by default');
is(diffs($clean_v), '', '... and none by version');
($rc, $out, $err) = GsExportTest::psql_as($node, 'alice', "SELECT gs_export_repair('$clean')");
is($rc, '42704', "a repair of another user's verify: 42704");
($rc, $out, $err) = GsExportTest::psql_as($node, undef, "SELECT gs_export_repair('$clean')");
is($rc, '55000', 'a repair of a verify that found nothing: 55000');

# Tamper with the remote, and change leads after the export.
rsql(q{
	DELETE FROM fichas WHERE id BETWEEN 1 AND 5;
	UPDATE fichas SET name = 'edited at the remote' WHERE id BETWEEN 10 AND 14;
	UPDATE fichas SET updated_at = updated_at + interval '1 hour' WHERE id IN (15, 16);
	INSERT INTO fichas (id, name, sync_source) VALUES
	    (10001, 'ours, no lead', 'tabuladormax'), (10002, 'ours, no lead', 'tabuladormax'),
	    (10003, 'ours, no lead', 'tabuladormax'),
	    (10004, 'another source', 'manual'), (10005, 'another source', 'bitrix');
});
sql(q{UPDATE leads SET name = name || ' (later)', updated_at = now() + interval '1 minute' WHERE id BETWEEN 30 AND 34});
sql(q{DELETE FROM leads WHERE id IN (40, 41)});
my $n = $N - 2;

my $by_version = verify('{"batch_size": 64}');
is(diffs($by_version),
   'different:15,16 extra:40,41,10001,10002,10003 missing:1,2,3,4,5 stale:30,31,32,33,34',
   'by version: each kind, exactly (an edit that left updated_at alone is not seen)');
my $by_content = verify('{"compare": "content"}', 'alice');
is(diffs($by_content),
   'different:10,11,12,13,14,15,16 extra:40,41,10001,10002,10003 missing:1,2,3,4,5 stale:30,31,32,33,34',
   'by content: each kind, exactly');
is(sql("SELECT total_leads FROM gestao_scouter_export_jobs WHERE id = '$by_content'"), $n,
   "$n leads compared");
is(sql("SELECT detail -> 'columns' -> 'name' ->> 'remote' FROM gestao_scouter_export_diffs WHERE job_id = '$by_content' AND lead_id = 10"),
   'edited at the remote', 'the detail: the column that differs, with the remote value');
is(sql("SELECT detail -> 'columns' ?| array['last_sync_at', 'sync_source'] FROM gestao_scouter_export_diffs WHERE job_id = '$by_content' AND lead_id = 10"),
   'f', '... the synced-at and source columns not compared');
is(sql("SELECT (detail ->> 'remote_version')::timestamptz < (detail ->> 'lead_version')::timestamptz FROM gestao_scouter_export_diffs WHERE job_id = '$by_content' AND lead_id = 30"),
   't', 'a stale row: the versions');

# Pause and resume: it goes on from its position, finding the same; a
# GET the remote answers 503 is asked again.
$remote->faults(delay_ms => 40, fail_next => 2, status => 503, method => 'GET');
my $paused = sql(q{SELECT gs_export_verify('{"compare": "content", "batch_size": 20}')});
GsExportTest::wait_true($node, "SELECT total_leads >= 100 FROM gestao_scouter_export_jobs WHERE id = '$paused'", 60);
sql("SELECT gs_export_pause('$paused')");
GsExportTest::wait_no_worker($node);
is(sql("SELECT status || '/' || (total_leads < $n) || '/' || (cursor_id > 0) FROM gestao_scouter_export_jobs WHERE id = '$paused'"),
   'paused/true/true', 'a verify paused half way, its position kept');
$remote->faults(delay_ms => 0);
sql("SELECT gs_export_resume('$paused')");
GsExportTest::wait_status($node, $paused, 'completed', 60);
is(diffs($paused), diffs($by_content), '... resumed, it finds the same, each row once');
is(sql("SELECT total_leads FROM gestao_scouter_export_jobs WHERE id = '$paused'"), $n, "... $n leads compared in all");

($rc, $out, $err) = GsExportTest::psql_as($node, 'bob', "SELECT gs_export_repair('$by_content')");
is($rc, '42704', "a repair of another user's verify: 42704");
($rc, $out, $err) = GsExportTest::psql_as($node, 'outsider', q{SELECT gs_export_verify('{}')});
is($rc, '42501', 'a verify by a role outside gs_export: 42501');
($rc, $out, $err) = GsExportTest::psql_as($node, 'alice', q{SELECT gs_export_verify('{"compare": "all"}')});
is($rc, '22023', 'a bad compare: 22023');
($rc, $out, $err) = GsExportTest::psql_as($node, 'alice', q{SELECT gs_export_verify('{"start_date": 20260101}')});
is($rc, '22023', 'a date not a string: 22023');

($rc, $out, $err) = GsExportTest::psql_as($node, 'alice', "SELECT gs_export_repair('$by_content')");
is($rc, '', 'gs_export_repair by the owner') or diag($err);
my $repair = $out;
GsExportTest::wait_status($node, $repair, 'completed', 60);
is(sql("SELECT kind || '/' || exported_leads || '/' || deleted_leads || '/' || error_leads FROM gestao_scouter_export_jobs WHERE id = '$repair'"),
   'repair/17/5/0', 'the repair: 17 leads sent, 5 rows deleted, no error');
wait_equal('after the repair');
is($remote->count(q{sync_source <> 'tabuladormax'}), 2, 'the rows of another source untouched');
is($remote->count('id IN (40, 41, 10001, 10002, 10003)'), 0, 'the extra rows of ours deleted');
is(diffs(verify('{"compare": "content"}')), '', 'a verify after the repair: nothing by content');
is(diffs(verify('{}')), '', '... nor by version');

# days: only the leads of the days are compared, and their remote rows
rsql(q{UPDATE fichas SET name = 'edited again' WHERE id IN (100, 200)});
sql(q{UPDATE leads SET updated_at = '2020-05-05 12:00+00' WHERE id = 200});
my $days = verify('{"compare": "content", "start_date": "2020-05-05", "end_date": "2020-05-05", "time_zone": "UTC"}');
is(diffs($days), 'different:200', 'with days: only the leads of those days (a lead set into the past: the remote is newer, different)');
is(sql("SELECT total_leads || '/' || leads_in_range FROM gestao_scouter_export_jobs WHERE id = '$days'"),
   '1/1', '... one lead compared, of one');

# --- a follower created while a repair runs: not refused, and it sends
# nothing before the repair has ended (the two side by side could put an
# older version of a lead after a newer one); its capture starts at once
rsql(q{UPDATE fichas SET name = 'tampered' WHERE id IN (300, 301)});
my $tampered = verify('{"compare": "content"}');
like(diffs($tampered), qr/different:.*300,301/, 'a verify finds the tampered rows');
$remote->faults(delay_ms => 1500);
my $slow_repair = sql("SELECT gs_export_repair('$tampered')");
GsExportTest::wait_status($node, $slow_repair, 'running', 30);
($rc, $out, $err) = GsExportTest::psql_as($node, undef, q{SELECT gs_export_follow('{"backfill": false}')});
is($rc, '', 'gs_export_follow while a repair runs on the same table: not refused') or diag($err);
my $late_follower = $out;
sql(q{UPDATE leads SET name = name || ' (while the repair ran)' WHERE id = 302});
ok(eval { GsExportTest::wait_for('the follower waits for the repair', sub {
	slurp_file($node->logfile) =~ /follower \Q$late_follower\E waits for repair job \Q$slow_repair\E/ }, 30) },
   '... its worker waits for the repair, saying so');
is(sql("SELECT status FROM gestao_scouter_export_jobs WHERE id = '$late_follower'"), 'pending',
   '... and it is still pending');
$remote->faults(delay_ms => 0);
GsExportTest::wait_status($node, $slow_repair, 'completed', 60);
wait_equal('the repair done, then the follower');
is($remote->count(q{id = 302 AND name LIKE '%(while the repair ran)'}), 1,
   'the change made while the follower waited was sent after the repair');

done_testing();
