// ui/app.js: the "Gestão Scouter" export screen of TabuladorMax, on
// gs_export through Supabase RPC with supabase-js's browser build
// (window.supabase, from /vendor/supabase.js, which ui/serve.mjs serves).  Configured by the page's
// query parameters url (the project URL), key (its anon key) and jwt (the
// signed-in user's access token).  Polls every 3 s, and listens to Supabase
// Realtime where the project has it.  Besides the batch export: the field
// mapping (kept in localStorage, sent as options.field_mappings), the
// follower ("Sincronização contínua"), verify and repair ("Verificar
// destino") and the retry of a job's errors ("Reenviar erros").
const POLL_MS = 3000
const STATUS_LABELS = {
  pending: 'Pendente',
  running: 'Em andamento',
  paused: 'Pausada',
  completed: 'Concluída',
  failed: 'Falhou',
}
const ACTIVE = ['pending', 'running', 'paused']
// The progress card's title by the job's kind (a follower and a verify have cards of their own).
const KIND_TITLES = {
  export: 'Exportação atual',
  sync: 'Sincronização incremental',
  retry: 'Reenvio de erros',
  repair: 'Reparo do destino',
}
const DIFF_KINDS = { missing: 'Faltando', stale: 'Desatualizado', different: 'Diferente', extra: 'Sobrando' }
const MAP_KEY = 'gs_export.field_mappings'
// Remote columns gs_export fills itself (synced_at_column, source_column):
// nothing is mapped to them.  sync_status is the remote's own: not auto-mapped.
const OWN_COLUMNS = { last_sync_at: 'preenchida pelo gs_export', sync_source: 'preenchida pelo gs_export' }
const NO_AUTO = ['sync_status']
// The lead fields TabuladorMax's leads has (doc/reference-schema.md), when
// the user can read no lead to learn them from.
const KNOWN_LEAD_FIELDS = ['id', 'name', 'responsible', 'age', 'address', 'scouter', 'photo_url',
  'date_modify', 'raw', 'updated_at', 'bitrix_telemarketing_id', 'commercial_project_id',
  'responsible_user_id', 'celular', 'telefone_trabalho', 'telefone_casa', 'etapa', 'fonte', 'criado',
  'nome_modelo', 'local_abordagem', 'ficha_confirmada', 'data_criacao_ficha', 'data_confirmacao_ficha',
  'presenca_confirmada', 'compareceu', 'valor_ficha', 'data_criacao_agendamento', 'horario_agendamento',
  'data_agendamento', 'gerenciamento_funil', 'status_fluxo', 'etapa_funil', 'etapa_fluxo', 'funil_fichas',
  'status_tabulacao', 'maxsystem_id_ficha', 'gestao_scouter', 'op_telemarketing', 'data_retorno_ligacao',
  'cadastro_existe_foto', 'sync_source']

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
  follow: {
    55000: 'Não foi possível ligar: outra sincronização contínua ou exportação ativa usa esta tabela do destino (com outro mapeamento, ou de outro usuário), ou a integração não está ativa.',
    22023: 'Não foi possível ligar: o mapeamento de campos tem um valor inválido. Abra “Mapear campos” e valide.',
  },
  verify: {
    55000: 'Não foi possível verificar: a integração com o Gestão Scouter não está configurada e ativa.',
    22023: 'Não foi possível verificar: o mapeamento de campos tem um valor inválido. Abra “Mapear campos” e valide.',
  },
  repair: { 55000: 'Não foi possível reparar: a verificação não terminou ou não achou diferenças, ou outra exportação está ativa.' },
  retry: { 55000: 'Não há erros pendentes para reenviar, ou outra exportação está ativa.' },
  columns: {
    28000: 'O destino recusou a chave, ou não mostra a descrição das tabelas a ela: não é possível listar as colunas.',
    '08001': 'Não foi possível falar com o destino (Gestão Scouter).',
    '08006': 'O destino não respondeu a tempo.',
    58000: 'O destino respondeu algo inesperado ao pedir a lista de colunas.',
    '42P01': 'A tabela do destino não existe.',
  },
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
let unresolvedErrors = 0     // the current job's error rows not yet resolved
let follower = null          // the newest follower the user may see (gs_export_status), or null
let followerPass = null      // its pass_kind: 'backfill' or 'follow'
let lastChange = null        // its newest sync_event
let verifyJob = null         // the newest verify the user may see (gs_export_status), or null
let verifyResult = null      // its diffs once completed: { key, counts, rows }
let lastFollowAnnounced = ''

// -- the field mapping, kept in this browser -------------------------------------

function keptMapping () {
  try {
    const m = JSON.parse(localStorage.getItem(MAP_KEY))
    return m && typeof m === 'object' && Object.keys(m).length ? m : null
  } catch (e) {
    return null
  }
}

// The options a mapping adds to an export, a verify or a follower.
function mappingOptions () {
  const m = keptMapping()
  return m ? { field_mappings: m } : {}
}

// -- the calls: each replaces a functions.invoke('export-to-gestao-scouter-batch', { action }) --
// <readme:calls>
const api = {
  create: (startDate, endDate) => supabase.rpc('gs_export_create', {
    start_date: startDate, end_date: endDate || null, options: { time_zone: TIME_ZONE, ...mappingOptions() },
  }),
  pause: (jobId) => supabase.rpc('gs_export_pause', { job_id: jobId, reason: 'Manual' }),
  resume: (jobId) => supabase.rpc('gs_export_resume', { job_id: jobId }),
  reset: (jobId) => supabase.rpc('gs_export_reset', { job_id: jobId }),
  delete: (jobId) => supabase.rpc('gs_export_delete', { job_id: jobId }),
  status: (jobId) => supabase.rpc('gs_export_status', { job_id: jobId }),   // 42704 when gone
  history: () => supabase.from('gestao_scouter_export_jobs')   // the newest first: the progress card's job
    .select('id, kind, status, start_date, end_date, total_leads, exported_leads, error_leads, created_at')
    .neq('kind', 'follow').neq('kind', 'verify')
    .order('created_at', { ascending: false }).limit(10),
  // the newest follower and verify, for their cards
  followersAndVerifies: () => supabase.from('gestao_scouter_export_jobs')
    .select('id, kind, pass_kind').in('kind', ['follow', 'verify'])
    .order('created_at', { ascending: false }).limit(20),
  unresolved: (jobId) => supabase.from('gestao_scouter_export_errors')
    .select('id', { count: 'exact' }).eq('job_id', jobId).is('resolved_at', null).limit(1),
  retryErrors: (jobId) => supabase.rpc('gs_export_retry_errors', { job_id: jobId }),
  // "Mapear campos"
  remoteColumns: () => supabase.rpc('gs_export_remote_columns', {}),   // column_name, data_type, required
  leadFields: () => supabase.from('leads').select('*').limit(1),      // the fields of a lead the user reads
  check: (fieldMappings) => supabase.rpc('gs_export_check', { options: { field_mappings: fieldMappings } }),
  // "Sincronização contínua" (pause, resume, delete as for a job)
  follow: () => supabase.rpc('gs_export_follow', { options: mappingOptions() }),
  lastChange: (jobId) => supabase.from('sync_events').select('event_type, lead_id, created_at')
    .eq('job_id', jobId).order('created_at', { ascending: false }).limit(1),
  // "Verificar destino"
  verify: () => supabase.rpc('gs_export_verify', { options: mappingOptions() }),
  diffCount: (jobId, kind) => supabase.from('gestao_scouter_export_diffs')
    .select('lead_id', { count: 'exact' }).eq('job_id', jobId).eq('kind', kind).limit(1),
  diffs: (jobId) => supabase.from('gestao_scouter_export_diffs').select('lead_id, kind, detail')
    .eq('job_id', jobId).order('lead_id').limit(100),
  repair: (verifyJobId) => supabase.rpc('gs_export_repair', { verify_job_id: verifyJobId }),
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
  card.dataset.kind = job.kind
  $('progress-title').textContent = KIND_TITLES[job.kind] || KIND_TITLES.export
  $('job-status').replaceWith(Object.assign(badge(job.status), { id: 'job-status' }))
  $('job-range').textContent = ['retry', 'repair'].includes(job.kind)
    ? `Leads a enviar: ${fmtInt(job.leads_in_range)}`
    : `Período: ${fmtRange(job.start_date, job.end_date)}`

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
  $('btn-retry').hidden = !(['paused', 'failed', 'completed'].includes(s) && unresolvedErrors > 0)
  $('btn-retry').textContent = unresolvedErrors > 0 ? `Reenviar erros (${fmtInt(unresolvedErrors)})` : 'Reenviar erros'
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
    el('td', { className: 'nowrap', textContent: ['retry', 'repair'].includes(j.kind) ? KIND_TITLES[j.kind] : fmtRange(j.start_date, j.end_date) }),
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

// An interval as PostgreSQL prints it, to the second ("00:00:01.5" is 1 s).
function fmtLag (interval) {
  return interval == null ? '—' : fmtEta(interval.replace(/\.\d+$/, ''))
}

function fmtTime (ts) {
  return new Date(ts).toLocaleString('pt-BR', { dateStyle: 'short', timeStyle: 'medium' })
}

// The follower's card: its state and counters, and what may be done now.
function renderFollower () {
  const f = follower
  const state = $('follow-state')
  let label = 'Desligada'
  let cls = 'status-pending'
  if (f && ['pending', 'running'].includes(f.status)) {
    label = followerPass === 'backfill' ? 'Ligada · enviando todos os leads' : 'Ligada'
    cls = 'status-on'
  } else if (f && f.status === 'failed') {
    label = 'Falhou'
    cls = 'status-failed'
  } else if (f) {
    cls = 'status-paused'
  }
  state.textContent = label
  state.className = `badge ${cls}`
  const card = $('follow-card')
  card.dataset.status = f ? f.status : 'none'
  card.dataset.jobId = f ? f.job_id : ''
  $('f-backlog').textContent = f ? fmtInt(f.backlog) : '—'
  $('f-lag').textContent = f ? fmtLag(f.lag) : '—'
  $('f-exported').textContent = f ? fmtInt(f.exported_leads) : '—'
  $('f-deleted').textContent = f ? fmtInt(f.deleted_leads) : '—'
  $('f-errors').textContent = f ? fmtInt(f.error_leads) : '—'
  $('f-last').textContent = f && lastChange
    ? `${fmtTime(lastChange.created_at)} · lead ${lastChange.lead_id} ${lastChange.event_type === 'delete' ? 'excluído' : 'enviado'}`
    : '—'
  const reason = $('follow-reason')
  reason.hidden = !(f && f.pause_reason)
  reason.textContent = reason.hidden ? '' : `${f.status === 'failed' ? 'Motivo da falha' : 'Motivo'}: ${f.pause_reason}`
  const on = f && ['pending', 'running'].includes(f.status)
  $('follow-on').hidden = !!on
  $('follow-off').hidden = !on
  $('follow-delete').hidden = !(f && ['paused', 'failed'].includes(f.status))
  for (const b of card.querySelectorAll('.actions button')) b.disabled = busy
  const text = `Sincronização contínua: ${label}`
  if (text !== lastFollowAnnounced) {
    lastFollowAnnounced = text
    $('follow-announce').textContent = text
  }
}

// What a diff's detail says, in short.
function diffDetail (d) {
  const det = d.detail || {}
  if (det.columns && typeof det.columns === 'object') return `Campos: ${Object.keys(det.columns).join(', ')}`
  if (det.remote_version || det.lead_version) {
    return `Destino: ${det.remote_version ? fmtTime(det.remote_version) : '—'} · lead: ${det.lead_version ? fmtTime(det.lead_version) : '—'}`
  }
  return '—'
}

// The verify's card: its progress, then the counts by kind and the leads.
function renderVerify () {
  const v = verifyJob
  const card = $('verify-card')
  card.dataset.status = v ? v.status : 'none'
  card.dataset.jobId = v ? v.job_id : ''
  const state = $('verify-state')
  state.hidden = !v
  if (v) {
    state.textContent = STATUS_LABELS[v.status] || v.status
    state.className = `badge status-${v.status}`
  }
  const running = v && ['pending', 'running'].includes(v.status)
  const bar = $('verify-bar')
  bar.hidden = !running
  const done = v && v.status === 'completed' && verifyResult && verifyResult.key.startsWith(v.job_id)
  let summary = ''
  if (running) {
    const percent = Number(v.percent) || 0
    bar.setAttribute('aria-valuenow', String(percent))
    $('verify-bar-fill').style.width = `${percent}%`
    summary = v.leads_in_range == null
      ? 'Verificando… aguardando o início.'
      : `Verificando… ${fmtInt(v.total_leads)} de ${fmtInt(v.leads_in_range)} leads comparados`
    bar.setAttribute('aria-valuetext', summary)
  } else if (v && ['failed', 'paused'].includes(v.status)) {
    summary = `A verificação ${v.status === 'failed' ? 'falhou' : 'está pausada'}${v.pause_reason ? `: ${v.pause_reason}` : '.'}`
  } else if (done) {
    const n = Object.values(verifyResult.counts).reduce((a, b) => a + b, 0)
    summary = n === 0
      ? `Nenhuma diferença: o destino está igual aos leads (verificado em ${fmtDateTime(v.completed_at)}).`
      : `${fmtInt(n)} ${n === 1 ? 'diferença encontrada' : 'diferenças encontradas'} (verificado em ${fmtDateTime(v.completed_at)}).`
  }
  if ($('verify-summary').textContent !== summary) $('verify-summary').textContent = summary
  $('verify-counts').hidden = !done
  $('verify-table').hidden = !(done && verifyResult.rows.length)
  let total = 0
  if (done) {
    for (const k of Object.keys(DIFF_KINDS)) $(`v-${k}`).textContent = fmtInt(verifyResult.counts[k])
    total = Object.values(verifyResult.counts).reduce((a, b) => a + b, 0)
    $('verify-caption').textContent = total > verifyResult.rows.length
      ? `Os primeiros ${verifyResult.rows.length} de ${fmtInt(total)} leads com diferença`
      : `${fmtInt(total)} ${total === 1 ? 'lead com diferença' : 'leads com diferença'}`
    replaceRows($('verify-body'), verifyResult.key, () => verifyResult.rows.map((d) => el('tr', { className: 'diff-row', dataset: { leadId: d.lead_id, kind: d.kind } },
      el('td', { className: 'num', textContent: String(d.lead_id) }),
      el('td', { textContent: DIFF_KINDS[d.kind] || d.kind }),
      el('td', { className: 'message', textContent: diffDetail(d) }),
    )))
  }
  $('verify-repair').hidden = !(done && total > 0)
  $('verify-run').disabled = busy || !!running
  $('verify-repair').disabled = busy
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
    const [history, others] = await Promise.all([api.history(), api.followersAndVerifies()])
    if (history.error || others.error) {
      showError(history.error || others.error, 'status', true)
      return
    }
    const followRow = others.data.find((j) => j.kind === 'follow')
    const verifyRow = others.data.find((j) => j.kind === 'verify')
    const ids = [history.data[0]?.id, followRow?.id, verifyRow?.id]
    const [status, fStatus, vStatus] = await Promise.all(ids.map((id) => id ? api.status(id) : { data: null }))
    // 42704: deleted since the list was read
    const failed = [status, fStatus, vStatus].map((r) => r.error && r.error.code !== '42704' ? r.error : null).find(Boolean)
    if (failed) {
      showError(failed, 'status', true)
      return
    }
    if (noticeFromPolling) clearNotice()
    job = status.error ? null : status.data
    follower = fStatus.error ? null : fStatus.data
    followerPass = followRow?.pass_kind
    verifyJob = vStatus.error ? null : vStatus.data
    if (job) {
      const [errs, unresolved] = await Promise.all([api.errors(job.job_id),
        job.error_leads > 0 ? api.unresolved(job.job_id) : { count: 0 }])
      if (errs.error || unresolved.error) {
        showError(errs.error || unresolved.error, 'status', true)
      } else {
        unresolvedErrors = unresolved.count
        renderErrors(errs.data, errs.count)
      }
    } else {
      unresolvedErrors = 0
      $('errors-card').hidden = true
    }
    renderJob()
    renderHistory(history.data)
    if (follower) {
      const last = await api.lastChange(follower.job_id)
      lastChange = last.error ? null : last.data[0] || null
    }
    renderFollower()
    if (verifyJob && verifyJob.status === 'completed') {
      const key = `${verifyJob.job_id}/${verifyJob.completed_at}`
      if (verifyResult?.key !== key) {
        const kinds = Object.keys(DIFF_KINDS)
        const answers = await Promise.all([...kinds.map((k) => api.diffCount(verifyJob.job_id, k)), api.diffs(verifyJob.job_id)])
        const bad = answers.find((a) => a.error)
        if (bad) {
          showError(bad.error, 'status', true)
        } else {
          verifyResult = { key, counts: Object.fromEntries(kinds.map((k, i) => [k, answers[i].count])), rows: answers.at(-1).data }
        }
      }
    }
    renderVerify()
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
// done: the notice, or a function of the call's data that makes it.
async function run (action, call, done) {
  busy = true
  renderAll()
  let outcome
  try {
    outcome = await call()
  } finally {
    busy = false
    await refresh()
    renderAll()
  }
  if (outcome.error) showError(outcome.error, action)
  else showNotice('success', typeof done === 'function' ? done(outcome.data) : done)
}

function renderAll () {
  renderJob()
  renderFollower()
  renderVerify()
}

// The notice of a repair or a retry: a job of its own, or the follower's
// queue when a follower keeps the table (its id comes back).
function queuedOr (id, own) {
  return follower && id === follower.job_id
    ? 'Os leads foram postos na fila da sincronização contínua, que os envia em seguida.'
    : own
}

// -- "Mapear campos" ---------------------------------------------------------------

const mapState = { columns: [], leadFields: [], draft: {}, loaded: false }

// Equal names: each remote column a lead field of the same name fills.
function autoMapping () {
  const draft = { id: 'id' }
  for (const c of mapState.columns) {
    if (OWN_COLUMNS[c.column_name] || NO_AUTO.includes(c.column_name)) continue
    if (mapState.leadFields.includes(c.column_name)) draft[c.column_name] = c.column_name
  }
  return draft
}

function renderMapSummary () {
  const m = keptMapping()
  $('map-summary').textContent = m
    ? `Mapeamento próprio: ${Object.keys(m).length} colunas (salvo neste navegador).`
    : 'Mapeamento: o padrão (cada coluna do destino que os leads também têm).'
}

function renderMap () {
  const q = $('map-search').value.trim().toLowerCase()
  const known = new Set(mapState.columns.map((c) => c.column_name))
  // the remote's columns, then mapped ones it lacks (a mapping kept from before)
  const rows = [...mapState.columns,
    ...Object.keys(mapState.draft).filter((k) => !known.has(k)).map((k) => ({ column_name: k, data_type: null, missing: true }))]
  const shown = rows.filter((c) => !q || c.column_name.toLowerCase().includes(q) ||
    (mapState.draft[c.column_name] || '').toLowerCase().includes(q))
  const body = $('map-body')
  const focused = body.contains(document.activeElement) ? document.activeElement.dataset.key : null
  body.replaceChildren(...shown.map((c) => {
    const name = c.column_name
    const tags = []
    if (name === 'id') tags.push(el('span', { className: 'tag key', textContent: 'obrigatório · chave' }))
    else if (c.required) tags.push(el('span', { className: 'tag', textContent: 'obrigatória' }))
    if (OWN_COLUMNS[name]) tags.push(el('span', { className: 'tag own', textContent: OWN_COLUMNS[name] }))
    if (c.missing) tags.push(el('span', { className: 'tag', textContent: 'não existe no destino' }))
    let control
    if (OWN_COLUMNS[name]) {
      control = el('span', { className: 'help', textContent: '—' })
    } else {
      const fields = [...new Set([...mapState.leadFields, mapState.draft[name]].filter(Boolean))]
      control = el('select', {
        disabled: name === 'id',
        dataset: { key: name },
        attrs: { 'aria-label': `Campo do lead para a coluna ${name}${name === 'id' ? ' (obrigatório)' : c.required ? ' (obrigatória)' : ''}` },
        onchange: (ev) => {
          if (ev.target.value) mapState.draft[name] = ev.target.value
          else delete mapState.draft[name]
          renderMapCount(rows.length)
        },
      }, el('option', { value: '', textContent: '— não enviar —' }),
      ...fields.map((f) => el('option', { value: f, textContent: f })))
      control.value = mapState.draft[name] || ''
    }
    return el('tr', { className: 'map-row', dataset: { column: name } },
      el('th', { scope: 'row' }, name, ...tags),
      el('td', { textContent: c.data_type || '—' }),
      el('td', {}, control))
  }))
  if (focused) body.querySelector(`[data-key="${focused}"]`)?.focus()
  renderMapCount(rows.length, shown.length)
}

function renderMapCount (total, shown = total) {
  const mapped = Object.keys(mapState.draft).length
  $('map-count').textContent = `${mapped} de ${total} colunas mapeadas` +
    (shown < total ? ` · ${shown} mostradas pela busca` : '')
}

// gs_export_check's rows in Portuguese: the common messages translated, the
// server's own text kept in a details element.
function checkText (r) {
  const m = r.message
  let x
  if ((x = /^remote column "([^"]+)" \(for lead column "([^"]+)"\) does not exist in table "([^"]+)"/.exec(m))) {
    return `A coluna “${x[1]}” (do campo “${x[2]}” do lead) não existe na tabela “${x[3]}” do destino: os valores dela não chegariam.`
  }
  if ((x = /^remote column "([^"]+)" \(([^)]*)\) does not exist in table "([^"]+)"/.exec(m))) {
    return `A coluna “${x[1]}” não existe na tabela “${x[3]}” do destino: seria enviada e descartada.`
  }
  if ((x = /^remote column "([^"]+)" is NOT NULL and .* may be null/.exec(m))) {
    return `A coluna “${x[1]}” do destino não aceita valor vazio, e o campo do lead pode estar vazio: um lead assim seria recusado.`
  }
  if ((x = /^remote column "([^"]+)" \([^)]*\) is NOT NULL without a default, and nothing is mapped/.exec(m))) {
    return `A coluna “${x[1]}” do destino é obrigatória e nenhum campo do lead foi mapeado para ela: todo envio seria recusado.`
  }
  if ((x = /^remote column "([^"]+)" \([^)]*\) is NOT NULL and nothing is mapped/.exec(m))) {
    return `A coluna “${x[1]}” do destino talvez seja obrigatória e nenhum campo do lead foi mapeado para ela.`
  }
  if ((x = /^remote column "([^"]+)" is (.+?) and (.+?) is (.+?): /.exec(m))) {
    return r.severity === 'error'
      ? `A coluna “${x[1]}” do destino (${x[2]}) não aceita os valores do campo do lead (${x[4]}).`
      : `A coluna “${x[1]}” do destino (${x[2]}) pode recusar ou alterar alguns valores do campo do lead (${x[4]}).`
  }
  if ((x = /^permission denied for column ([^ ]+) of table leads/.exec(m))) {
    return `Você não pode ler o campo “${x[1]}” dos leads: a exportação lê os leads com as suas permissões.`
  }
  return `Problema em “${r.key}”.`
}

function showCheck (rows) {
  const box = $('map-result')
  if (!rows.length) {
    box.replaceChildren(el('p', { className: 'ok', textContent: 'Tudo certo: o destino aceita estes campos.' }))
    return
  }
  const errors = rows.filter((r) => r.severity === 'error').length
  box.replaceChildren(
    el('p', { textContent: `${errors} ${errors === 1 ? 'erro' : 'erros'} e ${rows.length - errors} ${rows.length - errors === 1 ? 'aviso' : 'avisos'}:` }),
    el('ul', {}, ...rows.map((r) => el('li', { className: `check-row sev-${r.severity}`, dataset: { key: r.key } },
      el('strong', { textContent: r.severity === 'error' ? 'Erro: ' : 'Aviso: ' }),
      checkText(r),
      el('details', {}, el('summary', { textContent: 'Mensagem do servidor' }), el('span', { className: 'mono', textContent: r.message })),
    ))))
}

async function openMapping () {
  const dialog = $('map-dialog')
  $('map-result').replaceChildren()
  $('map-search').value = ''
  $('map-body').replaceChildren()
  $('map-count').textContent = 'Carregando as colunas do destino…'
  dialog.showModal()
  $('map-search').focus()
  const [cols, lead] = await Promise.all([api.remoteColumns(), api.leadFields()])
  if (cols.error) {
    $('map-count').textContent = ''
    $('map-result').replaceChildren(el('p', { className: 'sev-error', textContent: describeError(cols.error, 'columns') + ` (código ${cols.error.code})` }))
    return
  }
  mapState.columns = cols.data
  mapState.leadFields = !lead.error && lead.data.length ? Object.keys(lead.data[0]) : KNOWN_LEAD_FIELDS
  mapState.draft = { ...(keptMapping() || autoMapping()), id: 'id' }
  mapState.loaded = true
  renderMap()
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
  $('btn-retry').onclick = async () => {
    const id = job.job_id
    const n = unresolvedErrors
    if (await confirmAction('Reenviar os erros?',
      `${fmtInt(n)} ${n === 1 ? 'lead com erro desta exportação é enviado' : 'leads com erro desta exportação são enviados'} de novo, como estão agora.`, 'Reenviar')) {
      run('retry', () => api.retryErrors(id), (newId) => queuedOr(newId, 'Reenvio dos erros iniciado.'))
    }
  }

  // the mapping dialog
  renderMapSummary()
  $('map-open').onclick = openMapping
  $('map-search').oninput = () => mapState.loaded && renderMap()
  $('map-auto').onclick = () => {
    mapState.draft = autoMapping()
    renderMap()
    $('map-result').replaceChildren(el('p', { textContent: `Auto-Mapear: ${Object.keys(mapState.draft).length} colunas de mesmo nome mapeadas.` }))
  }
  $('map-clear').onclick = () => {
    mapState.draft = { id: 'id' }
    renderMap()
  }
  $('map-validate').onclick = async () => {
    $('map-result').replaceChildren(el('p', { textContent: 'Validando com o destino…' }))
    const { data, error } = await api.check(mapState.draft)
    if (error) $('map-result').replaceChildren(el('p', { className: 'sev-error', textContent: describeError(error, 'check') + ` (código ${error.code})` }))
    else showCheck(data)
  }
  $('map-save').onclick = () => {
    localStorage.setItem(MAP_KEY, JSON.stringify(mapState.draft))
    $('map-dialog').close()
    renderMapSummary()
    showNotice('success', 'Mapeamento salvo: vale para a próxima exportação, verificação e sincronização contínua.')
  }
  $('map-default').onclick = () => {
    localStorage.removeItem(MAP_KEY)
    $('map-dialog').close()
    renderMapSummary()
    showNotice('success', 'Mapeamento padrão em uso.')
  }
  for (const b of document.querySelectorAll('#map-dialog [data-close]')) {
    b.onclick = () => $('map-dialog').close()
  }
  $('map-dialog').addEventListener('close', () => $('map-open').focus())

  // the follower
  $('follow-on').onclick = () => {
    if (follower && ['paused', 'failed'].includes(follower.status)) {
      const id = follower.job_id
      run('resume', () => api.resume(id), 'Sincronização contínua ligada de novo: envia o que mudou enquanto esteve desligada.')
    } else {
      run('follow', () => api.follow(), 'Sincronização contínua ligada.')
    }
  }
  $('follow-off').onclick = () => {
    const id = follower.job_id
    run('pause', () => api.pause(id), 'Sincronização contínua desligada. As alterações ficam guardadas e são enviadas ao ligar de novo.')
  }
  $('follow-delete').onclick = async () => {
    const id = follower.job_id
    if (await confirmAction('Excluir a sincronização contínua?',
      'As alterações ainda não enviadas são descartadas; o Gestão Scouter fica como está. Para mudar o mapeamento dela, exclua-a e ligue de novo.', 'Excluir')) {
      run('delete', () => api.delete(id), 'Sincronização contínua excluída.')
    }
  }

  // verify and repair
  $('verify-run').onclick = () => run('verify', () => api.verify(), 'Verificação iniciada.')
  $('verify-repair').onclick = async () => {
    const id = verifyJob.job_id
    const c = verifyResult.counts
    const send = c.missing + c.stale + c.different
    if (await confirmAction('Reparar o destino?',
      `Envia de novo ${fmtInt(send)} ${send === 1 ? 'lead que falta ou difere' : 'leads que faltam ou diferem'}` +
      (c.extra ? ` e exclui do destino ${fmtInt(c.extra)} ${c.extra === 1 ? 'linha que sobra' : 'linhas que sobram'}.` : '.'), 'Reparar')) {
      run('repair', () => api.repair(id), (newId) => queuedOr(newId, 'Reparo iniciado: acompanhe em “Reparo do destino”.'))
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
    for (const b of document.querySelectorAll('main button:not(#notice-close)')) b.disabled = true
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
