// test/node/realtime.test.mjs: Supabase Realtime's postgres_changes on the
// jobs and errors tables, with supabase-js's real client (realtime-js
// 2.99.3) against the API stand-in (test/remote/standin/realtime.py: the
// websocket at /realtime/v1/websocket, fed by NOTIFY gs_export and read
// as each subscriber through row level security), in the project
// supabase-project.mjs builds.
//
// Users: A and B (agents: each sees his own jobs), ADM (an app admin: sees
// every job, the original's policy).
//
// Run as an unprivileged user, with PG_CONFIG naming the pg_config of the
// PostgreSQL that has gs_export installed:
//   PG_CONFIG=... node --test test/node/realtime.test.mjs
// Node 20 has no WebSocket of its own (22 has): the `ws` package then
// (installed with puppeteer-core) is realtime-js's transport.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createClient } from '@supabase/supabase-js'
import { startProject, sleep } from './supabase-project.mjs'

const USERS = {
  A: '00000000-0000-4000-8000-00000000000a',
  B: '00000000-0000-4000-8000-00000000000b',
  ADM: '00000000-0000-4000-8000-0000000000ad',
}
const JOBS = 'gestao_scouter_export_jobs'
const ERRORS = 'gestao_scouter_export_errors'
// 400 leads, one every 6 hours back from 2025-10-17; A has ids = 0 mod 4,
// B 1 mod 4; 'bad lead' (ids multiple of 50) the remote refuses: A's 4.
const N_LEADS = 400
const A_LEADS = 100
const A_BAD = 4

let project
const Transport = globalThis.WebSocket ?? (await import('ws')).default
const clients = []

// A client as ui/app.js makes one: the user's token through accessToken.
function clientFor (who) {
  const jwt = project.userJwt(who)
  const c = createClient(project.apiUrl, project.anonKey, {
    accessToken: async () => jwt,
    realtime: { transport: Transport },
  })
  clients.push(c)
  return c
}

// Wait until check() is true (polling what the callbacks collected).
async function waitFor (what, check, seconds = 30) {
  const deadline = Date.now() + seconds * 1000
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(25)
  }
}

// Subscribe to the page's two bindings (ui/app.js's api.live); resolves to
// {channel, jobs: [payload...], errors: [payload...]} once SUBSCRIBED.
async function follow (supabase, name = 'gestao-scouter-export-jobs', filter) {
  const got = { jobs: [], errors: [], states: [] }
  const jobBinding = { event: '*', schema: 'public', table: JOBS }
  if (filter) jobBinding.filter = filter
  got.channel = supabase.channel(name)
    .on('postgres_changes', jobBinding, (p) => got.jobs.push(p))
    .on('postgres_changes', { event: 'INSERT', schema: 'public', table: ERRORS }, (p) => got.errors.push(p))
    .subscribe((state, err) => got.states.push([state, err && String(err)]))
  await waitFor('SUBSCRIBED', () => got.states.some(([s]) => s !== 'CLOSED'))
  assert.deepEqual(got.states[0], ['SUBSCRIBED', undefined])
  return got
}

async function runExport (supabase, options = {}) {
  const { data: jobId, error } = await supabase.rpc('gs_export_create', {
    start_date: '2025-10-17', end_date: '2025-01-01',
    options: { batch_size: 25, delay_ms: 0, time_zone: 'America/Sao_Paulo', ...options },
  })
  assert.equal(error, null, JSON.stringify(error))
  return jobId
}

before(async () => {
  project = await startProject({
    name: 'gs_export_realtime',
    realtime: true,
    users: { A: [USERS.A, 'agent'], B: [USERS.B, 'agent'], ADM: [USERS.ADM, 'admin'] },
    leadsSql: `
      INSERT INTO leads (id, updated_at, name, responsible_user_id, sync_source)
      SELECT g, timestamptz '2025-10-17 20:00:00-03' - g * interval '6 hours',
             CASE WHEN g % 50 = 0 THEN 'bad lead' ELSE 'lead ' || g END,
             CASE g % 4 WHEN 0 THEN '${USERS.A}'::uuid WHEN 1 THEN '${USERS.B}'::uuid END, 'bitrix'
        FROM generate_series(1, ${N_LEADS}) g;`,
  })
})
after(async () => {
  for (const c of clients) await c.removeAllChannels()
  project?.stop()
})

test('postgres_changes: a job\'s INSERT and UPDATEs and its errors reach its owner, as realtime-js hands them over; another user\'s job does not', async () => {
  const a = clientFor('A')
  const b = clientFor('B')
  const adm = clientFor('ADM')
  const fa = await follow(a)
  const fb = await follow(b)
  const fadm = await follow(adm)

  const jobId = await runExport(a)
  await waitFor('A\'s job completed (Realtime)', () =>
    fa.jobs.some((p) => p.new?.id === jobId && p.new.status === 'completed'))
  await waitFor(`A's ${A_BAD} error rows`, () => fa.errors.length === A_BAD)

  // The first event is the INSERT; the others UPDATEs of the same row.
  const first = fa.jobs[0]
  assert.equal(first.eventType, 'INSERT', JSON.stringify(first))
  assert.equal(first.schema, 'public')
  assert.equal(first.table, JOBS)
  assert.equal(first.new.id, jobId)
  assert.equal(first.new.created_by, USERS.A)
  assert.deepEqual(first.old, {})
  assert.equal(first.errors, null)
  assert.match(first.commit_timestamp, /^\d{4}-\d\d-\d\dT/)
  const updates = fa.jobs.slice(1)
  assert.ok(updates.length >= 1)
  for (const p of updates) {
    assert.equal(p.eventType, 'UPDATE')
    assert.equal(p.new.id, jobId)
    assert.deepEqual(p.old, { id: jobId })
  }
  const last = updates[updates.length - 1].new
  assert.equal(last.status, 'completed')
  // realtime-js converted the columns by their types (int8 -> number).
  assert.equal(last.total_leads, A_LEADS)
  assert.equal(last.exported_leads, A_LEADS - A_BAD)
  assert.equal(last.error_leads, A_BAD)
  for (const p of fa.errors) {
    assert.equal(p.eventType, 'INSERT')
    assert.equal(p.table, ERRORS)
    assert.equal(p.new.job_id, jobId)
    assert.equal(p.new.lead_id % 50, 0)
  }
  assert.deepEqual(fa.errors.map((p) => p.new.lead_id).sort((x, y) => x - y), [100, 200, 300, 400])

  // The admin's policy lets him see A's job and its errors.
  await waitFor('the admin sees A\'s job completed', () =>
    fadm.jobs.some((p) => p.new?.id === jobId && p.new.status === 'completed'))
  await waitFor('the admin sees A\'s errors', () => fadm.errors.length === A_BAD)

  // B's own job: its INSERT reaches B after every notification of A's job
  // (one listening connection, handled in order), and nothing of A's came.
  const jobB = await runExport(b)
  await waitFor('B\'s job INSERT', () => fb.jobs.some((p) => p.new?.id === jobB))
  assert.equal(fb.jobs[0].eventType, 'INSERT')
  assert.deepEqual(fb.jobs.filter((p) => p.new?.id === jobId || p.old?.id === jobId), [])
  assert.deepEqual(fb.errors.filter((p) => p.new.job_id === jobId), [])
  await waitFor('B\'s job completed', () => fb.jobs.some((p) => p.new?.id === jobB && p.new.status === 'completed'))
  assert.deepEqual(fa.jobs.filter((p) => p.new?.id === jobB), [], 'A sees nothing of B\'s job')

  // A deletes his job: a DELETE with the id (Realtime sends a delete's
  // primary key only).
  const del = await a.rpc('gs_export_delete', { job_id: jobId })
  assert.equal(del.error, null, JSON.stringify(del.error))
  await waitFor('the DELETE', () => fa.jobs.some((p) => p.eventType === 'DELETE'))
  const d = fa.jobs.find((p) => p.eventType === 'DELETE')
  assert.deepEqual([d.old, d.new], [{ id: jobId }, {}])
})

test('a filter (id=eq.<job>) and an invalid token', async () => {
  const a = clientFor('A')
  // 10 batches 300 ms apart: still running once the channels are joined.
  const jobId = await runExport(a, { batch_size: 10, delay_ms: 300 })
  const f = await follow(a, 'one-job', `id=eq.${jobId}`)
  const other = await follow(a, 'any-job')
  const { data: s } = await a.rpc('gs_export_status', { job_id: jobId })
  assert.notEqual(s.status, 'completed', 'the job ran too fast for this test')
  await waitFor('the filtered channel sees it complete', () =>
    f.jobs.some((p) => p.new.id === jobId && p.new.status === 'completed'))
  assert.ok(f.jobs.every((p) => p.new.id === jobId))
  // Another job of A's: not through the filtered channel.
  const job2 = await runExport(a)
  await waitFor('job 2 on the unfiltered channel', () =>
    other.jobs.some((p) => p.new?.id === job2 && p.new.status === 'completed'))
  assert.deepEqual(f.jobs.filter((p) => p.new.id === job2), [])

  // A token the project did not sign: the join is refused (CHANNEL_ERROR).
  const bad = createClient(project.apiUrl, project.anonKey, {
    accessToken: async () => 'eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYXV0aGVudGljYXRlZCJ9.c2ln',
    realtime: { transport: Transport },
  })
  clients.push(bad)
  const states = []
  bad.channel('bad').on('postgres_changes', { event: '*', schema: 'public', table: JOBS }, () => {})
    .subscribe((state, err) => states.push([state, err && err.message]))
  await waitFor('CHANNEL_ERROR', () => states.length > 0)
  assert.equal(states[0][0], 'CHANNEL_ERROR')
  assert.match(states[0][1], /Invalid token/)
})
