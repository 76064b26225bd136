// test/node/ui.test.mjs: the export screen (ui/) in a real browser --
// Debian's headless chromium driven by puppeteer-core -- against gs_export
// through the API stand-in (supabase-project.mjs): start an export, watch
// the bar move, pause, resume, see it complete and enter the history, open
// an error's detail, reset and delete; then the field mapping and
// "Validar", "Reenviar erros", the follower's card ("Sincronização
// contínua"), "Verificar destino" and "Reparar", keyboard and labels;
// every figure on screen checked against the database.  Screenshots at
// 1280x800 go to ui/screenshots/ (or $GS_UI_SCREENSHOTS).  And
// doc/supabase.md's block of the screen's calls is ui/app.js's.  Fails, never skips, when chromium is missing
// ($CHROMIUM, default /usr/bin/chromium; tools/install-deps installs it).
//   PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config node --test test/node/ui.test.mjs
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createClient } from '@supabase/supabase-js'
import { launchChromium } from './chromium.mjs'
import { startProject, sleep } from './supabase-project.mjs'
import { serveUi } from '../../ui/serve.mjs'

const TOP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
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
// GS_UI_REALTIME=1: the same tests with Realtime on (the stand-in speaks
// it; test/run.sh runs this file both ways); else the page falls back to
// polling
const REALTIME = process.env.GS_UI_REALTIME === '1'

before(async () => {
  project = await startProject({ users: USERS, leadsSql: LEADS_SQL, defaultOptions: DEFAULT_OPTIONS, name: 'gs_export_ui', realtime: REALTIME })
  ui = await serveUi(0)
  browser = await launchChromium(project.tmp)
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
  if (REALTIME) {
    // Realtime behind the stand-in: the page says so (and polls as well)
    await page.waitForSelector('#live-mode[data-realtime="on"]', { timeout: 15000 })
    assert.equal(await text('#live-mode'), 'Tempo real ativo · atualização automática a cada 3 s')
  } else {
    // No Realtime behind the stand-in: the page says so and keeps polling.
    await page.waitForSelector('#live-mode[data-realtime="off"]', { timeout: 15000 })
    assert.equal(await text('#live-mode'), 'Tempo real indisponível · atualização automática a cada 3 s')
  }

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
  await waitFor('status Pendente or Em andamento after the reset',
    () => ['Pendente', 'Em andamento'].includes(document.querySelector('#job-status')?.textContent), 15000)
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
  if (REALTIME) assert.equal(realtimeTries, 0, 'no Realtime connection failed')
  else assert.ok(realtimeTries >= 1 && realtimeTries <= 2, `Realtime tried once per page load, then left to polling: ${realtimeTries}`)
})

// -- the screen's second half (issue 20): mapping, retry, follower, verify --------

// Waits until psql's answer for sql (as the superuser) is wanted.
async function waitForDb (what, sql, wanted, seconds = 20, db = 'postgres') {
  let got
  for (let i = 0; (got = project.su(sql, db)) !== wanted; i++) {
    assert.ok(i < seconds * 10, `${what}: ${sql} gave ${got}, not ${wanted}`)
    await sleep(100)
  }
}

const newestJob = (kind) => project.su(`SELECT id FROM gestao_scouter_export_jobs WHERE kind = '${kind}'
                                         ORDER BY created_at DESC LIMIT 1`)

test('keyboard and labels: every control has a name, the mapping dialog is reached by Tab and gives the focus back', async () => {
  await page.goto(pageUrl(project.userJwt('A')))
  await page.evaluate(() => localStorage.clear())
  await page.reload()
  await waitFor('the history', () => document.querySelectorAll('#history-body tr').length > 0, 15000)
  // Every button, input and select has an accessible name.
  const unnamed = await page.$$eval('button, input, select', (els) => els.filter((e) => {
    if (e.getAttribute('aria-label') || (e.tagName === 'BUTTON' && e.textContent.trim())) return false
    return !(e.id && document.querySelector(`label[for="${e.id}"]`))
  }).map((e) => e.outerHTML))
  assert.deepEqual(unnamed, [])
  // Tab from "Iniciar Exportação" reaches "Mapear campos"; Enter opens the dialog, the search box focused.
  await page.focus('#start-button')
  await page.keyboard.press('Tab')
  assert.equal(await page.evaluate(() => document.activeElement.id), 'map-open')
  assert.equal(await page.$eval('#map-open', (b) => b.getAttribute('aria-haspopup')), 'dialog')
  await page.keyboard.press('Enter')
  await page.waitForSelector('#map-dialog[open]')
  assert.equal(await page.evaluate(() => document.activeElement.id), 'map-search')
  await waitFor('the remote columns', () => document.querySelectorAll('#map-body tr').length > 30, 15000)
  await page.keyboard.press('Tab')
  assert.equal(await page.evaluate(() => document.activeElement.id), 'map-auto')
  // Every select of the table is labelled by its remote column.
  const labels = await page.$$eval('#map-body select', (ss) => ss.map((s) => s.getAttribute('aria-label')))
  assert.ok(labels.every((l) => /^Campo do lead para a coluna \w+/.test(l)), labels.join())
  await page.keyboard.press('Escape')
  await page.waitForSelector('#map-dialog:not([open])')
  assert.equal(await page.evaluate(() => document.activeElement.id), 'map-open', 'the focus is back on the button')
  // The results are announced: aria-live on the check's result, the follower and the verify.
  for (const id of ['map-result', 'follow-announce', 'verify-summary', 'progress-announce']) {
    assert.equal(await page.$eval(`#${id}`, (e) => e.getAttribute('aria-live')), 'polite', id)
  }
})

test('Mapear campos: Auto-Mapear, id required, search, Validar against a remote that lacks a column, kept for the next export', async () => {
  await page.click('#map-open')
  await page.waitForSelector('#map-dialog[open]')
  await waitFor('the remote columns', () => document.querySelectorAll('#map-body tr').length > 30, 15000)
  const remoteColumns = project.su(`SELECT string_agg(column_name, ',' ORDER BY ordinal_position)
                                      FROM information_schema.columns WHERE table_name = 'fichas'`, 'remote').split(',')
  assert.deepEqual(await page.$$eval('#map-body tr', (trs) => trs.map((r) => r.dataset.column)), remoteColumns)
  // id: required, always id; the columns gs_export fills have no select.
  assert.equal(await page.$eval('#map-body tr[data-column="id"] select', (s) => s.disabled && s.value), 'id')
  assert.match(await text('#map-body tr[data-column="id"] th'), /obrigatório · chave/)
  assert.equal(await page.$('#map-body tr[data-column="sync_source"] select'), null)
  // Clear, then Auto-Mapear: equal names.
  await page.click('#map-clear')
  assert.equal(await page.$eval('#map-body tr[data-column="name"] select', (s) => s.value), '')
  await page.click('#map-auto')
  assert.equal(await page.$eval('#map-body tr[data-column="name"] select', (s) => s.value), 'name')
  assert.equal(await page.$eval('#map-body tr[data-column="celular"] select', (s) => s.value), 'celular')
  // Search.
  await page.type('#map-search', 'telefone')
  const found = await page.$$eval('#map-body tr', (trs) => trs.map((r) => r.dataset.column))
  assert.deepEqual(found, remoteColumns.filter((c) => c.includes('telefone')))
  assert.match(await text('#map-count'), /mostradas pela busca$/)
  await page.$eval('#map-search', (e) => { e.value = '' })
  await page.type('#map-search', ' ')
  // photo_url not sent.
  await page.select('#map-body tr[data-column="photo_url"] select', '')
  await page.click('#map-validate')
  await waitFor('Validar\'s answer', () => /Tudo certo|erro/.test(document.querySelector('#map-result').textContent), 15000)
  assert.equal(await text('#map-result'), 'Tudo certo: o destino aceita estes campos.')
  await page.click('#map-save')
  await noticeSays('Mapeamento salvo: vale para a próxima exportação, verificação e sincronização contínua.')
  const kept = JSON.parse(await page.evaluate(() => localStorage.getItem('gs_export.field_mappings')))
  assert.equal(kept.id, 'id')
  assert.equal(kept.photo_url, undefined)
  assert.equal(kept.name, 'name')
  assert.match(await text('#map-summary'), /^Mapeamento próprio: \d+ colunas/)

  // The remote loses a column the mapping sends: the dialog marks it, Validar says so.
  project.su('ALTER TABLE fichas DROP COLUMN telefone_casa', 'remote')
  await project.remoteControl('reload_schema', {})
  await page.click('#map-open')
  await waitFor('the remote columns', () => document.querySelectorAll('#map-body tr').length > 30, 15000)
  assert.match(await text('#map-body tr[data-column="telefone_casa"] th'), /não existe no destino/)
  await page.click('#map-validate')
  await waitFor('Validar\'s rows', () => document.querySelectorAll('#map-result .check-row').length > 0, 15000)
  const rows = await page.$$eval('#map-result .check-row', (lis) => lis.map((l) => l.firstChild.textContent + l.childNodes[1].textContent))
  assert.ok(rows.includes('Erro: A coluna “telefone_casa” (do campo “telefone_casa” do lead) não existe na tabela “fichas” do destino: os valores dela não chegariam.'),
    rows.join('\n'))
  assert.match(await text('#map-result'), /^1 erro e 0 avisos:/)
  await page.evaluate(() => document.querySelector('#map-result').scrollIntoView())
  await shot('mapping')
  // The remote gets it back: all is well again.
  project.su('ALTER TABLE fichas ADD COLUMN telefone_casa text', 'remote')
  await project.remoteControl('reload_schema', {})
  await page.click('#map-validate')
  await waitFor('Tudo certo', () => document.querySelector('#map-result').textContent.startsWith('Tudo certo'), 15000)
  await page.keyboard.press('Escape')
  await page.waitForSelector('#map-dialog:not([open])')
})

test('Reenviar erros: an export with the kept mapping, its refused lead sent again once the remote accepts it', async () => {
  await page.$eval('#start-date', (e) => { e.value = '2025-10-17' })
  await page.$eval('#end-date', (e) => { e.value = '2025-10-15' })
  await page.click('#start-button')
  await noticeSays('Exportação iniciada.')
  const jobId = newestJob('export')
  const kept = await page.evaluate(() => localStorage.getItem('gs_export.field_mappings'))
  assert.deepEqual(JSON.parse(project.su(`SELECT options -> 'field_mappings' FROM gestao_scouter_export_jobs WHERE id = '${jobId}'`)),
    JSON.parse(kept), 'the export sends the kept mapping')
  await waitFor('the new job', (id) => document.querySelector('#progress-card').dataset.jobId === id, 15000, jobId)
  await waitForStatus('Concluída', 60)
  const done = await waitForDbCounts(jobId)
  assert.equal(done.errors, 1, 'lead 97, named bad lead, refused')
  await waitFor('Reenviar erros', () => document.querySelector('#btn-retry').checkVisibility(), 15000)
  assert.equal(await text('#btn-retry'), 'Reenviar erros (1)')

  // The remote drops its rule; the retry, confirmed from the keyboard, sends the lead.
  project.su('ALTER TABLE fichas DROP CONSTRAINT no_bad_leads', 'remote')
  await page.click('#btn-retry')
  await page.waitForSelector('#confirm-dialog[open]')
  assert.equal(await text('#confirm-title'), 'Reenviar os erros?')
  assert.equal(await page.evaluate(() => document.activeElement.id), 'confirm-no', 'the safe answer has the focus')
  await page.keyboard.press('Tab')
  assert.equal(await page.evaluate(() => document.activeElement.id), 'confirm-yes')
  await page.keyboard.press('Enter')
  await noticeSays('Reenvio dos erros iniciado.')
  const retryId = newestJob('retry')
  await waitFor('the retry on the progress card', (id) => document.querySelector('#progress-card').dataset.jobId === id, 15000, retryId)
  assert.equal(await text('#progress-title'), 'Reenvio de erros')
  await waitForStatus('Concluída', 30)
  assert.equal(project.su(`SELECT count(*) FILTER (WHERE resolved_at IS NULL) || '/' || count(*)
                             FROM gestao_scouter_export_errors WHERE job_id = '${jobId}'`), '0/1')
  assert.equal(project.su('SELECT name FROM fichas WHERE id = 97', 'remote'), 'bad lead')
  assert.equal(dbJob(retryId).exported, 1)
  assert.equal(await figure('t-exported'), 1)
  assert.equal(await visible('#btn-retry'), false, 'nothing left to send')
  await waitFor('the retry in the history', (id) => document.querySelector('#history-body tr')?.dataset.jobId === id, 15000, retryId)
  assert.equal(await page.$eval('#history-body tr', (r) => r.cells[1].textContent), 'Reenvio de erros')
})

test('Sincronização contínua: Ligar, a change and a delete reach the remote and the card, Desligar, Excluir', async () => {
  await page.click('#follow-on')
  await noticeSays('Sincronização contínua ligada.')
  const followId = newestJob('follow')
  assert.deepEqual(JSON.parse(project.su(`SELECT options -> 'field_mappings' FROM gestao_scouter_export_jobs WHERE id = '${followId}'`)),
    JSON.parse(await page.evaluate(() => localStorage.getItem('gs_export.field_mappings'))), 'the follower sends the kept mapping')
  await waitForDb('the backfill is over', `SELECT pass_kind || ' ' || status FROM gestao_scouter_export_jobs WHERE id = '${followId}'`, 'follow running', 60)
  await waitFor('Ligada', () => document.querySelector('#follow-state').textContent === 'Ligada', 15000)

  project.su("UPDATE leads SET name = 'Nome alterado', updated_at = now() WHERE id = 5")
  await waitForDb('the change at the remote', 'SELECT name FROM fichas WHERE id = 5', 'Nome alterado', 20, 'remote')
  await waitFor('the change on the card', () => /lead 5 enviado$/.test(document.querySelector('#f-last').textContent), 15000)
  project.su('DELETE FROM leads WHERE id = 9')
  await waitForDb('the delete at the remote', 'SELECT count(*) FROM fichas WHERE id = 9', '0', 20, 'remote')
  await waitFor('Excluídos 1', () => document.querySelector('#f-deleted').textContent === '1' &&
    /lead 9 excluído$/.test(document.querySelector('#f-last').textContent), 15000)
  const db = project.su(`SELECT exported_leads || '|' || deleted_leads || '|' || error_leads FROM gestao_scouter_export_jobs WHERE id = '${followId}'`)
  await waitFor('the database\'s counters', (want) => [...['f-exported', 'f-deleted', 'f-errors']]
    .map((id) => document.getElementById(id).textContent.replace(/\./g, '')).join('|') === want, 15000, db)
  assert.equal(await text('#f-backlog'), '0')
  assert.match(await text('#f-lag'), /^\d+ s$/)
  await page.evaluate(() => document.querySelector('#follow-card').scrollIntoView())
  await shot('follow')

  // Desligar: a change waits (Pendentes 1) and does not reach the remote.
  await page.click('#follow-off')
  await noticeSays('Sincronização contínua desligada. As alterações ficam guardadas e são enviadas ao ligar de novo.')
  assert.equal(dbJob(followId).status, 'paused')
  await waitFor('Desligada', () => document.querySelector('#follow-state').textContent === 'Desligada', 15000)
  project.su("UPDATE leads SET name = 'Mudou desligada', updated_at = now() WHERE id = 13")
  await waitFor('Pendentes 1', () => document.querySelector('#f-backlog').textContent === '1', 15000)
  assert.notEqual(project.su('SELECT name FROM fichas WHERE id = 13', 'remote'), 'Mudou desligada')
  assert.deepEqual(await Promise.all(['#follow-on', '#follow-off', '#follow-delete'].map(visible)), [true, false, true])

  // Excluir (confirmed): the follower and its waiting change go; the remote stays.
  await page.waitForSelector('#follow-delete:not([disabled])', { visible: true, timeout: 15000 })
  await page.click('#follow-delete')
  await page.waitForSelector('#confirm-dialog[open]')
  await page.click('#confirm-yes')
  await noticeSays('Sincronização contínua excluída.')
  assert.equal(project.su(`SELECT count(*) FROM gestao_scouter_export_jobs WHERE id = '${followId}'`), '0')
  await waitFor('no follower', () => document.querySelector('#follow-card').dataset.status === 'none', 15000)
})

test('Verificar destino: the counts of a tampered remote, Reparar, then none', async () => {
  // Lead 13 changed while the follower was off (stale); the remote loses 17
  // (missing), edits 21 (different: its version newer) and gains 99999 (extra).
  project.su(`DELETE FROM fichas WHERE id = 17;
              UPDATE fichas SET updated_at = updated_at + interval '1 day', name = 'editado no destino' WHERE id = 21;
              INSERT INTO fichas (id, name, updated_at, sync_source) VALUES (99999, 'sem lead', now(), 'tabuladormax');`, 'remote')
  await page.click('#verify-run')
  await noticeSays('Verificação iniciada.')
  const verifyId = newestJob('verify')
  assert.deepEqual(JSON.parse(project.su(`SELECT options -> 'field_mappings' FROM gestao_scouter_export_jobs WHERE id = '${verifyId}'`)),
    JSON.parse(await page.evaluate(() => localStorage.getItem('gs_export.field_mappings'))), 'the verify compares the kept mapping')
  await waitFor('the counts', () => !document.querySelector('#verify-counts').hidden, 60000)
  const counts = await page.$$eval('#verify-counts dd', (dds) => dds.map((d) => d.textContent))
  assert.deepEqual(counts, ['1', '1', '1', '1'])
  assert.equal(project.su(`SELECT string_agg(kind || ':' || lead_id, ',' ORDER BY lead_id) FROM gestao_scouter_export_diffs WHERE job_id = '${verifyId}'`),
    'stale:13,missing:17,different:21,extra:99999')
  assert.deepEqual(await page.$$eval('#verify-body tr', (trs) => trs.map((r) => `${r.cells[0].textContent} ${r.cells[1].textContent}`)),
    ['13 Desatualizado', '17 Faltando', '21 Diferente', '99999 Sobrando'])
  assert.equal(await text('#verify-summary').then((t) => t.split(' (')[0]), '4 diferenças encontradas')
  await page.evaluate(() => document.querySelector('#verify-card').scrollIntoView())
  await shot('verify')

  // Reparar, confirmed; the progress card follows the repair.
  // (Realtime on: a follower's records re-render the page meanwhile)
  await page.waitForSelector('#verify-repair:not([disabled])', { visible: true, timeout: 15000 })
  await page.click('#verify-repair')
  await page.waitForSelector('#confirm-dialog[open]')
  assert.equal(await text('#confirm-text'), 'Envia de novo 3 leads que faltam ou diferem e exclui do destino 1 linha que sobra.')
  await page.click('#confirm-yes')
  await noticeSays('Reparo iniciado: acompanhe em “Reparo do destino”.')
  const repairId = newestJob('repair')
  await waitFor('the repair on the progress card', (id) => document.querySelector('#progress-card').dataset.jobId === id, 15000, repairId)
  assert.equal(await text('#progress-title'), 'Reparo do destino')
  await waitForStatus('Concluída', 30)
  assert.equal(project.su(`SELECT (SELECT name FROM fichas WHERE id = 13) || '|' || (SELECT name FROM fichas WHERE id = 17)
                             || '|' || (SELECT name FROM fichas WHERE id = 21) || '|' || (SELECT count(*) FROM fichas WHERE id = 99999)`, 'remote'),
  'Mudou desligada|Lead 17|Lead 21|0')

  // Verify again: nothing left.
  await page.click('#verify-run')
  await noticeSays('Verificação iniciada.')
  await waitFor('a new verify, completed', (old) => {
    const c = document.querySelector('#verify-card')
    return c.dataset.jobId !== old && !document.querySelector('#verify-counts').hidden
  }, 60000, verifyId)
  assert.deepEqual(await page.$$eval('#verify-counts dd', (dds) => dds.map((d) => d.textContent)), ['0', '0', '0', '0'])
  assert.match(await text('#verify-summary'), /^Nenhuma diferença: o destino está igual aos leads/)
  assert.equal(await visible('#verify-repair'), false)
  assert.equal(await visible('#verify-table'), false)
})

test('Reparar while a follower keeps the table: the leads go into its queue, and the page says so', async () => {
  await page.click('#follow-on')
  await noticeSays('Sincronização contínua ligada.')
  const followId = newestJob('follow')
  await waitForDb('the backfill is over', `SELECT pass_kind || ' ' || status FROM gestao_scouter_export_jobs WHERE id = '${followId}'`, 'follow running', 60)
  project.su('DELETE FROM fichas WHERE id = 25', 'remote')
  const before = newestJob('verify')
  await page.click('#verify-run')
  await noticeSays('Verificação iniciada.')
  await waitFor('a new verify, completed', (old) => document.querySelector('#verify-card').dataset.jobId !== old &&
    !document.querySelector('#verify-counts').hidden, 60000, before)
  assert.deepEqual(await page.$$eval('#verify-counts dd', (dds) => dds.map((d) => d.textContent)), ['1', '0', '0', '0'])
  // (Realtime on: a follower's records re-render the page meanwhile)
  await page.waitForSelector('#verify-repair:not([disabled])', { visible: true, timeout: 15000 })
  await page.click('#verify-repair')
  await page.waitForSelector('#confirm-dialog[open]')
  await page.click('#confirm-yes')
  await noticeSays('Os leads foram postos na fila da sincronização contínua, que os envia em seguida.')
  await waitForDb('lead 25 back at the remote', 'SELECT count(*) FROM fichas WHERE id = 25', '1', 20, 'remote')
  assert.equal(project.su("SELECT count(*) FROM gestao_scouter_export_jobs WHERE kind = 'repair'"), '1', 'no second repair job')
  // Off and gone, through the page.
  await page.click('#follow-off')
  await noticeSays('Sincronização contínua desligada. As alterações ficam guardadas e são enviadas ao ligar de novo.')
  await page.waitForSelector('#follow-delete:not([disabled])', { visible: true, timeout: 15000 })
  await page.click('#follow-delete')
  await page.waitForSelector('#confirm-dialog[open]')
  await page.click('#confirm-yes')
  await noticeSays('Sincronização contínua excluída.')
  assert.deepEqual(pageErrors, [], 'no uncaught error in the page')
})
