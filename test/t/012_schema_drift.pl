# 012_schema_drift.pl: the remote lacks columns that leads has (dropped on
# the remote's database for real, and the stand-in's schema cache
# reloaded).  PostgREST answers 400 PGRST204 naming the first unknown
# column; the job drops it for the rest of its life (a resume included),
# records it in ignored_fields, and exports every lead.  Two missing
# columns are found and dropped one after the other.
use strict;
use warnings;

use GsExportTest;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);
my $rdb = $remote->{db};
my $json = JSON::PP->new->canonical;

my $n = 300;
my $bs = 50;
GsExportTest::insert_leads($node, qq{
	SELECT g, timestamptz '2026-09-30 23:00:00+00' - (g * interval '53 minutes'), 'lead ' || g
	  FROM generate_series(1, $n) g
});
# Values in the columns the remote will lack, so that sending them matters.
$node->safe_psql('postgres', q{
	UPDATE leads SET telefone_casa = '+55 11 3' || lpad(id::text, 7, '0'),
	                 etapa = 'etapa ' || (id % 5), fonte = 'fonte ' || (id % 3)
});
my $all_ids = join(',', 1 .. $n);

# Requests whose body carries a key (the stand-in keeps the bodies).
sub bodies_with
{
	my ($reqs, $key) = @_;
	return scalar grep { ($_->{body} // '') =~ /"\Q$key\E"\s*:/ } @$reqs;
}

sub columns_param_with
{
	my ($reqs, $key) = @_;
	return scalar grep { (',' . ($_->{query}{columns} // '') . ',') =~ /,\Q$key\E,/ } @$reqs;
}

###########################################################################
# 1. The remote has no telefone_casa.  One lead is also refused (a CHECK),
#    so an error row is written after the column was dropped.  The job is
#    paused and resumed half way: the column stays dropped.
###########################################################################
$rdb->safe_psql('remote', q{
	ALTER TABLE fichas DROP COLUMN telefone_casa;
	ALTER TABLE fichas ADD CONSTRAINT age_ok CHECK (age <= 100);
});
my $cols = $remote->control('POST', 'reload_schema', {})->{columns};
ok(!grep({ $_ eq 'telefone_casa' } @$cols), 'the stand-in\'s schema cache has no telefone_casa');
$node->safe_psql('postgres', 'UPDATE leads SET age = 150 WHERE id = 280');
$remote->faults(keep_bodies => JSON::PP::true);

my $job = GsExportTest::create_job($node,
	qq{'2026-09-30', '2026-01-01', '{"batch_size": $bs, "delay_ms": 300, "time_zone": "UTC"}'});
# Half way, with the column dropped (or stopped: then the checks below say why).
GsExportTest::wait_true($node, qq{SELECT (exported_leads >= 100 AND ignored_fields = '{telefone_casa}')
	OR status NOT IN ('pending', 'running') FROM gestao_scouter_export_jobs WHERE id = '$job'}, 60);
my $j = GsExportTest::job($node, $job);
is($j->{status}, 'running', 'missing column: still running half way, the column dropped')
  or diag("status $j->{status}, pause_reason: " . ($j->{pause_reason} // 'NULL'));
if ($j->{status} eq 'running')
{
	$node->safe_psql('postgres', "SELECT gs_export_pause('$job', 'half way')");
	GsExportTest::wait_no_worker($node);
	$j = GsExportTest::job($node, $job);
	is($j->{status}, 'paused', 'missing column: paused half way');
	is_deeply($j->{ignored_fields}, ['telefone_casa'], 'missing column: ignored_fields recorded on the job');
	cmp_ok($j->{total_leads}, '<', $n, 'missing column: not finished yet');
}
else
{
	GsExportTest::wait_no_worker($node);
}
$node->safe_psql('postgres', "SELECT gs_export_resume('$job')");
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'missing column: the job completed');

$j = GsExportTest::job($node, $job);
is($j->{pause_reason}, undef, 'missing column: no pause or failure reason left')
  or diag("pause_reason: $j->{pause_reason}");
is_deeply($j->{ignored_fields}, ['telefone_casa'], 'missing column: ignored_fields is still just that column');
is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/" . ($n - 1) . "/1",
	'missing column: counters exact (one lead refused by the CHECK)');
is(GsExportTest::sync_summary($node, $job), ($n - 1) . '/' . ($n - 1) . '/1/1/0',
	'missing column: one sync_events row per lead and outcome');
is($remote->ids, join(',', grep { $_ != 280 } 1 .. $n), 'missing column: every other lead is on the remote');
is_deeply([ GsExportTest::mismatches_except($node, $remote, 'id <> 280', 'telefone_casa') ], [],
	'missing column: every other column equals the source');

my $reqs = $remote->requests;
my @pgrst204 = grep { ($_->{error_code} // '') eq 'PGRST204' } @$reqs;
is(scalar(@pgrst204), 1, 'missing column: PGRST204 once, not once per batch nor after the resume');
is($reqs->[0]{status}, 400, 'missing column: the very first request was refused');
is(bodies_with($reqs, 'telefone_casa'), 1, 'missing column: only that first request carried telefone_casa');
is(columns_param_with($reqs, 'telefone_casa'), 1, 'missing column: nor named it in columns= after it');
is(bodies_with($reqs, 'celular'), scalar(@$reqs), 'missing column: the other columns are still sent');
is(join(',', @{ $reqs->[1]{ids} }), join(',', @{ $reqs->[0]{ids} }),
	'missing column: the refused batch was sent again at once');
ok($node->log_contains(qr/gs_export: job $job: the remote has no column "telefone_casa"; it is no longer sent/),
	'missing column: LOG line');

my $e = $json->decode($node->safe_psql('postgres', qq{
	SELECT COALESCE((SELECT row_to_json(e) FROM gestao_scouter_export_errors e WHERE job_id = '$job'), '{}')}));
is($e->{lead_id}, 280, 'missing column: the refused lead has its error row');
is_deeply($e->{ignored_fields}, ['telefone_casa'], 'missing column: the error row carries ignored_fields');
ok(!exists $e->{fields_sent}{telefone_casa} && exists $e->{fields_sent}{celular} && $e->{fields_sent}{id} == 280,
	'missing column: fields_sent is what was sent, without the dropped column');
is($e->{response_body}{code}, '23514', 'missing column: the error row has the remote\'s answer');

###########################################################################
# 2. Two columns missing at once: PostgREST names only the first,
#    alphabetically; both get dropped, one after the other.
###########################################################################
$remote->truncate;
$remote->reset;
$rdb->safe_psql('remote', q{
	ALTER TABLE fichas DROP CONSTRAINT age_ok;
	ALTER TABLE fichas ADD COLUMN telefone_casa text;
	ALTER TABLE fichas DROP COLUMN fonte;
	ALTER TABLE fichas DROP COLUMN etapa;
});
$remote->control('POST', 'reload_schema', {});
$remote->faults(keep_bodies => JSON::PP::true);
$node->safe_psql('postgres', 'UPDATE leads SET age = 20 WHERE id = 280');
$job = GsExportTest::create_job($node,
	qq{'2026-09-30', '2026-01-01', '{"batch_size": $bs, "delay_ms": 0, "time_zone": "UTC"}'});
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'two missing columns: the job completed');
GsExportTest::wait_no_worker($node);
$j = GsExportTest::job($node, $job);
is($j->{pause_reason}, undef, 'two missing columns: no failure reason')
  or diag("pause_reason: $j->{pause_reason}");
is_deeply($j->{ignored_fields}, [ 'etapa', 'fonte' ], 'two missing columns: both in ignored_fields, in the order found');
is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$n/0", 'two missing columns: counters exact');
is(GsExportTest::sync_summary($node, $job), "$n/$n/0/0/0", 'two missing columns: one success sync_events row per lead');
is($remote->ids, $all_ids, 'two missing columns: every lead on the remote');
is_deeply([ GsExportTest::mismatches_except($node, $remote, 'true', 'etapa', 'fonte') ], [],
	'two missing columns: every other column equals the source (telefone_casa too)');
$reqs = $remote->requests;
is_deeply([ map { ($_->{status} // 'dropped') . ' ' . ($_->{error_code} // '') } grep { defined } @$reqs[0 .. 2] ],
	[ '400 PGRST204', '400 PGRST204', '201 ' ], 'two missing columns: two PGRST204, then success');
is(scalar(@$reqs), $n / $bs + 2, 'two missing columns: no other refusal');
is(bodies_with($reqs, 'etapa') . '/' . bodies_with($reqs, 'fonte'), '1/2',
	'two missing columns: etapa sent once, fonte twice, then neither');
is(bodies_with($reqs, 'telefone_casa'), scalar(@$reqs), 'two missing columns: telefone_casa is sent again (a new job)');

###########################################################################
# 3. PGRST204 about a column the job cannot do without (id), or did not
#    send: the job fails rather than loop.
###########################################################################
for my $t ([ 'id', 'id' ], [ 'not sent', 'no_such_column' ])
{
	my ($what, $col) = @$t;
	$remote->truncate;
	$remote->reset;
	$remote->faults(fail_next => 1, status => 400,
		body => { code => 'PGRST204', details => undef, hint => undef,
			message => "Could not find the '$col' column of 'fichas' in the schema cache" });
	$job = GsExportTest::create_job($node,
		qq{'2026-09-30', '2026-01-01', '{"batch_size": $bs, "delay_ms": 0, "time_zone": "UTC"}'});
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'failed',
		"PGRST204 on $what: the job failed");
	GsExportTest::wait_no_worker($node);
	$j = GsExportTest::job($node, $job);
	like($j->{pause_reason}, qr/PGRST204.*'\Q$col\E'/, "PGRST204 on $what: the reason says so: $j->{pause_reason}");
	is($remote->stats->{requests}, 1, "PGRST204 on $what: one request");
	is_deeply($j->{ignored_fields}, [], "PGRST204 on $what: nothing ignored");
	is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", '0/0/0', "PGRST204 on $what: nothing counted");
}

$remote->stop;
$node->stop;
done_testing();
