# 023_resources.pl: gs_export under resource limits.
#   a. No background worker slot free (max_worker_processes = 2: the
#      launcher and one slot, held by a parallel worker of another session):
#      the job waits in pending, the launcher says why once in the log and
#      retries without spinning; when the slot frees the job starts by itself.
#   c. The job worker's memory stays flat over 20000 leads.
#   b. DROP EXTENSION gs_export while a job runs against a slow remote is not
#      blocked, and the worker goes away: (b1) with TabuladorMax's own tables
#      (kept by DROP EXTENSION), (b2) with the tables the extension created.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $remote = GsExportTest::remote();
# No logical replication launcher: the gs_export launcher holds one of the
# two background worker slots, a job worker may have the other.
my $node = GsExportTest::local_node('local', conf => qq{
max_worker_processes = 2
max_logical_replication_workers = 0
});
GsExportTest::configure($node, $remote);



# CPU time of a process so far, in clock ticks (utime + stime).
sub cpu_ticks
{
	my ($pid) = @_;
	my $stat = slurp_file("/proc/$pid/stat");
	$stat =~ s/^.*\)\s+//s;
	my @f = split /\s+/, $stat;
	return $f[11] + $f[12];
}

# Memory figures of a process, in kB.
sub mem_kb
{
	my ($pid) = @_;
	my %m;
	for (split /\n/, slurp_file("/proc/$pid/status"))
	{
		$m{$1} = $2 if /^(VmRSS|VmHWM|RssAnon|RssFile|RssShmem):\s+(\d+)\s+kB/;
	}
	return \%m;
}

sub check_outcome
{
	my ($job, $label, $n, $where) = @_;
	my $j = GsExportTest::job($node, $job);
	is("$j->{status}/$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", "completed/$n/$n/0",
		"$label: completed, counters exact (total = exported = leads)");
	is($remote->ids, $node->safe_psql('postgres',
		"SELECT string_agg(id::text, ',' ORDER BY id) FROM leads WHERE $where"),
		"$label: the remote holds exactly the leads of the range");
	is_deeply([ GsExportTest::mismatches($node, $remote, $where) ], [],
		"$label: every remote row equals its source lead");
	is(GsExportTest::sync_summary($node, $job), "$n/$n/0/0/0",
		"$label: one success sync_events row per lead, no other rows");
}

# Leads: 500 in July 2026 for (a) and (b), 20000 in 2025 for (c).
GsExportTest::insert_leads($node, q{
	SELECT g, timestamptz '2026-07-20 23:00:00+00' - (g * interval '29 minutes'), 'lead ' || g
	  FROM generate_series(1, 500) g
	UNION ALL
	SELECT 100000 + g, timestamptz '2025-12-31 23:00:00+00' - (g * interval '7 minutes'), 'many ' || g
	  FROM generate_series(1, 20000) g
});
my $july = q{updated_at >= '2026-07-01 00:00+00' AND updated_at < '2026-07-21 00:00+00'};
is($node->safe_psql('postgres', "SELECT count(*) FROM leads WHERE $july"), 500, '500 leads in July');

# --- (a) no background worker slot free --------------------------------------
my $launcher = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'gs_export launcher'");
like($launcher, qr/^\d+$/, "(a) the launcher runs (pid $launcher)");
my $log_offset = -s $node->logfile;

my $par = $node->background_psql('postgres', on_error_stop => 1);
$par->query_until(qr/parallel query started/, q{
SET force_parallel_mode = on;
SET max_parallel_workers = 2;
\echo parallel query started
SELECT pg_sleep(9);
\echo parallel query done
});
my $par_sql = q{SELECT count(*) FROM pg_stat_activity
	WHERE backend_type = 'parallel worker' AND query LIKE '%pg_sleep(9)%'};
GsExportTest::wait_for('the parallel worker', sub { $node->safe_psql('postgres', $par_sql) == 1 }, 10);
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'parallel worker'")
	  . '/' . $node->safe_psql('postgres', 'SHOW max_worker_processes'), '1/2',
	'(a) a parallel worker of another session holds the second of the 2 background worker slots');

my $t_create = time;
my $ticks0 = cpu_ticks($launcher);
my $job = GsExportTest::create_job($node,
	q{'2026-07-20', '2026-07-01', '{"batch_size": 100, "delay_ms": 0, "time_zone": "UTC"}'});
my $nolog = qr/could not start a job worker: no background worker slot is free/;
GsExportTest::wait_for('the LOG line about the missing slot',
	sub { slurp_file($node->logfile, $log_offset) =~ $nolog }, 10);
my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/LOG:\s+gs_export: could not start a job worker: no background worker slot is free/,
	'(a) LOG: could not start a job worker: no background worker slot is free');
like($log, qr/$nolog.*\n(?:.*\n)*?.*HINT:.*max_worker_processes/,
	'(a) its hint names max_worker_processes');

# While the parallel query holds the slot the job waits in pending.
my $pending_checks = 0;
while ($node->safe_psql('postgres', $par_sql) == 1)
{
	my $st = $node->safe_psql('postgres',
		"SELECT status || '/' || total_leads FROM gestao_scouter_export_jobs WHERE id = '$job'");
	last if $st ne 'pending/0';
	$pending_checks++;
	usleep(200_000);
}
my $t_free = time;
my $ticks1 = cpu_ticks($launcher);
my $waited = $t_free - $t_create;
cmp_ok($waited, '>', 5, sprintf('(a) the slot stayed busy %.1f s after the job was created', $waited));
is(GsExportTest::job($node, $job)->{status}, 'pending',
	"(a) the job stayed pending all that time ($pending_checks checks)");
is($remote->stats->{requests}, 0, '(a) nothing was sent meanwhile');
cmp_ok($ticks1 - $ticks0, '<', 100,
	sprintf('(a) the launcher used %d CPU ticks in %.1f s: no busy loop', $ticks1 - $ticks0, $waited));
$par->query_until(qr/parallel query done/, '');
$par->quit;

is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 30), 'completed',
	'(a) once the slot is free the job starts by itself and completes');
my $started = $node->safe_psql('postgres', qq{
	SELECT extract(epoch FROM started_at) FROM gestao_scouter_export_jobs WHERE id = '$job'});
cmp_ok($started - $t_free, '<', 7,
	sprintf('(a) it started %.1f s after the slot freed (the launcher retries every 5 s)', $started - $t_free));
my $count = () = slurp_file($node->logfile, $log_offset) =~ /$nolog/g;
ok($count >= 1 && $count <= 3, "(a) the LOG line appeared $count time(s), not once per loop");
check_outcome($job, '(a)', 500, $july);

# --- (c) the worker's memory stays flat ---------------------------------------
{
	$remote->truncate;
	$remote->reset;
	# 50 ms per request, as a real remote would take at least: the job
	# (delay_ms 0) lasts about 10 s, long enough to sample it late.
	$remote->faults(delay_ms => 50);
	my $many = q{updated_at >= '2025-01-01 00:00+00' AND updated_at < '2026-01-01 00:00+00'};
	is($node->safe_psql('postgres', "SELECT count(*) FROM leads WHERE $many"), 20000,
		'(c) 20000 leads in 2025');
	my $t0 = time;
	my $job = GsExportTest::create_job($node,
		q{'2025-12-31', '2025-01-01', '{"batch_size": 100, "delay_ms": 0, "time_zone": "UTC"}'});
	GsExportTest::wait_true($node,
		"SELECT exported_leads >= 1000 FROM gestao_scouter_export_jobs WHERE id = '$job'", 30);
	my $pid = GsExportTest::worker_pid($node);
	my $early = mem_kb($pid);
	my $early_done = GsExportTest::job($node, $job)->{exported_leads};
	GsExportTest::wait_true($node,
		"SELECT exported_leads >= 17000 FROM gestao_scouter_export_jobs WHERE id = '$job'", 60);
	is(GsExportTest::worker_pid($node), $pid, '(c) the same worker all along');
	my $late = mem_kb($pid);
	my $late_done = GsExportTest::job($node, $job)->{exported_leads};
	for my $k (qw(VmRSS RssAnon RssShmem RssFile VmHWM))
	{
		diag(sprintf('(c) %-8s after %5d leads: %7d kB; after %5d leads: %7d kB; growth %6d kB',
			$k, $early_done, $early->{$k}, $late_done, $late->{$k}, $late->{$k} - $early->{$k}));
	}
	# RssShmem grows as the worker touches shared buffers of leads (shared
	# memory, not the worker's); its private memory is RssAnon.
	cmp_ok($late->{RssAnon} - $early->{RssAnon}, '<', 1024,
		'(c) private memory (RssAnon) grew by less than 1 MB over 16000 leads');
	cmp_ok(($late->{VmRSS} - $late->{RssShmem}) - ($early->{VmRSS} - $early->{RssShmem}), '<', 8 * 1024,
		'(c) VmRSS without shared memory grew by less than 8 MB');
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 60), 'completed', '(c) the job completed');
	diag(sprintf('(c) 20000 leads in %.1f s', time - $t0));
	check_outcome($job, '(c)', 20000, $many);
	$remote->faults(delay_ms => 0);
}

# --- (b) DROP EXTENSION while a job runs ---------------------------------------
# A job of 25 batches of 20, each answered after 1.5 s by the remote: it
# would run for about 40 s.  DROP EXTENSION must not wait for it, and the
# worker must go away instead of running on.
sub drop_while_running
{
	my ($label) = @_;
	$remote->truncate;
	$remote->reset;
	$remote->faults(delay_ms => 1500);
	my $job = GsExportTest::create_job($node,
		q{'2026-07-20', '2026-07-01', '{"batch_size": 20, "delay_ms": 0, "time_zone": "UTC"}'});
	GsExportTest::wait_true($node,
		"SELECT exported_leads >= 20 FROM gestao_scouter_export_jobs WHERE id = '$job'", 30);
	GsExportTest::wait_true($node, "SELECT count(*) = 1 FROM pg_stat_activity"
		  . " WHERE backend_type = 'gs_export job worker' AND query = 'gs_export: sending a batch'", 10);
	my $pid = GsExportTest::worker_pid($node);
	my $t0 = time;
	my ($rc, $out, $err) = $node->psql('postgres',
		"SET statement_timeout = '20s'; DROP EXTENSION gs_export;");
	my $took = time - $t0;
	is($rc, 0, "$label: DROP EXTENSION succeeded" . ($err ? " ($err)" : ''));
	cmp_ok($took, '<', 5, sprintf('%s: DROP EXTENSION returned in %.2f s', $label, $took));
	my $requests_at_drop = $remote->stats->{requests};
	my $gone_sql = "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid";
	my $gone = eval {
		GsExportTest::wait_for('the job worker to go away',
			sub { $node->safe_psql('postgres', $gone_sql) eq 't' }, 15);
		time - $t0;
	};
	ok(defined $gone, sprintf('%s: the job worker %d went away%s', $label, $pid,
		defined $gone ? sprintf(' %.1f s after DROP EXTENSION', $gone) : ' (still there 15 s later)'));
	my $after = $remote->stats->{requests} - $requests_at_drop;
	cmp_ok($after, '<=', 1, "$label: $after request(s) started after DROP EXTENSION (at most a retry of the one in flight)");
	my $st = 'no jobs table';
	$st = $node->safe_psql('postgres', "SELECT status || ', ' || total_leads || ' leads recorded'"
		  . " FROM gestao_scouter_export_jobs WHERE id = '$job'")
	  if $node->safe_psql('postgres', "SELECT to_regclass('gestao_scouter_export_jobs') IS NOT NULL") eq 't';
	diag("$label: 15 s after DROP EXTENSION: $after requests since, job row: $st");
	unless (defined $gone)
	{
		# The SQL API went with the extension: nothing can pause the job.
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
		GsExportTest::wait_true($node, $gone_sql, 30);
	}
	my $lines = slurp_file($node->logfile);
	$lines = join("\n", grep { /gs_export: job $job/ } split /\n/, $lines);
	diag("$label: server log about the job:\n$lines");
	$remote->faults(delay_ms => 0);
	return $job;
}

# (b1) TabuladorMax's tables existed before the extension: DROP EXTENSION
# keeps them (and the job rows in them).
drop_while_running('(b1) TabuladorMax tables');

# (b2) Tables created by the extension (members of it) go with it.
GsExportTest::wait_true($node,
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'gs_export job worker'", 60);
$node->safe_psql('postgres', q{
	DROP TABLE gestao_scouter_export_jobs, sync_events, gestao_scouter_config CASCADE;
	CREATE EXTENSION gs_export;
});
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
	 WHERE e.extname = 'gs_export' AND d.deptype = 'e' AND d.classid = 'pg_class'::regclass
	   AND d.objid IN ('gestao_scouter_export_jobs'::regclass, 'sync_events'::regclass)}), 2,
	'(b2) the jobs and sync_events tables now belong to the extension');
GsExportTest::configure($node, $remote);
drop_while_running('(b2) extension tables');
is($node->safe_psql('postgres', "SELECT to_regclass('gestao_scouter_export_jobs') IS NULL"), 't',
	'(b2) the jobs table went with the extension');

$remote->stop;
$node->stop;
done_testing();
