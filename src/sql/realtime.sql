/*
 * Supabase Realtime sends the changes of the tables of the publication
 * supabase_realtime, filtered by their row level security: where it exists,
 * the jobs and errors tables join it, so that a UI subscribed to them sees
 * each change.
 */
DO $realtime$
DECLARE
    t text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'supabase_realtime') THEN
        RETURN;
    END IF;
    FOREACH t IN ARRAY ARRAY['gestao_scouter_export_jobs', 'gestao_scouter_export_errors'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables
                       WHERE pubname = 'supabase_realtime'
                         AND schemaname = '@extschema@' AND tablename = t)
           AND NOT (SELECT puballtables FROM pg_catalog.pg_publication
                    WHERE pubname = 'supabase_realtime') THEN
            EXECUTE pg_catalog.format('ALTER PUBLICATION supabase_realtime ADD TABLE %I.%I',
                                      '@extschema@', t);
        END IF;
    END LOOP;
END
$realtime$;
