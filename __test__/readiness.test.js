'use strict'
// Ready before traffic: install({ prefetch }) starts the token and the reads at server start;
// ready() and the readiness handler say when they are in. Against a fake App Service identity
// endpoint whose first token is slow, and a fake Retail Server (loopback only).
const http = require('node:http')
const { install, createReadinessHandler, createSecretManager } = require('..')
const browserEntry = require('../browser.js')
const testing = require('../testing.js')
const { startIdentity, startRetailServer, RESOURCE } = require('./fakes/azure')
const { isolateEnv, URL } = require('./helpers')

const ENV = ['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'IDENTITY_USER_ASSIGNED_CLIENTID_ENVSPECIFIC', 'MSI_ENDPOINT', 'MSI_SECRET',
  'COMMERCE_SECRETS_OUN', 'MSDyn365Commerce_RSVERSION', 'NODE_ENV', 'COMMERCE_SECRETS_SOURCE', 'AZURE_CLIENT_ID',
  'AZURE_CLIENT_SECRET', 'COMMERCE_SECRETS_PREFETCH', 'COMMERCE_SECRETS_PREFETCH_URL', 'COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK',
  'COMMERCE_SECRETS_VAULT_URLS']
isolateEnv(ENV)

// The first token takes this long (App Service's endpoint can take seconds on a cold instance).
const SLOW_TOKEN_MS = 2000

let identity
let rs
const open = []
beforeEach(async () => {
  identity = await startIdentity()
  let first = true
  identity.setDefault((req, res) => {
    const answer = () => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({
        access_token: `SENTINEL-TOKEN-${identity.requests.length}`,
        expires_on: String(Math.floor(Date.now() / 1000) + 3600),
        resource: RESOURCE,
        token_type: 'Bearer',
      }))
    }
    if (first) {
      first = false
      setTimeout(answer, SLOW_TOKEN_MS)
    } else answer()
  })
  rs = await startRetailServer({ paymentKey: 'SENTINEL-PAYMENT', signingKey: 'SENTINEL-SIGNING' })
  process.env.IDENTITY_ENDPOINT = identity.endpoint
  process.env.IDENTITY_HEADER = 'SENTINEL-IDENTITY-HEADER'
})
afterEach(async () => {
  for (const c of open.splice(0)) await c()
  await identity.close()
  await rs.close()
})

// The handler behind a loopback http server; get() answers { status, body }.
async function serve(handler) {
  const server = http.createServer(handler)
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  open.push(() => new Promise((resolve) => server.close(resolve)))
  const url = `http://127.0.0.1:${server.address().port}/healthz`
  return (method = 'GET') =>
    new Promise((resolve, reject) => {
      const req = http.request(url, { method, agent: false }, (res) => {
        let body = ''
        res.on('data', (d) => (body += d))
        res.on('end', () => resolve({ status: res.statusCode, body, type: res.headers['content-type'], cache: res.headers['cache-control'] }))
      })
      req.on('error', reject)
      req.end()
    })
}

test('install with prefetch: 503 before, ready() resolves when in, 200 after, then requests are answered from the cache', async () => {
  const started = Date.now()
  const target = {}
  const m = install(target, { source: 'retail-server', allowInsecureLoopback: true, prefetch: ['paymentKey', 'signingKey'], url: rs.url })
  open.push(() => m.close())
  expect(target.secretManager).toBe(m)
  const get = await serve(createReadinessHandler(m, { timeoutMs: 100 }))

  // The token request went out at install, before any traffic.
  await new Promise((r) => setTimeout(r, 50))
  expect(identity.requests).toHaveLength(1)
  const before = await get()
  expect(before.status).toBe(503)
  expect(JSON.parse(before.body)).toEqual({ ready: false, pending: 2 }) // counts, never names
  expect(before.type).toMatch(/^application\/json/)
  expect(before.cache).toBe('no-store')
  expect(await m.ready({ timeoutMs: 100 })).toEqual({ ready: false, pending: ['paymentKey', 'signingKey'] })

  expect(await m.ready({ timeoutMs: 10000 })).toEqual({ ready: true, pending: [] })
  expect(Date.now() - started).toBeGreaterThanOrEqual(SLOW_TOKEN_MS - 100)
  expect(identity.requests).toHaveLength(1)
  expect(rs.requests).toHaveLength(2)

  const after = await get()
  expect(after.status).toBe(200)
  expect(JSON.parse(after.body)).toEqual({ ready: true, pending: 0 })
  expect((await get('HEAD')).status).toBe(200)

  // A request after ready(): from the cache, nothing upstream.
  const r = await target.secretManager.getSecretValue('paymentKey', rs.url)
  expect(r.value).toBe('SENTINEL-PAYMENT')
  expect(identity.requests).toHaveLength(1)
  expect(rs.requests).toHaveLength(2)
  expect(before.body + after.body).not.toMatch(/SENTINEL|paymentKey|signingKey/)
}, 15000)

test('COMMERCE_SECRETS_PREFETCH (and _URL): install(target) starts the default instance\'s reads', async () => {
  process.env.COMMERCE_SECRETS_PREFETCH = ' paymentKey, ,signingKey '
  process.env.COMMERCE_SECRETS_PREFETCH_URL = rs.url
  process.env.COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK = '1'
  const { secretManager } = require('..')
  const target = {}
  expect(install(target)).toBe(secretManager)
  open.push(() => secretManager.close())
  expect(secretManager.source).toBe('retail-server')
  expect(await secretManager.ready({ timeoutMs: 10000 })).toEqual({ ready: true, pending: [] })
  expect(rs.requests.map((q) => q.rawPath).sort()).toEqual([
    "/Commerce/GetUserDefinedSecretString(secretName='paymentKey')",
    "/Commerce/GetUserDefinedSecretString(secretName='signingKey')",
  ])
  expect((await secretManager.getSecretValue('signingKey', rs.url)).value).toBe('SENTINEL-SIGNING')
  expect(rs.requests).toHaveLength(2)
}, 15000)

test('ready(): at once with nothing started; a failed read is pending and asked again by the next call', async () => {
  const m = createSecretManager({ source: 'memory', secrets: { a: '1' }, cache: { negativeTtlSeconds: 0 } })
  open.push(() => m.close())
  expect(await m.ready()).toEqual({ ready: true, pending: [] })
  await m.prefetch(['a', 'b'], URL)
  expect(await m.ready({ timeoutMs: 1000 })).toEqual({ ready: false, pending: ['b'] })
  require('./helpers').control(m, { key: 'b', value: '2' })
  expect(await m.ready({ timeoutMs: 1000 })).toEqual({ ready: true, pending: [] })
  await expect(m.ready({ timeoutMs: -1 })).rejects.toThrow('ready: option `timeoutMs` must be a number from 0 to 600000 (got -1)')
  await expect(m.ready({ timeoutMs: 'soon' })).rejects.toThrow(TypeError)
})

test('install options: prefetch must be an array of keys and url a string; nothing is installed otherwise', () => {
  const target = {}
  expect(() => install(target, { source: 'memory', secrets: {}, prefetch: 'a' })).toThrow(
    'install: option `prefetch` must be an array of secret keys (strings) (got string)',
  )
  expect(() => install(target, { prefetch: ['a'], url: 5 })).toThrow(/install: option `url` must be a string/)
  expect(target.secretManager).toBeUndefined()
})

test('createReadinessHandler: a TypeError without a manager; the browser stub answers 200; the testing entry has it', async () => {
  expect(() => createReadinessHandler(undefined)).toThrow('createReadinessHandler takes a SecretManager (got undefined)')
  const stub = await serve(browserEntry.createReadinessHandler(undefined))
  expect(await stub()).toMatchObject({ status: 200, body: '{"ready":true,"pending":0}' })
  const t = testing.createTestSecretManager({ a: '1' })
  t.delay('a', 60000)
  t.prefetch(['a'], URL)
  const get = await serve(testing.createReadinessHandler(t, { timeoutMs: 50 }))
  expect(await get()).toMatchObject({ status: 503, body: '{"ready":false,"pending":1}' })
  await t.close()
})
