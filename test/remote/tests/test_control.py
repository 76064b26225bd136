"""The control interface (standin/control.py): the fault keys it takes,
the request log and the statistics."""

import http.client

from .fixture import COLS, KEY, StandInCase


class ControlTest(StandInCase):
    """/_control/ in front of public.fichas."""

    def test_unknown_fault_key_refused(self):
        a = self.request("POST", "/_control/faults", {"fail_nxt": 1}, port=self.cport)
        self.assertEqual(a.status, 400)

    # -- request log and statistics ----------------------------------------

    def test_requests_log_and_stats(self):
        self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"},
                     {"id": 2, "name": "b", "age": 2, "sync_source": "tabuladormax"}])
        self.upsert([{"id": 2, "name": "b", "age": 2, "sync_source": "tabuladormax"}])
        self.upsert([{"id": 3}], query="on_conflict=id&columns=nope")
        log = self.control("requests")
        self.assertEqual([e["seq"] for e in log], [1, 2, 3])
        first = log[0]
        self.assertEqual(first["method"], "POST")
        self.assertEqual(first["path"], "/rest/v1/fichas")
        self.assertEqual(first["query"], {"on_conflict": "id", "columns": COLS})
        self.assertEqual(first["headers"]["apikey"], KEY)
        self.assertEqual(first["headers"]["prefer"],
                         "resolution=merge-duplicates,return=minimal")
        self.assertEqual((first["n_rows"], first["ids"], first["status"]), (2, [1, 2], 201))
        self.assertIsInstance(first["started_at"], float)
        self.assertGreaterEqual(first["duration_ms"], 0)
        self.assertNotIn("body", first)
        self.assertEqual((log[1]["status"], log[2]["status"]), (200, 400))
        self.assertEqual(log[2]["error_code"], "PGRST204")
        self.assertEqual([e["seq"] for e in self.control("requests?since=2", method="GET")],
                         [3])
        stats = self.control("stats")
        self.assertEqual(stats, {"requests": 3, "rows": 3,
                                 "by_status": {"201": 1, "200": 1, "400": 1},
                                 "rate_limited": 0, "max_concurrent_seen": 1,
                                 "chaos_faults": 0, "burst_faults": 0})
        self.control("reset")
        self.assertEqual(self.control("stats"), {"requests": 0, "rows": 0, "by_status": {},
                                                 "rate_limited": 0,
                                                 "max_concurrent_seen": 0,
                                                 "chaos_faults": 0, "burst_faults": 0})

    def test_log_rows_of_failed_and_refused_requests(self):
        # A successful upsert with ?columns takes its ids from the database
        # (the body is not parsed); any other request from its body, as sent.
        ok = [{"id": 10, "name": "a", "age": 1, "sync_source": "tabuladormax"},
              {"id": 11, "name": "b", "age": 2, "sync_source": "tabuladormax"}]
        bad = [{"id": 20, "name": "a", "age": 1, "sync_source": "tabuladormax"},
               {"id": 21, "name": "b", "age": "x", "sync_source": "tabuladormax"}]
        self.assertEqual(self.upsert(ok).status, 201)
        self.assertEqual(self.upsert(bad).status, 400)                  # 22P02
        self.assertEqual(self.upsert([]).status, 200)
        self.assertEqual(self.upsert(ok[0]).status, 200)                # one object
        self.assertEqual(self.upsert([{"id": 30}], query="on_conflict=id&columns=name")
                         .status, 400)                                  # 23502, no id column
        self.assertEqual(self.upsert(ok, headers={"apikey": "wrong"}).status, 401)
        self.control("faults", {"fail_next": 1})
        self.assertEqual(self.upsert(bad).status, 503)
        self.control("faults", {"drop_next": 1})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.upsert(bad)
        self.control("faults", {"drop_after_commit_next": 1})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.upsert([{"id": 12}, {"id": 13}], query="on_conflict=id&columns=id")
        self.assertEqual(self.upsert("[1, {\"id\": 5}, {\"x\": 1}]").status, 400)
        self.assertEqual(self.upsert("not json").status, 400)
        log = self.control("requests")
        self.assertEqual([(e["status"], e["n_rows"], e["ids"]) for e in log], [
            (201, 2, [10, 11]), (400, 2, [20, 21]), (200, 0, []), (200, 1, [10]),
            (400, 1, [30]), (401, 2, [10, 11]), (503, 2, [20, 21]),
            (None, 2, [20, 21]), (None, 2, [12, 13]), (400, 3, [5]), (400, None, None)])
        self.assertEqual(log[1]["error_code"], "22P02")
        self.assertEqual(log[8]["would_status"], 201)
        self.assertEqual(self.control("stats")["rows"], 2 + 0 + 1 + 2)
        self.assertEqual(self.ids(), [10, 11, 12, 13])

    def test_log_ids_are_the_bodys_when_the_table_may_differ(self):
        # ignore-duplicates skips conflicting rows (not returned by the
        # upsert): the log still lists every row of the body.
        self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        a = self.upsert([{"id": 1, "name": "b", "age": 1, "sync_source": "tabuladormax"},
                         {"id": 2, "name": "b", "age": 1, "sync_source": "tabuladormax"}],
                        headers={"Prefer": "resolution=ignore-duplicates,return=minimal"})
        self.assertEqual(a.status, 201, a.body)
        self.assertEqual((self.control("requests")[-1]["n_rows"],
                          self.control("requests")[-1]["ids"]), (2, [1, 2]))
        # A BEFORE trigger that skips a row and rewrites another's id: once
        # the schema cache knows it, the log lists the body's rows too.
        self.sql("CREATE FUNCTION public.odd() RETURNS trigger LANGUAGE plpgsql AS $$ "
                 "BEGIN IF NEW.name = 'skip' THEN RETURN NULL; END IF; "
                 "IF NEW.name = 'shift' THEN NEW.id := NEW.id + 1000; END IF; "
                 "RETURN NEW; END $$; "
                 "CREATE TRIGGER odd BEFORE INSERT ON public.fichas "
                 "FOR EACH ROW EXECUTE FUNCTION public.odd()")
        try:
            self.control("reload_schema")
            self.control("reset")
            a = self.upsert([{"id": 5, "name": "skip", "age": 1, "sync_source": "tabuladormax"},
                             {"id": 6, "name": "shift", "age": 1, "sync_source": "tabuladormax"},
                             {"id": 7, "name": "keep", "age": 1, "sync_source": "tabuladormax"}])
            self.assertEqual(a.status, 201, a.body)
            e = self.control("requests")[-1]
            self.assertEqual((e["n_rows"], e["ids"]), (3, [5, 6, 7]))
            self.assertEqual(self.control("stats")["rows"], 3)
            self.assertEqual(self.ids(), [1, 2, 7, 1006])
        finally:
            self.sql("DROP TRIGGER odd ON public.fichas; DROP FUNCTION public.odd()")
            self.control("reload_schema")
