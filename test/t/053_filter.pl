# 053_filter.pl: the option "filter" ({leads column: value or [values]},
# every key ANDed, compared in the column's own type, null matching NULL):
# only those leads are exported, each once, leads_in_range counts them, and
# a filter on a column without an index keeps the keyset walk.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-05-20 23:00:00+00' - (g * interval '23 minutes'), 'lead ' || g
	  FROM generate_series(1, 1000) g
});
# etapa: A, B, C, D or NULL; age from insert_leads: 18 + id % 50
$node->safe_psql('postgres', q{UPDATE leads SET etapa = CASE id % 5 WHEN 0 THEN 'A' WHEN 1 THEN 'B'
	WHEN 2 THEN 'C' WHEN 3 THEN 'D' END});

sub run_filter
{
	my ($filter, $where) = @_;
	$remote->truncate;
	$remote->reset;
	my $job = GsExportTest::create_job($node,
		qq{'2026-05-20', NULL, '{"filter": $filter, "batch_size": 37, "delay_ms": 0, "time_zone": "UTC"}'});
	is(GsExportTest::wait_status($node, $job, 'completed|failed'), 'completed', "filter $filter: completes");
	my $want = $node->safe_psql('postgres',
		"SELECT string_agg(id::text, ',' ORDER BY id) FROM leads WHERE $where");
	my $n = $node->safe_psql('postgres', "SELECT count(*) FROM leads WHERE $where");
	is($remote->ids // '', $want // '', "filter $filter: exactly the leads where $where ($n)");
	my %seen;
	$seen{$_}++ for map { @{ $_->{ids} } } @{ $remote->requests };
	is(scalar(grep { $_ > 1 } values %seen), 0, "filter $filter: each lead sent once");
	my $j = GsExportTest::job($node, $job);
	is("$j->{leads_in_range}/$j->{total_leads}", "$n/$n", "filter $filter: leads_in_range counts them");
	is_deeply([ GsExportTest::mismatches($node, $remote, $where) ], [], "filter $filter: values exact");
}

run_filter('{"etapa": "A"}', q{etapa = 'A'});
run_filter('{"etapa": ["A", "C"]}', q{etapa IN ('A', 'C')});
run_filter('{"etapa": ["B", null]}', q{etapa = 'B' OR etapa IS NULL});
run_filter('{"etapa": ["A", "B"], "age": [20, 21, 22, 23, 24, 25]}', q{etapa IN ('A', 'B') AND age BETWEEN 20 AND 25});
run_filter('{"ficha_confirmada": true, "data_agendamento": ["2026-01-02", "2026-01-05"]}',
	q{ficha_confirmada AND data_agendamento IN ('2026-01-02', '2026-01-05')});
run_filter('{"valor_ficha": 10.10}', q{valor_ficha = 10.10});
run_filter('{"etapa": "no such etapa"}', q{etapa = 'no such etapa'});

# A filter is data, never SQL.
run_filter(q{{"etapa": "A'' OR true --"}}, q{etapa = 'A'' OR true --'});

# The keyset walk stays the access path: no index on etapa, a filter that
# keeps one lead in five, and each batch still reads by (updated_at, id) (the
# worker's plans, as auto_explain logs them).
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'gs_export,auto_explain'
auto_explain.log_min_duration = 0
auto_explain.log_nested_statements = on
});
$node->restart;
my $offset = -s $node->logfile;
run_filter('{"etapa": "A"}', q{etapa = 'A'});
my $log = substr(slurp_file($node->logfile), $offset);
my @plans = ($log =~ /(Query Text: SELECT l\.\S+ AS .*?)(?=\n\d{4}-)/sg);
ok(@plans > 0, 'the worker\'s batch reads are in the log: ' . scalar(@plans));
is(scalar(grep { !/Index Scan Backward using leads_updated_at_id_idx/ } @plans), 0,
	'every batch read walks the (updated_at, id) index, never a scan of the table and a sort');

$remote->stop;
done_testing();
