// test/node/chromium.mjs: Debian's chromium for the browser tests
// (ui.test.mjs, realtime-ui.test.mjs), launched headless by puppeteer-core
// with a pt-BR locale (date fields as dd/mm/aaaa, with chromium-l10n) and
// a profile in the test's own temporary folder.
import fs from 'node:fs'
import path from 'node:path'
import puppeteer from 'puppeteer-core'

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'

export async function launchChromium (tmp) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`no chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium; ` +
      'tools/install-deps does), or set CHROMIUM')
  }
  return puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: path.join(tmp, 'chromium'),
    env: { ...process.env, LANGUAGE: 'pt_BR', LANG: 'pt_BR.UTF-8' },
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--lang=pt-BR'],
  })
}
