"""The remote's write path (standin/write_path.py): POST on fichas and on
other tables as PostgREST 12.2 answers it: 201/200, Prefer, columns,
on_conflict, PGRST errors, the database's errors, the body reaching the
database byte for byte."""

import signal
import time
from decimal import Decimal

import psycopg2

from .fixture import KEY, LEADS_FILE, SCHEMA_FILE, UPSERT_HEADERS, StandInCase


class WritePathTest(StandInCase):
    """public.fichas (fichas.sql only: `leads` is an unknown table here)."""

    # -- success -----------------------------------------------------------

    def test_insert_201_then_update_200(self):
        rows = [{"id": 1, "name": "Ana", "age": 20, "sync_source": "tabuladormax"},
                {"id": 2, "name": "Bia", "age": 30, "sync_source": "tabuladormax"}]
        a = self.upsert(rows)
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(a.body, b"")
        self.assertEqual(a.headers["content-range"], "*/*")
        self.assertEqual(a.headers["preference-applied"],
                         "resolution=merge-duplicates, return=minimal")
        self.assertEqual(a.headers["content-length"], "0")
        rows[0]["name"] = "Ana Maria"
        a = self.upsert(rows)
        self.assertEqual(a.status, 200, a.body)
        self.assertEqual(self.row(1), [(1, "Ana Maria", 20, "tabuladormax")])
        # One new row among updates: 201.
        a = self.upsert(rows + [{"id": 3, "name": "C", "age": 1,
                                 "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 201)
        self.assertEqual(self.ids(), [1, 2, 3])
        # The sync-back trigger saw sync_source = 'tabuladormax': nothing queued.
        self.assertEqual(self.sql("SELECT count(*) FROM public.fichas_sync_back"), [(0,)])

    def test_single_object_and_empty_array(self):
        a = self.upsert({"id": 7, "name": "x", "age": None, "sync_source": "tabuladormax"})
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(self.ids(), [7])
        a = self.upsert([])
        self.assertEqual(a.status, 200, a.body)
        a = self.upsert([], query="")
        self.assertEqual(a.status, 200, a.body)

    def test_columns_extra_and_missing_keys(self):
        self.upsert([{"id": 1, "name": "old", "age": 5, "sync_source": "tabuladormax"}])
        # With ?columns: extra keys are ignored, missing keys are NULL (and
        # an upsert sets every listed column, so age becomes NULL).
        a = self.upsert([{"id": 1, "name": "new", "sync_source": "tabuladormax",
                          "not_a_column": 1},
                         {"id": 2, "age": 9}])
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(self.row(1), [(1, "new", None, "tabuladormax")])
        self.assertEqual(self.row(2), [(2, None, 9, None)])
        # Without ?columns, the keys of the objects are the columns.
        a = self.upsert([{"id": 3, "name": "k"}], query="on_conflict=id")
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(self.row(3), [(3, "k", None, None)])

    def test_values_kept_exactly(self):
        raw = {"a": [1, {"b": None, "c": "ç"}], "n": 1.5}
        a = self.upsert([{"id": 1, "valor_ficha": 0.1, "raw": raw,
                          "date_modify": "2024-02-29T23:59:59.999999-03:00",
                          "data_agendamento": "2024-03-01",
                          "commercial_project_id": "6f1c7a1e-0000-4000-8000-000000000001",
                          "ficha_confirmada": True}],
                        query="on_conflict=id")
        self.assertEqual(a.status, 201, a.body)
        (valor, eq, typ, rawv, dm) = self.sql(
            "SELECT valor_ficha, valor_ficha = 0.1, jsonb_typeof(raw), raw, "
            "to_char(date_modify AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') "
            "FROM public.fichas WHERE id = 1")[0]
        self.assertEqual(valor, Decimal("0.10"))
        self.assertTrue(eq)
        self.assertEqual(typ, "object")
        self.assertEqual(rawv, raw)
        self.assertEqual(dm, "2024-03-01 02:59:59.999999")

    def test_return_representation_and_get(self):
        a = self.upsert([{"id": 4, "name": "r", "age": 1, "sync_source": "tabuladormax"}],
                        headers={"Prefer": "resolution=merge-duplicates,return=representation"})
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(a.headers["preference-applied"],
                         "resolution=merge-duplicates, return=representation")
        body = a.json()
        self.assertEqual(len(body), 1)
        self.assertEqual(body[0]["name"], "r")
        self.assertIn("last_sync_at", body[0])
        a = self.request("GET", "/rest/v1/fichas?select=id,name&id=eq.4",
                         headers={"apikey": KEY})
        self.assertEqual(a.status, 200, a.body)
        self.assertEqual(a.json(), [{"id": 4, "name": "r"}])

    # -- PostgREST request errors -------------------------------------------

    def test_pgrst204_first_unknown_alphabetically(self):
        a = self.upsert([{"id": 1}], query="on_conflict=id&columns=zeta,id,beta,alpha")
        b = self.assertPgrstError(
            a, 400, "PGRST204",
            "Could not find the 'alpha' column of 'fichas' in the schema cache")
        self.assertIsNone(b["details"])
        self.assertIsNone(b["hint"])
        a = self.upsert([{"id": 1, "zz": 1, "bb": 2, "name": "x"}], query="on_conflict=id")
        self.assertPgrstError(
            a, 400, "PGRST204",
            "Could not find the 'bb' column of 'fichas' in the schema cache")
        self.assertEqual(self.ids(), [])

    def test_schema_drift_and_reload(self):
        self.sql("ALTER TABLE public.fichas DROP COLUMN op_telemarketing")
        try:
            # The schema cache is stale until reloaded: the database refuses.
            a = self.upsert([{"id": 1, "op_telemarketing": "x"}], query="on_conflict=id")
            self.assertPgrstError(a, 400, "42703")
            info = self.control("reload_schema")
            self.assertNotIn("op_telemarketing", info["columns"])
            a = self.upsert([{"id": 1, "op_telemarketing": "x"}], query="on_conflict=id")
            self.assertPgrstError(
                a, 400, "PGRST204",
                "Could not find the 'op_telemarketing' column of 'fichas' in the schema cache")
        finally:
            self.sql("ALTER TABLE public.fichas ADD COLUMN op_telemarketing text")
            self.control("reload_schema")
        a = self.upsert([{"id": 1, "op_telemarketing": "x"}], query="on_conflict=id")
        self.assertEqual(a.status, 201, a.body)

    def test_pgrst102_invalid_json_and_mismatched_keys(self):
        for body in ("[{\"id\": 1", "", "[NaN]", "{'id': 1}"):
            a = self.upsert(body, query="on_conflict=id")
            self.assertPgrstError(a, 400, "PGRST102", "Empty or invalid json")
        a = self.upsert([{"id": 1, "name": "a"}, {"id": 2}], query="on_conflict=id")
        self.assertPgrstError(a, 400, "PGRST102", "All object keys must match")
        a = self.upsert([{"id": 1}, 5], query="on_conflict=id")
        self.assertPgrstError(a, 400, "PGRST102", "All object keys must match")
        # With ?columns PostgREST does not parse the body: the database does.
        a = self.upsert("[{\"id\": 1", query="on_conflict=id&columns=id")
        self.assertPgrstError(a, 400, "22P02", "invalid input syntax for type json")
        self.assertEqual(self.ids(), [])

    def test_content_type(self):
        a = self.upsert([{"id": 1}], query="on_conflict=id",
                        headers={"Content-Type": "text/plain"})
        self.assertPgrstError(a, 400, "PGRST102", "Content-Type not acceptable: text/plain")
        # No Content-Type at all: PostgREST takes the body as JSON.
        a = self.upsert([{"id": 1}], query="on_conflict=id", headers={"Content-Type": None})
        self.assertEqual(a.status, 201, a.body)
        a = self.upsert([{"id": 2}], query="on_conflict=id",
                        headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(a.status, 201, a.body)

    def test_unknown_table_404_empty_object(self):
        a = self.request("POST", "/rest/v1/leads?on_conflict=id&columns=id", [{"id": 1}],
                         UPSERT_HEADERS)
        self.assertEqual(a.status, 404)
        self.assertEqual(a.json(), {})
        a = self.request("POST", "/rest/v1/leads", [{"id": 1}], UPSERT_HEADERS)
        self.assertEqual((a.status, a.json()), (404, {}))
        # No column to resolve: PostgREST 12.2 lets the database answer.
        a = self.request("POST", "/rest/v1/leads", [], UPSERT_HEADERS)
        self.assertPgrstError(a, 404, "42P01", 'relation "public.leads" does not exist')
        a = self.request("GET", "/rest/v1/leads", headers={"apikey": KEY})
        self.assertPgrstError(a, 404, "42P01", 'relation "public.leads" does not exist')
        # Not a table path at all.
        a = self.request("POST", "/rest/v1/fichas/1", [{"id": 1}], UPSERT_HEADERS)
        self.assertEqual((a.status, a.json()), (404, {}))

    # -- database errors ---------------------------------------------------

    def test_bad_value_22P02(self):
        a = self.upsert([{"id": 1, "name": "a", "age": "abc", "sync_source": "tabuladormax"}])
        self.assertPgrstError(a, 400, "22P02", 'invalid input syntax for type integer: "abc"')

    def test_check_violation_23514(self):
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"},
                         {"id": 2, "name": "b", "age": 1, "sync_source": "bogus"}])
        b = self.assertPgrstError(a, 400, "23514")
        self.assertIn("fichas_sync_source_check", b["message"])
        self.assertTrue(b["details"].startswith("Failing row contains"), b)
        self.assertEqual(self.ids(), [])        # all or nothing

    def test_duplicate_id_in_batch_21000(self):
        a = self.upsert([{"id": 5, "name": "a", "age": 1, "sync_source": "tabuladormax"},
                         {"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"},
                         {"id": 1, "name": "b", "age": 1, "sync_source": "tabuladormax"}])
        self.assertPgrstError(a, 500, "21000",
                              "ON CONFLICT DO UPDATE command cannot affect row a second time")
        self.assertEqual(self.ids(), [])

    def test_not_null_and_unique(self):
        a = self.upsert([{"id": None, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertPgrstError(a, 400, "23502")
        self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        # No resolution preference: a plain INSERT, so a duplicate is 409.
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}],
                        headers={"Prefer": "return=minimal"})
        self.assertPgrstError(a, 409, "23505")

    def test_rls_refusal_is_401_for_anon(self):
        self.sql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') "
                 "THEN CREATE ROLE anon NOLOGIN; END IF; END $$")
        self.sql("GRANT USAGE ON SCHEMA public TO anon; "
                 "GRANT SELECT, INSERT, UPDATE ON public.fichas TO anon; "
                 "ALTER TABLE public.fichas ENABLE ROW LEVEL SECURITY")
        proc, port, _ = self.spawn("--db-role", "anon")
        try:
            a = self.upsert([{"id": 1, "name": "a", "age": 1,
                              "sync_source": "tabuladormax"}], port=port)
            self.assertPgrstError(a, 401, "42501")
            self.assertEqual(a.headers.get("www-authenticate"), "Bearer")
        finally:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(10), 0)
            proc.stdout.close()
            self.sql("ALTER TABLE public.fichas DISABLE ROW LEVEL SECURITY")

    def test_statement_timeout_57014(self):
        self.sql("CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS "
                 "$$ BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$; "
                 "CREATE TRIGGER slow BEFORE INSERT ON public.fichas "
                 "FOR EACH ROW EXECUTE FUNCTION public.slow()")
        try:
            self.control("faults", {"statement_timeout_ms": 50})
            a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
            self.assertPgrstError(a, 500, "57014",
                                  "canceling statement due to statement timeout")
        finally:
            self.sql("DROP TRIGGER slow ON public.fichas; DROP FUNCTION public.slow()")

    def test_broken_pooled_connection_503(self):
        self.assertEqual(self.upsert([]).status, 200)    # leaves a pooled connection
        self.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = 'remote' AND pid <> pg_backend_pid() "
                 "AND backend_type = 'client backend'")
        time.sleep(0.2)
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 503, a.body)
        self.assertEqual(a.headers.get("retry-after"), "0")
        self.assertIn(a.json()["code"], ("PGRST001", "57P01"))
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 201, a.body)

    # -- the body as the upsert's parameter --------------------------------

    HOSTILE = ["O'Neil", "'); DROP TABLE public.fichas; --", "back\\slash \\' \\\\' ''",
               "$$ $1 %s %% {} \\x00 \\u00e9", "quote \" and \\\" ç ã 🙂 \U0001F600",
               "new\nline\ttab", "E'\\\\'", "\\"]

    def check_hostile(self, port=None):
        rows = [{"id": i + 1, "name": v, "age": i, "sync_source": "tabuladormax"}
                for i, v in enumerate(self.HOSTILE)]
        a = self.upsert(rows, port=port)
        self.assertEqual(a.status, 201, a.body)
        got = self.sql("SELECT name FROM public.fichas ORDER BY id")
        self.assertEqual([r[0] for r in got], self.HOSTILE)
        # Raw escapes of JSON itself, exactly as sent.
        self.sql("TRUNCATE public.fichas")
        a = self.upsert('[{"id": 1, "name": "\\u0041\\\\\\"\\/\'", "age": 1}]'.encode(),
                        query="on_conflict=id&columns=id,name,age", port=port)
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(self.row(1), [(1, 'A\\"/\'', 1, None)])

    def test_body_bytes_reach_the_database_unchanged(self):
        self.check_hostile()
        self.assertEqual(self.control("requests")[0]["ids"], list(range(1, 9)))

    def test_body_bytes_without_standard_conforming_strings(self):
        self.sql("ALTER DATABASE remote SET standard_conforming_strings = off")
        try:
            proc, port, _ = self.spawn()
            try:
                self.check_hostile(port=port)
            finally:
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(10), 0)
                proc.stdout.close()
        finally:
            self.sql("ALTER DATABASE remote RESET standard_conforming_strings")

    def pg_utf8_error(self, raw):
        """PostgreSQL's own error for `raw` as UTF-8 (as for PostgREST's
        binary json parameter)."""
        try:
            self.sql("SELECT convert_from(%s::bytea, 'UTF8')", (psycopg2.Binary(raw),))
        except psycopg2.Error as e:
            return e.pgcode, e.diag.message_primary
        self.fail("valid UTF-8: %r" % raw)

    def test_invalid_utf8_and_nul_refused_by_the_database(self):
        bodies = [b'[{"id": 1, "name": "\xff"}]',
                  b'[{"id": 1, "name": "\xe2\'x"}]',     # the quote follows the bad byte
                  b'[{"id": 1, "name": "\xe2\\\\x"}]',
                  b'[{"id": 1, "name": "x"}]\xc3',         # cut at the very end
                  b'[{"id": 1, "name": "a\x00b"}]',
                  b'[{"id": 1, "name": "\xc3\xa9"}]\x00']
        for raw in bodies:
            a = self.upsert(raw, query="on_conflict=id&columns=id,name")
            code, message = self.pg_utf8_error(raw)
            self.assertPgrstError(a, 400, code, message)
            self.assertEqual(code, "22021")
        self.assertEqual(self.ids(), [])
        log = self.control("requests")
        self.assertEqual([e["error_code"] for e in log], ["22021"] * len(bodies))
        # A body that is not even UTF-8 has no rows to log.
        self.assertEqual({(e["n_rows"], e["ids"]) for e in log}, {(None, None)})
        # The connections stay usable.
        a = self.upsert([{"id": 1, "name": "é", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 201, a.body)

    def test_deep_json_with_columns_goes_to_the_database(self):
        # PostgREST does not parse a body sent with ?columns: the database
        # refuses what it cannot take (here its stack depth limit).
        deep = '[{"id": 1, "raw": ' + "[" * 100000 + "]" * 100000 + "}]"
        a = self.upsert(deep, query="on_conflict=id&columns=id,raw")
        self.assertPgrstError(a, 500, "54001")
        self.assertEqual(self.control("requests")[-1]["error_code"], "54001")
        self.assertEqual(self.ids(), [])


LEADS_COLS = "id,nome,responsavel,idade,ultima_sincronizacao,origem_sincronizacao"


class OtherTablesTest(StandInCase):
    """A second table besides fichas: gestao-scouter's own `leads`, with
    Portuguese column names (gestao_leads.sql), as a job with the option
    target_table = 'leads' writes to it."""

    SCHEMA_FILES = [SCHEMA_FILE, LEADS_FILE]
    TRUNCATE = ["public.fichas", "public.fichas_sync_back", "public.leads"]

    def post(self, table, rows, query="", headers=None, **kw):
        h = dict(UPSERT_HEADERS)
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        path = "/rest/v1/" + table + ("?" + query if query else "")
        return self.request("POST", path, rows, h, **kw)

    def upsert_leads(self, rows, query="on_conflict=id&columns=" + LEADS_COLS, **kw):
        return self.post("leads", rows, query, **kw)

    def lead(self, i):
        return self.sql("SELECT id, nome, responsavel, idade, "
                        "to_char(ultima_sincronizacao AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD HH24:MI:SS.US'), origem_sincronizacao, foto "
                        "FROM public.leads WHERE id = %s", (i,))

    def lead_ids(self):
        return [r[0] for r in self.sql("SELECT id FROM public.leads ORDER BY id")]

    @staticmethod
    def leads(*ids, **over):
        out = []
        for i in ids:
            row = {"id": i, "nome": "Nome %d" % i, "responsavel": "Resp ção",
                   "idade": 20 + i,
                   "ultima_sincronizacao": "2025-03-01T12:00:00.123456-03:00",
                   "origem_sincronizacao": "batch_export"}
            row.update(over)
            out.append(row)
        return out

    def test_upsert_into_leads(self):
        a = self.upsert_leads(self.leads(1, 2))
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(a.body, b"")
        self.assertEqual(a.headers["content-range"], "*/*")
        self.assertEqual(a.headers["preference-applied"],
                         "resolution=merge-duplicates, return=minimal")
        self.assertEqual(self.lead(1), [(1, "Nome 1", "Resp ção", 21,
                                         "2025-03-01 15:00:00.123456", "batch_export",
                                         None)])
        self.assertEqual(self.ids(), [])                # fichas untouched
        # DO UPDATE SET each sent column = EXCLUDED.column: a column not
        # sent (foto) keeps its value; all rows existed: 200.
        self.sql("UPDATE public.leads SET foto = 'f.jpg' WHERE id = 1")
        a = self.upsert_leads(self.leads(1, 2, nome="Outro", idade=None))
        self.assertEqual(a.status, 200, a.body)
        self.assertEqual(self.lead(1), [(1, "Outro", "Resp ção", None,
                                         "2025-03-01 15:00:00.123456", "batch_export",
                                         "f.jpg")])
        # One new row among updates: 201.
        a = self.upsert_leads(self.leads(2, 3))
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(self.lead_ids(), [1, 2, 3])
        # Without ?columns the keys are the columns; the table's own CHECK
        # refuses a bad origem_sincronizacao (all or nothing).
        a = self.post("leads", [{"id": 4, "nome": "x", "origem_sincronizacao": "batch_export"},
                                {"id": 5, "nome": "y", "origem_sincronizacao": "bogus"}],
                      "on_conflict=id")
        b = self.assertPgrstError(a, 400, "23514")
        self.assertIn("leads_origem_sincronizacao_check", b["message"])
        self.assertEqual(self.lead_ids(), [1, 2, 3])
        # return=representation: the rows of leads.
        a = self.upsert_leads(self.leads(6), headers={
            "Prefer": "resolution=merge-duplicates,return=representation"})
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual(a.headers["content-profile"], "public")
        body = a.json()
        self.assertEqual([(r["id"], r["nome"], r["foto"]) for r in body], [(6, "Nome 6", None)])
        # GET reads leads too.
        a = self.request("GET", "/rest/v1/leads?select=id,nome&id=in.(1,6)&order=id",
                         headers={"apikey": KEY})
        self.assertEqual((a.status, a.json()), (200, [{"id": 1, "nome": "Outro"},
                                                     {"id": 6, "nome": "Nome 6"}]))
        # fichas still works as before, in the same stand-in.
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 201, a.body)

    def test_missing_column_pgrst204_names_column_and_table(self):
        # A column fichas has, but leads has not (schema drift between a
        # job's mapping and the remote table).
        a = self.upsert_leads(self.leads(1), query="on_conflict=id&columns=" + LEADS_COLS
                              + ",name,sync_source")
        b = self.assertPgrstError(
            a, 400, "PGRST204",
            "Could not find the 'name' column of 'leads' in the schema cache")
        self.assertIsNone(b["details"])
        self.assertIsNone(b["hint"])
        # Without ?columns: the first unknown key, alphabetically.
        a = self.post("leads", [{"id": 1, "nome": "x", "zona": 1, "photo_url": "p"}],
                      "on_conflict=id")
        self.assertPgrstError(
            a, 400, "PGRST204",
            "Could not find the 'photo_url' column of 'leads' in the schema cache")
        # And the other way round, each table with its own columns.
        a = self.upsert([{"id": 1, "nome": "x"}], query="on_conflict=id&columns=id,nome")
        self.assertPgrstError(
            a, 400, "PGRST204",
            "Could not find the 'nome' column of 'fichas' in the schema cache")
        self.assertEqual((self.lead_ids(), self.ids()), ([], []))
        self.assertEqual([e["error_code"] for e in self.control("requests")],
                         ["PGRST204"] * 3)

    def test_unknown_table_404_as_postgrest(self):
        for q in ("on_conflict=id&columns=id,nome", "on_conflict=id", ""):
            a = self.post("leadz", [{"id": 1, "nome": "x"}], q)
            self.assertEqual(a.status, 404, (q, a.body))
            self.assertEqual(a.headers.get("content-type"), "application/json; charset=utf-8")
            self.assertEqual(a.json(), {})
        # No column to resolve: PostgREST 12.2 sends the INSERT and the
        # database answers.
        for body in ([], [{}], {}):
            a = self.post("leadz", body, "on_conflict=id")
            self.assertPgrstError(a, 404, "42P01", 'relation "public.leadz" does not exist')
        a = self.request("GET", "/rest/v1/leadz", headers={"apikey": KEY})
        self.assertPgrstError(a, 404, "42P01", 'relation "public.leadz" does not exist')
        # A table created since the schema cache was loaded is unknown to
        # PostgREST until a reload, although the database has it.
        self.sql("CREATE TABLE public.novos (id bigint PRIMARY KEY, nome text)")
        try:
            a = self.post("novos", [{"id": 1, "nome": "x"}], "on_conflict=id&columns=id,nome")
            self.assertEqual((a.status, a.json()), (404, {}))
            a = self.post("novos", [], "on_conflict=id")
            self.assertEqual(a.status, 200, a.body)         # the database took it
            a = self.request("GET", "/rest/v1/novos", headers={"apikey": KEY})
            self.assertEqual((a.status, a.json()), (200, []))
            info = self.control("reload_schema")
            self.assertEqual(info["tables"]["novos"]["columns"], ["id", "nome"])
            a = self.post("novos", [{"id": 1, "nome": "x"}], "on_conflict=id&columns=id,nome")
            self.assertEqual(a.status, 201, a.body)
            self.assertEqual(self.sql("SELECT id, nome FROM public.novos"), [(1, "x")])
        finally:
            self.sql("DROP TABLE public.novos")
            self.control("reload_schema")
        # Dropped, reloaded: unknown again.
        a = self.post("novos", [{"id": 1}], "on_conflict=id&columns=id")
        self.assertEqual((a.status, a.json()), (404, {}))

    def test_on_conflict_without_unique_constraint(self):
        self.upsert_leads(self.leads(1))
        # PostgREST does not check on_conflict against its schema cache:
        # the database refuses a target that no unique index matches.
        a = self.upsert_leads(self.leads(1, 2), query="on_conflict=nome&columns=" + LEADS_COLS)
        self.assertPgrstError(
            a, 400, "42P10",
            "there is no unique or exclusion constraint matching the ON CONFLICT specification")
        a = self.upsert_leads(self.leads(2), query="on_conflict=id,nome&columns=" + LEADS_COLS)
        self.assertPgrstError(a, 400, "42P10")
        a = self.upsert_leads(self.leads(2), query="on_conflict=nada&columns=" + LEADS_COLS)
        self.assertPgrstError(a, 400, "42703", 'column "nada" does not exist')
        self.assertEqual(self.lead_ids(), [1])
        # Once nome is unique, the same request is an upsert on nome.
        self.sql("CREATE UNIQUE INDEX leads_nome ON public.leads (nome)")
        try:
            a = self.upsert_leads([{"id": 1, "nome": "Nome 1", "idade": 99}],
                                  query="on_conflict=nome&columns=id,nome,idade")
            self.assertEqual(a.status, 200, a.body)
            self.assertEqual(self.lead(1)[0][3], 99)
        finally:
            self.sql("DROP INDEX public.leads_nome")

    def test_log_and_stats_name_the_table(self):
        self.assertEqual(self.upsert_leads(self.leads(1, 2)).status, 201)
        self.assertEqual(self.upsert([{"id": 7, "name": "a", "age": 1,
                                       "sync_source": "tabuladormax"}]).status, 201)
        self.assertEqual(self.upsert_leads(self.leads(3), query="on_conflict=id&columns=x")
                         .status, 400)
        self.assertEqual(self.post("leadz", [{"id": 1}], "on_conflict=id&columns=id")
                         .status, 404)
        self.control("faults", {"fail_next": 1})
        self.assertEqual(self.upsert_leads(self.leads(4)).status, 503)
        self.assertEqual(self.request("POST", "/rest/v1/rpc/f", {}, UPSERT_HEADERS).status, 404)
        log = self.control("requests")
        self.assertEqual([(e["table"], e["status"]) for e in log], [
            ("leads", 201), ("fichas", 201), ("leads", 400), ("leadz", 404),
            ("leads", 503), (None, 404)])
        self.assertEqual((log[0]["path"], log[0]["n_rows"], log[0]["ids"]),
                         ("/rest/v1/leads", 2, [1, 2]))
        self.assertEqual(log[2]["error_code"], "PGRST204")
        self.assertEqual(log[4]["fault"], "fail")
        self.assertEqual([e["seq"] for e in self.control("requests?table=leads",
                                                         method="GET")], [1, 3, 5])
        self.assertEqual([e["seq"] for e in self.control("requests?since=2&table=leads",
                                                         method="GET")], [3, 5])
        self.assertEqual(self.control("stats"), {
            "requests": 6, "rows": 3,
            "by_status": {"201": 2, "400": 1, "404": 2, "503": 1},
            "rate_limited": 0, "max_concurrent_seen": 1,
            "chaos_faults": 0, "burst_faults": 0})
        self.assertEqual(self.control("stats?table=leads", method="GET"), {
            "requests": 3, "rows": 2, "by_status": {"201": 1, "400": 1, "503": 1}})
        self.assertEqual(self.control("stats?table=fichas", method="GET"), {
            "requests": 1, "rows": 1, "by_status": {"201": 1}})
        self.assertEqual(self.control("stats?table=nada", method="GET"), {
            "requests": 0, "rows": 0, "by_status": {}})
        self.control("reset")
        self.assertEqual(self.control("stats?table=leads", method="GET"), {
            "requests": 0, "rows": 0, "by_status": {}})

    def test_reload_schema_reads_every_table(self):
        info = self.control("reload_schema")
        # fichas at the top, as before; every relation under "tables".
        self.assertTrue(info["table"])
        self.assertIn("sync_source", info["columns"])
        self.assertEqual(info["pk"], ["id"])
        self.assertEqual(info["tables"]["leads"], {
            "schema": "public", "kind": "table", "pk": ["id"],
            "columns": ["id", "nome", "responsavel", "idade", "foto", "telefone", "etapa",
                        "projeto_comercial", "scouter", "criado", "modificado",
                        "ultima_sincronizacao", "origem_sincronizacao"]})
        self.assertEqual(info["tables"]["fichas_sync_back"]["pk"], [])
        self.sql("ALTER TABLE public.leads DROP COLUMN foto")
        try:
            # Stale cache: the database refuses the column.
            a = self.post("leads", [{"id": 1, "foto": "x"}], "on_conflict=id")
            self.assertPgrstError(a, 400, "42703")
            self.assertNotIn("foto", self.control("reload_schema")["tables"]["leads"]["columns"])
            a = self.post("leads", [{"id": 1, "foto": "x"}], "on_conflict=id")
            self.assertPgrstError(
                a, 400, "PGRST204",
                "Could not find the 'foto' column of 'leads' in the schema cache")
        finally:
            self.sql("ALTER TABLE public.leads ADD COLUMN foto text")
            self.control("reload_schema")
        a = self.post("leads", [{"id": 1, "foto": "x"}], "on_conflict=id")
        self.assertEqual(a.status, 201, a.body)

    def test_trigger_on_one_table_leaves_the_others_log(self):
        # A BEFORE trigger on leads: its log ids come from the body; fichas
        # keeps taking them from its upsert.
        self.sql("CREATE FUNCTION public.skip_lead() RETURNS trigger LANGUAGE plpgsql AS $$ "
                 "BEGIN IF NEW.nome = 'skip' THEN RETURN NULL; END IF; RETURN NEW; END $$; "
                 "CREATE TRIGGER skip_lead BEFORE INSERT ON public.leads "
                 "FOR EACH ROW EXECUTE FUNCTION public.skip_lead()")
        try:
            self.control("reload_schema")
            a = self.upsert_leads(self.leads(1) + self.leads(2, nome="skip"))
            self.assertEqual(a.status, 201, a.body)
            self.assertEqual(self.lead_ids(), [1])
            a = self.upsert([{"id": 3, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
            self.assertEqual(a.status, 201, a.body)
            self.assertEqual([(e["table"], e["n_rows"], e["ids"])
                              for e in self.control("requests")],
                             [("leads", 2, [1, 2]), ("fichas", 1, [3])])
        finally:
            self.sql("DROP TRIGGER skip_lead ON public.leads; DROP FUNCTION public.skip_lead()")
            self.control("reload_schema")

    def test_view(self):
        self.sql("CREATE VIEW public.leads_jovens AS "
                 "SELECT id, nome, idade FROM public.leads WHERE idade < 30")
        try:
            info = self.control("reload_schema")
            self.assertEqual(info["tables"]["leads_jovens"]["kind"], "view")
            # A plain insert through the (auto-updatable) view.
            a = self.post("leads_jovens", [{"id": 1, "nome": "v", "idade": 20}], "",
                          headers={"Prefer": "return=minimal"})
            self.assertEqual(a.status, 201, a.body)
            self.assertEqual(self.lead_ids(), [1])
            a = self.post("leads_jovens", [{"id": 1, "foto": "x"}], "")
            self.assertPgrstError(
                a, 400, "PGRST204",
                "Could not find the 'foto' column of 'leads_jovens' in the schema cache")
            # A resolution without on_conflict would need the view's primary
            # key, which PostgREST infers and the stand-in does not: 501.
            a = self.post("leads_jovens", [{"id": 2, "nome": "v", "idade": 20}], "")
            self.assertPgrstError(a, 501, "STANDIN501")
            self.assertEqual(self.lead_ids(), [1])
        finally:
            self.sql("DROP VIEW public.leads_jovens")
            self.control("reload_schema")

    def test_fixture_file(self):
        # gestao_leads.sql loads on its own (as gs_export's TAP tests load
        # it) and its CHECK takes every origin the original used.
        for origin in ("batch_export", "tabuladormax", "gestao_scouter", "bitrix", "manual",
                       None):
            a = self.post("leads", [{"id": 1, "origem_sincronizacao": origin}],
                          "on_conflict=id&columns=id,origem_sincronizacao")
            self.assertIn(a.status, (200, 201), (origin, a.body))
        self.assertEqual(self.sql("SELECT data_type FROM information_schema.columns "
                                  "WHERE table_name = 'leads' AND column_name IN "
                                  "('id', 'idade', 'criado', 'modificado') ORDER BY column_name"),
                         [("timestamp with time zone",), ("bigint",), ("integer",),
                          ("timestamp with time zone",)])
