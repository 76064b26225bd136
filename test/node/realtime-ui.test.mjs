// test/node/realtime-ui.test.mjs: the export screen (ui/) following an
// export through Supabase Realtime alone -- polling off (?poll=0) -- in
// Debian's headless chromium (puppeteer-core), against the API stand-in
// with its Realtime on (test/remote/standin/realtime.py); and the fallback
// ("Tempo real indisponível", polling) once the stand-in's Realtime is
// switched off.  Set up as test/node/ui.test.mjs is (supabase-project.mjs,
// ui/serve.mjs).  Fails, never skips, when chromium is missing ($CHROMIUM,
// default /usr/bin/chromium).
//   PG_CONFIG=... node --test test/node/realtime-ui.test.mjs
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { launchChromium } from './chromium.mjs'
import { startProject } from './supabase-project.mjs'
import { serveUi } from '../../ui/serve.mjs'

const USERS = { A: ['00000000-0000-4000-8000-00000000000a', 'agent'] }
// 400 leads of A's, one every 30 minutes back from 2025-10-17 20:00; those
// whose id is a multiple of 97 are 'bad lead', which the remote refuses.
const A_LEADS = 400
const LEADS_SQL = `
  INSERT INTO leads (id, updated_at, name, responsible_user_id, sync_source)
  SELECT g, timestamptz '2025-10-17 20:00:00-03' - g * interval '30 minutes',
         CASE WHEN g % 97 = 0 THEN 'bad lead' ELSE 'Lead ' || g END, '${USERS.A[0]}'::uuid, 'bitrix'
    FROM generate_series(1, ${A_LEADS}) g;`
const BAD = 4
// 20 batches 200 ms apart: about 4 s, long enough to act on a running job.
const DEFAULT_OPTIONS = { batch_size: 20, delay_ms: 200 }

let project, ui, browser, page
const pageErrors = []
let statusCalls = 0 // gs_export_status requests the page made

before(async () => {
  project = await startProject({
    users: USERS, leadsSql: LEADS_SQL, defaultOptions: DEFAULT_OPTIONS, name: 'gs_export_rt_ui', realtime: true,
  })
  ui = await serveUi(0)
  browser = await launchChromium(project.tmp)
  page = await browser.newPage()
  page.on('pageerror', (e) => pageErrors.push(String(e)))
  page.on('request', (r) => { if (r.url().includes('/rest/v1/rpc/gs_export_status')) statusCalls++ })
  // Every setInterval the page asks for, by its period (3000: polling).
  await page.evaluateOnNewDocument(() => {
    const orig = window.setInterval
    window.__intervals = []
    window.setInterval = function (fn, ms, ...rest) {
      window.__intervals.push(ms)
      return orig.call(this, fn, ms, ...rest)
    }
  })
  await page.setViewport({ width: 1280, height: 800 })
  await page.emulateTimezone('America/Sao_Paulo')
})

after(async () => {
  if (browser) await browser.close()
  if (ui) ui.close()
  if (project) project.stop()
})

const pageUrl = (extra = {}) =>
  `${ui.url}?${new URLSearchParams({ url: project.apiUrl, key: project.anonKey, jwt: project.userJwt('A'), ...extra })}`
const text = (selector) => page.$eval(selector, (e) => e.textContent.trim())
const figure = async (id) => Number((await text(`#${id}`)).replace(/\./g, ''))

async function waitFor (what, fn, timeout, arg) {
  try {
    await page.waitForFunction(fn, { timeout, polling: 100 }, arg)
  } catch (e) {
    const shown = await page.evaluate(() => JSON.stringify({
      status: document.querySelector('#job-status')?.textContent,
      mode: document.querySelector('#live-mode')?.textContent,
      notice: document.querySelector('#notice-text')?.textContent,
    }))
    throw new Error(`waiting for ${what}: ${e.message}; on screen: ${shown}`)
  }
}

const waitForStatus = (label, seconds = 30) =>
  waitFor(`status ${label}`, (l) => document.querySelector('#job-status')?.textContent === l, seconds * 1000, label)

function dbJob (id) {
  const [status, total, exported, errors] = project.su(
    `SELECT status, total_leads, exported_leads, error_leads FROM gestao_scouter_export_jobs WHERE id = '${id}'`).split('|')
  return { status, total: Number(total), exported: Number(exported), errors: Number(errors) }
}

// Starts an export from the form; its id once the progress card shows it
// (rather than the job before it, `previous`).
async function startExport (previous = '') {
  await page.$eval('#start-date', (e) => { e.value = '2025-10-17' })
  await page.$eval('#end-date', (e) => { e.value = '' })
  await page.click('#start-button')
  await waitFor('the new job on the progress card', (prev) => {
    const id = document.querySelector('#progress-card').dataset.jobId
    return !!id && id !== prev
  }, 15000, previous)
  return page.$eval('#progress-card', (e) => e.dataset.jobId)
}
let firstJob

test('Realtime on, polling off: the page follows an export, and a pause made elsewhere, from the database\'s notifications alone', async () => {
  await page.goto(pageUrl({ poll: '0' }))
  await page.waitForSelector('#live-mode[data-realtime="on"]', { timeout: 15000 })
  assert.equal(await text('#live-mode'), 'Tempo real ativo · atualização automática a cada 3 s')
  assert.ok(!(await page.evaluate(() => window.__intervals)).includes(3000), 'no 3 s polling with ?poll=0')
  const rt = await project.apiControl('realtime')
  assert.equal(rt.enabled, true)
  assert.equal(rt.channels, 1, 'the page joined one channel')

  const jobId = await startExport()
  firstJob = jobId
  await waitForStatus('Em andamento')
  // Paused from elsewhere (SQL, as another session would): only a Realtime
  // event can tell the page.
  project.su(`SELECT gs_export_pause('${jobId}', 'Manual')`)
  await waitForStatus('Pausada')
  const calls = statusCalls
  await page.click('#btn-resume')
  await waitForStatus('Concluída', 60)
  assert.deepEqual(dbJob(jobId), { status: 'completed', total: A_LEADS, exported: A_LEADS - BAD, errors: BAD })
  // The tiles end on the database's counts, the errors card on its rows.
  await waitFor('the final counts', (n) => document.querySelector('#t-total').textContent.replace(/\./g, '') === String(n),
    15000, A_LEADS)
  assert.equal(await figure('t-exported'), A_LEADS - BAD)
  assert.equal(await figure('t-errors'), BAD)
  await waitFor('the errors card', (n) => document.querySelectorAll('#errors-body tr').length === n, 15000, BAD)
  assert.ok(statusCalls > calls + 1, `the page refreshed on Realtime events: ${statusCalls - calls} status calls`)
  assert.ok(!(await page.evaluate(() => window.__intervals)).includes(3000), 'still no polling')
  assert.deepEqual(pageErrors, [])
})

test('Realtime switched off: "Tempo real indisponível", and polling follows an export', async () => {
  const off = await project.apiControl('realtime', { enabled: false })
  assert.equal(off.enabled, false)
  // The page that was open loses its socket and falls back.
  await page.waitForSelector('#live-mode[data-realtime="off"]', { timeout: 20000 })
  assert.equal(await text('#live-mode'), 'Tempo real indisponível · atualização automática a cada 3 s')

  // A new page, polling on: it says so at once, and polling follows an export.
  await page.goto(pageUrl())
  await page.waitForSelector('#live-mode[data-realtime="off"]', { timeout: 15000 })
  assert.equal(await text('#live-mode'), 'Tempo real indisponível · atualização automática a cada 3 s')
  assert.ok((await page.evaluate(() => window.__intervals)).includes(3000), 'polling every 3 s')
  await waitForStatus('Concluída')
  const jobId = await startExport(firstJob)
  assert.notEqual(dbJob(jobId).status, 'completed', 'the export is followed from its start')
  await waitForStatus('Concluída', 60)
  const done = dbJob(jobId)
  assert.equal(done.status, 'completed')
  await waitFor('the final counts', (n) => document.querySelector('#t-total').textContent.replace(/\./g, '') === String(n),
    15000, done.total)
  assert.equal(await figure('t-exported'), done.exported)
  assert.deepEqual(pageErrors, [])
})
