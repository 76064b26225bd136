# 045_request_size.pl: gs_export.max_request_size (integer, bytes, units
# allowed, reloadable) caps the body of a request.  A batch is cut where
# its JSON would pass the cap (fewer leads than batch_size); a lead whose
# JSON alone passes it is an error of that lead only -- a sync_events row
# with status 'error' and a gestao_scouter_export_errors row whose message
# names gs_export.max_request_size, response_status NULL -- and nothing of
# it is sent.
#
# 100 leads with a raw of ~10 kB, 2 with a raw of ~200 kB; the cap 64kB;
# batch_size 100.
use strict;
use warnings;

use Encode qw(encode_utf8);
use GsExportTest;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $cap = 65536;
my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local', conf => "gs_export.max_request_size = '64kB'\n");
GsExportTest::configure($node, $remote);

# The setting: an integer in bytes, '64kB' read as 65536, changed by a reload.
is($node->safe_psql('postgres', q{
	SELECT setting || '/' || coalesce(unit, '') || '/' || vartype FROM pg_settings
	 WHERE name = 'gs_export.max_request_size'}), "$cap/B/integer",
	'gs_export.max_request_size is an integer in bytes, 64kB = 65536');
my $reloaded = eval {
	GsExportTest::set_gucs($node, 'gs_export.max_request_size' => '128kB');
	GsExportTest::wait_true($node,
		q{SELECT current_setting('gs_export.max_request_size') = '128kB'}, 10);
	my $v = $node->safe_psql('postgres',
		q{SELECT setting FROM pg_settings WHERE name = 'gs_export.max_request_size'});
	GsExportTest::set_gucs($node, 'gs_export.max_request_size' => undef);
	GsExportTest::wait_true($node,
		q{SELECT current_setting('gs_export.max_request_size') = '64kB'}, 10);
	$v;
};
is($reloaded // "error: $@", '131072', 'a reload changes it (128kB = 131072), and back to 64kB');

# 100 leads with a ~10 kB raw (ids 1..100), 2 with a ~200 kB raw (ids 901, 902),
# all on 2026-07-01 .. 2026-07-03 (UTC); the big ones in the middle.
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-07-03 23:00:00+00' - g * interval '37 minutes', 'lead ' || g
	  FROM generate_series(1, 100) g
	UNION ALL
	SELECT 900 + g, timestamptz '2026-07-03 23:00:00+00' - (30 * g + 0.5) * interval '37 minutes', 'big ' || g
	  FROM generate_series(1, 2) g
});
$node->safe_psql('postgres', q{
	UPDATE leads SET raw = jsonb_build_object('bitrix_id', id, 'pad', repeat('x', 10000)), updated_at = updated_at
	 WHERE id <= 100;
	UPDATE leads SET raw = jsonb_build_object('bitrix_id', id, 'pad', repeat('y', 200000)), updated_at = updated_at
	 WHERE id > 900;
});
my $range = q{updated_at >= timestamptz '2026-07-01 00:00:00+00'
	AND updated_at < timestamptz '2026-07-04 00:00:00+00'};
is($node->safe_psql('postgres', "SELECT count(*) FROM leads WHERE $range"), 102, '102 leads in the range');

$remote->faults(keep_bodies => JSON::PP::true);
my $job = GsExportTest::create_job($node,
	q{'2026-07-03', '2026-07-01', '{"batch_size": 100, "delay_ms": 0, "time_zone": "UTC"}'});
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed', 'the job completed');

my $requests = $remote->requests;
my @sizes = map { defined $_->{body} ? length(encode_utf8($_->{body})) : -1 } @$requests;
my $max = 0;
$max = $_ > $max ? $_ : $max for @sizes;
diag(scalar(@$requests) . " requests, bodies of at most $max bytes, "
	  . join(',', map { $_->{n_rows} // '?' } @$requests) . ' leads each');
is(scalar(grep { $_ < 0 } @sizes), 0, 'the stand-in kept every body');
cmp_ok($max, '<=', $cap, "every request body is at most $cap bytes");
is(scalar(grep { defined $_->{headers}{'content-length'} && $_->{headers}{'content-length'} > $cap } @$requests), 0,
	"no Content-Length over $cap");
cmp_ok(scalar(@$requests), '>=', 15, 'the batch of 100 was cut into many requests (~11 kB a lead)');
my %sent;
$sent{$_}++ for map { @{ $_->{ids} // [] } } @$requests;
is(join(',', grep { $_ > 900 } sort keys %sent), '', 'no request carried a big lead');
is(scalar(grep { $_ > 900 } map { $_->{body} =~ /"id":\s*(\d+)/g } @$requests), 0,
	'no request body holds a big lead\'s id');

is($remote->count('id <= 100'), 100, 'the 100 normal leads on the remote');
is($remote->count('id > 900'), 0, 'the big leads are not on the remote');
is_deeply([ grep { $_ <= 100 } GsExportTest::mismatches($node, $remote, 'id <= 100') ], [],
	'every normal lead on the remote equals its source');

my $j = GsExportTest::job($node, $job);
is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", '102/100/2',
	'total 102 = 100 exported + 2 errors');
is($node->safe_psql('postgres', qq{
	SELECT string_agg(lead_id || ':' || status, ',' ORDER BY lead_id) FROM sync_events
	 WHERE job_id = '$job' AND (lead_id > 900 OR status <> 'success')}),
	'901:error,902:error', 'the big leads have one error sync_events row each, nothing else failed');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM sync_events WHERE job_id = '$job' AND status = 'success' AND lead_id <= 100}),
	100, 'one success row per normal lead');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FROM sync_events WHERE job_id = '$job' AND lead_id > 900
	   AND error_message IS NOT NULL}),
	2, 'their sync_events rows carry an error_message');
is($node->safe_psql('postgres', qq{
	SELECT string_agg(lead_id || ':' || (response_status IS NULL)
	                  || ':' || (error_message LIKE '%gs_export.max_request_size%'), ',' ORDER BY lead_id)
	  FROM gestao_scouter_export_errors WHERE job_id = '$job'}),
	'901:true:true,902:true:true',
	'one error row per big lead: no response_status, the message names gs_export.max_request_size');

$remote->stop;
$node->stop;
done_testing();
