# 040_alter_column_type.pl: ALTER TABLE leads ALTER COLUMN ... TYPE while a
# job runs.  The worker must send every lead with the column types the
# query returns now, not those it saw at its first batch:
#   1. age integer -> bigint, then leads not read yet get ages past 2^31
#      (updated_at unchanged, so no catch-up pass is involved): they must
#      reach the remote whole, not cut to 32 bits;
#   2. etapa text -> integer (USING length(etapa)): the server must not
#      crash (a text output function on an integer Datum), and the remote
#      gets the new values.
# Each case: the job completes, no backend dies (no "terminated by signal"
# in the log, the launcher keeps its pid), the remote equals the source.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $remote = GsExportTest::remote();
# A crash would otherwise stop the cluster for good; with the restart the
# test goes on and reports what it saw.
my $node = GsExportTest::local_node('local', conf => "restart_after_crash = on\n");
GsExportTest::configure($node, $remote);

# The remote takes bigint ages from the start (fichas.age bigint).
$remote->{db}->safe_psql('remote', 'ALTER TABLE fichas ALTER COLUMN age TYPE bigint');
$remote->control('POST', 'reload_schema', {});

# 300 leads over 2026-04-08 .. 2026-04-10 (UTC), with an etapa of varied length.
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-04-10 23:00:00+00' - g * interval '13 minutes', 'lead ' || g
	  FROM generate_series(1, 300) g
});
$node->safe_psql('postgres',
	q{UPDATE leads SET etapa = 'etapa ' || repeat('x', (id % 9)::int), updated_at = updated_at});
my $n = 300;
my $range = q{updated_at >= timestamptz '2026-04-08 00:00:00+00'
	AND updated_at < timestamptz '2026-04-11 00:00:00+00'};
is($node->safe_psql('postgres', "SELECT count(*) FROM leads WHERE $range"), $n, "$n leads in the range");

# Queries that survive a server restart: undef while the server is down.
sub try_sql
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my $ret = $node->psql('postgres', $sql, stdout => \$out, stderr => \$err);
	return $ret == 0 ? $out : undef;
}

sub wait_done
{
	my ($job, $timeout) = @_;
	my $deadline = time + ($timeout // 60);
	my $st = '';
	while (time < $deadline)
	{
		$st = try_sql("SELECT status FROM gestao_scouter_export_jobs WHERE id = '$job'") // 'unreachable';
		return $st if $st =~ /^(completed|failed|paused)$/;
		usleep(200_000);
	}
	return "still $st after timeout";
}

sub launcher_pid
{
	return try_sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'gs_export launcher'") // '';
}

# Wait until the job has recorded $min leads and its worker sleeps between
# two batches (the batch after the cursor may be read already, the one
# after that is not: reads come right after the delay).
sub wait_worker_between_batches
{
	my ($job, $min) = @_;
	GsExportTest::wait_true($node, qq{
		SELECT exported_leads >= $min FROM gestao_scouter_export_jobs WHERE id = '$job'}, 30);
	# Only a matter of timing (the ALTER below is safe at any moment): if
	# the worker's activity text is not seen, go on.
	eval {
		GsExportTest::wait_true($node, q{
			SELECT count(*) = 1 FROM pg_stat_activity
			 WHERE backend_type = 'gs_export job worker' AND query = 'gs_export: waiting'}, 10);
	};
	diag("the worker was not seen waiting between batches: $@") if $@;
}

sub check_case
{
	my ($label, $job, $log_offset, $launcher) = @_;
	is(wait_done($job, 90), 'completed', "$label: the job completed");
	my $log = slurp_file($node->logfile, $log_offset);
	my @crash = $log =~ /^(.*terminated by signal.*)$/mg;
	is_deeply(\@crash, [], "$label: no backend terminated by a signal");
	is(launcher_pid(), $launcher, "$label: the launcher kept its pid (no crash and restart)");
	my $j = GsExportTest::job($node, $job);
	is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$n/0",
		"$label: total = exported = $n, no errors");
	is($remote->count, $n, "$label: every lead on the remote");
	my @bad = GsExportTest::mismatches($node, $remote, $range);
	is_deeply([ @bad[0 .. ($#bad < 9 ? $#bad : 9)] ], [],
		"$label: every remote row equals its source lead" . (@bad ? ' (' . scalar(@bad) . ' differ)' : ''));
}

# --- 1. age integer -> bigint, values past 2^31 ----------------------------
{
	my $launcher = launcher_pid();
	ok($launcher =~ /^\d+$/, "the launcher runs (pid $launcher)");
	my $log_offset = -s $node->logfile;
	my $job = GsExportTest::create_job($node,
		q{'2026-04-10', '2026-04-08', '{"batch_size": 10, "delay_ms": 300, "time_zone": "UTC"}'});
	wait_worker_between_batches($job, 30);
	# One transaction: the ALTER's lock keeps the worker from reading until
	# the new values are committed.  Leads within two batches of the cursor
	# may have been read already; those after them have not.
	my $updated = $node->safe_psql('postgres', qq{
		BEGIN;
		ALTER TABLE leads ALTER COLUMN age TYPE bigint;
		WITH c AS (SELECT cursor_updated_at AS ts, cursor_id AS id
		             FROM gestao_scouter_export_jobs WHERE id = '$job'),
		     todo AS (SELECT l.id FROM leads l, c
		               WHERE (l.updated_at, l.id) < (c.ts, c.id)
		               ORDER BY l.updated_at DESC, l.id DESC OFFSET 20),
		     u AS (UPDATE leads SET age = 5000000000 + leads.id, updated_at = leads.updated_at
		             FROM todo WHERE leads.id = todo.id RETURNING leads.id)
		SELECT count(*) FROM u;
		COMMIT;
	});
	cmp_ok($updated, '>=', 150, "1: $updated leads not read yet got ages past 2^31");
	my $j = GsExportTest::job($node, $job);
	is($j->{status}, 'running', "1: the job was still running after the change ($j->{exported_leads} exported)");

	check_case('1 (age bigint)', $job, $log_offset, $launcher);
	diag('1: remote id/age of the oldest lead: '
		  . $remote->{db}->safe_psql('remote', 'SELECT id || \'/\' || age FROM fichas ORDER BY updated_at LIMIT 1'));
	is($remote->count('age > 2147483647'), $updated,
		'1: the remote holds the ages past 2^31 of every updated lead');
	is($remote->{db}->safe_psql('remote',
		'SELECT count(*) FROM fichas WHERE age <> 5000000000 + id AND age > 2147483647'), 0,
		'1: each one exactly 5000000000 + id');
}

# --- 2. etapa text -> integer ------------------------------------------------
{
	$remote->truncate;
	$remote->reset;
	my $launcher = launcher_pid();
	my $log_offset = -s $node->logfile;
	my $job = GsExportTest::create_job($node,
		q{'2026-04-10', '2026-04-08', '{"batch_size": 10, "delay_ms": 300, "time_zone": "UTC"}'});
	wait_worker_between_batches($job, 30);
	# The leads more than two batches past the cursor are read after the
	# change: they must reach the remote with the new etapa.  Those read
	# before keep their old text there (their updated_at did not change).
	my $late = $node->safe_psql('postgres', qq{
		BEGIN;
		ALTER TABLE leads ALTER COLUMN etapa TYPE integer USING length(etapa);
		WITH c AS (SELECT cursor_updated_at AS ts, cursor_id AS id
		             FROM gestao_scouter_export_jobs WHERE id = '$job')
		SELECT string_agg(id::text, ',') FROM (
		  SELECT l.id FROM leads l, c
		   WHERE (l.updated_at, l.id) < (c.ts, c.id)
		   ORDER BY l.updated_at DESC, l.id DESC OFFSET 20) t;
		COMMIT;
	});
	my %late = map { $_ => 1 } split /,/, $late;
	my $nlate = scalar keys %late;
	cmp_ok($nlate, '>=', 150, "2: $nlate leads not read yet when etapa became an integer");
	my $j = GsExportTest::job($node, $job);
	is($j->{status}, 'running', "2: the job was still running after the change ($j->{exported_leads} exported)");

	is(wait_done($job, 90), 'completed', '2: the job completed');
	my $log = slurp_file($node->logfile, $log_offset);
	my @crash = $log =~ /^(.*terminated by signal.*)$/mg;
	is_deeply(\@crash, [], '2: no backend terminated by a signal');
	is(launcher_pid(), $launcher, '2: the launcher kept its pid (no crash and restart)');
	$j = GsExportTest::job($node, $job);
	is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "$n/$n/0",
		"2: total = exported = $n, no errors");
	is($remote->count, $n, '2: every lead on the remote');
	is(try_sql(q{SELECT string_agg(DISTINCT etapa::text, ',' ORDER BY etapa::text) FROM leads}),
		'10,11,12,13,14,6,7,8,9', '2: the source etapa is now the integer length');
	my @bad = GsExportTest::mismatches_except($node, $remote, $range, 'etapa');
	is_deeply([ @bad[0 .. ($#bad < 9 ? $#bad : 9)] ], [],
		'2: every remote row equals its source lead, etapa aside' . (@bad ? ' (' . scalar(@bad) . ' differ)' : ''));
	# mismatches compares rows as text: integer 8 and text '8' print alike.
	@bad = grep { $late{$_} } GsExportTest::mismatches($node, $remote, "id IN ($late)");
	is_deeply([ @bad[0 .. ($#bad < 9 ? $#bad : 9)] ], [],
		'2: the leads read after the change have the new etapa on the remote, as text'
		  . (@bad ? ' (' . scalar(@bad) . ' differ)' : ''));
	is($remote->count(qq{id IN ($late) AND etapa !~ '^[0-9]+\$'}), 0,
		'2: no late lead kept a non-numeric etapa on the remote');
}

$remote->stop;
$node->stop;
done_testing();
