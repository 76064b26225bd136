# 022_changing_leads.pl: leads change while a job runs.  2000 leads over 20
# past days, batches of 20 with 30 ms between them; while the job walks
# down the days the test
#   (a) updates leads of days not walked yet (old days): updated_at = now()
#       moves them to today, out of the range and above the cursor;
#   (b) updates leads of days already walked;
#   (c) inserts new leads with updated_at = now();
#   (d) commits, after their day was walked, an update of leads made by a
#       transaction opened before the job started (their updated_at, the
#       transaction's start, is older than the job).
# By completion every lead that was in the range is on the remote in its
# current version (nothing changed after the updates), none is missing, and
# the counters add up: the catch-up pass sends (a) to (d) once more.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

# D: 30 days ago (UTC); day k (0..19) is D - k and holds ids 100k+1 .. 100k+100.
my $D = $node->safe_psql('postgres', "SELECT ((now() AT TIME ZONE 'UTC')::date - 30)::text");
my $E = $node->safe_psql('postgres', "SELECT (date '$D' - 19)::text");
GsExportTest::insert_leads($node, qq{
	SELECT g, ((date '$D' - ((g - 1) / 100))::timestamp AT TIME ZONE 'UTC')
	          + interval '1 hour' + ((g - 1) % 100) * interval '13 minutes',
	       'lead ' || g
	  FROM generate_series(1, 2000) g
});
my $n = 2000;
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM leads
	 WHERE updated_at >= (date '$E')::timestamp AT TIME ZONE 'UTC'
	   AND updated_at < (date '$D' + 1)::timestamp AT TIME ZONE 'UTC'}), $n,
	"2000 leads in the range $D .. $E");

# (d) A transaction open before the job changes leads of D-10 (ids
# 1001..1100), every 10th; it commits once the walk is past that day.
my $old_xact = $node->background_psql('postgres', on_error_stop => 1);
my $d_ids = $old_xact->query_safe(q{
	BEGIN;
	UPDATE leads SET updated_at = now(), name = name || ' (d: committed late by an old transaction)'
	 WHERE id BETWEEN 1001 AND 1100 AND id % 10 = 1
	RETURNING id;
});
my @d = grep { /^\d+$/ } split /\n/, $d_ids;
is(scalar @d, 10, '(d) 10 leads of D-10 changed by a transaction left open');
usleep(100_000);

my $t0 = time;
my $job = GsExportTest::create_job($node,
	qq{'$D', '$E', '{"batch_size": 20, "delay_ms": 30, "time_zone": "UTC"}'});

sub pos_sql
{
	my ($cond) = @_;
	return "SELECT $cond FROM gestao_scouter_export_jobs WHERE id = '$job'";
}

# (a) Old days, not walked yet: D-19 and D-18 (ids 1801..2000), every 10th.
GsExportTest::wait_true($node, pos_sql("status = 'running' AND exported_leads >= 20"), 30);
my $a_ids = $node->safe_psql('postgres', q{
	UPDATE leads SET updated_at = now(), name = name || ' (a: changed before its day was walked)'
	 WHERE id > 1800 AND id % 10 = 0
	RETURNING id});
my @a = split /\n/, $a_ids;
is(scalar @a, 20, '(a) 20 leads of the two oldest days changed');
# processing_date only goes down; still at D-16 or later after the update
# committed means the walk (a batch is 20 leads, a day 100) had not reached
# D-18 when the change became visible.
my $pos = $node->safe_psql('postgres', pos_sql("processing_date::text || '/' || catchup_pass"));
my ($pdate) = split m{/}, $pos;
ok($pdate ge $node->safe_psql('postgres', "SELECT (date '$D' - 16)::text") && $pos =~ m{/0$},
	"(a) changed while the walk was still at $pos (day/pass): before their days");

# (b) Days already walked: D and D-1 (ids 1..200), every 10th, once the
# walk is at D-3 or older.
GsExportTest::wait_true($node, pos_sql("processing_date <= date '$D' - 3"), 30);
my $b_ids = $node->safe_psql('postgres', q{
	UPDATE leads SET updated_at = now(), name = name || ' (b: changed after its day was walked)'
	 WHERE id <= 200 AND id % 10 = 5
	RETURNING id});
my @b = split /\n/, $b_ids;
is(scalar @b, 20, '(b) 20 leads of the two newest days changed');
# Those leads had been exported before the change.
is($remote->count('id IN (' . join(',', @b) . ") AND name NOT LIKE '%(b:%'"), 20,
	'(b) they were already on the remote, in their old version');

# (c) New leads, created while the job runs.
my @c = (5001 .. 5005);
GsExportTest::insert_leads($node, q{
	SELECT g, now(), 'new lead ' || g FROM generate_series(5001, 5005) g
});
my $j = GsExportTest::job($node, $job);
is("$j->{status}/$j->{catchup_pass}", 'running/0', "(b), (c) done while the main walk runs (at $j->{processing_date})");

# (d) Commit the old transaction once D-10 is walked (the walk sent the old
# version of its leads: the change was not visible yet).
GsExportTest::wait_true($node, pos_sql("processing_date <= date '$D' - 12"), 30);
$old_xact->query_safe('COMMIT');
$old_xact->quit;
$j = GsExportTest::job($node, $job);
is("$j->{status}/$j->{catchup_pass}", 'running/0', "(d) committed while the main walk runs (at $j->{processing_date})");
is($remote->count('id IN (' . join(',', @d) . ") AND name NOT LIKE '%(d:%'"), 10,
	'(d) the walk had exported their old version');

is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed', 'the job completed');
my $took = time - $t0;
$j = GsExportTest::job($node, $job);
diag(sprintf('job done in %.1f s; total %d, exported %d, errors %d, catch-up passes %d',
	$took, $j->{total_leads}, $j->{exported_leads}, $j->{error_leads}, $j->{catchup_pass}));

# Every lead of the original range, in its current version, none missing.
my %new = map { $_ => 1 } @c;
my @bad = grep { !$new{$_} } GsExportTest::mismatches($node, $remote, 'id <= 2000');
is_deeply(\@bad, [], 'every lead that was in the range is on the remote in its current version');
is($remote->count('id <= 2000'), $n, 'none is missing');
is($remote->count('id IN (' . join(',', @a) . ") AND name LIKE '%(a:%'"), 20,
	'(a) the leads moved out of the range were exported in their new version');
is($remote->count('id IN (' . join(',', @b) . ") AND name LIKE '%(b:%'"), 20,
	'(b) the leads changed after their day was walked were exported again');
is($remote->count('id IN (' . join(',', @d) . ") AND name LIKE '%(d:%'"), 10,
	'(d) the leads changed by the old transaction were exported again, in their new version');

# (c) The design exports leads created during the job in the catch-up pass.
my $c_on_remote = $remote->count('id IN (' . join(',', @c) . ')');
diag("(c) new leads created during the job found on the remote: $c_on_remote of " . scalar(@c));
is($c_on_remote, scalar(@c), '(c) the leads created during the job were exported too');
is_deeply([ GsExportTest::mismatches($node, $remote, 'true') ], [],
	'the remote equals the whole source table, new leads included');

# Counters.
is($j->{exported_leads} + $j->{error_leads}, $j->{total_leads}, 'exported + errors = total');
is($j->{error_leads}, 0, 'no errors');
is($node->safe_psql('postgres', "SELECT count(*) FROM sync_events WHERE job_id = '$j->{id}'"),
	$j->{total_leads}, 'total_leads = sync_events rows of the job');
# The walk sends 2000 - 20 (the (a) leads had left their days); the
# catch-up pass sends the 20 (a), 20 (b), 5 (c) and 10 (d).
is($j->{total_leads}, $n + @b + @c + @d, 'total = 2000 + (b) + (c) + (d): each changed lead counted once more');
is($j->{last_completed_date}, $E, 'last_completed_date is end_date');

# sync_events: one success row per lead version.
my @twice = sort { $a <=> $b } (@b, @d);
my $per = $node->safe_psql('postgres', qq{
	SELECT n || ':' || count(*) FROM (
	  SELECT lead_id, count(*) AS n FROM sync_events
	   WHERE job_id = '$job' AND status = 'success' GROUP BY lead_id) s
	 GROUP BY n ORDER BY n});
is($per, "1:" . ($n + @c - @twice) . "\n2:" . scalar(@twice),
	'one success row per lead, two for the (b) and (d) leads (old and new version), none more');
is($node->safe_psql('postgres', qq{
	SELECT string_agg(lead_id::text, ',' ORDER BY lead_id) FROM (
	  SELECT lead_id FROM sync_events WHERE job_id = '$job' AND status = 'success'
	   GROUP BY lead_id HAVING count(*) = 2) s}), join(',', @twice),
	'the leads with two rows are exactly the (b) and (d) leads');

# The remote got no lead more often than its versions.
my %seen;
$seen{$_}++ for map { @{ $_->{ids} // [] } } @{ $remote->requests };
my %b = map { $_ => 1 } @twice;
is(scalar(grep { $seen{$_} > ($b{$_} ? 2 : 1) } keys %seen), 0,
	'no lead sent more often than it changed');

$remote->stop;
$node->stop;
done_testing();
