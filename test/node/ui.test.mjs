// test/node/ui.test.mjs: the export screen (ui/) in a real browser --
// Debian's headless chromium driven by puppeteer-core -- against gs_export
// through the API stand-in (supabase-project.mjs): start an export, watch
// the bar move, pause, resume, see it complete and enter the history, open
// an error's detail, reset and delete; every figure on screen checked
// against the database.  Screenshots at 1280x800 go to ui/screenshots/ (or
// $GS_UI_SCREENSHOTS).  And doc/supabase.md's block of the screen's calls is
// ui/app.js's.  Fails, never skips, when chromium is missing
// ($CHROMIUM, default /usr/bin/chromium; tools/install-deps installs it).
//   PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config node --test test/node/ui.test.mjs
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient } from '@supabase/supabase-js'
import puppeteer from 'puppeteer-core'
import { startProject, sleep } from './supabase-project.mjs'
import { serveUi } from '../../ui/serve.mjs'

const TOP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const SHOTS = process.env.GS_UI_SCREENSHOTS || path.join(TOP, 'ui', 'screenshots')
const USERS = {
  A: ['00000000-0000-4000-8000-00000000000a', 'agent'],
  B: ['00000000-0000-4000-8000-00000000000b', 'agent'],
}
// 1,600 leads, one every 30 minutes back from 2025-10-17 20:00 (Sao Paulo):
// B is responsible for ids = 0 mod 4, A for the others (1,200); leads whose
// id is a multiple of 97 are named 'bad lead', which the remote refuses.
const LEADS_SQL = `
  INSERT INTO leads (id, updated_at, name, age, raw, valor_ficha, ficha_confirmada, etapa, scouter,
                     data_agendamento, celular, responsible_user_id, sync_source)
  SELECT g, timestamptz '2025-10-17 20:00:00-03' - g * interval '30 minutes',
         CASE WHEN g % 97 = 0 THEN 'bad lead' ELSE 'Lead ' || g END,
         18 + g % 50, jsonb_build_object('bitrix_id', 50000 + g), (g % 1000) + 0.10, g % 2 = 0,
         (array['Lead', 'Agendado', 'Confirmado'])[1 + g % 3], (array['Ana', 'Bruno', 'Carla'])[1 + g % 3],
         date '2025-11-01' + g % 30, '+55 11 9' || lpad(g::text, 8, '0'),
         CASE WHEN g % 4 = 0 THEN '${USERS.B[0]}'::uuid ELSE '${USERS.A[0]}'::uuid END, 'bitrix'
    FROM generate_series(1, 1600) g;`
const A_LEADS = 1200
// A pace slow enough to watch: about 20 s for A's leads.
const DEFAULT_OPTIONS = { batch_size: 20, delay_ms: 300 }

let project, ui, browser, page
const pageErrors = []
let realtimeTries = 0 // WebSocket connections to Realtime that failed

before(async () => {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`no chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium; ` +
      'tools/install-deps does), or set CHROMIUM')
  }
  project = await startProject({ users: USERS, leadsSql: LEADS_SQL, defaultOptions: DEFAULT_OPTIONS, name: 'gs_export_ui' })
  ui = await serveUi(0)
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: path.join(project.tmp, 'chromium'),
    // pt-BR date fields (dd/mm/aaaa), with Debian's chromium-l10n
    env: { ...process.env, LANGUAGE: 'pt_BR', LANG: 'pt_BR.UTF-8' },
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--lang=pt-BR'],
  })
  page = await browser.newPage()
  page.on('pageerror', (e) => pageErrors.push(String(e)))
  page.on('console', (m) => { if (/WebSocket connection to .*\/realtime\/v1\/websocket/.test(m.text())) realtimeTries++ })
  await page.setViewport({ width: 1280, height: 800 })
  await page.emulateTimezone('America/Sao_Paulo')
  fs.mkdirSync(SHOTS, { recursive: true })
})

after(async () => {
  if (browser) await browser.close()
  if (ui) ui.close()
  if (project) project.stop()
})

// -- helpers -------------------------------------------------------------------

const pageUrl = (jwt) =>
  `${ui.url}?${new URLSearchParams({ url: project.apiUrl, key: project.anonKey, jwt })}`

const text = (selector) => page.$eval(selector, (e) => e.textContent.trim())
const visible = (selector) => page.$eval(selector, (e) => e.checkVisibility())
const ptBR = (n) => new Intl.NumberFormat('pt-BR').format(n)
// A figure as the page shows it (pt-BR: 1.188), as a number.
const figure = async (id) => Number((await text(`#${id}`)).replace(/\./g, ''))

// What the page shows, for a failed wait's message.
const onScreen = () => page.evaluate(() => JSON.stringify({
  notice: document.querySelector('#notice').checkVisibility() && document.querySelector('#notice-text').textContent,
  status: document.querySelector('#progress-card').dataset.status,
  buttons: [...document.querySelectorAll('#progress-card .actions button')]
    .map((b) => `${b.textContent}${b.checkVisibility() ? '' : ' hidden'}${b.disabled ? ' disabled' : ''}`),
}))

// page.waitForFunction, failing with what the page shows.
async function waitFor (what, fn, timeout, arg) {
  try {
    await page.waitForFunction(fn, { timeout, polling: 100 }, arg)
  } catch (e) {
    throw new Error(`waiting for ${what}: ${e.message}; on screen: ${await onScreen()}`)
  }
}

// Waits until the notice above the cards is shown and says this.
async function noticeSays (wanted) {
  await waitFor(`the notice "${wanted}"`, (t) => {
    const box = document.querySelector('#notice')
    return box.checkVisibility() && box.querySelector('#notice-text').textContent === t
  }, 15000, wanted)
}

// The job's row as the database has it.
function dbJob (id) {
  const [status, inRange, total, exported, errors] = project.su(
    `SELECT status, leads_in_range, total_leads, exported_leads, error_leads
       FROM gestao_scouter_export_jobs WHERE id = '${id}'`).split('|')
  return { status, inRange: Number(inRange), total: Number(total), exported: Number(exported), errors: Number(errors) }
}

// Waits until the progress card shows a status (its pt-BR label).
async function waitForStatus (label, seconds = 30) {
  await waitFor(`status ${label}`, (l) => document.querySelector('#job-status')?.textContent === l, seconds * 1000, label)
}

// Waits until the tiles show the database's counts of the job (the worker
// may record a batch that was in flight when the page acted).
async function waitForDbCounts (jobId, seconds = 15) {
  const deadline = Date.now() + seconds * 1000
  for (;;) {
    const db = dbJob(jobId)
    const shown = {
      status: await page.$eval('#progress-card', (e) => e.dataset.status),
      inRange: await figure('t-in-range'),
      total: await figure('t-total'),
      exported: await figure('t-exported'),
      errors: await figure('t-errors'),
    }
    if (JSON.stringify(shown) === JSON.stringify(db)) return db
    if (Date.now() > deadline) assert.deepEqual(shown, db, 'the tiles show the database\'s counts')
    await sleep(250)
  }
}

// Waits until the job's worker has recorded its last batch and stopped.
async function waitForNoWorker (seconds = 15) {
  for (let i = 0; project.su("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'gs_export job worker'") !== '0'; i++) {
    assert.ok(i < seconds * 10, 'the job worker stops')
    await sleep(100)
  }
}

async function shot (name) {
  await sleep(700) // the bar's transition
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) })
}

// A job of A's through supabase-js, followed to its end.
async function jobOfA (args) {
  const a = createClient(project.apiUrl, project.anonKey, {
    accessToken: async () => project.userJwt('A'),
  })
  const { data: id, error } = await a.rpc('gs_export_create', args)
  assert.equal(error, null, JSON.stringify(error))
  for (let i = 0; ['pending', 'running'].includes(dbJob(id).status); i++) {
    assert.ok(i < 200, `job ${id} does not end`)
    await sleep(100)
  }
  return id
}

// -- the tests -------------------------------------------------------------------

test("doc/supabase.md: its block of the screen's calls is ui/app.js's", () => {
  const readme = fs.readFileSync(path.join(TOP, 'doc', 'supabase.md'), 'utf8')
  const at = readme.indexOf('<!-- ui-calls:')
  assert.notEqual(at, -1, 'doc/supabase.md has the block')
  const open = readme.indexOf('```js\n', at) + '```js\n'.length
  const app = fs.readFileSync(path.join(TOP, 'ui', 'app.js'), 'utf8')
  const from = app.indexOf('// <readme:calls>\n') + '// <readme:calls>\n'.length
  assert.equal(readme.slice(open, readme.indexOf('```\n', open)), app.slice(from, app.indexOf('// </readme:calls>')))
})

test('without its parameters, or with an expired session, the page says so in Portuguese', async () => {
  await page.goto(ui.url)
  await noticeSays('Abra esta página com os parâmetros url, key e jwt (faltam: url, key, jwt).')
  assert.equal(await page.$eval('#start-button', (b) => b.disabled), true)
  await page.goto(pageUrl(project.userJwt('A', -3600)))
  await noticeSays('Sua sessão é inválida ou expirou. Entre novamente no TabuladorMax. (código PGRST301)')
  assert.equal(await page.$eval('#notice', (e) => e.getAttribute('role')), 'alert')
})

test('the screen: history, an export started, paused, resumed, completed, its errors', async () => {
  // A's history: a completed job over two days, and one the remote failed (401).
  const completedId = await jobOfA({ start_date: '2025-09-16', end_date: '2025-09-15' })
  await project.remoteControl('faults', { fail_next: 1, status: 401, body: { message: 'Invalid API key' } })
  const failedId = await jobOfA({ start_date: '2025-10-17', end_date: '2025-10-17' })
  assert.deepEqual([dbJob(completedId).status, dbJob(failedId).status], ['completed', 'failed'])
  const completedBefore = dbJob(completedId)

  await page.goto(pageUrl(project.userJwt('A')))
  await waitFor('two jobs in the history', () => document.querySelectorAll('#history-body tr').length === 2, 15000)
  const history = () => page.$$eval('#history-body tr', (rows) => rows.map((r) => ({
    id: r.dataset.jobId, cells: [...r.cells].map((c) => c.textContent),
  })))
  let rows = await history()
  assert.deepEqual(rows.map((r) => [r.id, r.cells[0]]), [[failedId, 'Falhou'], [completedId, 'Concluída']])
  assert.deepEqual(rows[1].cells.slice(1, 4),
    ['16/09/2025 → 15/09/2025', String(completedBefore.exported), String(completedBefore.errors)])
  // The newest job is the failed one: resume, reset and delete are offered.
  await waitForStatus('Falhou')
  assert.match(await text('#pause-reason'), /^Motivo da falha: .*401/)
  assert.deepEqual(await Promise.all(['#btn-pause', '#btn-resume', '#btn-reset', '#btn-delete'].map(visible)),
    [false, true, true, true])
  // No Realtime behind the stand-in: the page says so and keeps polling.
  await page.waitForSelector('#live-mode[data-realtime="off"]', { timeout: 15000 })
  assert.equal(await text('#live-mode'), 'Tempo real indisponível · atualização automática a cada 3 s')

  // A bad range: the database's 22023, in Portuguese.
  await page.$eval('#start-date', (e) => { e.value = '2025-09-01' })
  await page.$eval('#end-date', (e) => { e.value = '2025-10-01' })
  await page.click('#start-button')
  await noticeSays('Não foi possível iniciar: datas inválidas. ' +
    'A Data Final deve ser igual ou anterior à Data Inicial. (código 22023)')

  // Start: 2025-10-17 down to the oldest lead (Data Final left empty).
  await page.$eval('#start-date', (e) => { e.value = '2025-10-17' })
  await page.$eval('#end-date', (e) => { e.value = '' })
  await page.click('#start-button')
  await noticeSays('Exportação iniciada.')
  const jobId = project.su(`SELECT id FROM gestao_scouter_export_jobs
                             WHERE status IN ('pending', 'running') ORDER BY created_at DESC LIMIT 1`)
  await waitFor('the new job on the progress card', (id) => document.querySelector('#progress-card').dataset.jobId === id, 15000, jobId)
  assert.equal(project.su(`SELECT options ->> 'time_zone' FROM gestao_scouter_export_jobs WHERE id = '${jobId}'`),
    'America/Sao_Paulo', "the browser's time zone")
  assert.equal(await page.$eval('#start-button', (b) => b.disabled), true, 'one active job at a time')
  assert.equal(await visible('#start-blocked'), true)

  // The bar moves: three different values on the way, each poll its own.
  await waitForStatus('Em andamento')
  const seen = []
  const barNow = () => page.$eval('#bar', (b) => Number(b.getAttribute('aria-valuenow')))
  while (seen.length < 3) {
    await waitFor(`the bar past ${seen.at(-1) ?? 0}`, (last) => {
      const v = Number(document.querySelector('#bar').getAttribute('aria-valuenow'))
      return v > last && v < 100
    }, 15000, seen.at(-1) ?? 0)
    seen.push(await barNow())
  }
  assert.ok(seen[0] < seen[1] && seen[1] < seen[2], `the bar moved: ${seen}`)
  assert.equal(await figure('t-in-range'), A_LEADS, "A's leads: row level security applies")
  assert.match(await text('#t-speed'), /^[\d.,]+ leads\/s$/)
  assert.match(await text('#t-eta'), /^\d+ (s|min \d\d s)$/)
  assert.match(await text('#t-processing'), /^\d\d\/(10|09)\/2025$/)
  assert.match(await text('#progress-summary'), /^[\d,]+% — [\d.]+ de 1\.200 leads processados$/)
  assert.equal(await page.$eval('#progress-announce', (e) => e.getAttribute('aria-live')), 'polite')
  assert.match(await text('#progress-announce'), /^Exportação: Em andamento, \d+% concluído$/)
  await shot('in-progress')

  // Pause: the worker stops at a batch boundary; the tiles end on the database's counts.
  await page.click('#btn-pause')
  await noticeSays('Exportação pausada.')
  await waitForStatus('Pausada')
  await waitForNoWorker()
  const paused = await waitForDbCounts(jobId)
  assert.equal(paused.status, 'paused')
  assert.ok(paused.total > 0 && paused.total < A_LEADS, `paused midway: ${paused.total}`)
  assert.equal(await text('#pause-reason'), 'Motivo da pausa: Manual')
  assert.equal(await text('#t-eta'), '—')
  assert.deepEqual(await Promise.all(['#btn-pause', '#btn-resume', '#btn-reset', '#btn-delete'].map(visible)),
    [false, true, true, true])
  await shot('paused')
  await sleep(3500)
  assert.equal(dbJob(jobId).total, paused.total, 'a paused job stays put')

  // Resume, and follow it to the end (polling every 3 s).
  await page.click('#btn-resume')
  await noticeSays('Exportação retomada.')
  await waitForStatus('Concluída', 90)
  const done = await waitForDbCounts(jobId)
  const bad = Number(project.su(`SELECT count(*) FROM leads WHERE id % 97 = 0 AND responsible_user_id = '${USERS.A[0]}'`))
  assert.deepEqual(done, { status: 'completed', inRange: A_LEADS, total: A_LEADS, exported: A_LEADS - bad, errors: bad })
  assert.equal(await page.$eval('#bar', (b) => b.getAttribute('aria-valuenow')), '100')
  assert.equal(await text('#progress-summary'), '100% — 1.200 de 1.200 leads processados')
  assert.equal(await text('#progress-announce'), `Exportação: Concluída: ${ptBR(A_LEADS - bad)} exportados, ${bad} erros`)
  assert.deepEqual(await Promise.all(['#btn-pause', '#btn-resume', '#btn-reset', '#btn-delete'].map(visible)),
    [false, false, true, true])
  assert.equal(await page.$eval('#start-button', (b) => b.disabled), false)
  // Only A's leads reached the remote, the bad ones refused.
  assert.equal(project.su(`SELECT count(*) FILTER (WHERE responsible_user_id = '${USERS.B[0]}') || '/' ||
                                  count(*) FILTER (WHERE name = 'bad lead') FROM fichas`, 'remote'), '0/0')
  // It is in the history, first, with its counts.
  await waitFor('three jobs in the history', () => document.querySelectorAll('#history-body tr').length === 3, 15000)
  rows = await history()
  assert.deepEqual(rows.map((r) => r.id), [jobId, failedId, completedId])
  assert.deepEqual(rows[0].cells.slice(0, 4),
    ['Concluída', '17/10/2025 → início', ptBR(A_LEADS - bad), String(bad)])
  assert.match(rows[0].cells[4], /^\d\d\/\d\d\/\d{4}, \d\d:\d\d$/)
  // Its errors: one row per refused lead, the newest first.
  await waitFor(`${bad} errors listed`, (n) => document.querySelectorAll('#errors-body tr').length === n, 15000, bad)
  assert.equal(await text('#errors-count'), `${bad} leads com erro.`)
  const dbErrors = project.su(`SELECT string_agg(lead_id::text, ',' ORDER BY created_at DESC, lead_id)
                                 FROM gestao_scouter_export_errors WHERE job_id = '${jobId}'`)
  assert.equal((await page.$$eval('#errors-body tr', (trs) => trs.map((r) => r.cells[0].textContent))).join(','), dbErrors)
  await page.evaluate(() => window.scrollTo(0, 0))
  await shot('completed')

  // An error's detail, opened from the keyboard: the lead as read, the
  // fields sent, the remote's answer.
  const leadId = dbErrors.split(',')[0]
  const [message, status, body, sentName, snapshotOwner] = project.su(`
    SELECT error_message, response_status, response_body ->> 'code', fields_sent ->> 'name',
           lead_snapshot ->> 'responsible_user_id'
      FROM gestao_scouter_export_errors WHERE job_id = '${jobId}' AND lead_id = ${leadId}`).split('|')
  await page.focus(`#errors-body button[aria-label="Detalhes do erro do lead ${leadId}"]`)
  await page.keyboard.press('Enter')
  await page.waitForSelector('#error-dialog[open]')
  assert.equal(await text('#error-dialog-title'), `Erro do lead ${leadId}`)
  assert.equal(await text('.detail-message p'), message)
  assert.match(message, /no_bad_leads/)
  assert.equal(await text('.detail-response h3'), `Resposta do destino (HTTP ${status})`)
  const kv = (section) => page.$$eval(`.${section} tr`, (trs) =>
    Object.fromEntries(trs.map((r) => [r.cells[0].textContent, r.cells[1].textContent])))
  assert.equal((await kv('detail-response')).code, body)
  assert.equal(body, '23514', 'a CHECK violation at the remote')
  assert.equal((await kv('detail-sent')).name, sentName)
  assert.equal(sentName, 'bad lead')
  assert.equal((await kv('detail-lead')).responsible_user_id, snapshotOwner)
  assert.equal((await kv('detail-lead')).id, leadId)
  await shot('error-detail')
  await page.keyboard.press('Escape')
  await page.waitForSelector('#error-dialog:not([open])')
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')),
    `Detalhes do erro do lead ${leadId}`, 'the focus is back on the button')

  // Reset (confirmed), pause, then delete (confirmed).
  await page.click('#btn-reset')
  await page.waitForSelector('#confirm-dialog[open]')
  assert.equal(await text('#confirm-title'), 'Reiniciar a exportação?')
  await page.click('#confirm-yes')
  await noticeSays('Exportação reiniciada.')
  assert.ok(['Pendente', 'Em andamento'].includes(await text('#job-status')))
  await page.click('#btn-pause')
  await noticeSays('Exportação pausada.')
  await waitForStatus('Pausada')
  await page.click('#btn-delete')
  await page.waitForSelector('#confirm-dialog[open]')
  await page.click('#confirm-no')
  assert.equal(dbJob(jobId).status, 'paused', 'cancelled: nothing deleted')
  await page.click('#btn-delete')
  await page.waitForSelector('#confirm-dialog[open]')
  await page.click('#confirm-yes')
  await noticeSays('Exportação excluída.')
  assert.equal(project.su(`SELECT count(*) FROM gestao_scouter_export_jobs WHERE id = '${jobId}'`), '0')
  await waitFor('two jobs in the history', () => document.querySelectorAll('#history-body tr').length === 2, 15000)
  await waitForStatus('Falhou')

  assert.deepEqual(pageErrors, [], 'no uncaught error in the page')
  assert.ok(realtimeTries >= 1 && realtimeTries <= 2, `Realtime tried once per page load, then left to polling: ${realtimeTries}`)
})
