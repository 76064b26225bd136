#!/usr/bin/python3
"""bench/bench.py -- the measurements of bench/run (which sets up the
throwaway cluster and the stand-in, then calls this).  Standard library +
psycopg2 only; run with /usr/bin/python3.

What it measures, in this order, on the same N leads:
  1. limit      the rows upserted straight into the remote database, no HTTP:
                the JSON of 1000 leads at a time built locally
                (json_agg of the mapped columns), then the stand-in's own
                upsert SQL (stand_in.build_insert: PostgREST 12.2's
                json_to_recordset + INSERT ... ON CONFLICT (id) DO UPDATE),
                one transaction per batch, in the remote database;
  1b. ceiling   the same batches POSTed to the stand-in, as gs_export sends
                them, by a Python client on one keep-alive connection: what
                the stand-in itself (Python) lets through;
  2. unthrottled  a gs_export job over the whole range with
                {"batch_size": 1000, "delay_ms": 0}; rate from the job row's
                started_at/completed_at; the job worker's memory
                (/proc/<pid>/status) sampled every 100 ms;
  3. defaults   a gs_export job at its defaults (batch 100, delay 500 ms) on
                the newest ~5000 leads, against the throttle's bound
                (100 leads per 500 ms = 200 leads/s);
  4. original   the original Edge Function's algorithm on the newest
                ~1500 leads: day by day, 100 leads per batch, one
                POST /rest/v1/fichas per lead (keep-alive), 500 ms between
                batches;
  5. empty      a job over 3650 days before the oldest lead: create to
                completed.
  6. filter     the unthrottled job with a filter, without and with an index.
  9. live       (--live: only this) bench/live.py: gs_export_follow's
                COMMIT-to-remote latency at 200 changes/s, a burst of changes
                drained against a batch export, the capture's cost on
                UPDATEs, the worker's memory with a large backlog waiting.
  10. verify     (--verify: only this) bench/verify.py: verify by version
                and by content against exporting the same leads.
  8. chaos      (--chaos: only this) bench/chaos.py: the adaptive pace
                against fixed settings on a remote that is noisy, flaky
                (13 % transient faults), down for a while (a burst of
                faults) or rate-limited.
  7. WAN        (--wan, or --wan-only: only 1 and 7) the stand-in adds a
                latency to every request (delay_ms: 25, 100, 250 ms); per
                latency: 1 in flight, max_in_flight 8, adaptive, and a
                Python client with 8 in flight; then a remote whose gateway
                answers 429 beyond 2 concurrent requests (max_concurrent):
                fixed max_in_flight 1, 2, 4 and adaptive; then the worker's
                memory with 16 batches of 5000 in flight.  A run that fails
                (options refused, job paused or failed, too slow) is
                reported and the next one runs.
The remote's fichas is truncated before each run, so all are inserts.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import queue
import sys
import threading
import time
import urllib.parse

import psycopg2
import psycopg2.extensions

# The columns of leads that gs_export sends (the default mapping, the SQL
# function _gs_export_default_fields: every fichas column that leads also has, minus sync_source, which
# gs_export sets itself), in leads' column order.
MAPPED = [
    "id", "name", "responsible", "age", "address", "scouter", "photo_url",
    "date_modify", "raw", "updated_at", "bitrix_telemarketing_id",
    "commercial_project_id", "responsible_user_id", "celular",
    "telefone_trabalho", "telefone_casa", "etapa", "fonte", "criado",
    "nome_modelo", "local_abordagem", "ficha_confirmada",
    "data_criacao_ficha", "data_confirmacao_ficha", "presenca_confirmada",
    "compareceu", "valor_ficha", "data_criacao_agendamento",
    "horario_agendamento", "data_agendamento", "gerenciamento_funil",
    "status_fluxo", "etapa_funil", "etapa_fluxo", "funil_fichas",
    "status_tabulacao", "maxsystem_id_ficha", "gestao_scouter",
    "op_telemarketing", "data_retorno_ligacao", "cadastro_existe_foto",
]
# What each object carries: the lead's columns, then the two gs_export sets.
SELECT_OBJECT = ", ".join(MAPPED) + \
    ", now() AS last_sync_at, 'tabuladormax'::text AS sync_source"

LIMIT_BATCH = 1000
UNTHROTTLED = {"batch_size": 1000, "delay_ms": 0}
DEFAULTS_TARGET = 5000
ORIGINAL_TARGET = 1500
ORIGINAL_CAP = 2000
ORIGINAL_BATCH = 100
ORIGINAL_DELAY_S = 0.5
POLL_S = 0.1

# The WAN profile (--wan): the options of each run, as passed to
# gs_export_create.  max_in_flight, pace and batch_size_max are 1.1's Pace
# (issue 11); a run with one in flight passes none of them.
WAN_BATCH = 1000
WAN_IN_FLIGHT = 8
WAN_ADAPTIVE = {"pace": "adaptive", "max_in_flight": 16, "batch_size_max": 5000,
                "delay_ms": 0}
WAN_LIMITED_FIXED = (1, 2, 4)
WAN_MEMORY = {"batch_size": 5000, "delay_ms": 0, "max_in_flight": 16}
# 5000 leads of this bench are ~7.5 MB of JSON (~1,570 bytes a lead): over
# gs_export.max_request_size's 4MB default, which would cut those batches
# short (to ~2,670 leads).  The other runs keep the default.
WAN_MEMORY_REQUEST_SIZE = "64MB"
# The memory run's latency: long enough that 16 batches are read (each read
# of 5000 leads takes a few hundred ms) while the first is still at the
# remote, so that 16 really are in flight at once.
WAN_MEMORY_LATENCY_MS = 10000


def log(msg):
    print(msg, flush=True)


def connect(dsn):
    conn = psycopg2.connect(dsn, options="-c TimeZone=UTC")
    conn.autocommit = True
    return conn


def one(conn, q, args=None):
    with conn.cursor() as cur:
        cur.execute(q, args)
        return cur.fetchone()


def rows(conn, q, args=None):
    with conn.cursor() as cur:
        cur.execute(q, args)
        return cur.fetchall()


def run_sql(conn, q, args=None):
    with conn.cursor() as cur:
        cur.execute(q, args)


# ---------------------------------------------------------------------------
# The stand-in: its control endpoint (on the main port, no key needed)
# ---------------------------------------------------------------------------

class StandIn:
    def __init__(self, url, key):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.key = u.hostname, u.port, key

    def control(self, method, path, data=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            body = None
            if method == "POST":
                body = json.dumps(data if data is not None else {}).encode()
            c.request(method, "/_control/" + path, body=body,
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            if r.status != 200:
                raise RuntimeError("stand-in %s %s: %d %s" % (method, path, r.status, data[:200]))
            return json.loads(data)
        finally:
            c.close()

    def reset(self):
        self.control("POST", "reset")

    def faults(self, data):
        return self.control("POST", "faults", data)

    def stats(self):
        return self.control("GET", "stats")

    def requests(self):
        return self.control("GET", "requests")

    def requests_summary(self):
        """(requests, rows, time in the stand-in in s, statuses)."""
        log_ = self.control("GET", "requests")
        if isinstance(log_, dict):
            log_ = log_.get("requests", [])
        n = len(log_)
        nrows = sum(e.get("n_rows") or 0 for e in log_)
        dur = sum(e.get("duration_ms") or 0.0 for e in log_) / 1000.0
        statuses = {}
        for e in log_:
            statuses[str(e.get("status"))] = statuses.get(str(e.get("status")), 0) + 1
        return n, nrows, dur, statuses


# ---------------------------------------------------------------------------
# Leads
# ---------------------------------------------------------------------------

GENERATE = """
INSERT INTO leads (id, name, responsible, age, address, scouter, photo_url,
    date_modify, raw, updated_at, bitrix_telemarketing_id, commercial_project_id,
    responsible_user_id, celular, telefone_trabalho, telefone_casa, etapa, fonte,
    criado, nome_modelo, local_abordagem, ficha_confirmada, data_criacao_ficha,
    data_confirmacao_ficha, presenca_confirmada, compareceu, valor_ficha,
    data_criacao_agendamento, horario_agendamento, data_agendamento,
    gerenciamento_funil, status_fluxo, etapa_funil, etapa_fluxo, funil_fichas,
    status_tabulacao, maxsystem_id_ficha, gestao_scouter, op_telemarketing,
    data_retorno_ligacao, cadastro_existe_foto, sync_source)
SELECT 1000000 + g,
       (ARRAY['Ana', 'Bruno', 'Carla', 'Diego', 'Élodie', 'João', 'Maria José', 'Zoë',
              'Luíza', 'Thiago'])[1 + g % 10] || ' ' ||
       (ARRAY['Silva', 'Souza', 'D''Ávila', 'Conceição', 'Nascimento', 'O"Neil',
              'Back\\slash', 'Müller', 'Ng 🙂', 'Pereira'])[1 + (g / 10) % 10],
       CASE WHEN r1 < 0.2 THEN NULL ELSE (ARRAY['Rafaela', 'Sérgio', 'Tânia'])[1 + g % 3] END,
       CASE WHEN r2 < 0.05 THEN NULL ELSE 16 + (r2 * 50)::int END,
       'Rua ' || (ARRAY['das Flores', 'São Bento', 'XV de Novembro', 'Augusta'])[1 + g % 4]
           || ', ' || (1 + (r3 * 3000)::int) || repeat(' - apto ' || (g % 97), (g % 3))
           || E'\\nSão Paulo/SP',
       (ARRAY['Ana', 'Bruno', 'Carla', 'Diego', 'Eva'])[1 + (g / 7) % 5],
       CASE WHEN r4 < 0.3 THEN NULL ELSE 'https://cdn.example.com/photos/' || md5(g::text) || '.jpg' END,
       u - r5 * interval '30 days',
       jsonb_build_object(
           'bitrix_id', g,
           'utm', jsonb_build_object('source', (ARRAY['google', 'meta', 'indicação', NULL])[1 + g % 4],
                                     'score', round(r6::numeric, 3)),
           'tags', to_jsonb((ARRAY['vip', 'novo', 'retorno', 'kids', 'teen'])[1:(g % 6)]),
           'ok', r1 < 0.5, 'nada', NULL, 'n', r7 * 1e6,
           'nota', repeat('observação ', (g % 5))),
       u,
       CASE WHEN r3 < 0.1 THEN NULL ELSE (r7 * 2000000000)::int END,
       CASE WHEN r5 < 0.15 THEN NULL
            ELSE ('0000000' || (1 + g % 5) || '-0000-4000-8000-00000000000' || (g % 5))::uuid END,
       CASE WHEN r6 < 0.4 THEN NULL ELSE gen_random_uuid() END,
       '+55 11 9' || lpad((r1 * 1e8)::bigint::text, 8, '0'),
       CASE WHEN r2 < 0.6 THEN NULL ELSE '(11) 3' || lpad((r2 * 1e7)::bigint::text, 7, '0') END,
       CASE WHEN r3 < 0.7 THEN NULL ELSE '(11) 2' || lpad((r3 * 1e7)::bigint::text, 7, '0') END,
       (ARRAY['novo', 'agendado', 'confirmado', 'compareceu', 'perdido'])[1 + g % 5],
       (ARRAY['Scouter - Fichas', 'Meta', 'Indicação', 'Recepção'])[1 + (g / 3) % 4],
       u - r4 * interval '90 days',
       CASE WHEN r5 < 0.5 THEN NULL ELSE 'Modelo ' || (g % 1000) END,
       (ARRAY['Shopping Eldorado', 'Av. Paulista', 'Parque Ibirapuera', 'Online'])[1 + g % 4],
       r6 < 0.5,
       u - r7 * interval '60 days',
       CASE WHEN r1 < 0.5 THEN NULL ELSE u - r2 * interval '10 days' END,
       r3 < 0.3, r4 < 0.2,
       CASE WHEN r5 < 0.1 THEN NULL WHEN r5 < 0.2 THEN 0.1
            ELSE round((r6 * 99999)::numeric, 2) END,
       u - r1 * interval '20 days',
       lpad((9 + g % 10)::text, 2, '0') || ':' || lpad(((g % 4) * 15)::text, 2, '0'),
       (u + (g % 60 - 30) * interval '1 day')::date,
       (ARRAY['Agendamento', 'Confirmação', 'Retorno'])[1 + g % 3],
       (ARRAY['ativo', 'pausado', 'finalizado'])[1 + (g / 5) % 3],
       (ARRAY['topo', 'meio', 'fundo'])[1 + (g / 11) % 3],
       (ARRAY['etapa 1', 'etapa 2', 'etapa 3', 'etapa 4'])[1 + g % 4],
       (ARRAY['funil A', 'funil B'])[1 + g % 2],
       CASE WHEN r2 < 0.3 THEN NULL ELSE (ARRAY['Atendeu', 'Não atendeu', 'Caixa postal'])[1 + g % 3] END,
       'MX-' || g,
       (ARRAY['Equipe Norte', 'Equipe Sul', NULL])[1 + g % 3],
       (ARRAY['op01', 'op02', 'op03', 'op04', 'op05', 'op06'])[1 + g % 6],
       CASE WHEN r6 < 0.7 THEN NULL ELSE u + r7 * interval '15 days' END,
       r7 < 0.6,
       'bitrix'
  FROM (SELECT g, now() - random() * interval ':DAYS days' AS u,
               random() AS r1, random() AS r2, random() AS r3, random() AS r4,
               random() AS r5, random() AS r6, random() AS r7
          FROM generate_series(1, :LEADS) g) s
"""


def generate(local, n, days):
    t = time.monotonic()
    run_sql(local, "SELECT setseed(0.42)")
    run_sql(local, GENERATE.replace(":DAYS", str(int(days))).replace(":LEADS", str(int(n))))
    t_ins = time.monotonic() - t
    run_sql(local, "CREATE INDEX leads_updated_at_id ON leads (updated_at, id)")
    run_sql(local, "VACUUM (ANALYZE) leads")
    run_sql(local, "CHECKPOINT")
    size = one(local, "SELECT pg_size_pretty(pg_total_relation_size('leads'))")[0]
    log("   %d leads in %.1f s (INSERT %.1f s), leads with its indexes: %s"
        % (n, time.monotonic() - t, t_ins, size))


def day_of_nth_newest(local, n):
    """The UTC day of the n-th newest lead (the oldest day if fewer)."""
    r = one(local, """SELECT (updated_at AT TIME ZONE 'UTC')::date FROM leads
                       WHERE updated_at IS NOT NULL
                       ORDER BY updated_at DESC, id DESC OFFSET %s LIMIT 1""", (n - 1,))
    if r is None:
        r = one(local, "SELECT min((updated_at AT TIME ZONE 'UTC')::date) FROM leads")
    return r[0]


def count_days(local, start, end):
    return one(local, """SELECT count(*) FROM leads
                          WHERE updated_at >= %s::date::timestamptz
                            AND updated_at < (%s::date + 1)::timestamptz""", (end, start))[0]


def fresh_remote(remote, local):
    run_sql(remote, "TRUNCATE fichas, fichas_sync_back")
    run_sql(local, "CHECKPOINT")


# ---------------------------------------------------------------------------
# 1. The limit: no HTTP, the stand-in's SQL straight into the remote db
# ---------------------------------------------------------------------------

def read_batches(local, since=None):
    """The leads newest first, LIMIT_BATCH at a time, by key: (JSON text of the
    batch's objects, count), with the time spent reading.  since: only the
    leads with updated_at >= since (a date: its UTC midnight)."""
    lower = "" if since is None else " AND updated_at >= %s::date::timestamptz"
    read = ("WITH b AS (SELECT " + SELECT_OBJECT + " FROM leads"
            " WHERE (updated_at, id) < (%s::timestamptz, %s::bigint)" + lower +
            " ORDER BY updated_at DESC, id DESC LIMIT " + str(LIMIT_BATCH) + ")"
            " SELECT json_agg(b)::text, count(*),"
            " (SELECT updated_at FROM b ORDER BY updated_at, id LIMIT 1),"
            " (SELECT id FROM b ORDER BY updated_at, id LIMIT 1) FROM b")
    cursor_ts, cursor_id = "infinity", 2 ** 63 - 1
    with local.cursor() as lc:
        while True:
            lc.execute(read, (cursor_ts, cursor_id) + (() if since is None else (since,)))
            body, count, cursor_ts, cursor_id = lc.fetchone()
            if count == 0:
                return
            yield body, count
            if count < LIMIT_BATCH:
                return


def run_batches(local, remote, send, what, n_expected):
    done = 0
    t_send = 0.0
    t0 = time.monotonic()
    for body, count in read_batches(local):
        a = time.monotonic()
        send(body)
        t_send += time.monotonic() - a
        done += count
    secs = time.monotonic() - t0
    have = one(remote, "SELECT count(*) FROM fichas")[0]
    if have != n_expected or done != n_expected:
        raise RuntimeError("%s: %d sent, %d in fichas, %d expected"
                           % (what, done, have, n_expected))
    return {"leads": done, "secs": secs, "rate": done / secs,
            "read_s": secs - t_send, "send_s": t_send}


def run_limit(local, remote, stand_in_mod, n_expected):
    cache = stand_in_mod.SchemaCache.load(remote, None)
    keys = MAPPED + ["last_sync_at", "sync_source"]
    cols = [(name,) + cache.columns[name] for name in sorted(keys)]
    # As the stand-in does for gs_export's request: keys from `columns`,
    # the body as one json parameter, resolution=merge-duplicates, no
    # return body.
    stmt, _ = stand_in_mod.build_insert(cols, b"[]", False, "merge-duplicates", ["id"],
                                        False, False, [])
    upsert = stmt.as_string(remote)
    remote.autocommit = False
    rc = remote.cursor()

    def send(body):
        # the body as bytes, bound as the stand-in binds it (JsonBody), so
        # that the limit pays no more than the stand-in does for it
        rc.execute(upsert, (stand_in_mod.JsonBody(body.encode()),))
        rc.fetchone()
        remote.commit()

    try:
        return run_batches(local, remote, send, "limit run", n_expected)
    finally:
        rc.close()
        remote.rollback()
        remote.autocommit = True


def run_stand_in_ceiling(local, remote, remote_url, key, n_expected):
    """The same batches POSTed to the stand-in as gs_export sends them, from
    a Python client on one keep-alive connection: what the stand-in itself
    allows (HTTP, its Python request handling, its per-request SQL)."""
    u = urllib.parse.urlsplit(remote_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    path = "/rest/v1/fichas?on_conflict=id&columns=" + ",".join(
        MAPPED + ["last_sync_at", "sync_source"])
    headers = {"apikey": key, "Authorization": "Bearer " + key,
               "Content-Type": "application/json",
               "Prefer": "resolution=merge-duplicates,return=minimal",
               "User-Agent": "bench/1.0"}

    def send(body):
        conn.request("POST", path, body=body.encode(), headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status not in (200, 201):
            raise RuntimeError("stand-in ceiling: HTTP %d %s" % (resp.status, data[:300]))

    try:
        return run_batches(local, remote, send, "stand-in ceiling run", n_expected)
    finally:
        conn.close()


def checksum(conn, since=None):
    """(rows, md5 of every mapped column) of leads (only updated_at >= since,
    a date's UTC midnight, if given) or, in the remote database, of fichas."""
    remote = conn.info.dbname == "remote"
    where = "" if since is None or remote else " WHERE updated_at >= %s::date::timestamptz"
    return one(conn, "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY id))"
                     " FROM (SELECT " + ", ".join(MAPPED) + " FROM "
               + ("fichas" if remote else "leads") + where + ") t",
               None if not where else (since,))


# ---------------------------------------------------------------------------
# 2, 3, 5. gs_export jobs
# ---------------------------------------------------------------------------

def proc_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    out[k] = int(v.split()[0])  # kB
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return out


def run_job(local, start, end, options, timeout_s, poll_s=POLL_S, sample_memory=False,
            strict=True):
    """A job from gs_export_create(start, end, options) to its end, polled
    every poll_s.  strict: a job that does not complete within timeout_s is
    an error; otherwise it comes back with its "status" ("timeout" when it
    was still going) and "reason", for the caller to report and retire."""
    t0 = time.monotonic()
    job = one(local, "SELECT gs_export_create(%s::date, %s::date, %s::jsonb)",
              (start, end, json.dumps(options)))[0]
    mem = {"samples": 0, "VmHWM": 0, "VmRSS": 0, "RssAnon": 0, "RssShmem": 0,
           "last": None, "pid": None, "rss_anon": []}
    timed_out = False
    while True:
        r = one(local, """SELECT status, total_leads, exported_leads, error_leads, pause_reason,
                                 EXTRACT(epoch FROM completed_at - started_at)::float8,
                                 EXTRACT(epoch FROM completed_at - created_at)::float8,
                                 EXTRACT(epoch FROM started_at - created_at)::float8,
                                 batch_size, delay_ms
                            FROM gestao_scouter_export_jobs WHERE id = %s""", (job,))
        status = r[0]
        if sample_memory and status == "running":
            if mem["pid"] is None:
                p = one(local, """SELECT pid FROM pg_stat_activity
                                   WHERE backend_type = 'gs_export job worker'""")
                if p:
                    mem["pid"] = p[0]
            if mem["pid"] is not None:
                s = proc_status(mem["pid"])
                if s:
                    mem["samples"] += 1
                    mem["last"] = s
                    mem["rss_anon"].append(s.get("RssAnon", 0))
                    for k in ("VmHWM", "VmRSS", "RssAnon", "RssShmem"):
                        mem[k] = max(mem[k], s.get(k, 0))
        if status in ("completed", "failed", "paused"):
            break
        if time.monotonic() - t0 > timeout_s:
            if strict:
                raise RuntimeError("job %s still %s after %d s" % (job, status, timeout_s))
            timed_out = True
            break
        time.sleep(poll_s)
    wall = time.monotonic() - t0
    if status != "completed" and strict:
        raise RuntimeError("job %s ended %s: %s" % (job, status, r[4]))
    total, exported, errors = r[1], r[2], r[3]
    secs = r[5]
    return {"job": job, "status": "timeout" if timed_out else status, "reason": r[4],
            "leads": total, "exported": exported, "errors": errors,
            "secs": secs, "rate": (total / secs) if secs else float("nan"),
            "create_to_completed": r[6], "create_to_started": r[7], "wall": wall,
            "batch_size": r[8], "delay_ms": r[9], "mem": mem}


# ---------------------------------------------------------------------------
# 4. The original Edge Function's algorithm
# ---------------------------------------------------------------------------

def run_original(local, remote_url, key, start, end, cap):
    """Day by day, newest first; per day, batches of 100 leads (a query with
    LIMIT/OFFSET, as supabase-js .range() does), one POST /rest/v1/fichas per
    lead with one object (upsert), 500 ms between batches.  One keep-alive
    connection, as a Deno fetch reuses connections.  No bookkeeping
    (sync_events, job row) on the local side: that favours the original."""
    u = urllib.parse.urlsplit(remote_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    headers = {"apikey": key, "Authorization": "Bearer " + key,
               "Content-Type": "application/json",
               "Prefer": "resolution=merge-duplicates,return=minimal",
               "User-Agent": "bench-original/1.0"}
    read = ("SELECT row_to_json(b)::text FROM (SELECT " + SELECT_OBJECT + " FROM leads"
            " WHERE updated_at >= %s::date::timestamptz"
            "   AND updated_at < (%s::date + 1)::timestamptz"
            " ORDER BY updated_at DESC, id DESC LIMIT %s OFFSET %s) b")
    done = 0
    requests = 0
    t_http = 0.0
    pause = False
    t0 = time.monotonic()
    day = start
    while day >= end and done < cap:
        offset = 0
        while done < cap:
            batch = [r[0] for r in rows(local, read, (day, day, ORIGINAL_BATCH, offset))]
            if not batch:
                break
            if pause:
                time.sleep(ORIGINAL_DELAY_S)
            batch = batch[:cap - done]
            a = time.monotonic()
            for obj in batch:
                conn.request("POST", "/rest/v1/fichas?on_conflict=id", body=obj.encode(),
                             headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                requests += 1
                if resp.status not in (200, 201):
                    raise RuntimeError("original: HTTP %d %s" % (resp.status, data[:300]))
            t_http += time.monotonic() - a
            done += len(batch)
            pause = True
            offset += ORIGINAL_BATCH
            if len(batch) < ORIGINAL_BATCH:
                break
        day -= datetime.timedelta(days=1)
    secs = time.monotonic() - t0
    conn.close()
    return {"leads": done, "secs": secs, "rate": done / secs, "requests": requests,
            "http_s": t_http}


# ---------------------------------------------------------------------------
# 7. The WAN profile (--wan): the stand-in adds a round trip's latency to
#    every request; several batches in flight, the adaptive pace, and a
#    remote behind a gateway that refuses (429) beyond N concurrent requests
# ---------------------------------------------------------------------------

def error_text(e):
    """One line for a failed run: SQLSTATE and message of a database error."""
    if isinstance(e, psycopg2.Error):
        msg = getattr(e.diag, "message_primary", None) or str(e).strip() or repr(e)
        return "%s (SQLSTATE %s)" % (msg.splitlines()[0], e.pgcode)
    return str(e).strip().splitlines()[0] if str(e).strip() else repr(e)


def fixed_options(in_flight, batch_size=WAN_BATCH):
    """A fixed pace; max_in_flight only when it is not the default 1, so that
    the runs with one in flight need no option of 1.1's Pace."""
    o = {"batch_size": batch_size, "delay_ms": 0}
    if in_flight != 1:
        o["max_in_flight"] = in_flight
    return o


def pace_notes(server_log, job):
    """What the server log says of an adaptive job's pace: its LOG lines
    "adaptive pace: ... (where it settles)" and "adaptive pace backs off
    (why): ...".  None without a log."""
    if not server_log:
        return None
    try:
        with open(server_log, errors="replace") as f:
            mine = [line for line in f if ("job %s" % job) in line and "adaptive pace" in line]
    except OSError:
        return None
    settled = [line.split("adaptive pace:", 1)[1].strip() for line in mine
               if "adaptive pace:" in line]
    reasons = {}
    for line in mine:
        if "backs off (" in line:
            why = line.split("backs off (", 1)[1].split("):", 1)[0]
            reasons[why] = reasons.get(why, 0) + 1
    return {"settled": settled, "reasons": reasons}


def retire_job(local, job):
    """A job that did not complete blocks the next one (one active job):
    pause it if it still runs, then delete it."""
    st = one(local, "SELECT status FROM gestao_scouter_export_jobs WHERE id = %s", (job,))
    if st is None or st[0] == "completed":
        return
    if st[0] in ("pending", "running"):
        try:
            run_sql(local, "SELECT gs_export_pause(%s::uuid, 'bench: run abandoned')", (job,))
        except psycopg2.Error:
            pass
    deadline = time.monotonic() + 120
    while True:
        try:
            run_sql(local, "SELECT gs_export_delete(%s::uuid)", (job,))
            return
        except psycopg2.Error as e:
            if time.monotonic() > deadline:
                raise RuntimeError("could not delete job %s: %s" % (job, error_text(e)))
            time.sleep(0.5)


def set_guc(local, name, value):
    """ALTER SYSTEM SET (value None: RESET) and reload; a new job's worker
    reads it when it starts."""
    if value is None:
        run_sql(local, "ALTER SYSTEM RESET " + name)
    else:
        run_sql(local, "ALTER SYSTEM SET " + name + " = %s", (value,))
    run_sql(local, "SELECT pg_reload_conf()")
    time.sleep(0.3)


class Wan:
    """The leads a WAN run exports (start .. end, n of them, since: the
    lower bound for the checksums and the Python client), and what every
    run needs."""

    def __init__(self, local, remote, si, a, start, end, n, since):
        self.local, self.remote, self.si, self.a = local, remote, si, a
        self.start, self.end, self.n, self.since = start, end, n, since
        self._src_sum = None

    def src_sum(self):
        if self._src_sum is None:
            self._src_sum = checksum(self.local, self.since)
        return self._src_sum

    def timeout_s(self, latency_ms):
        # generous: one batch of 1000 per (latency + 300 ms), three times over
        return 120 + 3 * (self.n / 1000.0) * (latency_ms / 1000.0 + 0.3)

    def prepare(self, latency_ms, max_concurrent=None):
        fresh_remote(self.remote, self.local)
        self.si.reset()
        self.si.faults({"delay_ms": latency_ms, "max_concurrent": max_concurrent})

    def remote_summary(self):
        """What the stand-in saw: requests, 429s, rows per successful
        request, the most requests at once, leads upserted more than once."""
        st = self.si.stats()
        reqs = self.si.requests()
        ok = [e for e in reqs if e.get("status") in (200, 201)]
        ids = [i for e in ok for i in (e.get("ids") or [])]
        rows_ok = [e.get("n_rows") or 0 for e in ok]
        return {"requests": st["requests"],
                "refused": st["by_status"].get("429", 0),
                "rate_limited": st.get("rate_limited", 0),
                "by_status": st["by_status"],
                "in_flight_seen": st.get("max_concurrent_seen"),
                "ok_requests": len(ok),
                "rows_per_request": (sum(rows_ok) / len(rows_ok)) if rows_ok else 0,
                "rows_per_request_max": max(rows_ok) if rows_ok else 0,
                "upserted": len(ids), "upserted_distinct": len(set(ids)),
                "stand_in_s": sum(e.get("duration_ms") or 0.0 for e in reqs) / 1000.0}

    def check_once(self, r):
        """Every lead exported exactly once: the job's counters, its record,
        the remote's rows (count and md5 against the source) and the
        stand-in's log (each id in exactly one successful upsert)."""
        n = self.n
        bad = []
        if (r["leads"], r["exported"], r["errors"]) != (n, n, 0):
            bad.append("job counted %s/%s/%s of %d" % (r["leads"], r["exported"], r["errors"], n))
        ev, ev_d = one(self.local, """SELECT count(*), count(DISTINCT lead_id) FROM sync_events
                                       WHERE job_id = %s AND status = 'success'""", (r["job"],))
        if (ev, ev_d) != (n, n):
            bad.append("journal %d success events for %d leads" % (ev, ev_d))
        dst = checksum(self.remote)
        if dst[0] != n:
            bad.append("remote has %d rows" % dst[0])
        elif dst != self.src_sum():
            bad.append("remote differs from the source (md5)")
        rs = r["remote"]
        if rs["upserted"] != n or rs["upserted_distinct"] != n:
            bad.append("stand-in upserted %d ids, %d distinct"
                       % (rs["upserted"], rs["upserted_distinct"]))
        return bad

    def job(self, label, options, latency_ms, max_concurrent=None, sample_memory=True,
            gucs=None):
        """One gs_export job at this latency; never raises for the job's own
        failure (refused options, paused, failed, too slow): the result says."""
        self.prepare(latency_ms, max_concurrent)
        res = {"label": label, "options": options, "latency_ms": latency_ms,
               "max_concurrent": max_concurrent, "error": None}
        set_gucs = []
        try:
            for name, value in (gucs or {}).items():
                set_guc(self.local, name, value)
                set_gucs.append(name)
            try:
                r = run_job(self.local, self.start, self.end, options,
                            timeout_s=self.timeout_s(latency_ms), strict=False,
                            sample_memory=sample_memory)
            except psycopg2.Error as e:
                res["error"] = "gs_export_create refused the options: " + error_text(e)
                log("   %-48s FAILED: %s" % (label, res["error"]))
                return res
            res.update(r)
            res["remote"] = self.remote_summary()
            if options.get("pace") == "adaptive":
                res["pace"] = pace_notes(self.a.server_log, r["job"])
            if r["status"] != "completed":
                res["error"] = ("job %s after %.0f s: %s" % (
                    "still going" if r["status"] == "timeout" else "ended " + r["status"],
                    r["wall"], r["reason"] or "(no reason)"))
                retire_job(self.local, r["job"])
                log("   %-48s FAILED: %s" % (label, res["error"]))
                return res
            res["once"] = self.check_once(res)
            rs = res["remote"]
            log("   %-48s %7d leads in %7.2f s: %7.0f leads/s; %d requests (%d refused),"
                " %.0f rows each, up to %s at once; exported once: %s"
                % (label, r["leads"], r["secs"], r["rate"], rs["requests"], rs["refused"],
                   rs["rows_per_request"], rs["in_flight_seen"],
                   "yes" if not res["once"] else "NO (" + "; ".join(res["once"]) + ")"))
            return res
        except Exception as e:          # the bench's own trouble: say it, go on
            res["error"] = "bench: " + error_text(e)
            log("   %-48s FAILED: %s" % (label, res["error"]))
            return res
        finally:
            for name in set_gucs:
                try:
                    set_guc(self.local, name, None)
                except psycopg2.Error as e:
                    log("   (could not reset %s: %s)" % (name, error_text(e)))

    def python_client(self, label, latency_ms, in_flight):
        """The same batches of 1000 POSTed by a Python client with in_flight
        keep-alive connections (one thread each): what this stand-in lets
        through at this latency with that many requests at once."""
        self.prepare(latency_ms)
        res = {"label": label, "latency_ms": latency_ms, "error": None}
        a = self.a
        u = urllib.parse.urlsplit(a.remote_url)
        path = "/rest/v1/fichas?on_conflict=id&columns=" + ",".join(
            MAPPED + ["last_sync_at", "sync_source"])
        headers = {"apikey": a.api_key, "Authorization": "Bearer " + a.api_key,
                   "Content-Type": "application/json",
                   "Prefer": "resolution=merge-duplicates,return=minimal",
                   "User-Agent": "bench/1.0"}
        q = queue.Queue(maxsize=2 * in_flight)
        failures = []

        def sender():
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
            try:
                while True:
                    body = q.get()
                    if body is None:
                        return
                    if failures:
                        continue
                    conn.request("POST", path, body=body.encode(), headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    if resp.status not in (200, 201):
                        failures.append("HTTP %d %s" % (resp.status, data[:200]))
            except Exception as e:
                failures.append(error_text(e))
            finally:
                conn.close()

        threads = [threading.Thread(target=sender, daemon=True) for _ in range(in_flight)]
        try:
            t0 = time.monotonic()
            for t in threads:
                t.start()
            done = 0
            for body, count in read_batches(self.local, self.since):
                q.put(body)
                done += count
            for _ in threads:
                q.put(None)
            for t in threads:
                t.join()
            secs = time.monotonic() - t0
            have = one(self.remote, "SELECT count(*) FROM fichas")[0]
            if failures or have != self.n or done != self.n:
                raise RuntimeError("%s; %d sent, %d in fichas, %d expected"
                                   % (failures[0] if failures else "", done, have, self.n))
            res.update({"leads": done, "secs": secs, "rate": done / secs, "client": True,
                        "remote": self.remote_summary(), "once": []})
            log("   %-48s %7d leads in %7.2f s: %7.0f leads/s; up to %s requests at once"
                % (label, done, secs, done / secs, res["remote"]["in_flight_seen"]))
        except Exception as e:
            res["error"] = error_text(e)
            log("   %-48s FAILED: %s" % (label, res["error"]))
        return res


def run_wan(local, remote, si, a, newest, oldest, n_all):
    """Every run of the WAN profile; returns what the summary prints."""
    if a.wan_leads and a.wan_leads < n_all:
        end = day_of_nth_newest(local, a.wan_leads)
        n = count_days(local, newest, end)
        since = end
    else:
        end, n, since = oldest, n_all, None
    w = Wan(local, remote, si, a, newest, end, n, since)
    lead_bytes = one(local, "SELECT avg(octet_length(row_to_json(b)::text))::float8 FROM"
                            " (SELECT " + SELECT_OBJECT + " FROM leads ORDER BY id LIMIT 5000) b")[0]
    out = {"n": n, "start": newest, "end": end, "latencies": {}, "limited": None,
           "memory": None, "lead_bytes": lead_bytes}
    log("== 7. WAN, zero latency: the limit's batches POSTed by a Python client with %d in"
        " flight: %d leads (%s .. %s)" % (WAN_IN_FLIGHT, n, end, newest))
    out["client0"] = w.python_client("Python client, %d in flight, batch %d"
                                     % (WAN_IN_FLIGHT, LIMIT_BATCH), 0, WAN_IN_FLIGHT)
    for lat in a.wan_latencies:
        log("== 7. WAN, %d ms per request: %d leads (%s .. %s)" % (lat, n, end, newest))
        runs = [w.job("1 in flight, batch %d" % WAN_BATCH, fixed_options(1), lat),
                w.job("max_in_flight %d, batch %d" % (WAN_IN_FLIGHT, WAN_BATCH),
                      fixed_options(WAN_IN_FLIGHT), lat),
                w.job("adaptive (max_in_flight %d, batch_size_max %d)"
                      % (WAN_ADAPTIVE["max_in_flight"], WAN_ADAPTIVE["batch_size_max"]),
                      dict(WAN_ADAPTIVE), lat)]
        runs.append(w.python_client("Python client, %d in flight, batch %d"
                                    % (WAN_IN_FLIGHT, LIMIT_BATCH), lat, WAN_IN_FLIGHT))
        out["latencies"][lat] = runs
    lat = a.wan_limited_latency
    mc = a.wan_max_concurrent
    log("== 7b. WAN, rate-limited remote: 429 (Retry-After: 1) beyond %d concurrent requests,"
        " %d ms per request" % (mc, lat))
    runs = [w.job("fixed max_in_flight %d, batch %d" % (k, WAN_BATCH), fixed_options(k), lat, mc)
            for k in WAN_LIMITED_FIXED]
    runs.append(w.job("adaptive (max_in_flight %d, batch_size_max %d)"
                      % (WAN_ADAPTIVE["max_in_flight"], WAN_ADAPTIVE["batch_size_max"]),
                      dict(WAN_ADAPTIVE), lat, mc))
    out["limited"] = {"latency_ms": lat, "max_concurrent": mc, "runs": runs}
    lat = WAN_MEMORY_LATENCY_MS
    log("== 7c. WAN, the worker's memory with %d batches of %d in flight (fixed),"
        " %d ms per request, gs_export.max_request_size = %s (a lead's JSON: ~%.0f bytes,"
        " a batch of %d: ~%.1f MB)"
        % (WAN_MEMORY["max_in_flight"], WAN_MEMORY["batch_size"], lat, WAN_MEMORY_REQUEST_SIZE,
           lead_bytes, WAN_MEMORY["batch_size"],
           lead_bytes * WAN_MEMORY["batch_size"] / 1048576.0))
    out["memory"] = w.job("fixed max_in_flight %d, batch %d"
                          % (WAN_MEMORY["max_in_flight"], WAN_MEMORY["batch_size"]),
                          dict(WAN_MEMORY), lat,
                          gucs={"gs_export.max_request_size": WAN_MEMORY_REQUEST_SIZE})
    return out


def wan_summary(wan, lim, unt):
    """The WAN profile's lines of the summary."""
    lines = []
    w = lines.append
    n = wan["n"]
    w("WAN profile: the stand-in adds a fixed latency to every request (the whole round trip);"
      " %d leads (%s .. %s)%s" % (n, wan["end"], wan["start"],
                                  "" if n == lim["leads"] else
                                  ", the newest of the %d (--wan-leads)" % lim["leads"]))
    w("zero-latency limit (above, no HTTP, %d leads): %.0f leads/s%s"
      % (lim["leads"], lim["rate"],
         "" if unt is None else "; gs_export at 0 ms, 1 in flight, batch 1000: %.0f (%.2f)"
         % (unt["rate"], unt["rate"] / lim["rate"])))
    c0 = wan.get("client0")
    if c0 and not c0.get("error"):
        w("zero latency, a Python client with %d requests in flight (not gs_export): %.0f"
          " leads/s = %.2f x the limit" % (WAN_IN_FLIGHT, c0["rate"], c0["rate"] / lim["rate"]))
        w("  (the limit upserts one batch at a time; this client has %d at the remote at once)"
          % WAN_IN_FLIGHT)
    elif c0:
        w("zero latency, a Python client with %d requests in flight: no figure (%s)"
          % (WAN_IN_FLIGHT, c0["error"][:120]))
    w("")
    hdr = "%7s  %-48s %8s %8s %8s %6s %6s %11s %5s %5s  %s"
    w(hdr % ("latency", "run", "leads", "seconds", "leads/s", "/limit", "reqs", "rows/req",
             "conc", "429", "exported once"))
    w(hdr % ("-" * 7, "-" * 48, "-" * 8, "-" * 8, "-" * 8, "-" * 6, "-" * 6, "-" * 11,
             "-" * 5, "-" * 5, "-" * 13))

    def row(lat, r, ratio_to, extra=None):
        if r.get("error"):
            w("%4d ms  %-48s FAILED: %s" % (lat, r["label"], r["error"][:140]))
            return
        rs = r.get("remote") or {}
        once = r.get("once")
        w("%4d ms  %-48s %8d %8.2f %8.0f %6.2f %6s %11s %5s %5s  %s"
          % (lat, r["label"], r["leads"], r["secs"], r["rate"], r["rate"] / ratio_to,
             rs.get("requests", ""), "%.0f/%d" % (rs.get("rows_per_request", 0),
                                                  rs.get("rows_per_request_max", 0)),
             rs.get("in_flight_seen", ""), rs.get("refused", ""),
             extra if extra is not None else
             ("yes" if not once else "NO: " + "; ".join(once))))

    def pace_line(lat, r):
        p = r.get("pace")
        if r.get("error") or not p:
            return
        settled = p["settled"]
        w("  adaptive at %d ms (server log): %s; backed off %s"
          % (lat, ("settled %s, last at %s" % ("once" if len(settled) == 1 else
                                                "%d times" % len(settled), settled[-1]))
             if settled else "never settled",
             ", ".join("%d x %s" % (c, why) for why, c in sorted(p["reasons"].items()))
             if p["reasons"] else "never"))

    for lat, runs in wan["latencies"].items():
        for r in runs:
            row(lat, r, lim["rate"], "(not gs_export)" if r.get("client") else None)
    w("  leads/s: total_leads / (completed_at - started_at); /limit: to the zero-latency limit;"
      " reqs: requests the stand-in")
    w("  received; rows/req: leads per successful request, mean/max; conc: most requests at"
      " the stand-in at once; 429: refused")
    for lat, runs in wan["latencies"].items():
        for r in runs:
            pace_line(lat, r)
    lt = wan["limited"]
    if lt:
        w("")
        w("rate-limited remote: a gateway answering 429 (Retry-After: 1) beyond %d concurrent"
          " requests, %d ms per request" % (lt["max_concurrent"], lt["latency_ms"]))
        fixed = [r for r in lt["runs"] if not r.get("error") and "adaptive" not in r["label"]]
        best = max(fixed, key=lambda r: r["rate"]) if fixed else None
        w(hdr % ("latency", "run", "leads", "seconds", "leads/s", "/best", "reqs", "rows/req",
                 "conc", "429", "exported once"))
        w(hdr % ("-" * 7, "-" * 48, "-" * 8, "-" * 8, "-" * 8, "-" * 6, "-" * 6, "-" * 11,
                 "-" * 5, "-" * 5, "-" * 13))
        for r in lt["runs"]:
            row(lt["latency_ms"], r, best["rate"] if best else float("nan"))
        for r in lt["runs"]:
            pace_line(lt["latency_ms"], r)
        ad = [r for r in lt["runs"] if "adaptive" in r["label"]][0]
        if best:
            w("  best fixed: %s, %.0f leads/s" % (best["label"], best["rate"]))
        if not ad.get("error"):
            rs = ad["remote"]
            w("  adaptive: %d of %d requests refused = %.1f %% (issue 11's target: <= 5 %%);"
              " %.2f of the best fixed (target: >= 0.8); every lead exported once: %s"
              % (rs["refused"], rs["requests"], 100.0 * rs["refused"] / max(rs["requests"], 1),
                 ad["rate"] / best["rate"] if best else float("nan"),
                 "yes" if not ad["once"] else "NO: " + "; ".join(ad["once"])))
        else:
            w("  adaptive: no figure (%s)" % ad["error"][:120])
    at100 = {r["label"]: r for r in wan["latencies"].get(100, [])}
    if at100:
        w("")
        for lab, r in at100.items():
            if "Python" in lab or lab.startswith("1 in flight"):
                continue
            w("  at 100 ms, %-48s / limit: %s (issue 11's target: >= 0.8)"
              % (lab, "%.2f" % (r["rate"] / lim["rate"]) if not r.get("error") else "no figure"))
    mr = wan["memory"]
    if mr:
        w("")
        if mr.get("error"):
            w("worker memory, %s: no figure (%s)" % (mr["label"], mr["error"][:120]))
        else:
            mm = mr["mem"]
            series = mm.get("rss_anon") or [0]
            half = max(1, len(series) // 2)
            w("worker memory, %s, %d ms, max_request_size %s: %d samples every 100 ms, pid %s;"
              " up to %s requests at once, up to %d rows each"
              % (mr["label"], mr["latency_ms"], WAN_MEMORY_REQUEST_SIZE, mm["samples"],
                 mm["pid"], mr["remote"]["in_flight_seen"], mr["remote"]["rows_per_request_max"]))
            w("    a lead's JSON is ~%.0f bytes here: %d x %d leads in flight are ~%.0f MB of"
              " bodies" % (wan["lead_bytes"], WAN_MEMORY["max_in_flight"],
                           WAN_MEMORY["batch_size"],
                           wan["lead_bytes"] * WAN_MEMORY["max_in_flight"]
                           * WAN_MEMORY["batch_size"] / 1048576.0))
            w("    private (RssAnon) peak %d kB (%.1f MB): first half of the job %d kB, second"
              " half %d kB, last sample %d kB; VmHWM %d kB"
              % (mm["RssAnon"], mm["RssAnon"] / 1024.0, max(series[:half]),
                 max(series[half:] or [0]), series[-1], mm["VmHWM"]))
        others = []
        if unt is not None:
            others.append("1 in flight, batch 1000, 0 ms: %d" % unt["mem"]["RssAnon"])
        for lat, runs in wan["latencies"].items():
            for r in runs:
                if not r.get("error") and r.get("mem", {}).get("samples"):
                    others.append("%s, %d ms: %d" % (r["label"], lat, r["mem"]["RssAnon"]))
        for r in (wan["limited"] or {}).get("runs", []):
            if not r.get("error") and r.get("mem", {}).get("samples"):
                others.append("%s, %d ms, rate-limited: %d"
                              % (r["label"], r["latency_ms"], r["mem"]["RssAnon"]))
        if others:
            w("    the worker's RssAnon peak (kB) in the other runs:")
            for o in others:
                w("      " + o)
    return lines


# ---------------------------------------------------------------------------

def machine(local):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = "%.1f GiB" % (int(line.split()[1]) / 1024.0 / 1024.0)
                    break
    except OSError:
        pass
    pg = one(local, "SELECT version()")[0]
    settings = dict(rows(local, """SELECT name, current_setting(name) FROM pg_settings
                                    WHERE name IN ('shared_buffers', 'max_wal_size',
                                                   'synchronous_commit', 'fsync',
                                                   'wal_level')"""))
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem": mem, "pg": pg,
            "kernel": platform.release(), "settings": settings}


def fmt_rate(x):
    return "%10.0f" % x


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--leads", type=int, default=100000)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--local-dsn", required=True)
    p.add_argument("--remote-dsn", required=True)
    p.add_argument("--remote-url", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--stand-in", required=True, help="path of test/remote/stand_in.py")
    p.add_argument("--profile", action="store_true",
                   help="pg_stat_statements is preloaded: print the top statements"
                        " of the unthrottled job")
    p.add_argument("--wan", action="store_true",
                   help="also the WAN profile (section 7): latency, several batches in"
                        " flight, adaptive pace, a rate-limited remote")
    p.add_argument("--wan-only", action="store_true",
                   help="only the limit and the WAN profile")
    p.add_argument("--wan-latencies", default="25,100,250",
                   help="ms added to every request, comma-separated (default: %(default)s)")
    p.add_argument("--wan-leads", type=int, default=0,
                   help="WAN runs export only the newest ~M leads (whole days);"
                        " 0: all (default)")
    p.add_argument("--wan-max-concurrent", type=int, default=2,
                   help="the rate-limited remote's limit (default: %(default)s)")
    p.add_argument("--chaos", action="store_true",
                   help="only the chaos profile (bench/chaos.py): noise, transient faults,"
                        " a burst of faults, a rate-limited remote")
    p.add_argument("--live", action="store_true",
                   help="only the live profile (bench/live.py): gs_export_follow's latency,"
                        " a burst against a batch export, the capture's cost, a backlog's memory")
    p.add_argument("--live-seconds", type=int, default=25,
                   help="seconds of the live latency run (default: %(default)s)")
    p.add_argument("--live-rate", type=int, default=200,
                   help="single-lead UPDATEs a second in the live latency run (default: %(default)s)")
    p.add_argument("--live-changes", type=int, default=1000000,
                   help="changes left waiting for the live backlog run (default: %(default)s)")
    p.add_argument("--live-drain-max", type=int, default=900,
                   help="seconds the live backlog run waits for its drain (default: %(default)s)")
    p.add_argument("--verify", action="store_true",
                   help="only the proof profile (bench/verify.py): verify by version and by"
                        " content against exporting the same leads")
    p.add_argument("--server-log", default=None,
                   help="the cluster's server log: the WAN profile quotes where an adaptive"
                        " pace settled and why it backed off")
    p.add_argument("--wan-limited-latency", type=int, default=100,
                   help="ms per request for the rate-limited and memory runs"
                        " (default: %(default)s)")
    a = p.parse_args()
    try:
        a.wan_latencies = [int(x) for x in a.wan_latencies.split(",") if x.strip()]
    except ValueError:
        p.error("--wan-latencies wants numbers, e.g. 25,100,250")
    if any(x < 0 for x in a.wan_latencies) or a.wan_limited_latency < 0 \
            or a.wan_max_concurrent < 1 or a.wan_leads < 0:
        p.error("bad --wan-* value")
    if a.live_seconds < 1 or a.live_rate < 1 or a.live_changes < 1 or a.live_drain_max < 1:
        p.error("bad --live-* value")

    sys.path.insert(0, os.path.dirname(os.path.abspath(a.stand_in)))
    import stand_in as stand_in_mod  # noqa: E402  (its SQL builder)

    local = connect(a.local_dsn)
    remote = connect(a.remote_dsn)
    si = StandIn(a.remote_url, a.api_key)
    t_start = time.monotonic()
    with open("/proc/loadavg") as f:
        load_before = " ".join(f.read().split()[:3])

    log("== %d leads over %d days (one INSERT ... SELECT generate_series)" % (a.leads, a.days))
    generate(local, a.leads, a.days)
    newest, oldest, n = one(local, """SELECT max((updated_at AT TIME ZONE 'UTC')::date),
                                             min((updated_at AT TIME ZONE 'UTC')::date),
                                             count(*) FROM leads WHERE updated_at IS NOT NULL""")
    log("   days %s .. %s (UTC)" % (oldest, newest))

    if a.chaos:
        import chaos  # noqa: E402  (bench/chaos.py, next to this file)
        out = chaos.run_chaos(local, remote, si, a, newest, oldest)
        m = machine(local)
        lines = ["", "=" * 40 + " gs_export chaos benchmark " + "=" * 40,
                 "machine     %d cores, %s, %s RAM, Linux %s" % (m["nproc"], m["cpu"], m["mem"],
                                                               m["kernel"]),
                 "load        load average before the benchmark: %s" % load_before,
                 "data        N = %d leads over D = %d days" % (n, a.days), ""]
        lines += chaos.chaos_summary(out)
        lines.append("whole chaos benchmark: %.0f s" % (time.monotonic() - t_start))
        log("\n".join(lines))
        return 0

    if a.live:
        import live  # noqa: E402  (bench/live.py, next to this file)
        out = live.run_live(local, remote, si, a, newest, oldest, n)
        m = machine(local)
        lines = ["", "=" * 40 + " gs_export live benchmark " + "=" * 40,
                 "machine     %d cores, %s, %s RAM, Linux %s" % (m["nproc"], m["cpu"], m["mem"],
                                                               m["kernel"]),
                 "PostgreSQL  %s" % m["pg"],
                 "cluster     shared_buffers=%s max_wal_size=%s (set); synchronous_commit=%s"
                 " fsync=%s (defaults); local db and remote db in that one cluster"
                 % (m["settings"].get("shared_buffers"), m["settings"].get("max_wal_size"),
                    m["settings"].get("synchronous_commit"), m["settings"].get("fsync")),
                 "load        load average before the benchmark: %s" % load_before,
                 "data        N = %d leads over D = %d days" % (n, a.days), ""]
        lines += live.live_summary(out)
        lines.append("whole live benchmark: %.0f s" % (time.monotonic() - t_start))
        log("\n".join(lines))
        return 0

    if a.verify:
        import verify  # noqa: E402  (bench/verify.py, next to this file)
        out = verify.run_verify(local, remote, si, a, newest, oldest)
        m = machine(local)
        lines = ["", "=" * 40 + " gs_export verify benchmark " + "=" * 40,
                 "machine     %d cores, %s, %s RAM, Linux %s" % (m["nproc"], m["cpu"], m["mem"],
                                                               m["kernel"]),
                 "load        load average before the benchmark: %s" % load_before,
                 "data        N = %d leads over D = %d days" % (n, a.days), ""]
        lines += verify.verify_summary(out)
        lines.append("whole verify benchmark: %.0f s" % (time.monotonic() - t_start))
        log("\n".join(lines))
        return 0

    log("== 1. limit: the stand-in's upsert SQL straight into the remote db, batches of %d"
        % LIMIT_BATCH)
    fresh_remote(remote, local)
    lim = run_limit(local, remote, stand_in_mod, n)
    log("   %d leads in %.2f s: %.0f leads/s (reading+JSON locally %.2f s, upserting %.2f s)"
        % (lim["leads"], lim["secs"], lim["rate"], lim["read_s"], lim["send_s"]))

    unt = None
    if not a.wan_only:
        log("== 1b. stand-in ceiling: the same batches POSTed to the stand-in by a Python client")
        fresh_remote(remote, local)
        si.reset()
        cei = run_stand_in_ceiling(local, remote, a.remote_url, a.api_key, n)
        sreq, srows, sdur, sstat = si.requests_summary()
        cei["stand_in_s"] = sdur
        log("   %d leads in %.2f s: %.0f leads/s (reading+JSON locally %.2f s, HTTP %.2f s,"
            " of which inside the stand-in %.2f s)"
            % (cei["leads"], cei["secs"], cei["rate"], cei["read_s"], cei["send_s"], sdur))

        log("== 2. gs_export unthrottled: gs_export_create('%s', '%s', '%s')"
            % (newest, oldest, json.dumps(UNTHROTTLED)))
        fresh_remote(remote, local)
        si.reset()
        if a.profile:
            run_sql(local, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            run_sql(local, "SELECT pg_stat_statements_reset()")
        unt = run_job(local, newest, oldest, UNTHROTTLED, timeout_s=max(900, n / 20),
                      sample_memory=True)
        sreq, srows, sdur, sstat = si.requests_summary()
        have = one(remote, "SELECT count(*) FROM fichas")[0]
        if unt["leads"] != n or unt["errors"] != 0 or have != n:
            raise RuntimeError("unthrottled run: %d leads, %d errors, %d in fichas, %d expected"
                               % (unt["leads"], unt["errors"], have, n))
        log("   %d leads in %.2f s: %.0f leads/s; %d requests, %.2f s of them inside the stand-in;"
            " worker VmHWM %d kB, peak RssAnon %d kB (%d samples)"
            % (unt["leads"], unt["secs"], unt["rate"], sreq, sdur, unt["mem"]["VmHWM"],
               unt["mem"]["RssAnon"], unt["mem"]["samples"]))
        unt["stand_in_s"] = sdur
        unt["requests"] = sreq
        # Each batch's round trip (building the body, the HTTP exchange) is its
        # leads' sync_duration_ms; its record's transaction gives them one
        # created_at.
        unt["round_trips_s"] = one(local, """SELECT COALESCE(sum(d), 0) / 1000.0 FROM (
                                                SELECT DISTINCT created_at, sync_duration_ms AS d
                                                  FROM sync_events WHERE job_id = %s) b""",
                                   (unt["job"],))[0]
        if a.profile:
            top = rows(local, """SELECT d.datname, s.calls, round(s.total_exec_time::numeric / 1000, 2),
                                        round(s.total_exec_time::numeric / s.calls, 3),
                                        regexp_replace(s.query, '\\s+', ' ', 'g')
                                   FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
                                  ORDER BY s.total_exec_time DESC LIMIT 10""")
            log("   pg_stat_statements, during the unthrottled job (db, calls, total s, ms/call, query):")
            for db, calls, tot, per, q in top:
                log("     %-8s %6d %8s s %9s ms  %s" % (db, calls, tot, per, q[:150]))
        src_sum, dst_sum = checksum(local), checksum(remote)
        if src_sum != dst_sum:
            raise RuntimeError("unthrottled run: the remote differs from the source: %r vs %r"
                               % (src_sum, dst_sum))
        log("   the remote equals the source (%d rows, md5 %s)" % dst_sum)

        end_d = day_of_nth_newest(local, DEFAULTS_TARGET)
        n_d = count_days(local, newest, end_d)
        log("== 3. gs_export at its defaults on %d leads: gs_export_create('%s', '%s', '{}')"
            % (n_d, newest, end_d))
        fresh_remote(remote, local)
        si.reset()
        dft = run_job(local, newest, end_d, {}, timeout_s=max(600, n_d / 20))
        bound = 1000.0 * dft["batch_size"] / dft["delay_ms"]
        log("   %d leads in %.2f s: %.1f leads/s = %.3f of the bound %.0f leads/s"
            " (batch %d, delay %d ms)"
            % (dft["leads"], dft["secs"], dft["rate"], dft["rate"] / bound, bound,
               dft["batch_size"], dft["delay_ms"]))

        end_o = day_of_nth_newest(local, ORIGINAL_TARGET)
        n_o = min(count_days(local, newest, end_o), ORIGINAL_CAP)
        log("== 4. the original algorithm on %d leads (%s .. %s): one request per lead,"
            " %d per batch, %d ms between batches"
            % (n_o, newest, end_o, ORIGINAL_BATCH, ORIGINAL_DELAY_S * 1000))
        fresh_remote(remote, local)
        si.reset()
        orig = run_original(local, a.remote_url, a.api_key, newest, end_o, ORIGINAL_CAP)
        sreq, srows, sdur, sstat = si.requests_summary()
        have = one(remote, "SELECT count(*) FROM fichas")[0]
        if have != orig["leads"]:
            raise RuntimeError("original run: %d sent, %d in fichas" % (orig["leads"], have))
        log("   %d leads in %.2f s: %.1f leads/s; %d requests (%.2f ms each on average,"
            " %.2f ms inside the stand-in)"
            % (orig["leads"], orig["secs"], orig["rate"], orig["requests"],
               1000.0 * orig["http_s"] / max(orig["requests"], 1),
               1000.0 * sdur / max(sreq, 1)))

        e_start = oldest - datetime.timedelta(days=1)
        e_end = oldest - datetime.timedelta(days=3650)
        log("== 5. an empty range: gs_export_create('%s', '%s', '{}'), 3650 days, no leads"
            % (e_start, e_end))
        emp = run_job(local, e_start, e_end, {}, timeout_s=600, poll_s=0.01)
        if emp["leads"] != 0:
            raise RuntimeError("empty range: %d leads" % emp["leads"])
        log("   created to completed %.3f s (created to started %.3f s, started to completed"
            " %.3f s); observed by polling: %.3f s"
            % (emp["create_to_completed"], emp["create_to_started"], emp["secs"], emp["wall"]))

        log("== 6. a filter (one lead in five: etapa = 'agendado'), unthrottled, without and with"
            " an index on etapa")
        flt_opts = dict(UNTHROTTLED, filter={"etapa": "agendado"})
        n_f = one(local, "SELECT count(*) FROM leads WHERE etapa = 'agendado'"
                         " AND updated_at IS NOT NULL")[0]
        flt = {}
        for indexed in (False, True):
            if indexed:
                run_sql(local, "CREATE INDEX leads_etapa_bench ON leads (etapa)")
                run_sql(local, "ANALYZE leads")
            fresh_remote(remote, local)
            si.reset()
            r = run_job(local, newest, oldest, flt_opts, timeout_s=max(900, n / 20))
            if r["leads"] != n_f or r["errors"] != 0:
                raise RuntimeError("filtered run: %d leads, %d errors, %d expected"
                                   % (r["leads"], r["errors"], n_f))
            flt[indexed] = r
            log("   %s: %d of %d leads in %.2f s: %.0f leads/s"
                % ("with an index on etapa" if indexed else "no index on etapa",
                   r["leads"], n, r["secs"], r["rate"]))
        run_sql(local, "DROP INDEX leads_etapa_bench")

    wan = None
    if a.wan or a.wan_only:
        wan = run_wan(local, remote, si, a, newest, oldest, n)

    m = machine(local)
    total_s = time.monotonic() - t_start
    lines = []
    w = lines.append
    w("")
    w("================================ gs_export benchmark ================================")
    w("machine     %s cores, %s, %s RAM, Linux %s" % (m["nproc"], m["cpu"], m["mem"], m["kernel"]))
    w("PostgreSQL  %s" % m["pg"])
    w("cluster     shared_buffers=%s max_wal_size=%s (set); synchronous_commit=%s fsync=%s"
      " wal_level=%s (defaults)"
      % (m["settings"].get("shared_buffers"), m["settings"].get("max_wal_size"),
         m["settings"].get("synchronous_commit"), m["settings"].get("fsync"),
         m["settings"].get("wal_level")))
    w("            local db and remote db in that one cluster; stand-in: Python, pool 32")
    w("load        load average before the benchmark: %s (other work on the machine"
      " skews the figures)" % load_before)
    w("data        N = %d leads over D = %d days (%s .. %s)" % (n, a.days, oldest, newest))
    w("")
    if not a.wan_only:
        w("%-44s %9s %9s %11s" % ("run", "leads", "seconds", "leads/s"))
        w("%-44s %9s %9s %11s" % ("-" * 44, "-" * 9, "-" * 9, "-" * 11))
        w("%-44s %9d %9.2f %11.0f" % ("limit: upsert SQL into remote db, no HTTP",
                                       lim["leads"], lim["secs"], lim["rate"]))
        w("%-44s %9d %9.2f %11.0f" % ("ceiling: same batches POSTed by Python",
                                       cei["leads"], cei["secs"], cei["rate"]))
        w("%-44s %9d %9.2f %11.0f" % ("gs_export batch 1000, delay 0",
                                       unt["leads"], unt["secs"], unt["rate"]))
        w("%-44s %9d %9.2f %11.1f" % ("gs_export defaults (batch 100, delay 500 ms)",
                                       dft["leads"], dft["secs"], dft["rate"]))
        w("%-44s %9d %9.2f %11.1f" % ("original: 1 request/lead, 100/batch, 500 ms",
                                       orig["leads"], orig["secs"], orig["rate"]))
        w("")
        w("gs_export unthrottled / limit             %6.2f" % (unt["rate"] / lim["rate"]))
        w("gs_export unthrottled / stand-in ceiling  %6.2f" % (unt["rate"] / cei["rate"]))
        w("gs_export unthrottled / original          %6.1f x" % (unt["rate"] / orig["rate"]))
        w("gs_export defaults / original             %6.2f x  (same pacing: 100 leads per 500 ms)"
          % (dft["rate"] / orig["rate"]))
        w("gs_export defaults / throttle bound       %6.3f    (bound %.0f leads/s = batch %d / %d ms)"
          % (dft["rate"] / bound, bound, dft["batch_size"], dft["delay_ms"]))
        w("unthrottled, where the %.2f s went: %d round trips %.2f s (of which inside the"
          " stand-in %.2f s, so worker-side body+HTTP %.2f s); between round trips (read,"
          " JSON objects, journal) %.2f s"
          % (unt["secs"], unt["requests"], unt["round_trips_s"], unt["stand_in_s"],
             float(unt["round_trips_s"]) - unt["stand_in_s"],
             unt["secs"] - float(unt["round_trips_s"])))
        w("limit: reading+JSON locally %.2f s, upsert %.2f s; ceiling: inside the stand-in %.2f s"
          % (lim["read_s"], lim["send_s"], cei["stand_in_s"]))
        w("unthrottled: create to started %.3f s; create to completed %.2f s"
          % (unt["create_to_started"], unt["create_to_completed"]))
        mm = unt["mem"]
        w("job worker memory (unthrottled, %d samples every 100 ms, pid %s):"
          % (mm["samples"], mm["pid"]))
        last = mm["last"] or {}
        w("    VmHWM %d kB (%.0f MB)   VmRSS peak %d kB, last sample %d kB"
          % (max(mm["VmHWM"], mm["VmRSS"]), max(mm["VmHWM"], mm["VmRSS"]) / 1024.0,
             mm["VmRSS"], last.get("VmRSS", 0)))
        w("    of which private (RssAnon) peak %d kB, shared (RssShmem) peak %d kB"
          % (mm["RssAnon"], mm["RssShmem"]))
        w("a filter keeping 1 lead in 5 (%d leads): %.2f s without an index on the column,"
          " %.2f s with one; unfiltered, all %d leads: %.2f s"
          % (flt[False]["leads"], flt[False]["secs"], flt[True]["secs"], unt["leads"], unt["secs"]))
        w("empty range (3650 days, no leads): created to completed %.3f s"
          % emp["create_to_completed"])
    else:
        w("limit: upsert SQL into remote db, no HTTP: %d leads in %.2f s, %.0f leads/s"
          " (--wan-only: no other loopback run)" % (lim["leads"], lim["secs"], lim["rate"]))
    if wan is not None:
        w("")
        lines.extend(wan_summary(wan, lim, unt))
        w("")
    w("whole benchmark (after cluster setup): %.0f s" % total_s)
    w("=====================================================================================")
    log("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
