# 043_future_leads.pl: leads whose updated_at is in the future (a year
# ahead).  Catch-up passes cover only leads changed during the job, up to
# now: a lead outside the job's range that did not change during the job is
# never sent, and each lead is sent and counted once per change, not once
# per catch-up pass.
#   A. A job over past days (start_date = yesterday, no end date) while the
#      test keeps changing a few leads (so catch-up passes happen): the
#      future leads are never sent; every past lead is; no lead has more
#      success rows than 1 + the times it was changed; the passes end
#      without "kept changing".
#   B. A job whose range includes the future leads, nothing changing: every
#      lead exactly once, total_leads = 220.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

# 200 leads between now() - 10 days and now() - 2 days (ids 1..200), and
# 20 leads a year ahead (ids 1001..1020).
GsExportTest::insert_leads($node, q{
	SELECT g, now() - interval '2 days' - g * interval '57 minutes', 'past ' || g
	  FROM generate_series(1, 200) g
	UNION ALL
	SELECT 1000 + g, now() + interval '1 year' + g * interval '1 minute', 'future ' || g
	  FROM generate_series(1, 20) g
});
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE updated_at BETWEEN now() - interval '10 days' AND now() - interval '2 days')
	       || '/' || count(*) FILTER (WHERE updated_at > now() + interval '364 days')
	  FROM leads}), '200/20', '200 past leads, 20 leads a year ahead');
my $future = 'id > 1000';
my $past = 'id <= 200';

# --- A. past days, leads changing -------------------------------------------
my $log_offset = -s $node->logfile;
my $jobA = GsExportTest::create_job($node,
	q{start_date => (now() AT TIME ZONE 'UTC')::date - 1,
	  options => '{"batch_size": 10, "delay_ms": 100, "time_zone": "UTC"}'});

# Every ~0.5 s, 3 leads of a pool of 8 past leads, spread over the days
# (some walked already, some not), get updated_at = now(), until the main
# walk is over (then the passes must settle).  Some change more than once.
my @pool = (5, 20, 40, 75, 110, 145, 180, 195);
my %changed;
my $round = 0;
my $t0 = time;
GsExportTest::wait_true($node, "SELECT status = 'running' FROM gestao_scouter_export_jobs WHERE id = '$jobA'", 30);
while (time - $t0 < 40)
{
	my $j = GsExportTest::job($node, $jobA);
	last if $j->{status} ne 'running' || ($j->{catchup_pass} // 0) > 0;
	my @ids = map { $pool[($round * 3 + $_) % @pool] } 0 .. 2;
	$node->safe_psql('postgres',
		'UPDATE leads SET updated_at = now() WHERE id IN (' . join(',', @ids) . ')');
	$changed{$_}++ for @ids;
	$round++;
	usleep(500_000);
}
cmp_ok($round, '>=', 2, "A: $round rounds of changes while the main walk ran");
my $nchanges = 0;
$nchanges += $_ for values %changed;
diag("A: $nchanges changes to " . scalar(keys %changed) . ' leads');

is(GsExportTest::wait_status($node, $jobA, 'completed|failed|paused', 60), 'completed', 'A: the job completed');
my $j = GsExportTest::job($node, $jobA);
diag("A: total $j->{total_leads}, exported $j->{exported_leads}, catch-up passes " . ($j->{catchup_pass} // '?'));
is($remote->count($future), 0, 'A: no future lead on the remote');
is($node->safe_psql('postgres', "SELECT count(*) FROM sync_events WHERE job_id = '$jobA' AND lead_id > 1000"), 0,
	'A: no sync_events row of the job for a future lead');
my %sent;
$sent{$_}++ for map { @{ $_->{ids} // [] } } grep { ($_->{status} // 0) =~ /^2/ } @{ $remote->requests };
is(scalar(grep { $_ > 1000 } keys %sent), 0, 'A: no request carried a future lead');
is($remote->count($past), 200, 'A: every past lead on the remote');

# Success rows per lead: at most 1 + the times the test changed it.
my %rows = map { split /:/ } split /\n/, $node->safe_psql('postgres', qq{
	SELECT lead_id || ':' || count(*) FROM sync_events
	 WHERE job_id = '$jobA' AND status = 'success' GROUP BY lead_id});
my @over = grep { $rows{$_} > 1 + ($changed{$_} // 0) } sort { $a <=> $b } keys %rows;
is_deeply(\@over, [], 'A: no lead has more success rows than 1 + its changes')
  or diag(join(', ', map { "lead $_: $rows{$_} rows, " . ($changed{$_} // 0) . ' changes' } @over[0 .. ($#over < 9 ? $#over : 9)]));
is($j->{exported_leads} + $j->{error_leads}, $j->{total_leads}, 'A: exported + errors = total');
is($node->safe_psql('postgres', "SELECT count(*) FROM sync_events WHERE job_id = '$jobA'"), $j->{total_leads},
	'A: total_leads = sync_events rows of the job');
cmp_ok($j->{total_leads}, '<=', 200 + $nchanges, "A: total_leads $j->{total_leads} <= 200 + $nchanges changes");
my $log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/kept changing/, 'A: no "kept changing" line: the catch-up passes settled');

# --- B. a range that includes the future leads, nothing changing -----------
$remote->truncate;
$remote->reset;
$log_offset = -s $node->logfile;
my $jobB = GsExportTest::create_job($node,
	q{start_date => (now() AT TIME ZONE 'UTC')::date + 400,
	  options => '{"batch_size": 10, "delay_ms": 0, "time_zone": "UTC"}'});
is(GsExportTest::wait_status($node, $jobB, 'completed|failed|paused', 60), 'completed', 'B: the job completed');
$j = GsExportTest::job($node, $jobB);
is("$j->{total_leads}/$j->{exported_leads}/$j->{error_leads}", '220/220/0', 'B: total = exported = 220, no errors');
is($remote->count, 220, 'B: every lead on the remote, the future ones included');
is(GsExportTest::sync_summary($node, $jobB), '220/220/0/0/0', 'B: exactly one success sync_events row per lead');
is($node->safe_psql('postgres', "SELECT count(*) FROM sync_events WHERE job_id = '$jobB' AND lead_id > 1000"), 20,
	'B: one row for each future lead');
%sent = ();
$sent{$_}++ for map { @{ $_->{ids} // [] } } @{ $remote->requests };
is(scalar(grep { $_ > 1 } values %sent), 0, 'B: no lead sent twice');
$log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/kept changing/, 'B: no "kept changing" line');

$remote->stop;
$node->stop;
done_testing();
