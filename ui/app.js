// ui/app.js: the "Gestão Scouter" export screen of TabuladorMax, on
// gs_export through Supabase RPC with supabase-js's browser build
// (window.supabase, from /vendor/supabase.js, which ui/serve.mjs serves).  Configured by the page's
// query parameters url (the project URL), key (its anon key) and jwt (the
// signed-in user's access token).  Polls every 3 s, and listens to Supabase
// Realtime where the project has it.
const POLL_MS = 3000
const STATUS_LABELS = {
  pending: 'Pendente',
  running: 'Em andamento',
  paused: 'Pausada',
  completed: 'Concluída',
  failed: 'Falhou',
}
const ACTIVE = ['pending', 'running', 'paused']

// What an RPC error means for the user, by SQLSTATE (error.code) -- per
// action first, then for any call.
const MESSAGES = {
  create: {
    22023: 'Não foi possível iniciar: datas inválidas. A Data Final deve ser igual ou anterior à Data Inicial.',
    22004: 'Informe a Data Inicial.',
    55000: (e) => /[0-9a-f]{8}-[0-9a-f]{4}-/.test(e.hint || '')
      ? 'Não foi possível iniciar: já há uma exportação pendente, em andamento ou pausada. Aguarde a conclusão dela, ou pause-a e exclua-a.'
      : 'Não foi possível iniciar: a integração com o Gestão Scouter não está configurada e ativa, ou o gs_export não está carregado no servidor. Fale com um administrador.',
  },
  pause: { 55000: 'Esta exportação não pode ser pausada agora: ela já não está em andamento.' },
  resume: { 55000: 'Esta exportação não pode ser retomada: só uma exportação pausada ou que falhou pode ser retomada, e nenhuma outra pode estar ativa.' },
  reset: { 55000: 'Não foi possível reiniciar: pause a exportação primeiro, ou aguarde alguns segundos enquanto o último lote termina.' },
  delete: { 55000: 'Não foi possível excluir: pause a exportação primeiro, ou aguarde alguns segundos enquanto o último lote termina.' },
  any: {
    22023: 'Valor inválido. Confira os dados informados.',
    22004: 'Falta um valor obrigatório.',
    55000: 'A exportação não está em um estado que permita esta ação.',
    42704: 'Exportação não encontrada: ela foi excluída, ou você não tem acesso a ela.',
    42501: 'Você não tem permissão para exportar leads. Peça acesso a um administrador.',
    '42P01': 'A tabela de leads não foi encontrada no banco de dados.',
    57014: 'O servidor demorou demais para responder. Tente de novo.',
    PGRST301: 'Sua sessão é inválida ou expirou. Entre novamente no TabuladorMax.',
    PGRST302: 'É preciso estar conectado para exportar leads.',
    PGRST202: 'O gs_export não está disponível neste projeto (função não encontrada). Peça a um administrador que instale a extensão e libere o acesso.',
  },
}

const $ = (id) => document.getElementById(id)
const params = new URLSearchParams(location.search)
const config = { url: params.get('url'), key: params.get('key'), jwt: params.get('jwt') }
const TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone

let supabase = null
let job = null               // the newest job the user may see (gs_export_status), or null
let refreshing = null
let refreshAgain = false
let busy = false
let noticeFromPolling = false
let noticeTimer = null
let lastAnnounced = ''

// -- the calls: each replaces a functions.invoke('export-to-gestao-scouter-batch', { action }) --
// <readme:calls>
const api = {
  create: (startDate, endDate) => supabase.rpc('gs_export_create', {
    start_date: startDate, end_date: endDate || null, options: { time_zone: TIME_ZONE },
  }),
  pause: (jobId) => supabase.rpc('gs_export_pause', { job_id: jobId, reason: 'Manual' }),
  resume: (jobId) => supabase.rpc('gs_export_resume', { job_id: jobId }),
  reset: (jobId) => supabase.rpc('gs_export_reset', { job_id: jobId }),
  delete: (jobId) => supabase.rpc('gs_export_delete', { job_id: jobId }),
  status: () => supabase.rpc('gs_export_status', {}),     // the newest job; 42704 when none
  history: () => supabase.from('gestao_scouter_export_jobs')
    .select('id, status, start_date, end_date, total_leads, exported_leads, error_leads, created_at')
    .order('created_at', { ascending: false }).limit(10),
  errors: (jobId) => supabase.from('gestao_scouter_export_errors')
    .select('id, lead_id, error_message, response_status, created_at', { count: 'exact' })
    .eq('job_id', jobId).order('created_at', { ascending: false }).order('lead_id').limit(50),
  error: (id) => supabase.from('gestao_scouter_export_errors').select('*').eq('id', id).single(),
  live: (onChange, onState) => supabase.channel('gestao-scouter-export-jobs')
    .on('postgres_changes', { event: '*', schema: 'public', table: 'gestao_scouter_export_jobs' }, onChange)
    .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'gestao_scouter_export_errors' }, onChange)
    .subscribe(onState),
}
// </readme:calls>

// -- formatting (pt-BR) ------------------------------------------------------

const numberFormat = new Intl.NumberFormat('pt-BR')
const decimalFormat = new Intl.NumberFormat('pt-BR', { maximumFractionDigits: 1 })

function fmtInt (n) {
  return n == null ? '—' : numberFormat.format(n)
}

function fmtDate (isoDate) {
  if (!isoDate) return '—'
  const [y, m, d] = isoDate.split('-')
  return `${d}/${m}/${y}`
}

function fmtDateTime (ts) {
  return ts ? new Date(ts).toLocaleString('pt-BR', { dateStyle: 'short', timeStyle: 'short' }) : '—'
}

// Day, month and time: an error of the job on screen.
function fmtShortDateTime (ts) {
  return new Date(ts).toLocaleString('pt-BR', { day: '2-digit', month: '2-digit', hour: '2-digit', minute: '2-digit' })
}

function fmtRange (start, end) {
  return `${fmtDate(start)} → ${end ? fmtDate(end) : 'início'}`
}

// An interval as PostgreSQL prints it ("00:01:23", "1 day 02:00:00").
function fmtEta (interval) {
  if (!interval) return '—'
  const m = /(?:(\d+) days? )?(\d+):(\d\d):(\d\d)/.exec(interval)
  if (!m) return interval
  const secs = ((+m[1] || 0) * 24 + +m[2]) * 3600 + +m[3] * 60 + +m[4]
  if (secs < 60) return `${secs} s`
  if (secs < 3600) return `${Math.floor(secs / 60)} min ${String(secs % 60).padStart(2, '0')} s`
  return `${Math.floor(secs / 3600)} h ${String(Math.floor(secs % 3600 / 60)).padStart(2, '0')} min`
}

function todayLocal () {
  const d = new Date()
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`
}

// An element: its properties, data-* (dataset) and other attributes (attrs).
function el (tag, props = {}, ...children) {
  const { dataset, attrs, ...rest } = props
  const node = Object.assign(document.createElement(tag), rest)
  Object.assign(node.dataset, dataset)
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v)
  node.append(...children)
  return node
}

function badge (status) {
  return el('span', { className: `badge status-${status}`, textContent: STATUS_LABELS[status] || status })
}

// -- messages ------------------------------------------------------------------

function describeError (error, action) {
  if (!error.code) return `Não foi possível falar com o servidor (${config.url}). Verifique a conexão e tente de novo.`
  const m = (MESSAGES[action] || {})[error.code] || MESSAGES.any[error.code]
  if (!m) return `Erro inesperado do servidor (código ${error.code}).`
  return typeof m === 'function' ? m(error) : m
}

// A notice above the cards; a success goes away by itself after 8 s.  The
// same one again (a poll failing every 3 s) is left as it is.
function showNotice (kind, text, fromPolling = false) {
  const box = $('notice')
  if (!box.hidden && box.classList.contains(kind) && $('notice-text').textContent === text) return
  clearTimeout(noticeTimer)
  if (kind === 'success') noticeTimer = setTimeout(clearNotice, 8000)
  box.className = `notice ${kind}`
  box.setAttribute('role', kind === 'error' ? 'alert' : 'status')
  $('notice-text').textContent = text
  box.hidden = false
  noticeFromPolling = fromPolling
}

function showError (error, action, fromPolling = false) {
  const code = error.code ? ` (código ${error.code})` : ''
  showNotice('error', describeError(error, action) + code, fromPolling)
}

function clearNotice () {
  $('notice').hidden = true
  noticeFromPolling = false
}

// -- rendering -------------------------------------------------------------------

// Replaces a table body's rows when their data changed (sig), keeping the
// keyboard focus on the same row's button.
function replaceRows (tbody, sig, makeRows) {
  if (tbody.dataset.sig === sig) return
  tbody.dataset.sig = sig
  const focused = tbody.contains(document.activeElement) ? document.activeElement.dataset.key : null
  tbody.replaceChildren(...makeRows())
  if (focused) tbody.querySelector(`[data-key="${focused}"]`)?.focus()
}

function renderJob () {
  const card = $('progress-card')
  const active = job && ACTIVE.includes(job.status)
  $('start-button').disabled = busy || !!active
  $('start-blocked').hidden = !active
  if (!job) {
    card.hidden = true
    return
  }
  card.hidden = false
  card.dataset.jobId = job.job_id
  card.dataset.status = job.status
  $('job-status').replaceWith(Object.assign(badge(job.status), { id: 'job-status' }))
  $('job-range').textContent = `Período: ${fmtRange(job.start_date, job.end_date)}`

  const percent = Number(job.percent)
  const bar = $('bar')
  bar.setAttribute('aria-valuenow', String(percent))
  $('bar-fill').style.width = `${percent}%`
  const summary = job.leads_in_range == null
    ? 'Aguardando o início da exportação…'
    : `${decimalFormat.format(percent)}% — ${fmtInt(job.total_leads)} de ${fmtInt(job.leads_in_range)} leads processados`
  bar.setAttribute('aria-valuetext', summary)
  $('progress-summary').textContent = summary

  $('t-in-range').textContent = fmtInt(job.leads_in_range)
  $('t-total').textContent = fmtInt(job.total_leads)
  $('t-exported').textContent = fmtInt(job.exported_leads)
  $('t-errors').textContent = fmtInt(job.error_leads)
  $('t-processing').textContent = job.status === 'completed' ? '—' : fmtDate(job.processing_date)
  $('t-speed').textContent = job.leads_per_second == null ? '—' : `${decimalFormat.format(job.leads_per_second)} leads/s`
  $('t-eta').textContent = job.status === 'running' ? fmtEta(job.eta) : '—'

  const reason = $('pause-reason')
  reason.hidden = !job.pause_reason
  reason.textContent = job.pause_reason
    ? `${job.status === 'failed' ? 'Motivo da falha' : 'Motivo da pausa'}: ${job.pause_reason}`
    : ''
  const ignored = $('ignored-fields')
  ignored.hidden = !(job.ignored_fields && job.ignored_fields.length)
  ignored.textContent = ignored.hidden ? '' : `Campos que o destino não tem (não enviados): ${job.ignored_fields.join(', ')}`

  const s = job.status
  $('btn-pause').hidden = !['pending', 'running'].includes(s)
  $('btn-resume').hidden = !['paused', 'failed'].includes(s)
  $('btn-reset').hidden = !['paused', 'failed', 'completed'].includes(s)
  $('btn-delete').hidden = !['paused', 'failed', 'completed'].includes(s)
  for (const b of card.querySelectorAll('.actions button')) b.disabled = busy

  announce(percent)
}

// For screen readers: each change of state, and every 10 % of progress.
function announce (percent) {
  let text = `Exportação: ${STATUS_LABELS[job.status]}`
  if (job.status === 'running') text += `, ${Math.floor(percent / 10) * 10}% concluído`
  if (job.status === 'completed') text += `: ${fmtInt(job.exported_leads)} exportados, ${fmtInt(job.error_leads)} erros`
  if (text !== lastAnnounced) {
    lastAnnounced = text
    $('progress-announce').textContent = text
  }
}

function renderHistory (rows) {
  $('history-empty').hidden = rows.length > 0
  replaceRows($('history-body'), JSON.stringify(rows), () => rows.map((j) => el('tr', { className: 'history-row', dataset: { jobId: j.id } },
    el('td', {}, badge(j.status)),
    el('td', { className: 'nowrap', textContent: fmtRange(j.start_date, j.end_date) }),
    el('td', { className: 'num', textContent: fmtInt(j.exported_leads) }),
    el('td', { className: 'num', textContent: fmtInt(j.error_leads) }),
    el('td', { className: 'nowrap', textContent: fmtDateTime(j.created_at) }),
  )))
}

function renderErrors (rows, count) {
  const card = $('errors-card')
  card.hidden = count === 0
  $('errors-count').textContent = count > rows.length
    ? `${fmtInt(count)} leads com erro; os ${rows.length} mais recentes:`
    : `${fmtInt(count)} ${count === 1 ? 'lead com erro' : 'leads com erro'}.`
  replaceRows($('errors-body'), JSON.stringify(rows), () => rows.map((e) => el('tr', { className: 'error-row', dataset: { errorId: e.id } },
    el('td', { className: 'num', textContent: String(e.lead_id) }),
    el('td', { className: 'message', textContent: e.error_message || '', title: e.error_message || '' }),
    el('td', { className: 'num', textContent: e.response_status == null ? '—' : String(e.response_status) }),
    el('td', { className: 'nowrap', textContent: fmtShortDateTime(e.created_at), title: fmtDateTime(e.created_at) }),
    el('td', {}, el('button', {
      type: 'button',
      className: 'link',
      textContent: 'Detalhes',
      onclick: () => openError(e.id),
      dataset: { key: e.id },
      attrs: { 'aria-label': `Detalhes do erro do lead ${e.lead_id}` },
    })),
  )))
}

// A JSON object as a two-column table (field, value); anything else as text.
function valueView (value) {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const rows = Object.entries(value).map(([k, v]) => el('tr', {},
      el('th', { scope: 'row', textContent: k }),
      el('td', { textContent: v === null ? 'null' : typeof v === 'object' ? JSON.stringify(v) : String(v) })))
    return el('table', { className: 'kv' }, el('tbody', {}, ...rows))
  }
  return el('p', { className: 'mono', textContent: value == null ? '—' : Array.isArray(value) ? value.join(', ') : String(value) })
}

async function openError (id) {
  const { data, error } = await api.error(id)
  if (error) {
    showError(error, 'error')
    return
  }
  const section = (title, value, cls) => el('section', { className: `detail ${cls}` },
    el('h3', { textContent: title }), valueView(value))
  $('error-dialog-title').textContent = `Erro do lead ${data.lead_id}`
  const parts = [
    section('Mensagem', data.error_message, 'detail-message'),
    section(`Resposta do destino${data.response_status == null ? '' : ` (HTTP ${data.response_status})`}`,
      data.response_body, 'detail-response'),
    section('Campos enviados', data.fields_sent, 'detail-sent'),
    section('Lead como lido', data.lead_snapshot, 'detail-lead'),
  ]
  if (data.ignored_fields && data.ignored_fields.length) parts.push(section('Campos ignorados', data.ignored_fields, 'detail-ignored'))
  if (data.error_details) parts.push(section('Detalhes técnicos', data.error_details, 'detail-details'))
  $('error-dialog-body').replaceChildren(...parts)
  $('error-dialog').dataset.key = id
  $('error-dialog').showModal()
}

// -- refresh: polling, and Realtime where there is one ---------------------------

async function refresh () {
  if (refreshing) {
    refreshAgain = true
    return refreshing
  }
  refreshing = (async () => {
    const [status, history] = await Promise.all([api.status(), api.history()])
    const failed = [status.error && status.error.code !== '42704' ? status.error : null, history.error].find(Boolean)
    if (failed) {
      showError(failed, 'status', true)
      return
    }
    if (noticeFromPolling) clearNotice()
    job = status.error ? null : status.data
    renderJob()
    renderHistory(history.data)
    if (job) {
      const errs = await api.errors(job.job_id)
      if (errs.error) showError(errs.error, 'status', true)
      else renderErrors(errs.data, errs.count)
    } else {
      $('errors-card').hidden = true
    }
  })()
  try {
    await refreshing
  } finally {
    refreshing = null
  }
  if (refreshAgain) {
    refreshAgain = false
    await refresh()
  }
}

function startRealtime () {
  let timer = null
  const onChange = () => {
    clearTimeout(timer)
    timer = setTimeout(refresh, 200)
  }
  const channel = api.live(onChange, (state) => {
    const mode = $('live-mode')
    if (state === 'SUBSCRIBED') {
      mode.textContent = 'Tempo real ativo · atualização automática a cada 3 s'
      mode.dataset.realtime = 'on'
    } else if (state === 'CHANNEL_ERROR' || state === 'TIMED_OUT') {
      // No Realtime in this project (or not reachable): polling carries on.
      supabase.removeChannel(channel)
      mode.textContent = 'Tempo real indisponível · atualização automática a cada 3 s'
      mode.dataset.realtime = 'off'
    }
  })
}

// -- actions -----------------------------------------------------------------------

// An action: the buttons are off until the screen shows its outcome, then
// the notice says how it went.
async function run (action, call, done) {
  busy = true
  renderJob()
  let outcome
  try {
    outcome = await call()
  } finally {
    busy = false
    await refresh()
    renderJob()
  }
  if (outcome.error) showError(outcome.error, action)
  else showNotice('success', done)
}

function confirmAction (title, text, yes) {
  const dialog = $('confirm-dialog')
  $('confirm-title').textContent = title
  $('confirm-text').textContent = text
  $('confirm-yes').textContent = yes
  return new Promise((resolve) => {
    const finish = (answer) => {
      dialog.close()
      resolve(answer)
    }
    $('confirm-yes').onclick = () => finish(true)
    $('confirm-no').onclick = () => finish(false)
    dialog.oncancel = () => resolve(false)
    dialog.showModal()
    $('confirm-no').focus()
  })
}

function wire () {
  $('start-date').value = todayLocal()
  $('start-form').addEventListener('submit', (ev) => {
    ev.preventDefault()
    run('create', () => api.create($('start-date').value || null, $('end-date').value),
      'Exportação iniciada.')
  })
  $('btn-pause').onclick = () => run('pause', () => api.pause(job.job_id), 'Exportação pausada.')
  $('btn-resume').onclick = () => run('resume', () => api.resume(job.job_id), 'Exportação retomada.')
  $('btn-reset').onclick = async () => {
    const id = job.job_id
    if (await confirmAction('Reiniciar a exportação?',
      'Ela recomeça da Data Inicial; contadores e erros desta exportação são apagados.', 'Reiniciar')) {
      run('reset', () => api.reset(id), 'Exportação reiniciada.')
    }
  }
  $('btn-delete').onclick = async () => {
    const id = job.job_id
    if (await confirmAction('Excluir a exportação?',
      'A exportação e a lista de erros dela são apagadas. Os leads já enviados continuam no Gestão Scouter.', 'Excluir')) {
      run('delete', () => api.delete(id), 'Exportação excluída.')
    }
  }
  $('notice-close').onclick = clearNotice
  for (const b of document.querySelectorAll('#error-dialog [data-close]')) {
    b.onclick = () => $('error-dialog').close()
  }
  // Back to the row's button, also when the list was re-drawn meanwhile.
  $('error-dialog').addEventListener('close', (ev) => {
    if (document.activeElement === document.body) {
      $('errors-body').querySelector(`[data-key="${ev.target.dataset.key}"]`)?.focus()
    }
  })
}

function main () {
  wire()
  const missing = Object.keys(config).filter((k) => !config[k])
  if (missing.length || !window.supabase) {
    showNotice('error', missing.length
      ? `Abra esta página com os parâmetros url, key e jwt (faltam: ${missing.join(', ')}).`
      : 'A biblioteca supabase-js não foi carregada (vendor/supabase.js).')
    $('start-button').disabled = true
    return
  }
  supabase = window.supabase.createClient(config.url, config.key, {
    accessToken: async () => config.jwt,
  })
  refresh()
  // ?poll=0: no polling, Realtime alone (test/node/realtime-ui.test.mjs)
  if (params.get('poll') !== '0') setInterval(refresh, POLL_MS)
  startRealtime()
}

main()
