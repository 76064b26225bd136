# 113_verify_repair.pl: the proof (contract 1.2, "Proof").
#   - gs_export_retry_errors: an export whose remote refuses some leads (a
#     CHECK constraint there) leaves error rows; once the constraint is
#     gone, a retry sends exactly those leads again, as they are now, and
#     their error rows get resolved_at; the remote equals the leads; a
#     second retry has nothing to do (55000);
#   - bad input and visibility: 42704 for an unknown job or another user's,
#     22023 for a repair of a job that is not a verify, 42501 for a role
#     outside gs_export;
#   - a retry for a remote table a follower keeps goes into the follower's
#     queue (its id is returned), and resolves the error rows all the same.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

my $N = 600;
GsExportTest::insert_leads($node, qq{
	SELECT g, now() - g * interval '1 second', 'lead ' || g FROM generate_series(1, $N) g
});

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub rsql { return $remote->{db}->safe_psql('remote', $_[0]); }

sub wait_equal
{
	my ($what, $where) = @_;
	my @bad;
	my $ok = eval {
		GsExportTest::wait_for($what, sub {
			@bad = GsExportTest::mismatches($node, $remote, $where // 'true');
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
GsExportTest::wait_true($node, "SELECT count(*) = 0 FROM gestao_scouter_export_errors WHERE job_id = '$export2' AND resolved_at IS NULL", 60);
pass('... and its error rows get resolved_at');
wait_equal('after the retry through the follower');
is(sql("SELECT count(*) FROM gestao_scouter_export_jobs WHERE kind = 'retry'"), 1, '... no retry job of its own');
sql("SELECT gs_export_pause('$follower')");
GsExportTest::wait_no_worker($node);
sql("SELECT gs_export_delete('$follower')");

done_testing();
