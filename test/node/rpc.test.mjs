// test/node/rpc.test.mjs: gs_export's SQL API driven the way TabuladorMax
// drives it, with the real @supabase/supabase-js client, through
// test/remote/stand_in.py in API mode (PostgREST 12.2 behind Supabase's
// gateway) in front of a throwaway cluster with gs_export preloaded.
//
// The cluster (initdb in a temporary folder, a Unix socket only): database
// "postgres" is a Supabase project with TabuladorMax's tables
// (test/sql/tabuladormax.sql) as test/t/031_supabase.pl and
// test/t/070_app_admins.pl build it -- roles anon, authenticated,
// service_role and authenticator (LOGIN NOINHERIT), auth.uid() reading
// request.jwt.claims, has_role(uuid, app_role) over user_roles, row level
// security on leads (a user reads the leads he is responsible for, admins
// all), CREATE EXTENSION gs_export, gs_export_grant_access('authenticated');
// database "remote" holds gestao-scouter's fichas (test/remote/fichas.sql)
// behind a second stand-in, the one gestao_scouter_config points at.
//
// Users: A and B (agents), ADM (an app admin).  Their JWTs are signed here
// with the stand-in's secret (HS256 with node:crypto).
//
// Run as an unprivileged user (PostgreSQL refuses root), with PG_CONFIG
// naming the pg_config of the PostgreSQL that has gs_export installed:
//   PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config node --test test/node/
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient } from '@supabase/supabase-js'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const TOP = path.resolve(HERE, '..', '..')
const PYTHON = '/usr/bin/python3'
const STAND_IN = path.join(TOP, 'test', 'remote', 'stand_in.py')

const JWT_SECRET = 'node-test-jwt-secret-of-more-than-32-characters'
const REMOTE_KEY = 'gestao-scouter-anon-key-for-the-node-test'
const USERS = {
  A: '00000000-0000-4000-8000-00000000000a',
  B: '00000000-0000-4000-8000-00000000000b',
  ADM: '00000000-0000-4000-8000-0000000000ad',
}
// The README's example walks 2025-10-17 down to 2024-01-01; the leads are
// inside: 2,400 of them, one every 30 minutes back from 2025-10-17 20:00
// (Sao Paulo).  A is responsible for ids = 0 mod 4, B for 1 mod 4; leads
// whose id is a multiple of 97 are named 'bad lead', which the remote
// refuses (a CHECK of its own): 6 of A's, 6 of B's.
const N_LEADS = 2400
const PER_USER = 600
const BAD_PER_USER = 6

// -- small helpers -----------------------------------------------------------

function b64url (buf) {
  return Buffer.from(buf).toString('base64url')
}

// An HS256 JWT, as Supabase's auth server signs its access tokens.
function signJwt (claims) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))
  const body = b64url(JSON.stringify(claims))
  const sig = crypto.createHmac('sha256', JWT_SECRET).update(`${head}.${body}`).digest('base64url')
  return `${head}.${body}.${sig}`
}

function userJwt (who) {
  const now = Math.floor(Date.now() / 1000)
  return signJwt({ sub: USERS[who], role: 'authenticated', aud: 'authenticated', iat: now, exp: now + 3600 })
}

const ANON_KEY = signJwt({ role: 'anon', iss: 'supabase', iat: 1700000000, exp: 4102444800 })

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

let tmp, bindir, pgdata, sockdir
const PGPORT = 5432            // on a socket in our own folder: no clash
const children = []
let apiUrl, remoteUrl

function pg (tool) {
  return path.join(bindir, tool)
}

// SQL as the superuser, through psql; its unaligned output.
function su (sql, db = 'postgres') {
  return execFileSync(pg('psql'), ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', sockdir,
    '-p', String(PGPORT), '-U', 'postgres', '-d', db, '-f', '-'],
  { input: sql, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] }).trim()
}

// A stand-in; resolves to its base URL once it listens.
async function startStandIn (name, args) {
  const portFile = path.join(tmp, `${name}.port`)
  const log = fs.openSync(path.join(tmp, `${name}.log`), 'w')
  const child = spawn(PYTHON, [STAND_IN, '--port', '0', '--port-file', portFile,
    '--control-port', '-1', ...args], { stdio: ['ignore', log, log] })
  children.push(child)
  const deadline = Date.now() + 20000
  while (!fs.existsSync(portFile)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`stand-in ${name} did not start: ` +
        fs.readFileSync(path.join(tmp, `${name}.log`), 'utf8'))
    }
    await sleep(50)
  }
  return `http://127.0.0.1:${parseInt(fs.readFileSync(portFile, 'utf8'), 10)}`
}

// A supabase-js client as the app makes one for its signed-in user (no
// token: an anonymous visitor).
function clientFor (who) {
  const headers = who ? { Authorization: `Bearer ${userJwt(who)}` } : {}
  return createClient(apiUrl, ANON_KEY, {
    global: { headers },
    auth: { persistSession: false, autoRefreshToken: false },
  })
}

// gs_export_status through RPC until the job is no longer running.
async function waitForEnd (supabase, jobId, seconds = 60) {
  const deadline = Date.now() + seconds * 1000
  for (;;) {
    const { data, error } = await supabase.rpc('gs_export_status', { job_id: jobId })
    assert.equal(error, null, JSON.stringify(error))
    if (['completed', 'failed', 'paused'].includes(data.status)) return data
    if (Date.now() > deadline) throw new Error(`job ${jobId} still ${data.status}`)
    await sleep(150)
  }
}

// -- the cluster, the remote, the API -------------------------------------------

before(async () => {
  if (process.getuid && process.getuid() === 0) {
    throw new Error('run as an unprivileged user (PostgreSQL refuses root): tools/as-postgres')
  }
  bindir = execFileSync(process.env.PG_CONFIG || 'pg_config', ['--bindir'], { encoding: 'utf8' }).trim()
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gs_export_node_'))
  pgdata = path.join(tmp, 'data')
  sockdir = tmp
  execFileSync(pg('initdb'), ['-D', pgdata, '-U', 'postgres', '--auth=trust', '-E', 'UTF8',
    '--no-sync'], { stdio: 'ignore' })
  fs.appendFileSync(path.join(pgdata, 'postgresql.conf'), `
listen_addresses = ''
unix_socket_directories = '${sockdir}'
port = ${PGPORT}
fsync = off
full_page_writes = off
shared_preload_libraries = 'gs_export'
gs_export.database = 'postgres'
gs_export.retry_max_delay_ms = 1000
`)
  execFileSync(pg('pg_ctl'), ['-D', pgdata, '-l', path.join(tmp, 'postgres.log'), '-w', 'start'],
    { stdio: 'ignore' })

  // The remote: gestao-scouter's fichas, which refuses leads named 'bad lead'.
  su('CREATE DATABASE remote')
  su(fs.readFileSync(path.join(TOP, 'test', 'remote', 'fichas.sql'), 'utf8'), 'remote')
  su("ALTER TABLE public.fichas ADD CONSTRAINT no_bad_leads CHECK (name <> 'bad lead')", 'remote')
  remoteUrl = await startStandIn('remote', ['--dsn',
    `host=${sockdir} port=${PGPORT} dbname=remote user=postgres`, '--api-key', REMOTE_KEY])

  // TabuladorMax on Supabase (test/t/031_supabase.pl, 070_app_admins.pl).
  su(`
    CREATE ROLE anon NOLOGIN NOINHERIT;
    CREATE ROLE authenticated NOLOGIN NOINHERIT;
    CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
    CREATE ROLE authenticator LOGIN NOINHERIT;
    GRANT anon, authenticated, service_role TO authenticator;
    GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
    CREATE SCHEMA auth;
    GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
    CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
      SELECT nullif(coalesce(current_setting('request.jwt.claim.sub', true),
                             (current_setting('request.jwt.claims', true)::jsonb ->> 'sub')), '')::uuid $$;
    CREATE TYPE public.app_role AS ENUM ('admin', 'manager', 'supervisor', 'agent');
    CREATE TABLE public.user_roles (user_id uuid NOT NULL, role public.app_role NOT NULL,
                                    PRIMARY KEY (user_id, role));
    ALTER TABLE public.user_roles ENABLE ROW LEVEL SECURITY;
    CREATE FUNCTION public.has_role(_user_id uuid, _role public.app_role) RETURNS boolean
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public
      AS $$ SELECT EXISTS (SELECT 1 FROM public.user_roles WHERE user_id = _user_id AND role = _role) $$;
    INSERT INTO public.user_roles VALUES
      ('${USERS.A}', 'agent'), ('${USERS.B}', 'agent'), ('${USERS.ADM}', 'admin');
  `)
  su(fs.readFileSync(path.join(TOP, 'test', 'sql', 'tabuladormax.sql'), 'utf8'))
  su(`
    CREATE INDEX ON leads (updated_at, id);
    ALTER TABLE leads ENABLE ROW LEVEL SECURITY;
    CREATE POLICY "Users read their leads, admins all" ON leads FOR SELECT TO authenticated
      USING (responsible_user_id = auth.uid() OR has_role(auth.uid(), 'admin'));
    -- the original's policies (original-batch-export.md, "RLS Policies")
    ALTER TABLE gestao_scouter_export_jobs ENABLE ROW LEVEL SECURITY;
    CREATE POLICY "Users can view own export jobs" ON gestao_scouter_export_jobs FOR SELECT
      USING (created_by = auth.uid() OR has_role(auth.uid(), 'admin'));
    CREATE POLICY "Users can create export jobs" ON gestao_scouter_export_jobs FOR INSERT
      WITH CHECK (created_by = auth.uid());
    CREATE POLICY "Users can update own export jobs" ON gestao_scouter_export_jobs FOR UPDATE
      USING (created_by = auth.uid() OR has_role(auth.uid(), 'admin'));
    ALTER TABLE sync_events ENABLE ROW LEVEL SECURITY;
    CREATE POLICY "Users can view sync events" ON sync_events FOR SELECT TO authenticated USING (true);
    CREATE EXTENSION gs_export;
    SELECT gs_export_grant_access('authenticated');
    DELETE FROM gestao_scouter_config;
    INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled)
    VALUES ('${remoteUrl}', '${REMOTE_KEY}', true, true);
    INSERT INTO leads (id, updated_at, name, age, raw, valor_ficha, ficha_confirmada, etapa,
                       data_agendamento, celular, responsible_user_id, sync_source)
    SELECT g, timestamptz '2025-10-17 20:00:00-03' - g * interval '30 minutes',
           CASE WHEN g % 97 = 0 THEN 'bad lead' ELSE 'lead ' || g END,
           18 + g % 50, jsonb_build_object('bitrix_id', g), (g % 1000) + 0.10, g % 2 = 0,
           (array['Lead', 'Agendado', 'Confirmado'])[1 + g % 3], date '2025-11-01' + g % 30,
           '+55 11 9' || lpad(g::text, 8, '0'),
           CASE g % 4 WHEN 0 THEN '${USERS.A}'::uuid WHEN 1 THEN '${USERS.B}'::uuid END, 'bitrix'
      FROM generate_series(1, ${N_LEADS}) g;
  `)

  // TabuladorMax's API: the stand-in in front of this database, logged in
  // as authenticator, switching to each token's role.
  apiUrl = await startStandIn('api', ['--dsn',
    `host=${sockdir} port=${PGPORT} dbname=postgres user=authenticator`,
    '--api-key', ANON_KEY, '--jwt-secret', JWT_SECRET, '--anon-role', 'anon'])
})

// Stop what this file started (also when the run is cut short).
let cleaned = false
function cleanUp () {
  if (cleaned) return
  cleaned = true
  for (const child of children) {
    if (child.exitCode === null) child.kill('SIGTERM')
  }
  if (pgdata && fs.existsSync(path.join(pgdata, 'postmaster.pid'))) {
    try {
      execFileSync(pg('pg_ctl'), ['-D', pgdata, '-m', 'fast', '-w', 'stop'], { stdio: 'ignore' })
    } catch (e) {
      // already stopped
    }
  }
  if (tmp && !process.env.GS_KEEP_NODE_TMP) fs.rmSync(tmp, { recursive: true, force: true })
}
after(cleanUp)
process.on('exit', cleanUp)
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { cleanUp(); process.exit(130) })
}

// -- the tests ------------------------------------------------------------------

test('setup: each user reads the leads row level security lets him read', async () => {
  for (const [who, n] of [['A', PER_USER], ['B', PER_USER], ['ADM', N_LEADS]]) {
    const { count, error } = await clientFor(who).from('leads').select('id', { count: 'exact', head: true })
    assert.equal(error, null)
    assert.equal(count, n, who)
  }
  // anon has Supabase's default privileges on leads, and no policy
  const { data, error } = await clientFor(null).from('leads').select('id')
  assert.deepEqual([data, error], [[], null], 'anon reads no leads')
})

// The README's supabase-js block, run as written (its import aside), as A;
// and the README's curl block makes the same calls.
test("README: the supabase-js example runs, and the curl example makes the same calls", async () => {
  const readme = fs.readFileSync(path.join(TOP, 'README.md'), 'utf8')
  const block = (marker, lang) => {
    const at = readme.indexOf(`<!-- rpc-example: ${marker}`)
    assert.notEqual(at, -1, `README has the ${marker} example`)
    const open = readme.indexOf('```' + lang + '\n', at)
    return readme.slice(open + lang.length + 4, readme.indexOf('\n```', open))
  }
  const js = block('supabase-js', 'js')
  const sh = block('curl', 'sh')

  const calls = []
  const logged = []
  const recordingCreateClient = (url, key, options) => {
    const real = createClient(url, key, options)
    return {
      rpc: (fn, args, opts) => real.rpc(fn, args, opts).then((res) => {
        calls.push({ fn, args, error: res.error, status: res.status })
        return res
      }),
      from: (...a) => real.from(...a),
    }
  }
  const body = js.replace(/^import .*$/m, '')
  const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor
  const run = new AsyncFunction('createClient', 'SUPABASE_URL', 'SUPABASE_ANON_KEY', 'USER_JWT', 'console', body)
  await run(recordingCreateClient, apiUrl, ANON_KEY, userJwt('A'), { log: (...a) => logged.push(a) })

  assert.deepEqual(calls.map((c) => [c.fn, c.error]), [
    ['gs_export_create', null], ['gs_export_status', null], ['gs_export_pause', null],
    ['gs_export_resume', null], ['gs_export_pause', null], ['gs_export_reset', null],
    ['gs_export_pause', null], ['gs_export_delete', null]])
  // console.log(progress.status, progress.percent, progress.leads_in_range, progress.eta)
  assert.equal(logged.length, 1)
  assert.ok(['pending', 'running'].includes(logged[0][0]), `status ${logged[0][0]}`)
  // void: 204
  assert.deepEqual(calls.slice(2).map((c) => c.status), [204, 204, 204, 204, 204, 204])

  // The curl block: the same functions with the same JSON bodies.
  const job = calls[2].args.job_id
  const curls = sh.split('\n').filter((l) => l.startsWith('curl ') || l.startsWith('  -d '))
    .join('\n').replace(/\\\n\s*-d/g, ' -d').split('\n')
  const fromCurl = curls.map((l) => {
    const fn = l.match(/"\$API\/(\w+)"/)[1]
    const data = l.match(/-d '([^']*)'/)[1].replaceAll('6f1c…', job)
    return { fn, args: JSON.parse(data) }
  })
  assert.deepEqual(fromCurl, calls.map((c) => ({ fn: c.fn, args: c.args })))

  // It ends with the job deleted: no job of A's is left.
  const { data: jobs } = await clientFor('A').from('gestao_scouter_export_jobs').select('id')
  assert.deepEqual(jobs, [])
})

// An export followed to its end through gs_export_status, as the app's
// progress card follows it.
test('a whole export, followed with gs_export_status until completed', async () => {
  const a = clientFor('A')
  const { data: jobId, error, status } = await a.rpc('gs_export_create', {
    start_date: '2025-10-17', end_date: '2025-01-01',
    options: { batch_size: 100, delay_ms: 0, time_zone: 'America/Sao_Paulo' },
  })
  assert.equal(error, null, JSON.stringify(error))
  assert.equal(status, 200)
  assert.match(jobId, /^[0-9a-f-]{36}$/)
  const seen = new Set()
  const deadline = Date.now() + 60000
  let s
  for (;;) {
    const r = await a.rpc('gs_export_status', { job_id: jobId })
    assert.equal(r.error, null, JSON.stringify(r.error))
    s = r.data
    seen.add(s.status)
    if (s.status !== 'pending' && s.status !== 'running') break
    assert.ok(Date.now() < deadline, `still ${s.status}`)
    await sleep(100)
  }
  assert.equal(s.status, 'completed', JSON.stringify(s))
  assert.equal(s.job_id, jobId)
  assert.equal(Number(s.leads_in_range), PER_USER, 'A\'s leads: row level security applies')
  assert.equal(Number(s.total_leads), PER_USER)
  assert.equal(Number(s.exported_leads), PER_USER - BAD_PER_USER)
  assert.equal(Number(s.error_leads), BAD_PER_USER)
  assert.equal(Number(s.percent), 100)
  assert.equal(s.eta, null)
  assert.ok(s.completed_at)
  const remote = su("SELECT count(*) || '/' || count(*) FILTER (WHERE id % 4 = 0) FROM fichas", 'remote')
  assert.equal(remote, `${PER_USER - BAD_PER_USER}/${PER_USER - BAD_PER_USER}`, 'only A\'s leads reached the remote')
})

test('errors: the contract\'s SQLSTATE in error.code, PostgREST\'s status', async () => {
  const a = clientFor('A')
  const b = clientFor('B')
  const expect = async (promise, code, status, what) => {
    const { data, error, status: st } = await promise
    assert.equal(data, null, what)
    assert.ok(error, `${what}: an error`)
    assert.equal(error.code, code, `${what}: ${JSON.stringify(error)}`)
    assert.equal(st, status, what)
    return error
  }
  // 22023: a bad option, end_date after start_date
  await expect(a.rpc('gs_export_create', { options: { batch_size: 0 } }), '22023', 400, 'batch_size 0')
  await expect(a.rpc('gs_export_create', { options: { no_such_option: 1 } }), '22023', 400, 'unknown option')
  await expect(a.rpc('gs_export_create', { start_date: '2025-01-01', end_date: '2025-02-01' }),
    '22023', 400, 'end_date after start_date')
  // 22004: a NULL where a value is needed
  await expect(a.rpc('gs_export_create', { start_date: null }), '22004', 400, 'start_date null')
  await expect(a.rpc('gs_export_pause', { job_id: null }), '22004', 400, 'job_id null')
  // 42704: a job that does not exist
  await expect(a.rpc('gs_export_status', { job_id: crypto.randomUUID() }), '42704', 400, 'no such job')
  await expect(a.rpc('gs_export_resume', { job_id: crypto.randomUUID() }), '42704', 400, 'resume: no such job')
  // 42501: an anonymous visitor may not use gs_export; nobody may grant it through the API
  await expect(clientFor(null).rpc('gs_export_create', {}), '42501', 401, 'anon')
  await expect(a.rpc('gs_export_grant_access', { grantee: 'authenticated' }), '42501', 403, 'grant_access')
  // PostgREST's own: no such function or arguments
  const e = await expect(a.rpc('gs_export_create', { start_date: '2025-10-17', option: {} }),
    'PGRST202', 404, 'a misspelt argument')
  assert.equal(e.message, 'Could not find the function public.gs_export_create(option, start_date) in the schema cache')
  assert.equal(e.hint, 'Perhaps you meant to call the function public.gs_export_create(end_date, options, start_date)')

  // A job of A's that stays active (one batch of 10 every 2 s).
  const { data: job, error } = await a.rpc('gs_export_create', {
    start_date: '2025-10-17', end_date: '2025-09-01', options: { batch_size: 10, delay_ms: 2000 },
  })
  assert.equal(error, null, JSON.stringify(error))
  // 55000: another job is active, and the hint names it
  const busy = await expect(b.rpc('gs_export_create', {}), '55000', 500, 'another job is active')
  assert.match(busy.hint, new RegExp(job))
  // 42704: B may not see A's job -- the same as a job that does not exist
  for (const fn of ['gs_export_status', 'gs_export_pause', 'gs_export_resume', 'gs_export_reset', 'gs_export_delete']) {
    await expect(b.rpc(fn, { job_id: job }), '42704', 400, `B: ${fn} of A's job`)
  }
  await expect(b.rpc('gs_export_status', {}), '42704', 400, 'B has no job')
  // 55000: a state that does not allow it
  await expect(a.rpc('gs_export_resume', { job_id: job }), '55000', 500, 'resume an active job')
  await expect(a.rpc('gs_export_reset', { job_id: job }), '55000', 500, 'reset an active job')
  await expect(a.rpc('gs_export_delete', { job_id: job }), '55000', 500, 'delete an active job')
  // the app's admin sees and controls every job
  const adm = clientFor('ADM')
  const { data: st, error: stErr } = await adm.rpc('gs_export_status', { job_id: job })
  assert.equal(stErr, null)
  assert.equal(st.job_id, job)
  const paused = await adm.rpc('gs_export_pause', { job_id: job, reason: 'admin' })
  assert.deepEqual([paused.error, paused.status], [null, 204])
  await expect(a.rpc('gs_export_pause', { job_id: job }), '55000', 500, 'pause a paused job')
  const s = (await a.rpc('gs_export_status', { job_id: job })).data
  assert.deepEqual([s.status, s.pause_reason], ['paused', 'admin'])
  const del = await a.rpc('gs_export_delete', { job_id: job })
  assert.deepEqual([del.error, del.status], [null, 204])
  await expect(a.rpc('gs_export_status', { job_id: job }), '42704', 400, 'a deleted job')
})

test('jobs, errors and events through supabase.from(): row level security holds', async () => {
  // B's own whole export, so that each user has a job.
  const b = clientFor('B')
  const { data: bJob, error } = await b.rpc('gs_export_create', {
    start_date: '2025-10-17', end_date: '2025-01-01', options: { batch_size: 200, delay_ms: 0 },
  })
  assert.equal(error, null, JSON.stringify(error))
  const end = await waitForEnd(b, bJob)
  assert.equal(end.status, 'completed')

  const jobsOf = async (who) => {
    const { data, error } = await clientFor(who).from('gestao_scouter_export_jobs')
      .select('id, status, created_by, exported_leads, error_leads')
      .order('created_at', { ascending: false }).limit(10)
    assert.equal(error, null, JSON.stringify(error))
    return data
  }
  const aJobs = await jobsOf('A')
  const bJobs = await jobsOf('B')
  const admJobs = await jobsOf('ADM')
  assert.equal(aJobs.length, 1, 'A sees her one remaining job')
  assert.ok(aJobs.every((j) => j.created_by === USERS.A))
  assert.deepEqual(bJobs.map((j) => [j.id, j.created_by, j.status]), [[bJob, USERS.B, 'completed']])
  assert.deepEqual(admJobs.map((j) => j.id).sort(), [aJobs[0].id, bJob].sort(), 'the app\'s admin sees every job')
  const aJob = aJobs[0].id
  const anon = await clientFor(null).from('gestao_scouter_export_jobs').select('id')
  assert.deepEqual([anon.error?.code, anon.status], ['42501', 401], 'anon may not read the jobs')

  // B sees none of A's jobs, errors or events -- even asking for them by id.
  const count = async (who, table, jobId) => {
    const col = table === 'gestao_scouter_export_jobs' ? 'id' : 'job_id'
    const { count: n, error } = await clientFor(who).from(table)
      .select('*', { count: 'exact', head: true }).eq(col, jobId)
    assert.equal(error, null, `${who} ${table}: ${JSON.stringify(error)}`)
    return n
  }
  const tables = ['gestao_scouter_export_jobs', 'gestao_scouter_export_errors', 'sync_events']
  const want = { gestao_scouter_export_jobs: 1, gestao_scouter_export_errors: BAD_PER_USER, sync_events: PER_USER }
  for (const t of tables) {
    assert.equal(await count('A', t, aJob), want[t], `A reads ${t} of her job`)
    assert.equal(await count('B', t, aJob), 0, `B reads no ${t} of A's job`)
    assert.equal(await count('ADM', t, aJob), want[t], `the admin reads ${t} of A's job`)
    assert.equal(await count('A', t, bJob), 0, `A reads no ${t} of B's job`)
  }

  // The errors as the app lists them: the lead, what was sent, the remote's answer.
  const { data: errs, error: errsErr } = await clientFor('A').from('gestao_scouter_export_errors')
    .select('lead_id, error_message, response_status, fields_sent')
    .eq('job_id', aJob).order('lead_id')
  assert.equal(errsErr, null)
  assert.deepEqual(errs.map((e) => e.lead_id), [388, 776, 1164, 1552, 1940, 2328])
  assert.ok(errs.every((e) => e.response_status === 400 && /no_bad_leads/.test(e.error_message)),
    JSON.stringify(errs[0]))
  assert.equal(errs[0].fields_sent.name, 'bad lead')
  // .in() and .eq() on the events: A's failed leads are 'error' events
  const { data: evs } = await clientFor('A').from('sync_events').select('lead_id, status')
    .eq('job_id', aJob).in('lead_id', [388, 392]).order('lead_id')
  assert.deepEqual(evs, [{ lead_id: 388, status: 'error' }, { lead_id: 392, status: 'success' }])
  // the newest job as one object (.single()), as a progress card reads it
  const one = await clientFor('A').from('gestao_scouter_export_jobs').select('id, status')
    .order('created_at', { ascending: false }).limit(1).single()
  assert.equal(one.error, null, JSON.stringify(one.error))
  assert.deepEqual(one.data, { id: aJob, status: 'completed' })
})
