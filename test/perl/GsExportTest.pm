# GsExportTest.pm: what the TAP tests of gs_export share.  Starts a local
# cluster with gs_export preloaded, a second cluster holding the remote's
# fichas table, and the PostgREST stand-in in front of it; loads sample
# leads; waits for jobs; talks to the stand-in's control port.
package GsExportTest;

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

our $TESTDIR = abs_path(dirname(__FILE__) . '/..');
our $API_KEY = 'gs-test-anon-key-5f1c2e';

my $json = JSON::PP->new->canonical->allow_nonref;
my $http = HTTP::Tiny->new(timeout => 30);

# Every stand-in a test started is stopped when the test ends, even one it
# did not stop itself: END runs before global destruction, where DESTROY
# may find IPC::Run's objects already gone and leave the server running.
our @all_remotes;
END { $_->stop for grep { $_->{handle} } @all_remotes; }

# The version CREATE EXTENSION gs_export installs (gs_export.control).
sub current_version
{
	my ($v) = slurp_file("$TESTDIR/../gs_export.control") =~ /^default_version\s*=\s*'([^']+)'/m
	  or die "no default_version in gs_export.control";
	return $v;
}

# A local cluster with gs_export preloaded, TabuladorMax's tables and the
# extension created.  %opts: conf => extra postgresql.conf lines,
# tabuladormax => 0 to start from an empty database, cron => 1 to preload
# pg_cron beside gs_export (Debian: postgresql-15-cron): its jobs run in
# database postgres, connecting through the node's socket directory
# (CREATE EXTENSION pg_cron is the test's).
sub local_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	my $preload = $opts{cron} ? 'gs_export,pg_cron' : 'gs_export';
	my $cron = $opts{cron} ? qq{
cron.database_name = 'postgres'
cron.host = '${\ $node->host }'
} : '';
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = '$preload'
gs_export.database = 'postgres'
gs_export.retry_max_delay_ms = 1000
# a request given up on, or left at the remote by a worker that died (a
# crash, a kill, a restart), is in doubt this long, not a minute: the
# stand-in applies what it holds within that (094_late_request and
# 010_remote_faults set their own)
gs_export.late_request_ms = 3000
log_min_messages = info
} . $cron . ($opts{conf} // ''));
	$node->start;
	if ($opts{tabuladormax} // 1)
	{
		$node->safe_psql('postgres', slurp_file("$TESTDIR/sql/tabuladormax.sql"));
		$node->safe_psql('postgres', 'CREATE INDEX ON leads (updated_at, id)');
	}
	$node->safe_psql('postgres', 'CREATE EXTENSION gs_export');
	return $node;
}

# The remote: a cluster with fichas, and the stand-in in front of it.
sub remote
{
	my ($name) = @_;
	$name //= 'remote';
	my $db = PostgreSQL::Test::Cluster->new($name . '_db');
	$db->init;
	$db->start;
	$db->safe_psql('postgres', 'CREATE DATABASE remote');
	$db->safe_psql('remote', slurp_file("$TESTDIR/remote/fichas.sql"));

	my $dir = PostgreSQL::Test::Utils::tempdir;
	my $dsn = sprintf('host=%s port=%d dbname=remote user=%s',
		$db->host, $db->port, scalar getpwuid($<));
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[
			'/usr/bin/python3', "$TESTDIR/remote/stand_in.py",
			'--port', '0', '--port-file', "$dir/port",
			'--control-port', '0', '--control-port-file', "$dir/control_port",
			'--dsn', $dsn, '--api-key', $API_KEY
		],
		'>', \$out, '2>', "$dir/stand_in.log");
	my $deadline = time + 30;
	while (!(-s "$dir/port" && -s "$dir/control_port"))
	{
		die "stand-in did not start: " . slurp_file("$dir/stand_in.log")
		  if time > $deadline;
		usleep(50_000);
	}
	my $self = bless {
		db => $db,
		handle => $h,
		port => slurp_file("$dir/port") + 0,
		control_port => slurp_file("$dir/control_port") + 0,
		log => "$dir/stand_in.log",
	}, 'GsExportTest::Remote';
	push @all_remotes, $self;
	return $self;
}


# Point the local node at the remote.
sub configure
{
	my ($node, $remote, %opts) = @_;
	my $key = $opts{key} // $API_KEY;
	$node->safe_psql('postgres', qq{
		DELETE FROM gestao_scouter_config;
		INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
		VALUES ('${\ $remote->url }', '$key', true, true);
	});
}

# Insert leads from a SELECT list of (id, updated_at, name) rows; other
# columns get varied values of every type.
sub insert_leads
{
	my ($node, $rows_sql) = @_;
	$node->safe_psql('postgres', qq{
		INSERT INTO leads (id, updated_at, name, age, raw, valor_ficha, ficha_confirmada,
		                   data_agendamento, commercial_project_id, criado, celular,
		                   bitrix_telemarketing_id, sync_source)
		SELECT r.id, r.updated_at, r.name,
		       18 + (r.id % 50)::int,
		       jsonb_build_object('bitrix_id', r.id, 'score', 0.1, 'tags', jsonb_build_array('a', r.id % 3)),
		       (r.id % 1000) + 0.10,
		       r.id % 2 = 0,
		       date '2026-01-01' + (r.id % 300)::int,
		       ('00000000-0000-4000-8000-' || lpad(r.id::text, 12, '0'))::uuid,
		       r.updated_at - interval '3 days 0.123456 seconds',
		       '+55 11 9' || lpad(r.id::text, 8, '0'),
		       (r.id % 7)::int,
		       'bitrix'
		  FROM ($rows_sql) AS r(id, updated_at, name);
	});
}

# Create a job, returning its id.
sub create_job
{
	my ($node, $args) = @_;
	return $node->safe_psql('postgres', "SELECT gs_export_create($args)");
}

# Wait until the job reaches one of the states (a regex), or die.
sub wait_status
{
	my ($node, $job, $re, $timeout) = @_;
	$timeout //= 120;
	my $deadline = time + $timeout;
	my $status;
	while (time < $deadline)
	{
		$status = $node->safe_psql('postgres',
			"SELECT status FROM gestao_scouter_export_jobs WHERE id = '$job'");
		return $status if $status =~ /^(?:$re)$/;
		usleep(100_000);
	}
	die "job $job still $status after ${timeout}s, wanted $re";
}

# Wait until a query returns 't'.
sub wait_true
{
	my ($node, $sql, $timeout) = @_;
	$timeout //= 120;
	my $deadline = time + $timeout;
	while (time < $deadline)
	{
		return 1 if $node->safe_psql('postgres', $sql) eq 't';
		usleep(50_000);
	}
	die "timed out waiting for: $sql";
}

# Poll a Perl condition until it is true (returns its value), or die.
sub wait_for
{
	my ($what, $cond, $timeout) = @_;
	my $deadline = time + ($timeout // 30);
	while (time < $deadline)
	{
		my $v = $cond->();
		return $v if $v;
		usleep(20_000);
	}
	die "timed out waiting for $what";
}

# The pid of the job worker ('' when there is none).
sub worker_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'gs_export job worker'");
}

# The job row as a hash.
sub job
{
	my ($node, $job) = @_;
	my $row = $node->safe_psql('postgres', qq{
		SELECT row_to_json(j) FROM gestao_scouter_export_jobs j WHERE id = '$job'});
	return $json->decode($row);
}

# Compare every mapped column of the remote's fichas with the source leads
# (for the given ids, as SQL): returns the ids that differ or are missing.
sub mismatches
{
	my ($node, $remote, $where) = @_;
	return mismatches_except($node, $remote, $where);
}

package GsExportTest::Remote;

use strict;
use warnings;

sub url { my $self = shift; return "http://127.0.0.1:$self->{port}"; }

sub control
{
	my ($self, $method, $path, $body) = @_;
	my $res = $http->request($method,
		"http://127.0.0.1:$self->{control_port}/_control/$path",
		{
			headers => { 'Content-Type' => 'application/json' },
			(defined $body ? (content => $json->encode($body)) : ())
		});
	die "control $path: $res->{status} $res->{content}" unless $res->{success};
	return length($res->{content}) ? $json->decode($res->{content}) : undef;
}

sub reset { my $self = shift; return $self->control('POST', 'reset', {}); }
sub faults { my ($self, %f) = @_; return $self->control('POST', 'faults', \%f); }
sub stats { my $self = shift; return $self->control('GET', 'stats'); }
sub requests { my $self = shift; return $self->control('GET', 'requests'); }

# The logged requests that have no answer yet.
sub unanswered
{
	my $self = shift;
	return grep { !defined $_->{duration_ms} } @{ $self->requests };
}

# Wait until the stand-in has answered every request it got (one whose
# client went away is still processed, and committed, by the remote).
sub wait_idle
{
	my ($self, $timeout) = @_;
	GsExportTest::wait_for('the remote to finish its requests',
		sub { scalar($self->unanswered) == 0 }, $timeout // 60);
}

# The most requests the stand-in worked on at once, from its log.
sub max_concurrent
{
	my $self = shift;
	my @ev;
	for my $r (@{ $self->requests })
	{
		next unless defined $r->{duration_ms};
		push @ev, [ $r->{started_at}, 1 ], [ $r->{started_at} + $r->{duration_ms} / 1000, -1 ];
	}
	my ($cur, $max) = (0, 0);
	for my $e (sort { $a->[0] <=> $b->[0] || $a->[1] <=> $b->[1] } @ev)
	{
		$cur += $e->[1];
		$max = $cur if $cur > $max;
	}
	return $max;
}

# Rows in the remote's fichas.
sub count
{
	my ($self, $where) = @_;
	$where //= 'true';
	return $self->{db}->safe_psql('remote', "SELECT count(*) FROM fichas WHERE $where");
}

sub ids
{
	my $self = shift;
	return $self->{db}->safe_psql('remote', "SELECT string_agg(id::text, ',' ORDER BY id) FROM fichas");
}

sub truncate
{
	my $self = shift;
	$self->{db}->safe_psql('remote', 'TRUNCATE fichas');
}

# SIGTERM, and SIGKILL if the stand-in is still there 10 s later: one that
# does not exit must fail the test, not hang it (and CI with it).
sub stop
{
	my $self = shift;
	my $h = $self->{handle} or return;
	$self->{handle} = undef;
	my $t0 = Time::HiRes::time();
	my $killed = eval { $h->kill_kill(grace => 10) };
	$killed = 1 if $@;
	return unless $killed;
	my $log = eval { PostgreSQL::Test::Utils::slurp_file($self->{log}) } // '';
	$log = substr($log, -4000) if length($log) > 4000;
	my $msg = sprintf('the stand-in did not exit within %.0f s of SIGTERM: killed', Time::HiRes::time() - $t0);
	Test::More::diag("$msg; the end of its log:\n$log");
	# After done_testing (END, DESTROY) a failure can no longer be counted.
	Test::More::fail($msg) unless defined Test::More->builder->has_plan;
}

sub DESTROY { my $self = shift; $self->stop if $self->{handle}; }

1;

# --- Helpers for the fault, bad-row and schema-drift tests (010-012) ---
package GsExportTest;

# Set GUCs with ALTER SYSTEM (undef: RESET) and reload the configuration.
sub set_gucs
{
	my ($node, %gucs) = @_;
	for my $name (sort keys %gucs)
	{
		my $v = $gucs{$name};
		$node->safe_psql('postgres',
			defined $v ? "ALTER SYSTEM SET $name = '$v'" : "ALTER SYSTEM RESET $name");
	}
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
}

# Wait until no gs_export job worker runs any more.
sub wait_no_worker
{
	my ($node, $timeout) = @_;
	return wait_true($node,
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'gs_export job worker'",
		$timeout // 30);
}

# The sync_events of a job, summed up:
# "success rows/success leads/error rows/error leads/other rows".
sub sync_summary
{
	my ($node, $job) = @_;
	return $node->safe_psql('postgres', qq{
		SELECT count(*) FILTER (WHERE status = 'success') || '/' ||
		       count(DISTINCT lead_id) FILTER (WHERE status = 'success') || '/' ||
		       count(*) FILTER (WHERE status = 'error') || '/' ||
		       count(DISTINCT lead_id) FILTER (WHERE status = 'error') || '/' ||
		       count(*) FILTER (WHERE status NOT IN ('success', 'error')
		                           OR event_type <> 'update'
		                           OR direction <> 'supabase_to_gestao_scouter')
		  FROM sync_events WHERE job_id = '$job'});
}

# mismatches() for a remote whose fichas lacks some columns: compares every
# mapped column but those named in @skip.
sub mismatches_except
{
	my ($node, $remote, $where, @skip) = @_;
	my %skip = map { $_ => 1 } @skip;
	my @cols = grep { !$skip{$_} } qw(id name responsible age address scouter photo_url
	  date_modify raw updated_at bitrix_telemarketing_id commercial_project_id
	  responsible_user_id celular telefone_trabalho telefone_casa etapa fonte criado
	  nome_modelo local_abordagem ficha_confirmada data_criacao_ficha
	  data_confirmacao_ficha presenca_confirmada compareceu valor_ficha
	  data_criacao_agendamento horario_agendamento data_agendamento gerenciamento_funil
	  status_fluxo etapa_funil etapa_fluxo funil_fichas status_tabulacao
	  maxsystem_id_ficha gestao_scouter op_telemarketing data_retorno_ligacao
	  cadastro_existe_foto);
	my $cols = join(', ', @cols);
	my $src = $node->safe_psql('postgres', "SET TimeZone = 'UTC';"
		. "SELECT string_agg(t::text, E'\\n' ORDER BY t.id) FROM (SELECT $cols FROM leads WHERE $where) t");
	my $dst = $remote->{db}->safe_psql('remote', "SET TimeZone = 'UTC';"
		. "SELECT string_agg(t::text, E'\\n' ORDER BY t.id) FROM (SELECT $cols FROM fichas) t");
	my %s = map { /^\((\d+),/ ? ($1 => $_) : () } split /\n/, $src;
	my %d = map { /^\((\d+),/ ? ($1 => $_) : () } split /\n/, $dst;
	my @bad = grep { !defined $d{$_} || $d{$_} ne $s{$_} } sort { $a <=> $b } keys %s;
	push @bad, grep { !defined $s{$_} } sort { $a <=> $b } keys %d;
	return @bad;
}

1;

# --- Helpers for the security tests (030-033) ---
package GsExportTest;

# Run SQL through psql as $user (a LOGIN role; undef: the bootstrap
# superuser), errors in verbose form.  Returns (sqlstate, stdout, stderr):
# sqlstate is '' when every statement succeeded (psql stops at the first
# error), 'CRASH' when the connection was lost.
sub psql_as
{
	my ($node, $user, $sql, %opts) = @_;
	my ($out, $err) = ('', '');
	my $ret = $node->psql($opts{dbname} // 'postgres',
		"\\set VERBOSITY verbose\n\\set SHOW_CONTEXT never\n$sql",
		stdout => \$out, stderr => \$err, on_error_stop => 1,
		extra_params => [ defined $user ? ('-U', $user) : () ]);
	my $state =
	    $err =~ /server closed the connection|terminated abnormally|connection to server .* lost/
	  ? 'CRASH'
	  : $err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1
	  : $ret ? 'FAILED'
	  : '';
	return ($state, $out, $err);
}

# The SQL of one PostgREST request: a transaction as $role with the JWT's
# claims in request.jwt.claims (with "sub" unless $sub is undef), as
# PostgREST 9+ sets them.
sub jwt_sql
{
	my ($role, $sub, $sql) = @_;
	my $claims = defined $sub
	  ? qq({"sub": "$sub", "role": "$role"})
	  : qq({"role": "$role"});
	return "BEGIN;\nSET LOCAL ROLE $role;\nSET LOCAL request.jwt.claims = '$claims';\n$sql\nCOMMIT;\n";
}

# Relations that $user may SELECT and whose rows, as text, contain $needle,
# scanned as that user.  The needle travels hex-encoded, so that the scan's
# own query (in pg_stat_activity) does not contain it.  %opts: skip =>
# [relation names], dbname.  Returns (arrayref of relation names, number of
# relations scanned).
sub readable_relations_containing
{
	my ($node, $user, $needle, %opts) = @_;
	my $hex = unpack('H*', $needle);
	my $skip = join(',', map { "'$_'" } @{ $opts{skip} // [] }) || "''";
	my ($state, $out, $err) = psql_as($node, $user, qq{
DO \$scan\$
DECLARE
	needle text := pg_catalog.convert_from(pg_catalog.decode('$hex', 'hex'), 'UTF8');
	r record;
	hit boolean;
	n integer := 0;
BEGIN
	FOR r IN SELECT c.oid::regclass::text AS rel FROM pg_catalog.pg_class c
	          WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
	            AND pg_catalog.has_table_privilege(c.oid, 'SELECT')
	            AND c.oid::regclass::text NOT IN ($skip)
	LOOP
		BEGIN
			EXECUTE pg_catalog.format('SELECT EXISTS (SELECT 1 FROM %s t WHERE pg_catalog.strpos(t::text, \$1) > 0)', r.rel)
			   INTO hit USING needle;
			n := n + 1;
			IF hit THEN
				RAISE NOTICE 'FOUND IN %', r.rel;
			END IF;
		EXCEPTION WHEN OTHERS THEN
			NULL;
		END;
	END LOOP;
	RAISE NOTICE 'SCANNED %', n;
END
\$scan\$;
}, dbname => $opts{dbname});
	die "scan as " . ($user // 'superuser') . " failed: $err" if $state ne '';
	my @found = $err =~ /FOUND IN (\S+)/g;
	my ($n) = $err =~ /SCANNED (\d+)/;
	return (\@found, $n // 0);
}

1;
