// test/node/supabase-project.mjs: a throwaway TabuladorMax on "Supabase"
// with gs_export, for the Node tests (rpc.test.mjs, ui.test.mjs) and
// tools/ui-demo-run.mjs.  Not a test file itself (node --test skips it).
//
// The cluster (initdb in a temporary folder, a Unix socket only): database
// "postgres" is a Supabase project with TabuladorMax's tables
// (test/sql/tabuladormax.sql) as test/t/031_supabase.pl and
// test/t/070_app_admins.pl build it -- roles anon, authenticated,
// service_role and authenticator (LOGIN NOINHERIT), auth.uid() reading
// request.jwt.claims, has_role(uuid, app_role) over user_roles, row level
// security on leads (a user reads the leads he is responsible for, admins
// all), the original's policies on the jobs table, CREATE EXTENSION
// gs_export, gs_export_grant_access('authenticated'); database "remote"
// holds gestao-scouter's fichas (test/remote/fichas.sql), which refuses
// leads named 'bad lead' (a CHECK of its own), behind a stand-in that
// gestao_scouter_config points at.  TabuladorMax's API is a second stand-in
// (test/remote/stand_in.py in API mode: PostgREST 12.2 behind Supabase's
// gateway) in front of "postgres", logged in as authenticator.  JWTs are
// signed here with that stand-in's secret (HS256 with node:crypto).
//
// Run as an unprivileged user (PostgreSQL refuses root), with PG_CONFIG
// naming the pg_config of the PostgreSQL that has gs_export installed.
import { execFileSync, spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const TOP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const PYTHON = '/usr/bin/python3'
const STAND_IN = path.join(TOP, 'test', 'remote', 'stand_in.py')
const PGPORT = 5432 // on a socket in the project's own folder: no clash

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// An HS256 JWT, as Supabase's auth server signs its access tokens.
export function signJwt (claims, secret) {
  const b64url = (s) => Buffer.from(s).toString('base64url')
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))
  const body = b64url(JSON.stringify(claims))
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')
  return `${head}.${body}.${sig}`
}

// Starts the project.  users: {name: [uuid, app_role]}; leadsSql: the
// INSERT of the sample leads (run as the superuser after CREATE
// EXTENSION); defaultOptions: the config's default_options.  Resolves to
// an object with apiUrl, remoteUrl, anonKey, userJwt(name, seconds),
// su(sql, db), remoteControl(path, body), apiControl(path, body) and stop().
// realtime: the API stand-in serves Supabase Realtime (its
// /realtime/v1/websocket, test/remote/standin/realtime.py); off (the
// default, --no-realtime) the route answers 404, as a project without it.
export async function startProject ({ users, leadsSql, defaultOptions = {}, name = 'gs_export_node', realtime = false }) {
  if (process.getuid && process.getuid() === 0) {
    throw new Error('run as an unprivileged user (PostgreSQL refuses root): tools/as-postgres')
  }
  const jwtSecret = crypto.randomBytes(24).toString('hex')
  const remoteKey = 'gestao-scouter-anon-key-' + crypto.randomBytes(8).toString('hex')
  const anonKey = signJwt({ role: 'anon', iss: 'supabase', iat: 1700000000, exp: 4102444800 }, jwtSecret)
  const bindir = execFileSync(process.env.PG_CONFIG || 'pg_config', ['--bindir'], { encoding: 'utf8' }).trim()
  const pg = (tool) => path.join(bindir, tool)
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${name}_`))
  const pgdata = path.join(tmp, 'data')
  const children = []

  let stopped = false
  const stop = () => {
    if (stopped) return
    stopped = true
    for (const child of children) {
      if (child.exitCode === null) child.kill('SIGTERM')
    }
    if (fs.existsSync(path.join(pgdata, 'postmaster.pid'))) {
      try {
        execFileSync(pg('pg_ctl'), ['-D', pgdata, '-m', 'fast', '-w', 'stop'], { stdio: 'ignore' })
      } catch (e) {
        // already stopped
      }
    }
    if (!process.env.GS_KEEP_NODE_TMP) fs.rmSync(tmp, { recursive: true, force: true })
  }
  // Stop what was started also when the run is cut short.
  process.on('exit', stop)
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => { stop(); process.exit(130) })
  }

  // SQL as the superuser, through psql; its unaligned output.
  const su = (sql, db = 'postgres') =>
    execFileSync(pg('psql'), ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', tmp,
      '-p', String(PGPORT), '-U', 'postgres', '-d', db, '-f', '-'],
    { input: sql, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] }).trim()

  // A stand-in; resolves to its base URL once it listens.
  const startStandIn = async (what, args) => {
    const portFile = path.join(tmp, `${what}.port`)
    const logFile = path.join(tmp, `${what}.log`)
    const child = spawn(PYTHON, [STAND_IN, '--port', '0', '--port-file', portFile,
      '--control-port', '-1', ...args], { stdio: ['ignore', fs.openSync(logFile, 'w'), fs.openSync(logFile, 'a')] })
    children.push(child)
    const deadline = Date.now() + 20000
    while (!fs.existsSync(portFile)) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`stand-in ${what} did not start: ` + fs.readFileSync(logFile, 'utf8'))
      }
      await sleep(50)
    }
    return `http://127.0.0.1:${parseInt(fs.readFileSync(portFile, 'utf8'), 10)}`
  }

  try {
    execFileSync(pg('initdb'), ['-D', pgdata, '-U', 'postgres', '--auth=trust', '-E', 'UTF8',
      '--no-sync'], { stdio: 'ignore' })
    fs.appendFileSync(path.join(pgdata, 'postgresql.conf'), `
listen_addresses = ''
unix_socket_directories = '${tmp}'
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
    const remoteUrl = await startStandIn('remote', ['--dsn',
      `host=${tmp} port=${PGPORT} dbname=remote user=postgres`, '--api-key', remoteKey])

    // TabuladorMax on Supabase (test/t/031_supabase.pl, 070_app_admins.pl).
    const userRoles = Object.values(users).map(([uid, role]) => `('${uid}', '${role}')`).join(', ')
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
      INSERT INTO public.user_roles VALUES ${userRoles};
    `)
    su(fs.readFileSync(path.join(TOP, 'test', 'sql', 'tabuladormax.sql'), 'utf8'))
    su(`
      CREATE INDEX ON leads (updated_at, id);
      ALTER TABLE leads ENABLE ROW LEVEL SECURITY;
      CREATE POLICY "Users read their leads, admins all" ON leads FOR SELECT TO authenticated
        USING (responsible_user_id = auth.uid() OR has_role(auth.uid(), 'admin'));
      -- the original's policies (doc/original.md, "Its policies")
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
      INSERT INTO gestao_scouter_config (project_url, anon_key, active, sync_enabled, default_options)
      VALUES ('${remoteUrl}', '${remoteKey}', true, true, '${JSON.stringify(defaultOptions)}');
    `)
    su(leadsSql)

    // TabuladorMax's API: the stand-in in front of this database, logged in
    // as authenticator, switching to each token's role.
    const apiUrl = await startStandIn('api', ['--dsn',
      `host=${tmp} port=${PGPORT} dbname=postgres user=authenticator`,
      '--api-key', anonKey, '--jwt-secret', jwtSecret, '--anon-role', 'anon',
      ...(realtime ? [] : ['--no-realtime'])])

    // A signed-in user's access token, valid for `seconds` (negative: expired).
    const userJwt = (who, seconds = 3600) => {
      const now = Math.floor(Date.now() / 1000)
      return signJwt({ sub: users[who][0], role: 'authenticated', aud: 'authenticated', iat: now - 60, exp: now + seconds },
        jwtSecret)
    }
    // The remote stand-in's control API (test/remote/stand_in.py, CONTROL API).
    const remoteControl = async (what, body) => {
      const res = await fetch(`${remoteUrl}/_control/${what}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      return res.json()
    }
    // The API stand-in's control API (its /_control/ on the API's port).
    const apiControl = async (what, body) => {
      const res = await fetch(`${apiUrl}/_control/${what}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      return res.json()
    }
    return { apiUrl, remoteUrl, anonKey, userJwt, su, remoteControl, apiControl, stop, tmp }
  } catch (e) {
    stop()
    throw e
  }
}
