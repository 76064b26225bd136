# 044_dst_days.pl: a day is every instant whose local date, in the job's
# time zone, is that day -- also on days whose midnight happens twice (the
# clocks fall back at 01:00 to 00:00) or not at all (they spring forward at
# 00:00).  A job over one day exports exactly the leads of that local date;
# processing_date and last_completed_date stay within [end_date,
# start_date]; a job over three days exports each lead once.
#   America/Havana 2023-11-05: 01:00 CDT (-04) -> 00:00 CST (-05); local
#     00:00-00:59 is 04:00-04:59 UTC and again 05:00-05:59 UTC.
#   Atlantic/Azores 2023-10-29: 01:00 UTC, 01:00 (+00) -> 00:00 (-01); local
#     00:00-00:59 is 00:00-00:59 UTC and again 01:00-01:59 UTC.
#   America/Sao_Paulo 2018-11-04: 00:00 (-03) -> 01:00 (-02); the day starts
#     at 03:00 UTC.
use strict;
use warnings;

use GsExportTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $remote = GsExportTest::remote();
my $node = GsExportTest::local_node('local');
GsExportTest::configure($node, $remote);

GsExportTest::insert_leads($node, q{
	SELECT * FROM (VALUES
	-- America/Havana
	(101, timestamptz '2023-11-04 16:00:00+00',        'havana mid Nov 4'),
	(102, timestamptz '2023-11-05 03:59:59.999999+00', 'havana Nov 4 23:59:59.999999 (-04)'),
	(103, timestamptz '2023-11-05 04:00:00+00',        'havana Nov 5 first midnight (-04)'),
	(104, timestamptz '2023-11-05 04:30:00+00',        'havana Nov 5 00:30 (-04)'),
	(105, timestamptz '2023-11-05 05:00:00+00',        'havana Nov 5 second midnight (-05)'),
	(106, timestamptz '2023-11-05 05:30:00+00',        'havana Nov 5 00:30 (-05)'),
	(107, timestamptz '2023-11-06 04:59:59.999999+00', 'havana Nov 5 23:59:59.999999 (-05)'),
	(108, timestamptz '2023-11-06 05:00:00+00',        'havana Nov 6 midnight (-05)'),
	(109, timestamptz '2023-11-06 17:00:00+00',        'havana mid Nov 6'),
	-- Atlantic/Azores
	(201, timestamptz '2023-10-28 12:00:00+00',        'azores mid Oct 28'),
	(202, timestamptz '2023-10-28 23:59:59+00',        'azores Oct 28 23:59:59 (+00)'),
	(203, timestamptz '2023-10-29 00:00:00+00',        'azores Oct 29 first midnight (+00)'),
	(204, timestamptz '2023-10-29 00:30:00+00',        'azores Oct 29 00:30 (+00)'),
	(205, timestamptz '2023-10-29 01:00:00+00',        'azores Oct 29 second midnight (-01)'),
	(206, timestamptz '2023-10-29 01:30:00+00',        'azores Oct 29 00:30 (-01)'),
	(207, timestamptz '2023-10-30 00:59:59+00',        'azores Oct 29 23:59:59 (-01)'),
	(208, timestamptz '2023-10-30 01:00:00+00',        'azores Oct 30 midnight (-01)'),
	(209, timestamptz '2023-10-30 13:00:00+00',        'azores mid Oct 30'),
	-- America/Sao_Paulo
	(301, timestamptz '2018-11-03 15:00:00+00',        'sao paulo mid Nov 3'),
	(302, timestamptz '2018-11-04 02:59:59+00',        'sao paulo Nov 3 23:59:59 (-03)'),
	(303, timestamptz '2018-11-04 03:00:00+00',        'sao paulo Nov 4 01:00 (-02), its first instant'),
	(304, timestamptz '2018-11-04 03:30:00+00',        'sao paulo Nov 4 01:30 (-02)'),
	(305, timestamptz '2018-11-05 01:59:59+00',        'sao paulo Nov 4 23:59:59 (-02)'),
	(306, timestamptz '2018-11-05 02:00:00+00',        'sao paulo Nov 5 midnight (-02)'),
	(307, timestamptz '2018-11-05 14:00:00+00',        'sao paulo mid Nov 5')
	) AS v(id, updated_at, name)
});

# The data set is what the comments say.
is($node->safe_psql('postgres', q{
	SELECT string_agg(id || '=' || (updated_at AT TIME ZONE
	         CASE id / 100 WHEN 1 THEN 'America/Havana' WHEN 2 THEN 'Atlantic/Azores'
	                       ELSE 'America/Sao_Paulo' END)::date, ' ' ORDER BY id)
	  FROM leads}),
	'101=2023-11-04 102=2023-11-04 103=2023-11-05 104=2023-11-05 105=2023-11-05 106=2023-11-05 '
	  . '107=2023-11-05 108=2023-11-06 109=2023-11-06 '
	  . '201=2023-10-28 202=2023-10-28 203=2023-10-29 204=2023-10-29 205=2023-10-29 206=2023-10-29 '
	  . '207=2023-10-29 208=2023-10-30 209=2023-10-30 '
	  . '301=2018-11-03 302=2018-11-03 303=2018-11-04 304=2018-11-04 305=2018-11-04 306=2018-11-05 '
	  . '307=2018-11-05',
	'each lead\'s local date in its zone');

# Every position a job records, kept by a trigger: processing_date and
# last_completed_date are checked all along, not only at completion.
$node->safe_psql('postgres', q{
	CREATE TABLE job_positions (job_id uuid, processing_date date, last_completed_date date,
	                            seen_at timestamptz DEFAULT clock_timestamp());
	CREATE FUNCTION log_job_position() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
	SET search_path = public, pg_catalog AS $$
	BEGIN
		INSERT INTO public.job_positions (job_id, processing_date, last_completed_date)
		VALUES (NEW.id, NEW.processing_date, NEW.last_completed_date);
		RETURN NULL;
	END $$;
	CREATE TRIGGER log_job_position AFTER INSERT OR UPDATE ON gestao_scouter_export_jobs
	   FOR EACH ROW EXECUTE FUNCTION log_job_position();
});

my %zones = (
	'America/Havana'    => [ '2023-11-06', '2023-11-05', '2023-11-04' ],
	'Atlantic/Azores'   => [ '2023-10-30', '2023-10-29', '2023-10-28' ],
	'America/Sao_Paulo' => [ '2018-11-05', '2018-11-04', '2018-11-03' ],
);

sub run_job
{
	my ($zone, $start, $end, $label) = @_;
	$remote->truncate;
	$remote->reset;
	my $job = GsExportTest::create_job($node,
		qq{'$start', '$end', '{"time_zone": "$zone", "batch_size": 2, "delay_ms": 0}'});
	is(GsExportTest::wait_status($node, $job, 'completed|failed|paused', 30), 'completed',
		"$label: the job completed");
	my $expected = $node->safe_psql('postgres', qq{
		SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM leads
		 WHERE (updated_at AT TIME ZONE '$zone')::date BETWEEN '$end' AND '$start'});
	my $got = $remote->ids // '';
	is($got, $expected, "$label: the remote holds exactly the leads of local dates $end .. $start");
	my $j = GsExportTest::job($node, $job);
	my @expected = split /,/, $expected;
	my $n = scalar @expected;
	is("$j->{total_leads}/$j->{exported_leads}", "$n/$n", "$label: total = exported = $n");
	is(GsExportTest::sync_summary($node, $job), "$n/$n/0/0/0", "$label: one success sync_events row per lead");
	ok($j->{processing_date} le $start && $j->{processing_date} ge $end,
		"$label: processing_date $j->{processing_date} within [$end, $start]");
	ok(defined $j->{last_completed_date} && $j->{last_completed_date} le $start && $j->{last_completed_date} ge $end,
		"$label: last_completed_date " . ($j->{last_completed_date} // 'NULL') . " within [$end, $start]");
	my $bad = $node->safe_psql('postgres', qq{
		SELECT string_agg(coalesce(processing_date::text, 'NULL') || '/' || coalesce(last_completed_date::text, 'NULL'),
		                  ' ' ORDER BY seen_at)
		  FROM job_positions
		 WHERE job_id = '$job'
		   AND (processing_date NOT BETWEEN '$end' AND '$start'
		        OR last_completed_date NOT BETWEEN '$end' AND '$start')});
	is($bad, '', "$label: every recorded processing_date/last_completed_date within [$end, $start]");
	return $j;
}

for my $zone (sort keys %zones)
{
	my ($after, $day, $before) = @{ $zones{$zone} };
	for my $d ($before, $day, $after)
	{
		run_job($zone, $d, $d, "$zone, $d");
	}
	my $j = run_job($zone, $after, $before, "$zone, $after .. $before");
	is($j->{last_completed_date}, $before, "$zone, $after .. $before: last_completed_date is end_date");
}

$remote->stop;
$node->stop;
done_testing();
