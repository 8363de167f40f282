'use strict'
// The storefront in a real browser (Debian's Chromium, driven by playwright-core): the page
// shows what needed the secrets, and no secret value reaches the browser in any form.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawn } = require('node:child_process')
const { chromium } = require('playwright-core')
const { audit } = require('./audit')

const root = path.join(__dirname, '..')
const server = path.join(root, 'examples', 'storefront', 'server.js')
const demoSecretsFile = path.join(root, 'examples', 'secrets', 'secrets.json')
const demoSecrets = JSON.parse(fs.readFileSync(demoSecretsFile, 'utf8'))
const screenshot = path.join(root, 'examples', 'storefront', 'screenshot.png')

let browser
const running = []

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
})

afterAll(async () => {
  for (const s of running.splice(0)) s.stop()
  if (browser) await browser.close()
})

// Start the storefront in its own process; resolves with its url and everything it logs.
function startStorefront(args = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [server, '--port', '0', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
    const s = { logs: '', stop: () => child.kill() }
    running.push(s)
    const timer = setTimeout(() => reject(new Error(`storefront did not start: ${s.logs}`)), 20000)
    child.stdout.on('data', (d) => {
      s.logs += d
      const m = /listening on (\S+)/.exec(s.logs)
      if (m && !s.url) {
        clearTimeout(timer)
        s.url = m[1]
        resolve(s)
      }
    })
    child.stderr.on('data', (d) => (s.logs += d))
    child.on('exit', (code) => !s.url && reject(new Error(`storefront exited ${code}: ${s.logs}`)))
  })
}

// Visit the product page as a shopper: everything the browser received and holds.
async function visit(url, { addToCart = false } = {}) {
  const context = await browser.newContext()
  const page = await context.newPage()
  const responses = []
  const consoleLines = []
  page.on('console', (m) => consoleLines.push(m.text()))
  page.on('pageerror', (e) => consoleLines.push(String(e)))
  page.on('response', (r) => responses.push(r.body().then((b) => [r.url(), b.toString('utf8')], () => [r.url(), ''])))
  await page.goto(url)
  await page.waitForSelector('body[data-hydrated="true"]', { timeout: 15000 })
  if (addToCart) {
    await page.click('#add-to-cart')
    await page.waitForFunction(() => document.getElementById('cart-count').textContent === '1')
  }
  const windowDump = await page.evaluate(() => {
    const frame = document.createElement('iframe')
    document.body.appendChild(frame)
    const builtIn = new Set(Object.getOwnPropertyNames(frame.contentWindow))
    frame.remove()
    const own = {}
    for (const k of Object.getOwnPropertyNames(window)) {
      if (builtIn.has(k)) continue
      try {
        own[k] = JSON.stringify(window[k]) ?? String(window[k])
      } catch {
        own[k] = String(window[k])
      }
    }
    return JSON.stringify(own) + JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie
  })
  const result = {
    page,
    context,
    html: await page.content(),
    text: await page.innerText('body'),
    windowDump,
    consoleLines,
    responses: await Promise.all(responses),
    inBrowser: await page.evaluate(() => window.__storefront),
  }
  result.artifacts = {
    html: result.html,
    window: windowDump,
    console: consoleLines.join('\n'),
    ...Object.fromEntries(result.responses.map(([u, b], i) => [`response ${i} ${u}`, b])),
  }
  return result
}

test('the page shows what needed the secrets, and no secret reaches the browser', async () => {
  const s = await startStorefront()
  const v = await visit(s.url, { addToCart: true })
  try {
    expect(v.text).toMatch(/Trail running shoe/)
    expect(v.text).toMatch(/price signed/)
    expect(await v.page.locator('#recommendations li').allInnerTexts()).toEqual(['Trail running socks', 'Waterproof jacket', 'Insulated bottle'])
    expect(v.inBrowser).toEqual({ secretManagerIsUndefined: true, sku: 'SKU-1001' })
    // The browser received the page, the bundle and the cart call, and nothing else.
    expect(v.responses.map(([u]) => new URL(u).pathname).sort()).toEqual(['/api/cart', '/client.js', '/product/SKU-1001'])
    const bundle = v.responses.find(([u]) => u.endsWith('/client.js'))[1]
    expect(bundle).not.toMatch(/NativeManager|process\.env|\.node["']/)
    expect(audit(v.artifacts, demoSecrets)).toEqual([])
    expect(s.logs).not.toMatch(/unavailable/)
    await v.page.screenshot({ path: screenshot, fullPage: true })
    expect(fs.statSync(screenshot).size).toBeGreaterThan(1000)
  } finally {
    await v.context.close()
  }
})

test('a missing secret renders a clear degraded state; the server logs the code, not a stack with values', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'storefront-'))
  const file = path.join(dir, 'secrets.json')
  fs.writeFileSync(file, JSON.stringify({ recommendationsApiKey: demoSecrets.recommendationsApiKey }))
  try {
    const s = await startStorefront(['--secrets-file', file])
    const v = await visit(s.url)
    try {
      expect(await v.page.locator('#price-degraded').innerText()).toBe('Price signing is unavailable right now')
      expect(await v.page.locator('#recommendations li').count()).toBe(3)
      expect(s.logs).toMatch(/priceSigningKey unavailable: NOT_FOUND/)
      expect(s.logs).not.toMatch(/\n\s+at /)
      expect(audit({ logs: s.logs }, demoSecrets)).toEqual([])
      expect(audit(v.artifacts, demoSecrets)).toEqual([])
    } finally {
      await v.context.close()
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('the audit catches a handler that puts a secret into the page', async () => {
  const s = await startStorefront(['--deliberately-leak'])
  const v = await visit(s.url)
  try {
    const findings = audit(v.artifacts, demoSecrets)
    expect(findings).toContainEqual({ where: 'html', secret: 'recommendationsApiKey' })
    expect(findings.some((f) => f.where.startsWith('response'))).toBe(true)
  } finally {
    await v.context.close()
  }
})
