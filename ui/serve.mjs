// ui/serve.mjs: serves the export screen (ui/) on 127.0.0.1 for the browser
// test (test/node/ui.test.mjs) and tools/ui-demo.  Static files only, plus
// /vendor/supabase.js: supabase-js's browser build (the UMD file of the npm
// package @supabase/supabase-js, as ui/'s own npm ci installs it from
// ui/package-lock.json) -- nothing is fetched from a CDN.
//   node ui/serve.mjs [PORT]      (0 or none: a free port; prints the URL)
import fs from 'node:fs'
import http from 'node:http'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const UI = path.dirname(fileURLToPath(import.meta.url))
const NODE_PACKAGES = path.join(UI, 'package.json')

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.png': 'image/png',
}

// The UMD build, found where npm put the package (ui/node_modules).
export function supabaseBrowserBuild () {
  try {
    return createRequire(NODE_PACKAGES).resolve('@supabase/supabase-js/dist/umd/supabase.js')
  } catch (e) {
    throw new Error(`ui/ has no supabase-js: run npm ci in ui/ (tools/install-deps does) (${e.message})`)
  }
}

// Starts the server; resolves to its base URL (http://127.0.0.1:PORT/).
export function serveUi (port = 0) {
  const files = {
    '/': path.join(UI, 'index.html'),
    '/index.html': path.join(UI, 'index.html'),
    '/app.js': path.join(UI, 'app.js'),
    '/style.css': path.join(UI, 'style.css'),
    '/vendor/supabase.js': supabaseBrowserBuild(),
  }
  const server = http.createServer((req, res) => {
    const file = files[new URL(req.url, 'http://x').pathname]
    if (req.method !== 'GET' || !file) {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('não encontrado\n')
      return
    }
    res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)], 'Cache-Control': 'no-store' })
    fs.createReadStream(file).pipe(res)
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      resolve({ url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() })
    })
  })
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { url } = await serveUi(parseInt(process.argv[2] || '0', 10))
  console.log(`ui/ served on ${url}`)
}
