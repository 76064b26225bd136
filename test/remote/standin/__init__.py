"""stand_in.py -- a PostgREST-12.2-compatible stand-in for gs_export's remote,
and for the API of gs_export's own database (TabuladorMax's, on Supabase).

gs_export sends batches of leads to gestao-scouter's `public.fichas` table
(or, with a job's target_table, to another table such as gestao-scouter's
own `leads`: test/remote/gestao_leads.sql) over Supabase's REST API: an API
gateway in front of PostgREST 12.2.  The project's tests cannot reach a
real Supabase project, so this server plays both parts, backed by a real
PostgreSQL database that holds the real tables (test/remote/fichas.sql):

* the gateway: the `apikey` check (401 bodies of Supabase's gateway), the
  544 "gateway timeout" and 540 "project paused" answers;
* PostgREST 12.2: `POST /rest/v1/<table>` for every table and view of the
  exposed schemas, as its schema cache knows them (JSON array / object /
  CSV / form bodies, `columns`, `on_conflict`, the `Prefer` header), the upsert
  sent to the database in the same SQL shape PostgREST 12.2.12 builds
  (src/PostgREST/Query/QueryBuilder.hs, SqlFragment.hs, Statements.hs), its
  201/200 rule, its error bodies and its SQLSTATE -> HTTP status mapping
  (src/PostgREST/Error.hs); `GET` / `HEAD` on tables (see READS below);
  `PATCH` / `DELETE` with filters (mutate_path.py); `GET /rest/v1/`, the
  OpenAPI document (openapi.py).
  Errors that come from the data (bad values, CHECK, NOT NULL, duplicate id
  in one batch...) are produced by the real database, never pre-validated
  here.  What this server does not implement answers 501 with a body whose
  code is "STANDIN501", so that a test never passes by accident.

The same server is the other half of PostgREST 12.2, the one an application
talks to through supabase-js, in API MODE (--jwt-secret, below): in front of
gs_export's own database it serves `POST /rest/v1/rpc/gs_export_create` and
the other functions, and reads of the jobs, errors and events tables, as a
signed-in user of the app; and Supabase Realtime's `postgres_changes` for
the jobs and errors tables on its websocket (/realtime/v1/websocket), fed by
the database's NOTIFY gs_export and read as each subscriber (realtime.py;
--no-realtime or /_control/realtime switches it off).

On top, fault switches and a request log for tests, under /_control/
(no api key; JSON in, JSON out), also reachable on a separate control port
that stays up while the main port is "down".  See CONTROL API below.

It is a test tool that must stay honest: if it accepts what PostgREST would
reject, the project's tests lie.  Run it with Debian's /usr/bin/python3
(standard library + psycopg2 only):

    /usr/bin/python3 test/remote/stand_in.py --port 0 \
        --dsn 'host=/tmp/sock port=5433 dbname=remote user=postgres' \
        --api-key KEY --port-file /tmp/stand_in.port \
        [--schema-file test/remote/fichas.sql [--schema-file ...] --init-schema]
        [--delay-ms 100] [--max-concurrent 2 [--max-concurrent-retry-after 1]]
        [--delay-max-ms 1200] [--fault-rate 0.13 [--fault-mix 429,503,reset]]
        [--burst-after-ms 15000 --burst-for-ms 8000 [--burst-fault 503]]

or, in API mode, in front of an application's database:

    /usr/bin/python3 test/remote/stand_in.py --port 0 --port-file /tmp/api.port \
        --dsn 'host=/tmp/sock port=5432 dbname=postgres user=authenticator' \
        --api-key "$ANON_KEY" --jwt-secret "$JWT_SECRET" --anon-role anon \
        [--schemas public,graphql_public] [--extra-search-path public,extensions]

It prints `stand_in listening on 127.0.0.1:PORT` (and `stand_in control on
127.0.0.1:CPORT`) on stdout once it accepts connections, and writes PORT to
--port-file (atomically).  SIGTERM / SIGINT stop it cleanly (status 0), at
once whatever its connections are doing (idle keep-alive connections,
requests in a delay or in the database are cut; a second signal kills it
outright, and one still there 5 s later dumps its threads' stacks on stderr
and exits with status 1); SIGUSR1 reloads the schema cache, as it does for
PostgREST.

Known differences from PostgREST 12.2 (all on paths gs_export does not use):
  * PGRST100 (query-string parse errors): the message is PostgREST's, the
    `details` wording of parsec is approximated.  CSV parse errors: message
    approximated.  JWT errors without --jwt-secret: any bearer token other
    than the configured key(s) is treated as a badly signed JWT
    (PGRST301).  With it: jose's messages for a malformed header or claims
    set (bad base64, bad JSON, a claim of the wrong type) are approximated;
    the secret is always a plain string (no JWK, no base64 secret, no
    jwt-aud, role claim key .role); tokens are not cached.
  * Views: their primary key, which PostgREST infers from the view's
    definition, is not inferred; a POST whose answer depends on it (a
    resolution without on_conflict, return=headers-only) answers 501.
  * RPC: no embedding, no aggregates, no and= / or=, no casts or aliases
    in select, no operators but those of READS, no count=planned /
    estimated, no Range header (all 501 STANDIN501); the schema cache's
    order of overloaded functions in PGRST203 and ties in the fuzzy hint
    may differ.  PUT on tables, POST with filters/order/limit or a select
    list, Accept of CSV / nulls=stripped / plan, the Range header and
    count=planned/estimated answer 501 STANDIN501.
  * PATCH / DELETE (mutate_path.py): Supabase's pg-safeupdate is emulated
    (a request without a filter: 400 21000) unless --no-safeupdate.
  * The OpenAPI document (openapi.py): no view primary keys (PostgREST
    infers them), info.version without a git hash, PostgREST's default
    host and basePath.
  * `Prefer: tx=` is accepted and ignored (as with Supabase's settings);
    `max-affected` is ignored for inserts, as in 12.2.
  * Response headers: Server says postgrest.

THE PACKAGE, one role a module (test/remote/stand_in.py is the command;
it only imports cli.main):
  common.py        constants, JSON as aeson reads / writes it, Reply and
                   PostgREST's error bodies, media types
  query.py         the query string (select, filters, order, limit,
                   columns) and the SQL of reads
  schema_cache.py  what PostgREST's schema cache knows (relations,
                   functions, role settings), loaded from the catalog
  database.py      the connection pool, SQLSTATE -> HTTP status, the
                   per-request transaction and its settings
  auth.py          bearer tokens: the gateway's keys, JWTs (API mode)
  request.py       one PostgREST request: its context, Prefer header,
                   payload, response.* overrides
  write_path.py    POST on a table: PostgREST 12.2's insert / upsert
  mutate_path.py   PATCH and DELETE on a table
  openapi.py       GET /rest/v1/: the OpenAPI (Swagger 2.0) document
  api_mode.py      the app's API: RPC, GET / HEAD on tables
  postgrest.py     PostgREST's dispatch (resource, schema, method)
  gateway.py       Supabase's gateway in front: api key, faults, WAN
                   delay, rate limit, the chaos profile (noisy latency,
                   transient faults, a burst), CORS, the request log
  control.py       /_control/: faults, stats, the log, down / up
  websocket.py     RFC 6455: the handshake's key, frames, messages
  realtime.py      API mode's Realtime: Phoenix channels, postgres_changes
                   from NOTIFY gs_export, row level security per subscriber
  listener.py      the HTTP listeners, connections, drops
  app.py           the App that holds the state the roles share
  cli.py           the command line, schema init, signals
Its tests: test/remote/tests/ (see tests/__init__.py).
"""


