# 011_bad_rows.pl: the remote refuses some rows for real (its own
# constraints and types, no injected fault): a CHECK violation (23514,
# 400), a value too long (22001, 400), a NOT NULL violation (23502, 400)
# and a unique violation (23505, 409).  Only the bad leads are errors, each
# with its sync_events row and a gestao_scouter_export_errors row holding
# the lead, what was sent and the remote's answer; every other lead of their
# batches is exported.
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

my $n = 500;
my $bs = 50;
GsExportTest::insert_leads($node, qq{
	SELECT g, timestamptz '2026-07-31 23:00:00+00' - (g * interval '41 minutes'), 'lead ' || g
	  FROM generate_series(1, $n) g
});
# Newest first: ids 1..50 make the first batch, 51..100 the second, ...
my $options = qq{'{"batch_size": $bs, "delay_ms": 0, "time_zone": "UTC"}'};

# Checks shared by both jobs.  $extras: the ids of the remote's own rows
# (not leads), comma-separated; %bad: lead id => [SQLSTATE, HTTP status, a
# regex the remote's message matches].
sub check_job
{
	my ($job, $what, $extras, %bad) = @_;
	my @bad = sort { $a <=> $b } keys %bad;
	my $nbad = scalar @bad;
	my $bad_list = join(',', @bad);
	my $good = $n - $nbad;

	my $j = GsExportTest::job($node, $job);
	is($j->{status}, 'completed', "$what: the job completed");
	is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$good/$nbad",
		"$what: counters: total = leads, errors = the bad leads, exported = the rest");
	is(GsExportTest::sync_summary($node, $job), "$good/$good/$nbad/$nbad/0",
		"$what: one sync_events row per lead and outcome");
	is($node->safe_psql('postgres', qq{
		SELECT string_agg(lead_id::text, ',' ORDER BY lead_id) FROM sync_events
		 WHERE job_id = '$job' AND status = 'error'}), $bad_list,
		"$what: the error sync_events are exactly the bad leads");
	is($node->safe_psql('postgres', qq{
		SELECT count(*) FROM sync_events
		 WHERE job_id = '$job' AND status = 'success' AND lead_id IN ($bad_list)}), 0,
		"$what: no success sync_events for a bad lead");
	is($remote->count("id <= $n"), $good, "$what: the remote has every good lead");
	is($remote->count("id IN ($bad_list)"), 0, "$what: and none of the bad ones");
	is($remote->{db}->safe_psql('remote', "SELECT string_agg(id::text, ',' ORDER BY id) FROM fichas WHERE id > $n"),
		$extras, "$what: the remote has no other rows than its own");
	is_deeply([ grep { $_ <= $n } GsExportTest::mismatches($node, $remote, "id NOT IN ($bad_list)") ], [],
		"$what: every exported lead equals its source");
	is($node->safe_psql('postgres',
		"SELECT string_agg(lead_id::text, ',' ORDER BY lead_id) FROM gestao_scouter_export_errors WHERE job_id = '$job'"),
		$bad_list, "$what: one gestao_scouter_export_errors row per bad lead");

	for my $id (@bad)
	{
		my ($code, $status, $msg_re) = @{ $bad{$id} };
		my $ev = $node->safe_psql('postgres', qq{
			SELECT error_message FROM sync_events
			 WHERE job_id = '$job' AND lead_id = $id AND status = 'error'});
		like($ev, $msg_re, "$what: lead $id: sync_events has the remote's message: $ev");
		my $e = $json->decode($node->safe_psql('postgres', qq{
			SELECT row_to_json(e) FROM gestao_scouter_export_errors e
			 WHERE job_id = '$job' AND lead_id = $id}));
		is($e->{job_id}, $job, "$what: lead $id: error row has the job");
		is($node->safe_psql('postgres', qq{
			SELECT e.lead_snapshot = to_jsonb(l) FROM gestao_scouter_export_errors e, leads l
			 WHERE e.job_id = '$job' AND e.lead_id = $id AND l.id = $id}), 't',
			"$what: lead $id: lead_snapshot is the lead as jsonb");
		is($e->{fields_sent}{id}, $id, "$what: lead $id: fields_sent is the object sent, with its id");
		ok(exists $e->{fields_sent}{sync_source} && exists $e->{fields_sent}{last_sync_at}
			  && exists $e->{fields_sent}{celular},
			"$what: lead $id: fields_sent has the lead's columns and the extras");
		like($e->{error_message} // '', $msg_re, "$what: lead $id: error_message");
		is($e->{response_status}, $status, "$what: lead $id: response_status $status");
		is($e->{response_body}{code}, $code, "$what: lead $id: response_body is the remote's error ($code)");
		like($e->{response_body}{message} // '', $msg_re, "$what: lead $id: response_body message");
		is_deeply($e->{error_details}, $e->{response_body},
			"$what: lead $id: error_details holds the error object");
	}

	# What went over the wire: each bad lead was finally sent alone and
	# refused; each good lead was in exactly one request that succeeded.
	my $reqs = $remote->requests;
	my (%ok, %alone);
	for my $r (@$reqs)
	{
		if ($r->{status} =~ /^20[01]$/) { $ok{$_}++ for @{ $r->{ids} }; }
		elsif ($r->{n_rows} == 1) { $alone{ $r->{ids}[0] } = "$r->{status} " . ($r->{error_code} // ''); }
	}
	my @wrong = grep { ($ok{$_} // 0) != ($bad{$_} ? 0 : 1) } 1 .. $n;
	is(scalar(@wrong), 0, "$what: good leads in exactly one successful request, bad ones in none"
		  . (@wrong ? " (wrong: @wrong)" : ''));
	is_deeply({ map { $_ => $alone{$_} } @bad }, { map { $_ => "$bad{$_}[1] $bad{$_}[0]" } @bad },
		"$what: each bad lead ended up alone in a refused request");
	is(scalar(grep { $_->{n_rows} > $bs } @$reqs), 0, "$what: no request over batch_size");
	is(scalar(grep { !defined $_->{status} || $_->{status} !~ /^(200|201|400|409)$/ } @$reqs), 0,
		"$what: only successes and refusals of rows, no other answer");
}

###########################################################################
# 1. A CHECK constraint on the remote: 3 leads too old for it; two of them
#    side by side in the first batch, one in the seventh.
###########################################################################
$rdb->safe_psql('remote', 'ALTER TABLE fichas ADD CONSTRAINT age_ok CHECK (age <= 100)');
$node->safe_psql('postgres', 'UPDATE leads SET age = 150 WHERE id IN (7, 8, 333)');
my $check_re = qr/violates check constraint "age_ok"/;
my $job = GsExportTest::create_job($node, "'2026-07-31', '2026-01-01', $options");
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'CHECK: the job ran to its end');
check_job($job, 'CHECK', '', map { $_ => [ '23514', 400, $check_re ] } (7, 8, 333));
is($node->safe_psql('postgres', qq{
	SELECT (fields_sent->>'age') || ' ' || (response_body->>'details' LIKE 'Failing row contains (333,%')
	  FROM gestao_scouter_export_errors WHERE job_id = '$job' AND lead_id = 333}), '150 true',
	'CHECK: fields_sent has the refused value; response_body the remote\'s details');
like($node->safe_psql('postgres', "SELECT error_message FROM gestao_scouter_export_errors WHERE job_id = '$job' AND lead_id = 7"),
	qr/400/, 'CHECK: error_message names the HTTP status');

###########################################################################
# 2. A value too long (22001), a NOT NULL (23502) and a unique violation
#    against a row the remote already has (23505, answered 409).
###########################################################################
$remote->truncate;
$remote->reset;
$rdb->safe_psql('remote', q{
	ALTER TABLE fichas DROP CONSTRAINT age_ok;
	ALTER TABLE fichas ALTER COLUMN nome_modelo TYPE varchar(5);
	ALTER TABLE fichas ALTER COLUMN name SET NOT NULL;
	CREATE UNIQUE INDEX fichas_celular_key ON fichas (celular);
});
$remote->control('POST', 'reload_schema', {});
$node->safe_psql('postgres', q{
	UPDATE leads SET nome_modelo = 'ana';
	UPDATE leads SET nome_modelo = 'much too long a name' WHERE id IN (100, 101);
	UPDATE leads SET name = NULL WHERE id = 402;
});
# The remote already has a ficha (another id) with lead 250's phone.
my $cel = $node->safe_psql('postgres', 'SELECT celular FROM leads WHERE id = 250');
$rdb->safe_psql('remote', "INSERT INTO fichas (id, name, celular) VALUES (900000, 'other', '$cel')");

$job = GsExportTest::create_job($node, "'2026-07-31', '2026-01-01', $options");
is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed',
	'mixed refusals: the job ran to its end');
check_job($job, 'mixed refusals', '900000',
	100 => [ '22001', 400, qr/value too long for type character varying\(5\)/ ],
	101 => [ '22001', 400, qr/value too long for type character varying\(5\)/ ],
	250 => [ '23505', 409, qr/duplicate key value violates unique constraint "fichas_celular_key"/ ],
	402 => [ '23502', 400, qr/null value in column "name" of relation "fichas" violates not-null constraint/ ]);
is($rdb->safe_psql('remote', 'SELECT name FROM fichas WHERE id = 900000'), 'other',
	'mixed refusals: the remote\'s own row is untouched');
is($node->safe_psql('postgres', qq{
	SELECT response_body->>'details' FROM gestao_scouter_export_errors WHERE job_id = '$job' AND lead_id = 250}),
	"Key (celular)=($cel) already exists.", 'mixed refusals: the 409 body says which key');

# The errors are the job's own: the first job's rows are still there, apart.
is($node->safe_psql('postgres', 'SELECT count(*) FROM gestao_scouter_export_errors'), 7,
	'errors of both jobs are kept, 3 + 4');

$remote->stop;
$node->stop;
done_testing();
