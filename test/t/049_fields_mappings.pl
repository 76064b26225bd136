# 049_fields_mappings.pl: what a job sends, and where.  The original's last
# version wrote to gestao-scouter's own leads table with Portuguese column
# names (nome, responsavel, idade, ..., ultima_sincronizacao,
# origem_sincronizacao = 'batch_export'): gs_export does that from the
# configuration alone (target_table, default_options).  Options fields,
# field_mappings, synced_at_column, source_column, source_value; the job
# keeps its effective options, so a resume sends the same fields whatever
# the config says by then.
use strict;
use warnings;

use GsExportTest;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = GsExportTest::remote();
$remote->{db}->safe_psql('remote', slurp_file("$GsExportTest::TESTDIR/remote/gestao_leads.sql"));
$remote->control('POST', 'reload_schema', {});
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-05-20 23:00:00+00' - (g * interval '53 minutes'), 'lead ' || g
	  FROM generate_series(1, 300) g
});
$node->safe_psql('postgres', q{UPDATE leads SET responsible = 'resp ' || id, photo_url = 'https://f/' || id,
	date_modify = updated_at - interval '1 hour', etapa = 'etapa ' || (id % 5), scouter = 'sc ' || (id % 3)});

# 1. From the configuration alone: gestao-scouter's own leads table.
my $mapping = {
	nome => 'name', responsavel => 'responsible', idade => 'age', foto => 'photo_url',
	modificado => 'date_modify', etapa => 'etapa', scouter => 'scouter', criado => 'criado' };
my $defaults = encode_json({
	field_mappings => $mapping, synced_at_column => 'ultima_sincronizacao',
	source_column => 'origem_sincronizacao', source_value => 'batch_export',
	batch_size => 40, delay_ms => 0, time_zone => 'UTC' });
$node->safe_psql('postgres', qq{UPDATE gestao_scouter_config
	SET target_table = 'leads', default_options = '$defaults'});
$remote->reset;
my $job = GsExportTest::create_job($node, q{'2026-05-20', NULL});
is(GsExportTest::wait_status($node, $job, 'completed|failed'), 'completed', 'a job from the config alone completes');
is($remote->{db}->safe_psql('remote', 'SELECT count(*) FROM leads'), 300, "every lead is in gestao-scouter's leads");
is($remote->{db}->safe_psql('remote', 'SELECT count(*) FROM fichas'), 0, 'nothing went to fichas');
my $src = $node->safe_psql('postgres', q{SET TimeZone = 'UTC';
	SELECT string_agg(concat_ws('|', id, name, responsible, age, photo_url, date_modify, etapa, scouter, criado), E'\n' ORDER BY id)
	  FROM leads});
my $dst = $remote->{db}->safe_psql('remote', q{SET TimeZone = 'UTC';
	SELECT string_agg(concat_ws('|', id, nome, responsavel, idade, foto, modificado, etapa, scouter, criado), E'\n' ORDER BY id)
	  FROM leads});
ok($src eq $dst, 'each remote column holds its lead column\'s value');
is($remote->{db}->safe_psql('remote', q{SELECT count(*) FROM leads
	WHERE origem_sincronizacao = 'batch_export' AND ultima_sincronizacao IS NOT NULL}), 300,
	'origem_sincronizacao = batch_export and ultima_sincronizacao set on every row');
my @reqs = @{ $remote->requests };
is(scalar(grep { $_->{table} ne 'leads' } @reqs), 0, 'every request went to /rest/v1/leads');
is(join(',', sort split /,/, $reqs[0]{query}{columns}),
	join(',', sort(keys %$mapping, 'id', 'ultima_sincronizacao', 'origem_sincronizacao')),
	'the columns parameter lists exactly what is sent');
my $eff = decode_json($node->safe_psql('postgres',
	"SELECT effective_options FROM gestao_scouter_export_jobs WHERE id = '$job'"));
is_deeply($eff->{field_mappings}, $mapping, 'the job keeps its effective mapping');
is("$eff->{target_table}/$eff->{batch_size}", 'leads/40', '... and the config\'s target_table and batch_size');
is($node->safe_psql('postgres', "SELECT options::text FROM gestao_scouter_export_jobs WHERE id = '$job'"),
	'{}', 'options keeps what the caller passed');

# 2. fields: only these lead columns, under their own names, and id.
$node->safe_psql('postgres', q{UPDATE gestao_scouter_config SET target_table = NULL, default_options = '{}'});
$remote->reset;
$job = GsExportTest::create_job($node,
	q{'2026-05-20', NULL, '{"fields": ["name", "etapa"], "batch_size": 100, "delay_ms": 0}'});
is(GsExportTest::wait_status($node, $job, 'completed|failed'), 'completed', 'a job with fields completes');
@reqs = @{ $remote->requests };
is(join(',', sort split /,/, $reqs[0]{query}{columns}), 'etapa,id,last_sync_at,name,sync_source',
	'fields: id, the fields, last_sync_at and sync_source');
is($remote->{db}->safe_psql('remote', q{SELECT count(*) FROM fichas
	WHERE name IS NOT NULL AND etapa IS NOT NULL AND responsible IS NULL AND age IS NULL
	  AND sync_source = 'tabuladormax'}), 300, 'only those columns were written');

# 3. synced_at_column and source_column null: not sent.
$remote->truncate;
$remote->reset;
$job = GsExportTest::create_job($node,
	q{'2026-05-20', NULL, '{"fields": ["name"], "synced_at_column": null, "source_column": null, "delay_ms": 0}'});
is(GsExportTest::wait_status($node, $job, 'completed|failed'), 'completed', 'a job without the two columns completes');
is($remote->requests->[0]{query}{columns}, 'id,name', 'only id and name are sent');

# 4. A resume sends the same fields, whatever the config says by then.
$remote->truncate;
$remote->reset;
$job = GsExportTest::create_job($node,
	q{'2026-05-20', NULL, '{"field_mappings": {"nome": "name", "idade": "age"}, "target_table": "leads", "synced_at_column": "ultima_sincronizacao", "source_column": "origem_sincronizacao", "source_value": "batch_export", "batch_size": 10, "delay_ms": 100}'});
GsExportTest::wait_true($node, "SELECT total_leads >= 50 FROM gestao_scouter_export_jobs WHERE id = '$job'");
$node->safe_psql('postgres', "SELECT gs_export_pause('$job')");
GsExportTest::wait_true($node,
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'gs_export job worker'", 30);
$node->safe_psql('postgres', q{UPDATE gestao_scouter_config SET target_table = 'fichas',
	default_options = '{"fields": ["etapa"]}'});
my $seen = scalar @{ $remote->requests };
$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
is(GsExportTest::wait_status($node, $job, 'completed|failed'), 'completed', 'the resumed job completes');
my @after = @{ $remote->requests }[ $seen .. $#{ $remote->requests } ];
ok(@after > 0, 'requests after the resume');
is(scalar(grep { $_->{table} ne 'leads' || join(',', sort split /,/, $_->{query}{columns})
	ne 'id,idade,nome,origem_sincronizacao,ultima_sincronizacao' } @after), 0,
	'after the resume: the same table and columns');

# 5. An owner who may read only some columns of leads exports what it
# may read with "fields"; a failed lead's snapshot is what it read of it.
$node->safe_psql('postgres', q{
	CREATE ROLE bob LOGIN;
	GRANT gs_export_user TO bob;
	GRANT SELECT (id, name, updated_at) ON leads TO bob;
});
$remote->{db}->safe_psql('remote', q{ALTER TABLE fichas ADD CONSTRAINT no_lead_7 CHECK (name <> 'lead 7')});
$remote->truncate;
$remote->reset;
$job = $node->safe_psql('postgres', q{SET ROLE bob;
	SELECT gs_export_create('2026-05-20', NULL, '{"fields": ["name"], "batch_size": 100, "delay_ms": 0, "time_zone": "UTC"}')});
is(GsExportTest::wait_status($node, $job, 'completed|failed'), 'completed',
	'a job of an owner with column privileges completes');
my $j = GsExportTest::job($node, $job);
is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", '300/299/1', 'lead 7 alone refused');
is($node->safe_psql('postgres', "SELECT lead_snapshot::text FROM gestao_scouter_export_errors WHERE job_id = '$job'"),
	'{"id": 7, "name": "lead 7"}', "its snapshot is what bob read of it, no more");

$remote->stop;
done_testing();
