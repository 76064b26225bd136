# 004_not_preloaded.pl: without shared_preload_libraries there is no
# launcher; every gs_export function says so (55000) with a hint, instead
# of creating jobs that would wait forever.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('plain');
$node->init;
$node->start;
$node->safe_psql('postgres', slurp_file("$GsExportTest::TESTDIR/sql/tabuladormax.sql"));
$node->safe_psql('postgres', 'CREATE EXTENSION gs_export');
$node->safe_psql('postgres', q{INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
	VALUES ('http://127.0.0.1:9', 'k', true, true)});

for my $call ("gs_export_create()",
	"gs_export_pause('00000000-0000-0000-0000-000000000001')",
	"gs_export_resume('00000000-0000-0000-0000-000000000001')")
{
	my ($ret, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT $call");
	isnt($ret, 0, "$call fails without the preload");
	like($err, qr/ERROR:\s+55000: gs_export is not loaded/, "$call: SQLSTATE 55000");
	like($err, qr/HINT:.*shared_preload_libraries = 'gs_export'/, "$call: the hint says how to enable it");
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM gestao_scouter_export_jobs'), 0, 'no job was created');

# With the preload, the same call works.
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'gs_export'\n");
$node->restart;
my $job = $node->safe_psql('postgres',
	q{SELECT gs_export_create('2026-01-02', '2026-01-01', '{"delay_ms": 0}')});
like($job, qr/^[0-9a-f-]{36}$/, 'with the preload a job is created');
$node->stop;
done_testing();
