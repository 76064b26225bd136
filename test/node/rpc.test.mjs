// test/node/rpc.test.mjs: gs_export's SQL API driven the way TabuladorMax
// drives it, with the real @supabase/supabase-js client, through
// test/remote/stand_in.py in API mode (PostgREST 12.2 behind Supabase's
// gateway) in front of a throwaway cluster with gs_export preloaded, set up
// as a Supabase project with TabuladorMax's tables (supabase-project.mjs
// says how).
//
// Users: A and B (agents), ADM (an app admin).
//
// Run as an unprivileged user (PostgreSQL refuses root), with PG_CONFIG
// naming the pg_config of the PostgreSQL that has gs_export installed:
//   PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config node --test test/node/
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient } from '@supabase/supabase-js'
import { startProject, sleep } from './supabase-project.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const TOP = path.resolve(HERE, '..', '..')
const USERS = {
  A: '00000000-0000-4000-8000-00000000000a',
  B: '00000000-0000-4000-8000-00000000000b',
  ADM: '00000000-0000-4000-8000-0000000000ad',
}
// doc/supabase.md's example walks 2025-10-17 down to 2024-01-01; the leads are
// inside: 2,400 of them, one every 30 minutes back from 2025-10-17 20:00
// (Sao Paulo).  A is responsible for ids = 0 mod 4, B for 1 mod 4; leads
// whose id is a multiple of 97 are named 'bad lead', which the remote
// refuses (a CHECK of its own): 6 of A's, 6 of B's.
const N_LEADS = 2400
const PER_USER = 600
const BAD_PER_USER = 6

let project

// A supabase-js client as the app makes one for its signed-in user (no
// token: an anonymous visitor).
function clientFor (who) {
  const headers = who ? { Authorization: `Bearer ${project.userJwt(who)}` } : {}
  return createClient(project.apiUrl, project.anonKey, {
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
  project = await startProject({
    users: { A: [USERS.A, 'agent'], B: [USERS.B, 'agent'], ADM: [USERS.ADM, 'admin'] },
    leadsSql: `
      INSERT INTO leads (id, updated_at, name, age, raw, valor_ficha, ficha_confirmada, etapa,
                         data_agendamento, celular, responsible_user_id, sync_source)
      SELECT g, timestamptz '2025-10-17 20:00:00-03' - g * interval '30 minutes',
             CASE WHEN g % 97 = 0 THEN 'bad lead' ELSE 'lead ' || g END,
             18 + g % 50, jsonb_build_object('bitrix_id', g), (g % 1000) + 0.10, g % 2 = 0,
             (array['Lead', 'Agendado', 'Confirmado'])[1 + g % 3], date '2025-11-01' + g % 30,
             '+55 11 9' || lpad(g::text, 8, '0'),
             CASE g % 4 WHEN 0 THEN '${USERS.A}'::uuid WHEN 1 THEN '${USERS.B}'::uuid END, 'bitrix'
        FROM generate_series(1, ${N_LEADS}) g;`,
  })
})
after(() => project?.stop())

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

// doc/supabase.md's supabase-js block, run as written (its import aside), as
// A; and its curl block makes the same calls.
test("doc/supabase.md: the supabase-js example runs, and the curl example makes the same calls", async () => {
  const readme = fs.readFileSync(path.join(TOP, 'doc', 'supabase.md'), 'utf8')
  const block = (marker, lang) => {
    const at = readme.indexOf(`<!-- rpc-example: ${marker}`)
    assert.notEqual(at, -1, `doc/supabase.md has the ${marker} example`)
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
  await run(recordingCreateClient, project.apiUrl, project.anonKey, project.userJwt('A'), { log: (...a) => logged.push(a) })

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
  const remote = project.su("SELECT count(*) || '/' || count(*) FILTER (WHERE id % 4 = 0) FROM fichas", 'remote')
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

test('gs_export_remote_columns and gs_export_check through supabase.rpc (doc/usage.md, "Check before a job")', async () => {
  const a = clientFor('A')
  const cols = await a.rpc('gs_export_remote_columns', { target_table: 'fichas' })
  assert.equal(cols.error, null, JSON.stringify(cols.error))
  assert.ok(Array.isArray(cols.data) && cols.data.length > 40, 'an array: a row per column of fichas')
  assert.deepEqual(cols.data[0], { column_name: 'id', data_type: 'bigint', required: true })
  assert.deepEqual(cols.data.find((c) => c.column_name === 'updated_at'),
    { column_name: 'updated_at', data_type: 'timestamp with time zone', required: false })
  // the default options: good to go
  const ok = await a.rpc('gs_export_check', { options: {} })
  assert.deepEqual([ok.error, ok.data], [null, []])
  // the doc's example: a remote column that does not exist, and a bad option
  const { data: rows, error } = await a.rpc('gs_export_check', {
    options: { field_mappings: { nome: 'name', idade: 'age' } },
  })
  assert.equal(error, null, JSON.stringify(error))
  assert.deepEqual(rows.map((r) => [r.severity, r.key]), [['error', 'field_mappings'], ['error', 'field_mappings']])
  assert.match(rows[0].message, /remote column "idade" \(for lead column "age"\) does not exist in table "fichas"/)
  const bad = await a.rpc('gs_export_check', { options: { batch_size: 0 } })
  assert.deepEqual(bad.data.map((r) => [r.severity, r.key]), [['error', 'batch_size']])
  // a table the remote lacks: 42P01, as PostgREST returns an error
  const none = await a.rpc('gs_export_remote_columns', { target_table: 'nope' })
  assert.equal(none.error?.code, '42P01', JSON.stringify(none.error))
  assert.match(none.error.hint, /fichas/)
  // an anonymous visitor may not
  const anon = await clientFor(null).rpc('gs_export_check', { options: {} })
  assert.equal(anon.error?.code, '42501', JSON.stringify(anon.error))
})
