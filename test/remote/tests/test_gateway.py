"""The gateway (standin/gateway.py, listener.py): the api key, every fault
switch, the WAN's delay, the rate-limiting gateway, keep-alive
connections."""

import http.client
import json
import signal
import socket
import threading
import time

from .fixture import COLS, KEY, UPSERT_HEADERS, StandInCase


class GatewayTest(StandInCase):
    """The gateway in front of public.fichas."""

    def test_keep_alive_connection_reused(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for i in range(3):
                a = self.upsert([{"id": i, "name": "n", "age": i,
                                  "sync_source": "tabuladormax"}], conn=conn)
                self.assertEqual(a.status, 201, a.body)
            # An error answer keeps the connection too.
            a = self.upsert("not json", query="", conn=conn)
            self.assertEqual(a.status, 400)
            a = self.upsert([{"id": 9, "name": "n", "age": 1,
                              "sync_source": "tabuladormax"}], conn=conn)
            self.assertEqual(a.status, 201)
        finally:
            conn.close()

    # -- gateway -----------------------------------------------------------

    def test_gateway_api_key(self):
        a = self.upsert([{"id": 1}], headers={"apikey": None})
        self.assertEqual(a.status, 401)
        self.assertEqual(a.json(), {
            "message": "No API key found in request",
            "hint": "No `apikey` request header or url param was found."})
        a = self.upsert([{"id": 1}], headers={"apikey": "wrong"})
        self.assertEqual(a.status, 401)
        self.assertEqual(a.json(), {
            "message": "Invalid API key",
            "hint": "Double check your Supabase `anon` or `service_role` API key."})
        # The key may also come as a url parameter.
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}],
                        query="on_conflict=id&columns=%s&apikey=%s" % (COLS, KEY),
                        headers={"apikey": None})
        self.assertEqual(a.status, 201, a.body)
        # A bearer token that is not the key is a bad JWT for PostgREST.
        a = self.upsert([{"id": 2}], headers={"Authorization": "Bearer nope"})
        self.assertPgrstError(a, 401, "PGRST301")
        self.assertEqual(self.ids(), [1])

    # -- fault switches ----------------------------------------------------

    def test_fail_next_with_retry_after(self):
        f = self.control("faults", {"fail_next": 2, "status": 503, "retry_after": "2"})
        self.assertEqual(f["fail_next"], 2)
        for _ in range(2):
            a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
            self.assertPgrstError(a, 503, "PGRST001")
            self.assertEqual(a.headers.get("retry-after"), "2")
        self.assertEqual(self.ids(), [])
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 201)
        # Another status, an explicit body, no Retry-After.
        self.control("faults", {"fail_next": 1, "status": 429,
                                "body": {"message": "slow down"}})
        a = self.upsert([])
        self.assertEqual((a.status, a.json()), (429, {"message": "slow down"}))
        self.assertNotIn("retry-after", a.headers)

    def test_drop_next(self):
        self.control("faults", {"drop_next": 1})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(self.ids(), [])                  # nothing written
        self.control("faults", {"drop_next": 1, "drop_with_reset": True})
        with self.assertRaises(ConnectionError):
            self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(self.ids(), [])
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 201)

    def test_drop_after_commit_next(self):
        self.control("faults", {"drop_after_commit_next": 1})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(self.ids(), [1])                 # committed all the same
        log = self.control("requests")
        self.assertEqual(log[-1]["fault"], "drop_after_commit")
        self.assertIsNone(log[-1]["status"])
        self.assertEqual(log[-1]["would_status"], 201)
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 200)

    def test_down_for_ms_refuses_then_recovers(self):
        t0 = time.monotonic()
        self.control("faults", {"down_for_ms": 800}, port=self.port)   # via the main port
        with self.assertRaises(ConnectionRefusedError):
            self.upsert([])
        # The control port stays up.
        self.assertTrue(self.control("health")["down"])
        while time.monotonic() - t0 < 5:
            try:
                a = self.upsert([{"id": 1, "name": "a", "age": 1,
                                  "sync_source": "tabuladormax"}])
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        self.assertEqual(a.status, 201)
        self.assertGreaterEqual(time.monotonic() - t0, 0.75)
        self.assertFalse(self.control("health")["down"])

    def test_down_toggle(self):
        self.control("faults", {"down": True})
        with self.assertRaises(ConnectionRefusedError):
            self.upsert([])
        self.control("faults", {"down": False})
        self.assertEqual(self.upsert([]).status, 200)

    def test_delay_and_gateway_timeout(self):
        self.control("faults", {"delay_next": 1, "delay_ms": 300})
        t0 = time.monotonic()
        self.assertEqual(self.upsert([]).status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        t0 = time.monotonic()
        self.assertEqual(self.upsert([]).status, 200)
        self.assertLess(time.monotonic() - t0, 0.25)
        # Every answer waits, and the gateway gives up past its limit (the
        # work is done all the same, as behind a real gateway).
        self.control("faults", {"delay_ms": 250, "gateway_timeout_over_ms": 100})
        a = self.upsert([{"id": 1, "name": "a", "age": 1, "sync_source": "tabuladormax"}])
        self.assertEqual(a.status, 544)
        self.assertEqual(self.ids(), [1])
        self.control("faults", {"delay_ms": 0})
        self.assertEqual(self.upsert([]).status, 200)

    # -- a WAN's latency and a rate-limiting gateway ------------------------

    def concurrent_upserts(self, ids, stagger_s=0.0):
        """One upsert of one row per id, each on its own connection and
        thread, all started together (or stagger_s apart): [(id, Answer,
        seconds)] in the order of ids, and the wall time of the lot."""
        out = [None] * len(ids)

        def one_upsert(i, lead):
            t = time.monotonic()
            a = self.upsert([{"id": lead, "name": "n%d" % lead, "age": 1,
                              "sync_source": "tabuladormax"}])
            out[i] = (lead, a, time.monotonic() - t)

        threads = [threading.Thread(target=one_upsert, args=(i, lead))
                   for i, lead in enumerate(ids)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
            if stagger_s:
                time.sleep(stagger_s)
        for t in threads:
            t.join(30)
        return out, time.monotonic() - t0

    def test_delay_is_a_round_trip_each_request_waits_its_own(self):
        # 16 requests at once (more than the pool's 10 connections), each
        # on a new connection: each waits its own 200 ms, holding neither a
        # database connection nor a lock, so the lot takes ~200 ms, not
        # 16 x 200 ms (nor 2 x 200 ms, as a pool held during the wait would).
        self.control("faults", {"delay_ms": 200})
        out, wall = self.concurrent_upserts(list(range(1, 17)))
        self.assertEqual(sorted(a.status for _, a, _ in out), [201] * 16)
        for _, _, secs in out:
            self.assertGreaterEqual(secs, 0.2)
        self.assertLess(wall, 0.39, "16 concurrent requests at 200 ms took %.3f s" % wall)
        self.assertEqual(self.ids(), list(range(1, 17)))
        stats = self.control("stats")
        self.assertEqual(stats["max_concurrent_seen"], 16)
        self.assertEqual(stats["rate_limited"], 0)
        # And the delay is every answer's, the control endpoint's aside.
        t0 = time.monotonic()
        self.control("stats")
        self.assertLess(time.monotonic() - t0, 0.15)

    def test_sixteen_connections_opened_at_once(self):
        # A client opening 16 connections in the same instant (libcurl's
        # multi interface with 16 transfers) is not held back by a short
        # listen backlog: with socketserver's default of 5 the SYNs beyond
        # it are dropped and retried a second later.
        self.control("faults", {"delay_ms": 200})
        socks = [socket.socket() for _ in range(16)]
        conns = []
        try:
            t0 = time.monotonic()
            for s in socks:
                s.setblocking(False)
                try:
                    s.connect(("127.0.0.1", self.port))
                except BlockingIOError:
                    pass
            for i, s in enumerate(socks):
                s.setblocking(True)
                s.settimeout(10)
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                c.sock = s
                h = dict(UPSERT_HEADERS)
                c.request("POST", "/rest/v1/fichas?on_conflict=id&columns=id",
                          body=json.dumps([{"id": 200 + i}]), headers=h)
                conns.append(c)
            statuses = []
            for c in conns:
                r = c.getresponse()
                r.read()
                statuses.append(r.status)
            wall = time.monotonic() - t0
        finally:
            for c in conns:
                c.close()
            for s in socks:
                s.close()
        self.assertEqual(statuses, [201] * 16)
        self.assertLess(wall, 0.75, "16 connections at once took %.3f s" % wall)
        self.assertEqual(self.control("stats")["max_concurrent_seen"], 16)

    def test_max_concurrent_refuses_the_excess_with_429(self):
        f = self.control("faults", {"delay_ms": 300, "max_concurrent": 2})
        self.assertEqual((f["max_concurrent"], f["max_concurrent_retry_after"]), (2, "1"))
        # 6 requests at once: the first 2 received are processed, the 4 that
        # arrive while those 2 are at it are refused at the gateway.
        out, wall = self.concurrent_upserts([11, 12, 13, 14, 15, 16], stagger_s=0.02)
        statuses = [a.status for _, a, _ in out]
        self.assertEqual(sorted(statuses), [201, 201, 429, 429, 429, 429])
        passed = sorted(lead for lead, a, _ in out if a.status == 201)
        refused = sorted(lead for lead, a, _ in out if a.status == 429)
        for lead, a, secs in out:
            if a.status == 429:
                self.assertEqual(a.json(), {"message": "API rate limit exceeded"})
                self.assertEqual(a.headers.get("retry-after"), "1")
                self.assertEqual(a.headers.get("content-type"),
                                 "application/json; charset=utf-8")
            # every answer crosses the "WAN", the refusal too
            self.assertGreaterEqual(secs, 0.3)
        # Nothing of the refused requests reached the table.
        self.assertEqual(self.ids(), passed)
        stats = self.control("stats")
        self.assertEqual(stats["by_status"], {"201": 2, "429": 4})
        self.assertEqual((stats["requests"], stats["rows"]), (6, 2))
        self.assertEqual(stats["rate_limited"], 4)
        self.assertEqual(stats["max_concurrent_seen"], 6)
        # In the log (the order of receipt): the first two passed.
        log = self.control("requests")
        self.assertEqual([(e["status"], e["fault"]) for e in log],
                         [(201, None), (201, None)] + [(429, "rate_limited")] * 4)
        self.assertEqual(sorted(e["ids"][0] for e in log if e["status"] == 429), refused)
        # Once they are answered their slots are free again: two at a time
        # pass, and requests one after another never see a 429 (a slot is
        # given back before its answer leaves).
        out, _ = self.concurrent_upserts(refused[:2])
        self.assertEqual([a.status for _, a, _ in out], [201, 201])
        self.control("faults", {"delay_ms": 0, "max_concurrent": 1})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for i in range(30):
                a = self.upsert([{"id": 100 + i}], query="on_conflict=id&columns=id",
                                conn=conn if i % 2 else None)
                self.assertEqual(a.status, 201, a.body)
        finally:
            conn.close()
        self.assertEqual(self.control("stats")["rate_limited"], 4)
        # Another Retry-After, or none; null lifts the limit.
        self.control("faults", {"delay_ms": 300, "max_concurrent": 1,
                                "max_concurrent_retry_after": "3"})
        out, _ = self.concurrent_upserts([21, 22], stagger_s=0.05)
        out.sort(key=lambda o: o[1].status)
        self.assertEqual([a.status for _, a, _ in out], [201, 429])
        self.assertEqual(out[1][1].headers.get("retry-after"), "3")
        self.control("faults", {"max_concurrent_retry_after": None})
        out, _ = self.concurrent_upserts([23, 24], stagger_s=0.05)
        out.sort(key=lambda o: o[1].status)
        self.assertEqual([a.status for _, a, _ in out], [201, 429])
        self.assertNotIn("retry-after", out[1][1].headers)
        self.control("faults", {"max_concurrent": None})
        out, _ = self.concurrent_upserts([31, 32, 33, 34])
        self.assertEqual([a.status for _, a, _ in out], [201] * 4)
        self.assertEqual(self.control("stats")["max_concurrent_seen"], 6)
        # reset clears the counts and the limit.
        self.control("faults", {"max_concurrent": 3})
        self.control("reset")
        f = self.control("faults")
        self.assertEqual((f["max_concurrent"], f["delay_ms"]), (None, 0))
        stats = self.control("stats")
        self.assertEqual((stats["rate_limited"], stats["max_concurrent_seen"]), (0, 0))

    def test_max_concurrent_is_the_outermost_gateway(self):
        # A refused request takes none of the one-shot faults, and no key
        # check happens first: the gateway's limit answers before anything.
        self.control("faults", {"delay_ms": 300, "max_concurrent": 1})
        t = threading.Thread(target=self.upsert, args=([{"id": 1}],),
                             kwargs={"query": "on_conflict=id&columns=id"})
        t.start()
        time.sleep(0.1)
        self.control("faults", {"fail_next": 1, "status": 503})
        a = self.upsert([{"id": 2}], query="on_conflict=id&columns=id",
                        headers={"apikey": None})
        t.join()
        self.assertEqual(a.status, 429)
        self.assertEqual(self.control("faults")["fail_next"], 1)
        for bad in ({"max_concurrent": 0}, {"max_concurrent": -1},
                    {"max_concurrent": "2"}, {"max_concurrent": True}):
            a = self.request("POST", "/_control/faults", bad, port=self.cport)
            self.assertEqual(a.status, 400, bad)

    def test_max_concurrent_and_delay_on_the_command_line_survive_reset(self):
        proc, port, _ = self.spawn("--delay-ms", "150", "--max-concurrent", "1",
                                   "--max-concurrent-retry-after", "2")
        try:
            f = self.request("GET", "/_control/faults", port=port).json()
            self.assertEqual((f["delay_ms"], f["max_concurrent"],
                              f["max_concurrent_retry_after"]), (150, 1, "2"))
            self.request("POST", "/_control/faults", {"max_concurrent": None,
                                                     "delay_ms": 0}, port=port)
            self.assertEqual(self.request("POST", "/_control/reset", port=port).status, 200)
            f = self.request("GET", "/_control/faults", port=port).json()
            self.assertEqual((f["delay_ms"], f["max_concurrent"],
                              f["max_concurrent_retry_after"]), (150, 1, "2"))
            out = [None, None]

            def go(i):
                out[i] = self.upsert([{"id": 50 + i}], query="on_conflict=id&columns=id",
                                     port=port)

            ts = [threading.Thread(target=go, args=(i,)) for i in range(2)]
            ts[0].start()
            time.sleep(0.05)
            ts[1].start()
            for t in ts:
                t.join()
            out.sort(key=lambda a: a.status)
            self.assertEqual([a.status for a in out], [201, 429])
            self.assertEqual(out[1].headers.get("retry-after"), "2")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
            proc.stdout.close()

    def test_paused_project_540(self):
        self.control("faults", {"paused_project": True})
        self.assertEqual(self.upsert([{"id": 1}]).status, 540)
        self.control("faults", {"paused_project": False})
        self.assertEqual(self.upsert([]).status, 200)
