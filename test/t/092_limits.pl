# 092_limits.pl: the option limits and the job lock key, defined once in C
# (src/gs_limits.h) and handed to SQL by gs_export_limit (the C function
# behind @extschema@._gs_export_limit).  Each name gives its value, an
# unknown name is 22023, NULL gives NULL; the GUC bounds are the same
# numbers; the SQL API refuses each option one past its limits and takes
# it at them; a job created without batch_size_max gets the default; and
# the advisory lock that reset waits for is the one keyed by job_lock_key.
use strict;
use warnings;

use lib '.';
use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = GsExportTest::local_node('local');

sub sql { return $node->safe_psql('postgres', $_[0]); }

# The C function under test, as the extension's SQL will declare it.
sql(q{
	CREATE FUNCTION test_limit(p_name text) RETURNS bigint
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	AS '$libdir/gs_export', 'gs_export_limit';
	CREATE FUNCTION sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
	BEGIN
		EXECUTE q;
		RETURN 'none';
	EXCEPTION WHEN OTHERS THEN
		RETURN SQLSTATE || ': ' || SQLERRM;
	END $$;
});

my %want = (
	'batch_size.min' => 1,
	'batch_size.max' => 10000,
	'delay_ms.min' => 0,
	'delay_ms.max' => 60000,
	'max_in_flight.min' => 1,
	'max_in_flight.max' => 16,
	'batch_size_max.min' => 1,
	'batch_size_max.max' => 10000,
	'batch_size_max.default' => 5000,
	'job_lock_key' => 1735617912,
);
my %limit;
for my $name (sort keys %want)
{
	$limit{$name} = sql("SELECT test_limit('$name')");
	is($limit{$name}, $want{$name}, "limit $name");
}
like(sql("SELECT sqlstate_of(\$\$SELECT test_limit('batch_size.maximum')\$\$)"),
	qr/^22023: gs_export has no limit named "batch_size.maximum"$/,
	'an unknown limit is 22023, named');
is(sql("SELECT test_limit(NULL) IS NULL"), 't', 'NULL gives NULL');

# The GUCs that give the options' defaults have the same bounds.
is(sql("SELECT min_val || '..' || max_val FROM pg_settings WHERE name = 'gs_export.batch_size'"),
	"$limit{'batch_size.min'}..$limit{'batch_size.max'}", 'gs_export.batch_size bounds');
is(sql("SELECT min_val || '..' || max_val FROM pg_settings WHERE name = 'gs_export.batch_delay_ms'"),
	"$limit{'delay_ms.min'}..$limit{'delay_ms.max'}", 'gs_export.batch_delay_ms bounds');

# A config whose remote is not there (port 9, discard: refused): jobs are
# created, and their workers, having leads to send, only retry.
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-05-20 12:00:00+00' - g * interval '1 hour', 'lead ' || g
	  FROM generate_series(1, 10) g
});
sql(q{
	INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
	VALUES ('http://127.0.0.1:9', 'k', true, true);
});

# The SQL API agrees with the C limits: one past each is refused (22023),
# each limit itself is taken (checked together below, one job at a time).
for my $opt (qw(batch_size delay_ms max_in_flight batch_size_max))
{
	my ($lo, $hi) = ($limit{"$opt.min"}, $limit{"$opt.max"});
	for my $bad ($lo - 1, $hi + 1)
	{
		like(sql(qq{SELECT sqlstate_of(\$\$SELECT gs_export_create('2026-05-31', '2026-05-01',
			'{"$opt": $bad}')\$\$)}),
			qr/^22023: option "$opt" is out of range/, "$opt $bad is refused");
	}
}

# No batch_size_max: the default (batch_size being below it).
my $job = sql(q{SELECT gs_export_create('2026-05-31', '2026-05-01', '{"batch_size": 100}')});
is(sql("SELECT effective_options ->> 'batch_size_max' FROM gestao_scouter_export_jobs WHERE id = '$job'"),
	$limit{'batch_size_max.default'}, 'batch_size_max defaults to its default');

# The lock a worker holds on its job, keyed by job_lock_key: while another
# session holds it, reset gives up with 55000; once released, reset goes.
sql("SELECT gs_export_pause('$job')");
GsExportTest::wait_status($node, $job, 'paused');
GsExportTest::wait_true($node, q{SELECT count(*) = 0 FROM pg_stat_activity
	WHERE backend_type = 'gs_export job worker'}, 30);
my $holder = $node->background_psql('postgres', on_error_stop => 1);
$holder->query_safe("SELECT pg_advisory_lock($limit{job_lock_key}, hashtext('$job'))");
like(sql("SELECT sqlstate_of(\$\$SELECT gs_export_reset('$job')\$\$)"),
	qr/^55000: export job $job cannot be reset yet/,
	'reset waits for the lock keyed by job_lock_key');
$holder->query_safe("SELECT pg_advisory_unlock($limit{job_lock_key}, hashtext('$job'))");
$holder->quit;
is(sql("SELECT sqlstate_of(\$\$SELECT gs_export_delete('$job')\$\$)"), 'none',
	'once it is released, the job is deleted');

# Every option at its limit is taken.
my $at_max = sprintf('{"pace": "adaptive", "batch_size": %d, "delay_ms": %d, "max_in_flight": %d, "batch_size_max": %d}',
	$limit{'batch_size.max'}, $limit{'delay_ms.max'}, $limit{'max_in_flight.max'},
	$limit{'batch_size_max.max'});
is(sql("SELECT sqlstate_of(\$\$SELECT gs_export_create('2026-05-31', '2026-05-01', '$at_max')\$\$)"),
	'none', 'every option at its upper limit is taken');

done_testing();
