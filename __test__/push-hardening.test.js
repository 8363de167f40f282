'use strict'
// What an attacker's read of push invalidation and references found, each reproduced first:
// a reference cannot send a vault token to a Retail Server host; a failed push is retried by
// Event Grid, not lost; a mixed batch and Express's parsed-nothing body are handled; shared
// results cannot be changed by one caller for another; close() before first use closes.
const http = require('node:http')
const { Readable } = require('node:stream')
const { SecretManager, createEventGridHandler } = require('..')
const { isolateEnv, URL: RS_URL } = require('./helpers')
const { startAad, startVault } = require('./fakes/azure')

isolateEnv(['AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_AUTHORITY_HOST', 'IDENTITY_ENDPOINT', 'MSI_ENDPOINT',
  'COMMERCE_SECRETS_VAULT_URLS', 'NODE_ENV', 'COMMERCE_SECRETS_SOURCE', 'COMMERCE_SECRETS_ALLOWED_HOSTS'])
const open = []
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
})
const track = (x) => {
  open.push(x)
  return x
}
const SHARED = 'a-shared-secret-of-some-length'
const V2 = '22222222222222222222222222222222'

let vault
beforeEach(async () => {
  const aad = track(await startAad())
  vault = track(await startVault({ db: { value: 'first' } }))
  process.env.AZURE_AUTHORITY_HOST = aad.url
  process.env.AZURE_CLIENT_ID = 'app-id'
  process.env.AZURE_CLIENT_SECRET = 'client-secret-value'
})
const manager = (o = {}) => track(new SecretManager({ vaultUrls: [vault.url], allowInsecureLoopback: true, ...o }))
const event = (id, type = 'Microsoft.KeyVault.SecretNewVersionCreated', name = 'db') =>
  ({ id, eventType: type, data: { Id: `${vault.url}secrets/${name}/${V2}`, ObjectName: name } })
async function serve(handler) {
  const server = http.createServer(handler)
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  track({ close: () => new Promise((r) => server.close(r)) })
  return `http://127.0.0.1:${server.address().port}/?code=${SHARED}`
}
async function post(url, body) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: r.status, json: await r.json().catch(() => undefined) }
}

test.each([
  ['a scale unit', 'https://evil.commerce.dynamics.com/secrets/x'],
  ['a cloud-hosted environment', 'https://attacker.cloudax.dynamics.com/secrets/x'],
  ['a sandbox', '@Microsoft.KeyVault(SecretUri=https://x.sandbox.operations.dynamics.com/secrets/x)'],
])('a Key Vault reference to %s (a Retail Server host) gets HOST_NOT_ALLOWED and sends nothing', async (_, key) => {
  const r = await manager().getSecretValue(key, '')
  expect(r.error.code).toBe('HOST_NOT_ALLOWED')
  expect(r.error.message).toMatch(/nothing was sent/)
})

test('a push whose refresh fails answers 503 and its redelivery is not swallowed', async () => {
  const m = manager({ timeoutMs: 1500 })
  expect((await m.getSecretValue('db', '')).value).toBe('first')
  const url = await serve(createEventGridHandler(m, { sharedSecret: SHARED }))
  vault.secrets.db.value = 'second'
  vault.secrets.db.currentVersion = V2
  vault.queue({ status: 503, body: '' }, { status: 503, body: '' }, { status: 503, body: '' })
  const failed = await post(url, [event('e-1')])
  expect(failed.status).toBe(503)
  expect((await m.getSecretValue('db', '')).value).toBe('first') // the last good value is kept
  const again = await post(url, [event('e-1')]) // Event Grid delivers it again
  expect(again).toMatchObject({ status: 200, json: { refreshed: [{ name: 'db', ok: true, refreshed: 1 }], repeated: 0 } })
  expect((await m.getSecretValue('db', '')).value).toBe('second')
})

test('a batch mixing key and certificate events with a secret event: the secret is handled, the rest acknowledged', async () => {
  const m = manager()
  await m.getSecretValue('db', '')
  const url = await serve(createEventGridHandler(m, { sharedSecret: SHARED }))
  vault.secrets.db.value = 'second'
  const r = await post(url, [event('k1', 'Microsoft.KeyVault.KeyNewVersionCreated', 'some-key'), event('s1'), event('c1', 'Microsoft.KeyVault.CertificateNewVersionCreated', 'cert')])
  expect(r).toMatchObject({ status: 200, json: { refreshed: [{ name: 'db', ok: true, refreshed: 1 }], skipped: 2 } })
  expect((await m.getSecretValue('db', '')).value).toBe('second')
})

test('behind Express 4 (body-parser set req.body = {} for a CloudEvents content type) the body is read from the stream', async () => {
  const m = manager()
  await m.getSecretValue('db', '')
  vault.secrets.db.value = 'second'
  const handler = createEventGridHandler(m, { sharedSecret: SHARED })
  const body = JSON.stringify({ specversion: '1.0', id: 'ce-1', type: 'Microsoft.KeyVault.SecretNewVersionCreated', source: '/x', data: { Id: `${vault.url}secrets/db/${V2}`, ObjectName: 'db' } })
  const req = Readable.from([Buffer.from(body)])
  Object.assign(req, { method: 'POST', url: `/?code=${SHARED}`, headers: { 'content-type': 'application/cloudevents+json' }, body: {} })
  const res = { status: 0, body: '', headersSent: false, writeHead(s) { this.status = s }, end(b) { this.body = b } }
  handler(req, res)
  const deadline = Date.now() + 10000
  while (res.status === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
  expect(res.status).toBe(200)
  expect((await m.getSecretValue('db', '')).value).toBe('second')
})

test('a referenced vault that left the bounded list while its entry is cached still takes pushes', async () => {
  const other = track(await startVault({ x: { value: 'x1' } }))
  const m = manager({ cache: { maxEntries: 2 } })
  const ref = `${other.url}secrets/x`
  expect((await m.getSecretValue(ref, '')).value).toBe('x1')
  // Two reads of references to other (absent) vaults push it out of the list of vaults.
  for (const port of [1, 2]) await m.getSecretValue(`http://127.0.0.1:${port}/secrets/y`, '')
  other.secrets.x.value = 'x2'
  await expect(m.secretChanged(other.url, 'x')).resolves.toEqual({ refreshed: 1 })
  expect((await m.getSecretValue(ref, '')).value).toBe('x2')
})

test('results are shared frozen: no caller can change what another gets', async () => {
  const m = track(new SecretManager({ source: 'memory', secrets: { k: 'v' } }))
  const first = await m.getSecretValue('k', RS_URL)
  const p = m.getSecretValue('k', RS_URL)
  expect(() => { 'use strict'; p.then = (f) => f({ value: 'attacker-chosen' }) }).toThrow(TypeError)
  const r = await p
  expect(() => { 'use strict'; r.value = 'x' }).toThrow(TypeError)
  expect((await m.getSecretValue('k', RS_URL)).value).toBe('v')
  expect(Object.isFrozen(first)).toBe(true) // a miss's result too: the same kind of object either way
})

test('close() of the default instance before its first use closes it', async () => {
  let m
  jest.isolateModules(() => {
    m = require('..').secretManager
  })
  await m.close()
  const r = await m.getSecretValue('k', '')
  expect(r.error.code).toBe('CLOSED')
})
