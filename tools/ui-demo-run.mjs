// tools/ui-demo-run.mjs: the export screen (ui/) on a throwaway project, to
// open in a browser.  Runs as an unprivileged user with gs_export installed
// and the npm packages of ui/ and test/node in place (tools/ui-demo does
// both): a
// cluster set up as TabuladorMax on Supabase with LEADS sample leads of one
// user over the last 61 days (every 97th named 'bad lead', which the remote
// refuses: the screen's error list has something to show), the remote and
// the API stand-ins (test/node/supabase-project.mjs), ui/ served on
// 127.0.0.1; prints the URL with that user's token in it, and stays up
// until Ctrl-C, then stops and removes everything.
//   usage: node tools/ui-demo-run.mjs [LEADS [BATCH_SIZE [DELAY_MS]]]
import { startProject } from '../test/node/supabase-project.mjs'
import { serveUi } from '../ui/serve.mjs'

const [leads = 5000, batchSize = 50, delayMs = 250] = process.argv.slice(2).map(Number)
const USER = '00000000-0000-4000-8000-0000000000a1'

console.log('== a throwaway cluster with gs_export, the remote and the API stand-ins')
const project = await startProject({
  name: 'gs_export_ui_demo',
  users: { ana: [USER, 'agent'] },
  defaultOptions: { batch_size: batchSize, delay_ms: delayMs },
  leadsSql: `
    SELECT setseed(0.42);
    INSERT INTO leads (id, name, age, scouter, celular, etapa, raw, valor_ficha, ficha_confirmada,
                       data_agendamento, criado, updated_at, responsible_user_id, sync_source)
    SELECT 100000 + g,
           CASE WHEN g % 97 = 0 THEN 'bad lead' ELSE 'Lead ' || g END, 16 + (random() * 40)::int,
           (ARRAY['Ana', 'Bruno', 'Carla', 'Diego'])[1 + g % 4],
           '+55 11 9' || lpad((random() * 1e8)::bigint::text, 8, '0'),
           (ARRAY['novo', 'agendado', 'confirmado'])[1 + g % 3],
           jsonb_build_object('bitrix_id', g), round((random() * 500)::numeric, 2), random() < 0.5,
           current_date + (g % 30), now() - random() * interval '61 days' - interval '1 day',
           now() - random() * interval '61 days', '${USER}', 'bitrix'
      FROM generate_series(1, ${leads}) g;`,
})
const ui = await serveUi(0)
const url = `${ui.url}?${new URLSearchParams({ url: project.apiUrl, key: project.anonKey, jwt: project.userJwt('ana', 12 * 3600) })}`
const port = (u) => new URL(u).port

console.log(`   ${leads} leads of user ana (every 97th named 'bad lead': the remote refuses it)`)
console.log(`   batches of ${batchSize}, ${delayMs} ms apart (the config's default_options)`)
console.log(`   API (PostgREST stand-in): ${project.apiUrl}`)
console.log(`
== open the screen as ana (her token is in the URL, valid 12 hours):

   ${url}

   From another machine, forward both ports first:
   ssh -L ${port(ui.url)}:127.0.0.1:${port(ui.url)} -L ${port(project.apiUrl)}:127.0.0.1:${port(project.apiUrl)} <this machine>

   Ctrl-C stops it all.`)
