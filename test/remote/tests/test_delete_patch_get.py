"""DELETE, PATCH and GET on the remote's fichas (standin/mutate_path.py,
query.py): PostgREST 12.2's filters, statuses, headers and bodies, the
safeupdate refusal of a request without a filter, the fault switch scoped
by method and the request log's ids of the rows touched."""

import json
import urllib.parse

from .fixture import KEY, StandInCase

H = {"apikey": KEY, "Authorization": "Bearer " + KEY}


def hdrs(**kw):
    h = dict(H)
    for k, v in kw.items():
        h[k.replace("_", "-")] = v
    return h


class DeletePatchGetTest(StandInCase):

    def setUp(self):
        super().setUp()
        self.sql("INSERT INTO public.fichas (id, name, age, sync_source) VALUES "
                 "(1, 'a', 10, 'tabuladormax'), (2, 'b', 20, 'tabuladormax'), "
                 "(3, 'c', NULL, 'tabuladormax'), (4, 'd', 40, 'manual'), "
                 "(5, 'e', 50, 'tabuladormax')")

    def delete(self, query, **kw):
        return self.request("DELETE", "/rest/v1/fichas?" + query, None, hdrs(**kw))

    def patch(self, query, body, **kw):
        h = hdrs(**kw)
        h.setdefault("Content-Type", "application/json")
        return self.request("PATCH", "/rest/v1/fichas?" + query, body, h)

    def get(self, query, method="GET", **kw):
        return self.request(method, "/rest/v1/fichas" + ("?" + query if query else ""),
                            None, hdrs(**kw))

    # -- DELETE ------------------------------------------------------------

    def test_delete_minimal_204(self):
        a = self.delete("id=in.(1,2,3,4)&sync_source=eq.tabuladormax",
                        Prefer="return=minimal")
        self.assertEqual(a.status, 204, a.body)
        self.assertEqual(a.body, b"")
        self.assertEqual(a.headers.get("content-range"), "*/*")
        self.assertEqual(a.headers.get("preference-applied"), "return=minimal")
        self.assertNotIn("content-type", a.headers)
        self.assertEqual(self.ids(), [4, 5])       # 4 is another source's

    def test_delete_without_prefer_204_no_preference_applied(self):
        a = self.delete("id=eq.5")
        self.assertEqual(a.status, 204)
        self.assertNotIn("preference-applied", a.headers)
        self.assertEqual(self.ids(), [1, 2, 3, 4])

    def test_delete_representation_and_count(self):
        a = self.delete("id=in.(2,3)&select=id,name",
                        Prefer="return=representation, count=exact")
        self.assertEqual(a.status, 200, a.body)
        self.assertEqual(a.headers.get("content-type"), "application/json; charset=utf-8")
        self.assertEqual(a.headers.get("content-profile"), "public")
        self.assertEqual(a.headers.get("content-range"), "*/2")
        self.assertEqual(a.headers.get("preference-applied"),
                         "return=representation, count=exact")
        self.assertEqual(sorted(a.json(), key=lambda r: r["id"]),
                         [{"id": 2, "name": "b"}, {"id": 3, "name": "c"}])
        a = self.delete("id=eq.99", Prefer="return=representation,count=exact")
        self.assertEqual((a.status, a.json(), a.headers.get("content-range")),
                         (200, [], "*/0"))
        a = self.delete("id=eq.99", Prefer="count=exact")
        self.assertEqual((a.status, a.headers.get("content-range")), (204, "*/0"))

    def test_delete_full_row_representation(self):
        a = self.delete("id=eq.1", Prefer="return=representation")
        row = a.json()[0]
        self.assertEqual(row["id"], 1)
        self.assertIn("updated_at", row)
        ncols = self.sql("SELECT count(*) FROM information_schema.columns "
                         "WHERE table_schema = 'public' AND table_name = 'fichas'")[0][0]
        self.assertEqual(len(row), ncols)

    def test_delete_filters(self):
        a = self.delete("age=is.null")
        self.assertEqual(a.status, 204)
        self.assertEqual(self.ids(), [1, 2, 4, 5])
        self.delete("age=gt.30&sync_source=neq.manual")
        self.assertEqual(self.ids(), [1, 2, 4])
        self.delete("id=not.in.(1,4)")
        self.assertEqual(self.ids(), [1, 4])

    def test_delete_without_filter_refused_as_with_safeupdate(self):
        a = self.delete("")
        self.assertPgrstError(a, 400, "21000", "DELETE requires a WHERE clause")
        self.assertEqual(self.ids(), [1, 2, 3, 4, 5])
        # select is no filter
        a = self.delete("select=id", Prefer="return=representation")
        self.assertPgrstError(a, 400, "21000", "DELETE requires a WHERE clause")

    def test_delete_without_filter_and_without_safeupdate_deletes_all(self):
        proc, port, _ = self.spawn("--no-safeupdate")
        try:
            a = self.request("DELETE", "/rest/v1/fichas", None,
                             hdrs(Prefer="count=exact"), port=port)
            self.assertEqual((a.status, a.headers.get("content-range")), (204, "*/5"))
            self.assertEqual(self.ids(), [])
        finally:
            proc.terminate()
            proc.wait()
            proc.stdout.close()

    def test_delete_limit_needs_order(self):
        a = self.delete("sync_source=eq.tabuladormax&limit=2")
        body = self.assertPgrstError(a, 400, "PGRST109",
                                     "A 'limit' was applied without an explicit 'order'")
        self.assertEqual(body["hint"], "Apply an 'order' using unique column(s)")
        a = self.delete("sync_source=eq.tabuladormax&limit=2&order=id.desc",
                        Prefer="return=representation")
        self.assertEqual(sorted(r["id"] for r in a.json()), [3, 5])
        self.assertEqual(self.ids(), [1, 2, 4])

    def test_delete_unknown_column_42703(self):
        a = self.delete("nope=eq.1")
        self.assertPgrstError(a, 400, "42703", "column fichas.nope does not exist")
        self.assertEqual(len(self.ids()), 5)

    def test_delete_bad_value_and_bad_filter(self):
        a = self.delete("id=eq.x")
        self.assertPgrstError(a, 400, "22P02")
        a = self.delete("id=zz.1")
        self.assertPgrstError(a, 400, "PGRST100")

    def test_delete_unknown_table_42P01(self):
        a = self.request("DELETE", "/rest/v1/nope?id=eq.1", None, H)
        self.assertPgrstError(a, 404, "42P01")

    def test_delete_singular_and_max_affected_roll_back(self):
        a = self.delete("id=in.(1,2)", Accept="application/vnd.pgrst.object+json")
        body = self.assertPgrstError(a, 406, "PGRST116")
        self.assertEqual(body["details"], "The result contains 2 rows")
        a = self.delete("id=in.(1,2)", Prefer="handling=strict, max-affected=1")
        body = self.assertPgrstError(a, 400, "PGRST124")
        self.assertEqual(body["details"], "The query affects 2 rows")
        self.assertEqual(self.ids(), [1, 2, 3, 4, 5])
        a = self.delete("id=eq.1", Prefer="handling=strict, max-affected=1")
        self.assertEqual(a.status, 204)
        self.assertEqual(a.headers.get("preference-applied"),
                         "handling=strict, max-affected=1")

    def test_delete_body_is_ignored(self):
        a = self.request("DELETE", "/rest/v1/fichas?id=eq.1", b"not json",
                         hdrs(Content_Type="application/json"))
        self.assertEqual(a.status, 204)

    # -- PATCH -------------------------------------------------------------

    def test_patch_minimal_204(self):
        a = self.patch("id=in.(1,2)&sync_source=eq.tabuladormax",
                       {"name": "z", "sync_status": "synced"}, Prefer="return=minimal")
        self.assertEqual(a.status, 204, a.body)
        self.assertEqual(a.headers.get("content-range"), "0-1/*")
        self.assertEqual(a.headers.get("preference-applied"), "return=minimal")
        self.assertEqual(self.sql("SELECT id, name FROM fichas WHERE name = 'z' ORDER BY 1"),
                         [(1, "z"), (2, "z")])

    def test_patch_representation_count(self):
        a = self.patch("id=eq.3&select=id,age", {"age": 33},
                       Prefer="return=representation,count=exact")
        self.assertEqual(a.status, 200, a.body)
        self.assertEqual(a.json(), [{"id": 3, "age": 33}])
        self.assertEqual(a.headers.get("content-range"), "0-0/1")
        a = self.patch("id=eq.99", {"age": 1}, Prefer="count=exact")
        self.assertEqual((a.status, a.headers.get("content-range")), (204, "*/0"))
        a = self.patch("id=eq.99", {"age": 1})
        self.assertEqual(a.headers.get("content-range"), "*/*")

    def test_patch_unknown_body_column_pgrst204(self):
        a = self.patch("id=eq.1", {"zzz": 1, "name": "q", "aaa": 2})
        self.assertPgrstError(a, 400, "PGRST204",
                              "Could not find the 'aaa' column of 'fichas' in the schema cache")

    def test_patch_empty_and_array_bodies(self):
        a = self.patch("id=eq.1", b"")
        self.assertPgrstError(a, 400, "PGRST102", "Empty or invalid json")
        # {} and []: no column to set; nothing changes, nothing is counted.
        for body in ({}, []):
            a = self.patch("id=eq.1", body, Prefer="return=representation")
            self.assertEqual((a.status, a.json()), (200, []), body)
        a = self.patch("id=eq.1", [{"name": "x"}, {"age": 1}])
        self.assertPgrstError(a, 400, "PGRST102", "All object keys must match")
        # An array of objects with the same keys sets the matched rows.
        a = self.patch("id=eq.1", [{"name": "arr"}], Prefer="return=representation")
        self.assertEqual([r["name"] for r in a.json()], ["arr"])

    def test_patch_without_filter_refused(self):
        a = self.patch("", {"name": "all"})
        self.assertPgrstError(a, 400, "21000", "UPDATE requires a WHERE clause")
        self.assertEqual(self.sql("SELECT count(*) FROM fichas WHERE name = 'all'"), [(0,)])

    def test_patch_soft_delete_object_and_check_violation(self):
        a = self.patch("id=in.(1,2)&sync_source=eq.tabuladormax",
                       {"sync_status": "error"})
        self.assertEqual(a.status, 204)
        a = self.patch("id=eq.1", {"sync_status": "gone"})
        self.assertPgrstError(a, 400, "23514")

    def test_patch_limit_with_order_and_missing_default(self):
        a = self.patch("sync_source=eq.tabuladormax&order=id.asc&limit=2",
                       {"age": 7}, Prefer="return=representation")
        self.assertEqual(sorted(r["id"] for r in a.json()), [1, 2])
        a = self.patch("id=eq.5", {"ficha_confirmada": None, "age": None},
                       Prefer="missing=default")
        self.assertEqual(a.headers.get("preference-applied"), "missing=default")
        self.assertEqual(self.sql("SELECT ficha_confirmada, age FROM fichas WHERE id = 5"),
                         [(None, None)])

    # -- the request log and the fault switch ------------------------------

    def test_log_records_the_rows_touched(self):
        self.delete("id=in.(1,2,9)&sync_source=eq.tabuladormax")
        self.patch("id=in.(3,4)", {"age": 1})
        self.delete("")
        log = self.control("requests")
        self.assertEqual([(e["method"], e["status"], e["n_rows"], e["ids"]) for e in log],
                         [("DELETE", 204, 2, [1, 2]), ("PATCH", 204, 2, [3, 4]),
                          ("DELETE", 400, None, None)])
        self.assertEqual(log[0]["query"], {"id": "in.(1,2,9)",
                                           "sync_source": "eq.tabuladormax"})
        self.assertEqual(log[0]["table"], "fichas")
        self.assertEqual(sorted(log[1]["ids"]), [3, 4])

    def test_fail_next_scoped_by_method(self):
        self.control("faults", {"fail_next": 1, "status": 500, "method": "delete",
                                "body": {"code": "XX000", "message": "boom"}})
        self.assertEqual(self.control("faults")["method"], "DELETE")
        # Other methods pass and leave the fault armed.
        self.assertEqual(self.get("id=eq.1").status, 200)
        self.assertEqual(self.patch("id=eq.1", {"age": 2}).status, 204)
        a = self.delete("id=eq.1")
        self.assertEqual((a.status, a.json()["message"]), (500, "boom"))
        self.assertEqual(self.delete("id=eq.1").status, 204)
        log = self.control("requests")
        self.assertEqual([(e["method"], e["fault"], e["ids"]) for e in log],
                         [("GET", None, None), ("PATCH", None, [1]),
                          ("DELETE", "fail", None), ("DELETE", None, [1])])
        a = self.request("POST", "/_control/faults", json.dumps(
            {"fail_next": 1, "method": 3}), {"Content-Type": "application/json"},
            port=self.cport)
        self.assertEqual(a.status, 400)

    # -- GET ---------------------------------------------------------------

    def test_get_grammar(self):
        a = self.get("select=id,name&order=id.desc&limit=2&offset=1")
        self.assertEqual(a.status, 200)
        self.assertEqual(a.json(), [{"id": 4, "name": "d"}, {"id": 3, "name": "c"}])
        self.assertEqual(a.headers.get("content-range"), "1-2/*")
        a = self.get("select=id&age=is.null")
        self.assertEqual(a.json(), [{"id": 3}])
        a = self.get("select=id&age=not.is.null&id=gte.2&id=lt.5&order=id")
        self.assertEqual(a.json(), [{"id": 2}, {"id": 4}])
        a = self.get("select=id&sync_source=neq.tabuladormax")
        self.assertEqual(a.json(), [{"id": 4}])
        a = self.get("select=id&id=in.(5,1)&order=id.asc")
        self.assertEqual(a.json(), [{"id": 1}, {"id": 5}])
        a = self.get("select=id,age&order=age.desc.nullslast,id&id=lte.3")
        self.assertEqual([r["id"] for r in a.json()], [2, 1, 3])
        a = self.get("select=id&order=age.asc.nullsfirst&limit=1")
        self.assertEqual(a.json(), [{"id": 3}])
        a = self.get("select=id&ficha_confirmada=is.false&id=gt.4")
        self.assertEqual(a.json(), [{"id": 5}])

    def test_get_count_exact(self):
        a = self.get("select=id&order=id&limit=2", Prefer="count=exact")
        self.assertEqual(a.status, 206)
        self.assertEqual(a.headers.get("content-range"), "0-1/5")
        a = self.get("select=id", Prefer="count=exact")
        self.assertEqual((a.status, a.headers.get("content-range")), (200, "0-4/5"))
        a = self.get("id=gt.100", Prefer="count=exact")
        self.assertEqual((a.status, a.json(), a.headers.get("content-range")),
                         (200, [], "*/0"))
        a = self.get("select=id", method="HEAD", Prefer="count=exact")
        self.assertEqual((a.status, a.body, a.headers.get("content-range")),
                         (200, b"", "0-4/5"))

    def test_get_unknown_column_42703(self):
        a = self.get("select=id&nope=eq.1")
        self.assertPgrstError(a, 400, "42703", "column fichas.nope does not exist")

    def test_db_max_rows_caps_reads_not_deletes(self):
        proc, port, _ = self.spawn("--db-max-rows", "2")
        try:
            a = self.request("GET", "/rest/v1/fichas?select=id&order=id", None,
                             hdrs(Prefer="count=exact"), port=port)
            self.assertEqual((a.status, a.json(), a.headers.get("content-range")),
                             (206, [{"id": 1}, {"id": 2}], "0-1/5"))
            a = self.request("GET", "/rest/v1/fichas?select=id&order=id&offset=2&limit=9",
                             None, H, port=port)
            self.assertEqual((a.json(), a.headers.get("content-range")),
                             ([{"id": 3}, {"id": 4}], "2-3/*"))
            a = self.request("DELETE", "/rest/v1/fichas?id=gt.1", None,
                             hdrs(Prefer="count=exact"), port=port)
            self.assertEqual((a.status, a.headers.get("content-range")), (204, "*/4"))
        finally:
            proc.terminate()
            proc.wait()
            proc.stdout.close()

    def test_keyset_pages(self):
        seen, last = [], 0
        while True:
            a = self.get(urllib.parse.urlencode(
                {"select": "id,updated_at", "id": "gt.%d" % last, "order": "id.asc",
                 "limit": "2", "sync_source": "eq.tabuladormax"}))
            page = a.json()
            if not page:
                break
            seen += [r["id"] for r in page]
            last = page[-1]["id"]
        self.assertEqual(seen, [1, 2, 3, 5])
