"""The gateway's chaos profile (standin/gateway.py): a noisy latency
(delay_max_ms), transient faults at random (fault_rate, fault_mix), a
burst of faults (burst_after_ms, burst_for_ms), their switches on the
control interface and on the command line."""

import http.client
import subprocess
import threading
import time

from .fixture import KEY, PYTHON, STAND_IN, StandInCase


def lead(i):
    return {"id": i, "name": "n%d" % i, "age": 1, "sync_source": "tabuladormax"}


class ChaosTest(StandInCase):
    """The chaos profile in front of public.fichas."""

    def try_upsert(self, i):
        """The status of an upsert of lead i, or "reset" when the connection
        was closed without an answer."""
        try:
            return self.upsert([lead(i)]).status
        except (http.client.RemoteDisconnected, ConnectionError):
            return "reset"

    def test_switches_and_reset(self):
        f = self.control("faults", {"delay_max_ms": 40, "fault_rate": 0.25,
                                    "fault_mix": ["503", "reset"], "fault_retry_after": "2",
                                    "burst_after_ms": 1000, "burst_for_ms": 500,
                                    "burst_fault": "429", "chaos_seed": 7})
        self.assertEqual((f["delay_max_ms"], f["fault_rate"], f["fault_mix"],
                          f["fault_retry_after"], f["burst_after_ms"], f["burst_for_ms"],
                          f["burst_fault"], f["chaos_seed"]),
                         (40, 0.25, ["503", "reset"], "2", 1000, 500, "429", 7))
        self.assertTrue(0 < f["burst_remaining_ms"] <= 1500)
        for bad in ({"fault_rate": 1.5}, {"fault_rate": -0.1}, {"fault_rate": "x"},
                    {"fault_mix": []}, {"fault_mix": ["418"]}, {"burst_fault": "500"},
                    {"delay_max_ms": -1}, {"burst_for_ms": -5}, {"chaos_seed": "s"}):
            a = self.request("POST", "/_control/faults", bad, port=self.cport)
            self.assertEqual(a.status, 400, bad)
        f = self.control("reset")
        f = self.control("faults")
        self.assertEqual((f["delay_max_ms"], f["fault_rate"], f["fault_mix"],
                          f["burst_after_ms"], f["burst_remaining_ms"], f["burst_fault"]),
                         (None, 0.0, ["429", "503", "reset"], None, None, "503"))

    def test_noisy_latency_is_uniform_over_the_range(self):
        """delay_max_ms: each answer waits somewhere in [delay_ms,
        delay_max_ms], not always the same."""
        self.control("faults", {"delay_ms": 50, "delay_max_ms": 250, "chaos_seed": 1})
        took = []
        for i in range(12):
            t0 = time.monotonic()
            self.assertEqual(self.upsert([lead(i)]).status, 201)
            took.append((time.monotonic() - t0) * 1000)
        self.assertGreaterEqual(min(took), 50)
        self.assertLess(max(took), 250 + 1000)      # + the request itself, generously
        self.assertGreater(max(took) - min(took), 60, took)
        self.assertEqual(len(self.ids()), 12)

    def test_fault_rate_one_and_each_kind(self):
        """fault_rate 1: every request meets one of the mix; each kind looks
        like the real thing and goes no further (nothing written)."""
        self.control("faults", {"fault_rate": 1, "fault_mix": ["429"]})
        a = self.upsert([lead(1)])
        self.assertEqual((a.status, a.json(), a.headers.get("retry-after")),
                         (429, {"message": "API rate limit exceeded"}, "1"))
        self.control("faults", {"fault_retry_after": None})
        self.assertNotIn("retry-after", self.upsert([lead(1)]).headers)
        self.control("faults", {"fault_mix": ["503"]})
        a = self.upsert([lead(1)])
        self.assertPgrstError(a, 503, "PGRST001")
        self.assertEqual(a.headers.get("retry-after"), "0")
        self.control("faults", {"fault_mix": "reset"})
        self.assertEqual(self.try_upsert(1), "reset")
        self.assertEqual(self.ids(), [])
        log = self.control("requests")
        self.assertEqual([e["fault"] for e in log],
                         ["chaos_429", "chaos_429", "chaos_503", "chaos_reset"])
        self.assertEqual([e["status"] for e in log], [429, 429, 503, None])
        self.assertEqual(self.control("stats")["chaos_faults"], 4)
        self.control("faults", {"fault_rate": 0})
        self.assertEqual(self.upsert([lead(1)]).status, 201)
        self.assertEqual(self.ids(), [1])

    def test_fault_rate_is_a_share(self):
        """fault_rate 0.25 over 200 requests fails about a quarter of them,
        each kind of the mix among them; the rest are written."""
        self.control("faults", {"fault_rate": 0.25, "chaos_seed": 42})
        seen = {}
        for i in range(200):
            s = self.try_upsert(i)
            seen[s] = seen.get(s, 0) + 1
        failed = 200 - seen.get(201, 0)
        self.assertTrue(25 <= failed <= 75, seen)
        for kind in (429, 503, "reset"):
            self.assertGreater(seen.get(kind, 0), 0, seen)
        self.assertEqual(len(self.ids()), seen[201])
        self.assertEqual(self.control("stats")["chaos_faults"], failed)

    def test_seed_repeats_the_draws(self):
        runs = []
        for _ in range(2):
            self.control("reset")
            self.control("faults", {"fault_rate": 0.5, "fault_mix": ["503"],
                                    "chaos_seed": 1234})
            runs.append([self.upsert([lead(i)]).status == 503 for i in range(30)])
        self.assertEqual(runs[0], runs[1])
        self.assertIn(True, runs[0])
        self.assertIn(False, runs[0])

    def test_burst_fails_everything_for_its_time_then_ends(self):
        self.control("faults", {"burst_after_ms": 300, "burst_for_ms": 600})
        t0 = time.monotonic()
        self.assertEqual(self.upsert([lead(1)]).status, 201)     # before it
        while time.monotonic() - t0 < 0.35:
            time.sleep(0.01)
        statuses = []
        while time.monotonic() - t0 < 0.85:
            statuses.append(self.upsert([lead(2)]).status)
        self.assertTrue(statuses and all(s == 503 for s in statuses), statuses)
        while time.monotonic() - t0 < 1.0:
            time.sleep(0.01)
        self.assertEqual(self.upsert([lead(3)]).status, 201)     # after it
        self.assertEqual(self.ids(), [1, 3])
        st = self.control("stats")
        self.assertEqual((st["burst_faults"], st["chaos_faults"]), (len(statuses), 0))
        self.assertTrue(all(e["fault"] == "burst_503" for e in self.control("requests")
                            if e["status"] == 503))

    def test_burst_of_resets(self):
        self.control("faults", {"burst_after_ms": 0, "burst_for_ms": 60000,
                                "burst_fault": "reset"})
        self.assertEqual(self.try_upsert(1), "reset")
        self.control("faults", {"burst_for_ms": 0})                # ended by hand
        self.assertIsNone(self.control("faults")["burst_remaining_ms"])
        self.assertEqual(self.upsert([lead(1)]).status, 201)

    def test_chaos_after_the_rate_limiting_gateway(self):
        """A request the max_concurrent gateway refuses is its 429, not a
        chaos fault; the delay (noisy) is every answer's."""
        self.control("faults", {"delay_ms": 200, "delay_max_ms": 300,
                                "max_concurrent": 1, "fault_rate": 1,
                                "fault_mix": ["503"]})
        out = []

        def go(i):
            out.append(self.upsert([lead(i)]).status)
        threads = [threading.Thread(target=go, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(out), [429, 429, 503])
        st = self.control("stats")
        self.assertEqual((st["rate_limited"], st["chaos_faults"]), (2, 1))

    def test_command_line_chaos_survives_reset(self):
        proc, port, cport, _ = self.spawn_with_control(
            "--delay-ms", "10", "--delay-max-ms", "30", "--fault-rate", "1",
            "--fault-mix", "503", "--burst-after-ms", "60000", "--burst-for-ms", "1000",
            "--burst-fault", "reset", "--chaos-seed", "3")
        try:
            f = self.control("faults", port=cport)
            self.assertEqual((f["delay_ms"], f["delay_max_ms"], f["fault_rate"],
                              f["fault_mix"], f["burst_after_ms"], f["burst_for_ms"],
                              f["burst_fault"], f["chaos_seed"]),
                             (10, 30, 1.0, ["503"], 60000, 1000, "reset", 3))
            self.assertEqual(self.upsert([lead(1)], port=port).status, 503)
            self.control("faults", {"fault_rate": 0, "delay_max_ms": None}, port=cport)
            self.control("reset", port=cport)
            f = self.control("faults", port=cport)
            self.assertEqual((f["delay_max_ms"], f["fault_rate"], f["burst_fault"]),
                             (30, 1.0, "reset"))
            self.assertTrue(f["burst_remaining_ms"] > 59000)
        finally:
            proc.terminate()
            proc.wait()
        for bad in (["--fault-rate", "2"], ["--fault-mix", "500"],
                    ["--burst-after-ms", "5"], ["--delay-ms", "50", "--delay-max-ms", "10"]):
            rc = self.spawn_fails(*bad)
            self.assertEqual(rc, 2, bad)

    def spawn_fails(self, *extra):
        return subprocess.run([PYTHON, STAND_IN, "--port", "0", "--dsn", self.dsn,
                               "--api-key", KEY, "--control-port", "-1"] + list(extra),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=30).returncode
