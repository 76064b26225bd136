# 001_export.pl: a whole export against the stand-in remote.  A day of
# several hundred leads, leads at exactly midnight, leads with NULL
# updated_at and leads outside the range; then the same with no end date.
use strict;
use warnings;

use lib '.';
use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

# Days in America/Sao_Paulo (UTC-3 all year).
GsExportTest::insert_leads($node, q{
	-- 450 leads on 2026-03-05, one every 3 minutes from local midnight
	SELECT 1000 + g, timestamptz '2026-03-05 00:00:00-03' + (g * interval '3 minutes'), 'busy day ' || g
	  FROM generate_series(0, 449) g
	UNION ALL
	-- a few leads on each other day of the range, two with the same instant
	SELECT 2000 + g, timestamptz '2026-03-01 12:00:00-03' + ((g / 3) * interval '1 day') + (g % 3) * interval '1 hour', 'spread ' || g
	  FROM generate_series(0, 29) g
	UNION ALL
	SELECT 3001, timestamptz '2026-03-08 09:30:00-03', 'same instant a'
	UNION ALL
	SELECT 3002, timestamptz '2026-03-08 09:30:00-03', 'same instant b'
	-- exactly midnight: the first instant of a day belongs to that day
	UNION ALL SELECT 4001, timestamptz '2026-03-10 00:00:00-03', 'midnight of start day'
	UNION ALL SELECT 4002, timestamptz '2026-03-11 00:00:00-03', 'midnight after start day'
	UNION ALL SELECT 4003, timestamptz '2026-03-01 00:00:00-03', 'midnight of end day'
	UNION ALL SELECT 4004, timestamptz '2026-03-01 00:00:00-03' - interval '1 microsecond', 'last instant before end day'
	UNION ALL SELECT 4005, timestamptz '2026-03-10 23:59:59.999999-03', 'last instant of start day'
	-- outside the range
	UNION ALL SELECT 5001, timestamptz '2026-03-12 10:00:00-03', 'after'
	UNION ALL SELECT 5002, timestamptz '2026-02-20 10:00:00-03', 'before'
	-- no updated_at: in no day, never exported
	UNION ALL SELECT 6001, NULL::timestamptz, 'null a'
	UNION ALL SELECT 6002, NULL::timestamptz, 'null b'
});
# Spread leads fall on 2026-03-01 .. 03-10; those after 03-10 are out.
my $in_range = q{updated_at >= timestamptz '2026-03-01 00:00:00-03'
	AND updated_at < timestamptz '2026-03-11 00:00:00-03'};
my $expected = $node->safe_psql('postgres', "SELECT count(*) FROM leads WHERE $in_range");
cmp_ok($expected, '>', 480, "the data set has $expected leads in range");

my $job = GsExportTest::create_job($node,
	q{'2026-03-10', '2026-03-01', '{"batch_size": 100, "delay_ms": 0, "time_zone": "America/Sao_Paulo"}'});
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused'), 'completed', 'job completed');

is($remote->count, $expected, 'the remote has exactly the leads of the range');
is($remote->ids,
	$node->safe_psql('postgres', "SELECT string_agg(id::text, ',' ORDER BY id) FROM leads WHERE $in_range"),
	'remote ids are exactly the expected ones');
is_deeply([ GsExportTest::mismatches($node, $remote, $in_range) ], [],
	'every mapped column on the remote equals the source');
# The comparison itself can fail: a changed remote value is found.
$remote->{db}->safe_psql('remote', "UPDATE fichas SET valor_ficha = valor_ficha + 0.01 WHERE id = 1003");
is_deeply([ GsExportTest::mismatches($node, $remote, $in_range) ], [1003],
	'a changed remote value is seen by the comparison');
$remote->{db}->safe_psql('remote', "UPDATE fichas SET valor_ficha = valor_ficha - 0.01 WHERE id = 1003");

is($remote->count("sync_source = 'tabuladormax' AND last_sync_at IS NOT NULL"), $expected,
	'sync_source and last_sync_at set on every row');
for my $id (4001, 4003, 4005)
{
	is($remote->count("id = $id"), 1, "lead $id on a day's edge is exported");
}
for my $id (4002, 4004, 5001, 5002, 6001, 6002)
{
	is($remote->count("id = $id"), 0, "lead $id outside the range is not exported");
}

my $j = GsExportTest::job($node, $job);
is($j->{total_leads}, $expected, 'total_leads');
is($j->{exported_leads}, $expected, 'exported_leads');
is($j->{error_leads}, 0, 'error_leads');
is($j->{last_completed_date}, '2026-03-01', 'last_completed_date is end_date');
ok(defined $j->{started_at} && defined $j->{completed_at}, 'started_at and completed_at set');
# The launcher sleeps 10 s between looks at the jobs table; a job starting
# sooner was announced by the commit of gs_export_create (its latch).
is($node->safe_psql('postgres', qq{SELECT started_at - created_at < interval '3 s'
	FROM gestao_scouter_export_jobs WHERE id = '$job'}), 't', 'the launcher learned of the job at commit');

is($node->safe_psql('postgres', qq{
	SELECT count(*) || '/' || count(DISTINCT lead_id) FROM sync_events
	 WHERE job_id = '$job' AND status = 'success' AND event_type = 'update'
	   AND direction = 'supabase_to_gestao_scouter' AND sync_duration_ms >= 0}),
	"$expected/$expected", 'one success sync_events row per lead');
is($node->safe_psql('postgres', "SELECT count(*) FROM sync_events WHERE job_id = '$job' AND status <> 'success'"),
	0, 'no other sync_events');

my $requests = $remote->requests;
my @sizes = map { $_->{n_rows} } @$requests;
my @big = grep { $_ > 100 } @sizes;
is(scalar @big, 0, 'no request carries more than batch_size leads');
is(scalar @$requests, int(($expected + 99) / 100), 'full batches: ceil(leads / batch_size) requests');
my %seen;
$seen{$_}++ for map { @{ $_->{ids} } } @$requests;
is(scalar(grep { $_ > 1 } values %seen), 0, 'no lead sent twice');
my $h = $requests->[0]{headers};
is($h->{apikey}, $GsExportTest::API_KEY, 'apikey header');
is($h->{authorization}, "Bearer $GsExportTest::API_KEY", 'Authorization header');
like($h->{prefer}, qr/resolution=merge-duplicates/, 'Prefer: merge-duplicates');
like($h->{'user-agent'}, qr{^gs_export/}, 'User-Agent');
is($requests->[0]{query}{on_conflict}, 'id', 'on_conflict=id');
like($requests->[0]{query}{columns}, qr/(^|,)sync_source(,|$)/, 'columns lists the keys');

# Newest first: the first request holds the newest leads.
is($requests->[0]{ids}[0], 4005, 'the newest lead goes first');

# Workers show up with their own backend_type and LOG lines.
ok($node->log_contains(qr/gs_export: job $job started/), 'LOG line at start');
ok($node->log_contains(qr/gs_export: job $job completed: $expected leads, $expected exported, 0 errors/),
	'LOG line at the end, with counts');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'gs_export launcher'"), 1,
	'the launcher is in pg_stat_activity');

# Without an end date the job walks down to the oldest lead and completes.
$remote->truncate;
$remote->reset;
my $job2 = GsExportTest::create_job($node,
	q{start_date => '2026-03-10', options => '{"batch_size": 37, "delay_ms": 0, "time_zone": "America/Sao_Paulo"}'});
is(GsExportTest::wait_status($node, $job2, 'completed|failed|paused'), 'completed',
	'job without end_date completed');
my $upto = "updated_at < timestamptz '2026-03-11 00:00:00-03'";
my $expected2 = $node->safe_psql('postgres', "SELECT count(*) FROM leads WHERE $upto");
is($remote->count, $expected2, 'every lead up to start_date exported, down to the oldest');
is_deeply([ GsExportTest::mismatches($node, $remote, $upto) ], [], 'remote equals the source');
$j = GsExportTest::job($node, $job2);
is($j->{last_completed_date}, '2026-02-20', 'last_completed_date is the day of the oldest lead');
is($j->{total_leads} . '/' . $j->{exported_leads}, "$expected2/$expected2", 'counters exact');
@big = grep { $_ > 37 } map { $_->{n_rows} } @{ $remote->requests };
is(scalar @big, 0, 'no request over batch_size 37');

$remote->stop;
$node->stop;
done_testing();
