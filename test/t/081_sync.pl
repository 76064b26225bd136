# 081_sync.pl: gs_export_sync called by hand, again and again (no
# scheduler).  5000 leads over the 50 days before today:
#   - the first sync exports every lead;
#   - the second, nothing having changed, creates a job that exports nothing;
#   - after 1 % of the leads changed, the next exports exactly those, once;
#   - a call while a job is pending, running or paused returns NULL and
#     creates nothing; the job in the way goes on;
#   - a sync that fails moves the mark nothing: the next one sends what it
#     did not;
#   - deleting the completed syncs does not take the mark back;
#   - other fields are another scope, with a mark of its own: all leads;
#   - a role of gs_export_user gets a job of its own (owner_role), with its
#     own mark.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = GsExportTest::remote();
# autovacuum's transactions would lower the changes horizon now and then
my $node = GsExportTest::local_node('local', conf => "autovacuum = off\n");
GsExportTest::configure($node, $remote);

my $N = 5000;
GsExportTest::insert_leads($node, qq{
	SELECT g, now() - interval '1 day' - (g % 50) * interval '1 day' - g * interval '1 second',
	       'lead ' || g
	  FROM generate_series(1, $N) g
});

# no look-back: each sync sends exactly what changed since the last
# (096_sync_blind_spots tests the look-back)
my $opts = q{'{"batch_size": 500, "delay_ms": 0, "look_back": "0 seconds"}'};

sub sync
{
	my ($o, $as) = @_;
	my $sql = "SELECT gs_export_sync(" . ($o // $opts) . ")";
	$sql = "SET ROLE $as; $sql" if $as;
	return $node->safe_psql('postgres', $sql);
}

# Run one sync to its end; returns (job row, {lead id => times sent}).
sub run_sync
{
	my ($what, $o, $as) = @_;
	$remote->reset;
	my $job = sync($o, $as);
	like($job, qr/^[0-9a-f-]{36}$/, "$what: a job");
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 120), 'completed',
		"$what: completed");
	my %sent;
	$sent{$_}++ for map { @{ $_->{ids} // [] } } @{ $remote->requests };
	return (GsExportTest::job($node, $job), \%sent);
}

sub ids_sql
{
	my ($where) = @_;
	return $node->safe_psql('postgres',
		"SELECT string_agg(id::text, ',' ORDER BY id) FROM leads WHERE $where") // '';
}

sub sent_list { my ($sent) = @_; return join(',', sort { $a <=> $b } keys %$sent); }

sub mark_of
{
	my ($job) = @_;
	return $node->safe_psql('postgres',
		"SELECT synced_through FROM gestao_scouter_export_jobs WHERE id = '$job'");
}

sub since_of
{
	my ($job) = @_;
	return $node->safe_psql('postgres',
		"SELECT (effective_options ->> 'changed_since')::timestamptz FROM gestao_scouter_export_jobs WHERE id = '$job'");
}

# 1. The first sync: every lead.
my ($j1, $sent) = run_sync('first sync');
is($j1->{total_leads}, $N, 'first sync: every lead');
is($j1->{exported_leads}, $N, 'first sync: all exported');
is(scalar(keys %$sent), $N, 'first sync: every lead sent');
is(scalar(grep { $_ > 1 } values %$sent), 0, 'first sync: each once');
is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], [], 'first sync: the remote equals the source');
ok($j1->{is_sync}, 'a sync job');
is($j1->{start_date}, '294276-12-29', 'from the end of time');
is($j1->{end_date}, undef, 'down to the oldest lead');
ok(!exists $j1->{effective_options}{changed_since}, 'the first sync has no changed_since');
ok(defined $j1->{synced_through}, 'synced_through is set');

# 2. Nothing changed: a job that exports nothing.
my ($j2, $sent2) = run_sync('second sync, nothing changed');
is($j2->{total_leads}, 0, 'second sync: no lead');
is(scalar(keys %$sent2), 0, 'second sync: nothing sent');
is(since_of($j2->{id}), mark_of($j1->{id}), "second sync: changed_since is the first's synced_through");

# 3. 1 % of the leads changed: exactly those.
my $changed = $node->safe_psql('postgres', q{
	UPDATE leads SET updated_at = now(), name = name || ' (1 %)' WHERE id % 100 = 7 RETURNING id});
my $n_changed = scalar(split /\n/, $changed);
is($n_changed, $N / 100, '1 % of the leads changed');
my ($j3, $sent3) = run_sync('third sync, 1 % changed');
is($j3->{total_leads}, $n_changed, 'third sync: exactly the changed leads');
is($j3->{leads_in_range}, $n_changed, 'third sync: leads_in_range counts only them');
is(sent_list($sent3), ids_sql('id % 100 = 7'), 'third sync: the changed leads, none else');
is(scalar(grep { $_ > 1 } values %$sent3), 0, 'third sync: each once');
is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], [], 'third sync: the remote equals the source');

# 4. A job in the way: NULL, nothing created; then it goes on.
$node->safe_psql('postgres', q{
	UPDATE leads SET updated_at = now(), name = name || ' (slow)' WHERE id IN (11, 12, 13)});
$remote->reset;
my $slow = sync(q{'{"batch_size": 1, "delay_ms": 1500, "look_back": "0 seconds"}'});
like($slow, qr/^[0-9a-f-]{36}$/, 'a slow sync: a job');
my $before = $node->safe_psql('postgres', 'SELECT count(*) FROM gestao_scouter_export_jobs');
is(sync(), '', 'while it is pending or running: NULL');
GsExportTest::wait_status($node, $slow, 'running', 30);
is(sync(), '', 'while it is running: NULL');
$node->safe_psql('postgres', "SELECT gs_export_pause('$slow')");
is(sync(), '', 'while it is paused: NULL');
my ($st, $out, $err) = GsExportTest::psql_as($node, undef, q{SELECT gs_export_sync('{"delay_ms": -1}')});
is($st, '22023', 'a bad option is still an error');
$node->safe_psql('postgres', 'UPDATE gestao_scouter_config SET sync_enabled = false');
($st, $out, $err) = GsExportTest::psql_as($node, undef, 'SELECT gs_export_sync()');
is($st, '55000', 'no config is still an error, though a job is active');
$node->safe_psql('postgres', 'UPDATE gestao_scouter_config SET sync_enabled = true');
is($node->safe_psql('postgres', 'SELECT count(*) FROM gestao_scouter_export_jobs'), $before,
	'no job was created meanwhile');
$node->safe_psql('postgres', "SELECT gs_export_resume('$slow')");
is(GsExportTest::wait_status($node, $slow, 'completed|failed', 60), 'completed', 'the slow sync completed');
is(GsExportTest::job($node, $slow)->{total_leads}, 3, 'the slow sync: the 3 leads changed');

# 5. A failed sync moves the mark nothing.
$node->safe_psql('postgres', q{
	UPDATE leads SET updated_at = now(), name = name || ' (failed)' WHERE id IN (21, 22)});
$node->safe_psql('postgres', "UPDATE gestao_scouter_config SET anon_key = 'wrong-key'");
$remote->reset;
my $bad = sync();
is(GsExportTest::wait_status($node, $bad, 'completed|failed|paused', 60), 'failed', 'a sync with a bad key fails');
$node->safe_psql('postgres', "UPDATE gestao_scouter_config SET anon_key = '$GsExportTest::API_KEY'");
$node->safe_psql('postgres', q{
	UPDATE leads SET updated_at = now(), name = name || ' (after)' WHERE id = 23});
my ($j5, $sent5) = run_sync('after a failed sync');
is(since_of($j5->{id}), mark_of($slow), 'it starts from the last completed sync, not the failed one');
is(sent_list($sent5), '21,22,23', 'it sends what the failed one did not, and the newer change');

# 6. Deleting the completed syncs does not take the mark back (once a sync
# has seen them: a sync settles the mark from the completed ones).
my ($j5b, $sent5b) = run_sync('nothing changed since');
is($j5b->{total_leads}, 0, 'nothing changed since: nothing sent');
my $mark5 = mark_of($j5->{id});
$node->safe_psql('postgres', q{
	SELECT gs_export_delete(id) FROM gestao_scouter_export_jobs WHERE is_sync ORDER BY created_at});
is($node->safe_psql('postgres', 'SELECT count(*) FROM gestao_scouter_export_jobs WHERE is_sync'), 0,
	'every sync job deleted');
my ($j6, $sent6) = run_sync('after deleting every sync job');
is($j6->{total_leads}, 0, 'nothing changed, nothing sent: the mark was kept');
is(since_of($j6->{id}), $mark5, "changed_since is the mark of the last completed sync seen");

# 7. Other fields: another scope, all leads.
my ($j7, $sent7) = run_sync('another scope', q{'{"fields": ["name", "updated_at"], "batch_size": 1000, "delay_ms": 0, "look_back": "0 seconds"}'});
is($j7->{total_leads}, $N, 'other fields: every lead, the first time');
my ($j7b, $sent7b) = run_sync('another scope again', q{'{"fields": ["name", "updated_at"], "batch_size": 1000, "delay_ms": 0, "look_back": "0 seconds"}'});
is($j7b->{total_leads}, 0, 'other fields, again: nothing changed');

# 8. A role of its own: its job, its mark.
$node->safe_psql('postgres', q{
	CREATE ROLE syncer;
	GRANT gs_export_user TO syncer;
	GRANT SELECT ON leads TO syncer;
});
my ($j8, $sent8) = run_sync('a role\'s first sync', undef, 'syncer');
is($j8->{owner_role}, 'syncer', 'the job belongs to the calling role');
is($j8->{total_leads}, $N, 'its first sync: every lead');
$node->safe_psql('postgres', q{UPDATE leads SET updated_at = now() WHERE id = 4242});
my ($j8b, $sent8b) = run_sync('the role\'s next sync', undef, 'syncer');
is(sent_list($sent8b), '4242', 'its next sync: the one lead changed since');

is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], [], 'the remote equals the source');

$remote->stop;
$node->stop;
done_testing();
