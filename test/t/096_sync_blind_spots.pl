# 096_sync_blind_spots.pl: what gs_export_sync finds by updated_at, and
# what it could miss (issue 17, item 3).
#
# 1. A prepared transaction (two-phase commit) that changes a lead, pending
#    across a sync that completes, committed after it: the next sync sends
#    the lead (the mark never passes a transaction that can still commit).
#    With look_back 0, so that only the mark is at work.
# 2. A lead written after a sync with an updated_at two minutes in the past
#    (an application server's clock behind): the next sync, with the default
#    look-back (five minutes), sends it.  With look_back 0 the same lead,
#    written the same way, is not sent: what the look-back is for.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local',
	conf => "max_prepared_transactions = 5\nautovacuum = off\n");
GsExportTest::configure($node, $remote);
GsExportTest::insert_leads($node, q{
	SELECT g, now() - interval '1 day' - g * interval '1 minute', 'lead ' || g
	  FROM generate_series(1, 200) g
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

# One sync, run to its end; returns the ids it sent.
sub run_sync
{
	my ($what, $opts) = @_;
	$remote->reset;
	my $job = sql("SELECT gs_export_sync('$opts')");
	like($job, qr/^[0-9a-f-]{36}$/, "$what: a job");
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 120), 'completed',
		"$what: completed");
	return [ sort { $a <=> $b } map { @{ $_->{ids} // [] } } @{ $remote->requests } ];
}

sub remote_name
{
	my ($id) = @_;
	return $remote->{db}->safe_psql('remote', "SELECT name FROM fichas WHERE id = $id");
}

my $no_look_back = '{"batch_size": 100, "delay_ms": 0, "look_back": "0 seconds"}';
my $sent = run_sync('first sync', $no_look_back);
is(scalar @$sent, 200, 'the first sync sends every lead');

# ---------------------------------------------------------------------
# 1. A prepared transaction across a sync.
# ---------------------------------------------------------------------
sql(q{
	BEGIN;
	UPDATE leads SET name = 'prepared', updated_at = now() WHERE id = 7;
	PREPARE TRANSACTION 'gs_p1';
});
is(sql(q{SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'gs_p1'}), '1', 'a transaction is prepared');
$sent = run_sync('sync while it is pending', $no_look_back);
is_deeply($sent, [], 'the sync while it is pending sends nothing (it cannot see the lead)');
sql(q{COMMIT PREPARED 'gs_p1'});
$sent = run_sync('sync after it commits', $no_look_back);
ok((grep { $_ == 7 } @$sent), 'the next sync sends the lead the prepared transaction changed')
  or diag("sent: @$sent");
is(remote_name(7), 'prepared', 'the remote has its new name');

# ---------------------------------------------------------------------
# 2. A lead written late, with updated_at in the past.
# ---------------------------------------------------------------------
run_sync('a sync to settle the mark', $no_look_back);
sql(q{UPDATE leads SET name = 'late clock', updated_at = now() - interval '2 minutes' WHERE id = 11});
$sent = run_sync('sync with the default look-back', '{"batch_size": 100, "delay_ms": 0}');
ok((grep { $_ == 11 } @$sent), 'with the default look-back (5 minutes), the lead written 2 minutes late is sent')
  or diag("sent: @$sent");
is(remote_name(11), 'late clock', 'the remote has it');

# The same without the look-back: missed (the case the look-back is for).
run_sync('a sync to settle the mark', $no_look_back);
sql(q{UPDATE leads SET name = 'late again', updated_at = now() - interval '2 minutes' WHERE id = 12});
$sent = run_sync('sync without look-back', $no_look_back);
ok(!(grep { $_ == 12 } @$sent), 'with look_back 0, that lead is not found by updated_at');
isnt(remote_name(12), 'late again', 'and the remote keeps its old version (use verify or follow for these)');

done_testing();
