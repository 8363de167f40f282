'use strict'
// Rotation (issue 15): refresh events say whether the value changed and which version; a
// change is a `rotate` event; Event Grid push refreshes what Key Vault says rotated; prefetch
// spreads its requests.
const http = require('node:http')
const { SecretManager, createEventGridHandler } = require('..')
const { control, URL: RS_URL, isolateEnv } = require('./helpers')
const { startAad, startVault } = require('./fakes/azure')

isolateEnv(['AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_AUTHORITY_HOST', 'IDENTITY_ENDPOINT', 'MSI_ENDPOINT',
  'COMMERCE_SECRETS_VAULT_URLS', 'NODE_ENV', 'COMMERCE_SECRETS_SOURCE'])
const open = []
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
})
const track = (x) => {
  open.push(x)
  return x
}
const SHARED = 'a-shared-secret-of-some-length'

test('refresh events carry changed; a change is also a rotate event (memory source)', async () => {
  const events = []
  const m = track(new SecretManager({ source: 'memory', secrets: { k: 'v1' }, onEvent: (e) => events.push(e) }))
  await m.getSecretValue('k', RS_URL)
  await m.refresh('k', RS_URL)
  control(m, { key: 'k', value: 'v2' })
  await m.refresh('k', RS_URL)
  const refreshes = events.filter((e) => e.type === 'refresh')
  expect(refreshes.map((e) => e.changed)).toEqual([false, true])
  expect(events.filter((e) => e.type === 'rotate')).toEqual([{ type: 'rotate', secretKey: 'k', source: 'memory', changed: true }])
  expect(JSON.stringify(events)).not.toMatch(/v1|v2/)
})

describe('Key Vault', () => {
  let aad
  let vault
  beforeEach(async () => {
    aad = track(await startAad())
    vault = track(await startVault({ 'db-password': { value: 'first', versions: {} } }))
    process.env.AZURE_AUTHORITY_HOST = aad.url
    process.env.AZURE_CLIENT_ID = 'app-id'
    process.env.AZURE_CLIENT_SECRET = 'client-secret-value'
  })

  function kvManager(events) {
    return track(new SecretManager({ vaultUrls: [vault.url], allowInsecureLoopback: true, onEvent: (e) => events.push(e) }))
  }

  test('a refresh event carries the version; a new version is a rotate', async () => {
    const events = []
    const m = kvManager(events)
    await m.getSecretValue('db-password', '')
    await m.refresh('db-password', '')
    // A new version (Key Vault's id changes with it).
    vault.secrets['db-password'].value = 'second'
    vault.secrets['db-password'].currentVersion = '22222222222222222222222222222222'
    const r = await m.refresh('db-password', '')
    expect(r.value).toBe('second')
    const refreshes = events.filter((e) => e.type === 'refresh')
    expect(refreshes[0]).toMatchObject({ changed: false, version: 'c8057e1c0e694d29a73c363af8b51e92' })
    expect(refreshes[1]).toMatchObject({ changed: true, version: '22222222222222222222222222222222' })
    expect(events.filter((e) => e.type === 'rotate')).toEqual([
      // With the vault (host), its place and the store's request id (issue 21).
      { type: 'rotate', secretKey: 'db-password', source: 'key-vault', changed: true, version: '22222222222222222222222222222222', vault: '127.0.0.1', vaultIndex: 0, requestId: expect.stringMatching(/^[0-9a-f-]{36}$/) },
    ])
  })

  async function serve(handler) {
    const server = http.createServer(handler)
    await new Promise((r) => server.listen(0, '127.0.0.1', r))
    track({ close: () => new Promise((r) => server.close(r)) })
    return `http://127.0.0.1:${server.address().port}/`
  }

  async function post(url, body, headers = {}) {
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) })
    return { status: r.status, json: await r.json().catch(() => undefined), headers: r.headers }
  }

  const vaultName = () => new URL(vault.url).hostname.split('.')[0] // '127'
  const newVersionEvent = (name, schema = 'eventgrid') => {
    const data = { Id: `${vault.url}secrets/${name}/0123456789abcdef0123456789abcdef`, VaultName: vaultName(), ObjectType: 'Secret', ObjectName: name, Version: '0123456789abcdef0123456789abcdef', NBF: null, EXP: null }
    return schema === 'eventgrid'
      ? [{ id: 'e1', topic: '/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v', subject: name, eventType: 'Microsoft.KeyVault.SecretNewVersionCreated', eventTime: new Date().toISOString(), data, dataVersion: '1', metadataVersion: '1' }]
      : { specversion: '1.0', type: 'Microsoft.KeyVault.SecretNewVersionCreated', source: '/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v', subject: name, id: 'e2', time: new Date().toISOString(), data }
  }

  test('Event Grid: the handshake, then a new version refreshes the key on this instance (both schemas)', async () => {
    const events = []
    const m = kvManager(events)
    expect((await m.getSecretValue('db-password', '')).value).toBe('first')
    const url = await serve(createEventGridHandler(m, { sharedSecret: SHARED }))
    // Subscription handshake (Event Grid schema) and the CloudEvents OPTIONS handshake.
    const hs = await post(`${url}?code=${SHARED}`, [{ id: 'h', eventType: 'Microsoft.EventGrid.SubscriptionValidationEvent', data: { validationCode: 'VALIDATION-123', validationUrl: 'https://x' } }])
    expect(hs).toMatchObject({ status: 200, json: { validationResponse: 'VALIDATION-123' } })
    const opt = await fetch(url, { method: 'OPTIONS', headers: { 'webhook-request-origin': 'eventgrid.azure.net', 'x-commerce-secrets-code': SHARED } })
    expect(opt.status).toBe(200)
    expect(opt.headers.get('webhook-allowed-origin')).toBe('eventgrid.azure.net')
    // A new version: the cached value is replaced at once.
    vault.secrets['db-password'].value = 'second'
    vault.secrets['db-password'].currentVersion = '0123456789abcdef0123456789abcdef'
    const r = await post(`${url}?code=${SHARED}`, newVersionEvent('db-password'))
    expect(r).toMatchObject({ status: 200, json: { refreshed: [{ name: 'db-password', ok: true, refreshed: 1 }] } })
    expect((await m.getSecretValue('db-password', '')).value).toBe('second')
    expect(events.some((e) => e.type === 'rotate' && e.secretKey === 'db-password')).toBe(true)
    vault.secrets['db-password'].value = 'third'
    vault.secrets['db-password'].currentVersion = '33333333333333333333333333333333'
    const ce = await post(url, newVersionEvent('db-password', 'cloudevents'), { 'x-commerce-secrets-code': SHARED, 'content-type': 'application/cloudevents+json' })
    expect(ce.status).toBe(200)
    expect((await m.getSecretValue('db-password', '')).value).toBe('third')
  })

  test('Event Grid bad input: a 4xx, nothing refreshed, never a throw', async () => {
    const m = kvManager([])
    await m.getSecretValue('db-password', '')
    const url = await serve(createEventGridHandler(m, { sharedSecret: SHARED }))
    const before = vault.requests.length
    vault.secrets['db-password'].value = 'changed'
    const cases = [
      [url, newVersionEvent('db-password'), {}, 401], // no secret
      [`${url}?code=wrong-secret-wrong-secret`, newVersionEvent('db-password'), {}, 401],
      [`${url}?code=${SHARED}`, 'not json {', {}, 400],
      [`${url}?code=${SHARED}`, [{ eventType: 'Microsoft.Storage.BlobCreated', data: { ObjectName: 'db-password' } }], {}, 400],
      [`${url}?code=${SHARED}`, [{ eventType: 'Microsoft.KeyVault.SecretNewVersionCreated', data: { ObjectName: 'db-password', VaultName: 'another-vault' } }], {}, 403],
      [`${url}?code=${SHARED}`, 'x'.repeat(1024 * 1024 + 10), {}, 413],
      [`${url}?code=${SHARED}`, [], {}, 400],
    ]
    for (const [u, body, headers, status] of cases) {
      const r = await post(u, body, headers).catch((e) => ({ status: e.message }))
      expect(r.status).toBe(status)
    }
    expect(vault.requests.length).toBe(before) // nothing was refreshed
    expect((await m.getSecretValue('db-password', '')).value).toBe('first')
    expect(() => createEventGridHandler(m, { sharedSecret: 'short' })).toThrow(/at least 16 characters/)
  })
})

test('Event Grid with spreadMs: 202 at once, the refresh within the window; an Express-parsed body works', async () => {
  const aad = track(await startAad())
  const vault = track(await startVault({ k: { value: 'one' } }))
  process.env.AZURE_AUTHORITY_HOST = aad.url
  process.env.AZURE_CLIENT_ID = 'app-id'
  process.env.AZURE_CLIENT_SECRET = 'client-secret-value'
  const m = track(new SecretManager({ vaultUrls: [vault.url], allowInsecureLoopback: true }))
  expect((await m.getSecretValue('k', '')).value).toBe('one')
  vault.secrets.k.value = 'two'
  vault.secrets.k.currentVersion = '44444444444444444444444444444444'
  const handler = createEventGridHandler(m, { sharedSecret: SHARED, spreadMs: 200 })
  // Express has parsed the body already: req.body is used, the stream is not read.
  const event = [{ eventType: 'Microsoft.KeyVault.SecretNewVersionCreated', data: { ObjectName: 'k', Id: `${vault.url}secrets/k/44444444444444444444444444444444` } }]
  const res = { status: 0, body: '', headersSent: false, writeHead(s) { this.status = s }, end(b) { this.body = b } }
  handler({ method: 'POST', url: `/?code=${SHARED}`, headers: {}, body: event, on() {}, pause() {} }, res)
  const deadline = Date.now() + 10000
  while (res.status === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
  expect(res.status).toBe(202)
  expect(JSON.parse(res.body)).toEqual({ scheduled: ['k'], withinMs: 200, repeated: 0, skipped: 0 })
  let value
  while (Date.now() < deadline) {
    value = (await m.getSecretValue('k', '')).value
    if (value === 'two') break
    await new Promise((r) => setTimeout(r, 20))
  }
  expect(value).toBe('two')
})

test('prefetch spreads its requests over spreadMs', async () => {
  const keys = Array.from({ length: 20 }, (_, i) => `k${i}`)
  const m = track(new SecretManager({ source: 'memory', secrets: Object.fromEntries(keys.map((k) => [k, 'v'])) }))
  const started = Date.now()
  const results = await m.prefetch(keys, RS_URL, { spreadMs: 300 })
  expect(results.every((r) => r.value === 'v')).toBe(true)
  expect(Date.now() - started).toBeGreaterThanOrEqual(50) // spread, not all at once (wide bound)
  await expect(m.prefetch(keys, RS_URL, { spreadMs: -1 })).rejects.toThrow(/spreadMs/)
})
