'use strict'
// Direct Key Vault against a loopback fake vault answering in the recorded shapes, with a
// client-secret identity (a fake AAD on loopback). Nothing here leaves 127.0.0.1.
const { SecretManager } = require('..')
const { startServer } = require('./fakes/server')
const { startAad, startVault, startIdentity } = require('./fakes/azure')
const { isolateEnv, runCli } = require('./helpers')

const ENV = ['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'MSI_ENDPOINT', 'MSI_SECRET', 'AZURE_CLIENT_ID', 'AZURE_TENANT_ID',
  'AZURE_CLIENT_SECRET', 'AZURE_AUTHORITY_HOST', 'COMMERCE_SECRETS_VAULT_URLS', 'NODE_ENV', 'COMMERCE_SECRETS_SOURCE']
isolateEnv(ENV)
const now = () => Math.floor(Date.now() / 1000)
let aad
let vault
const open = []
const closers = []

beforeEach(async () => {
  aad = await startAad()
  vault = await startVault({
    'db-password': { value: 'SENTINEL-DB', versions: { '0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f': 'older-value' } },
    disabled: { value: 'x', enabled: false },
    expired: { value: 'x', exp: now() - 60 },
    'not-yet': { value: 'x', nbf: now() + 3600 },
    'expires-soon': { value: 'soon', exp: now() + 120 },
  })
  process.env.AZURE_AUTHORITY_HOST = aad.url
  process.env.AZURE_CLIENT_ID = 'app-id'
  process.env.AZURE_CLIENT_SECRET = 'SENTINEL-CLIENT-SECRET'
})

afterEach(async () => {
  for (const m of open.splice(0)) await m.close()
  for (const c of closers.splice(0)) await c.close()
  await aad.close()
  await vault.close()
})

function manager(options = {}) {
  const events = []
  const m = new SecretManager({ vaultUrls: [vault.url], allowInsecureLoopback: true, onEvent: (e) => events.push(e), ...options })
  m.events = events
  open.push(m)
  return m
}

test('auto picks key-vault from vault urls; the challenge round trip: no token first, then the token', async () => {
  process.env.COMMERCE_SECRETS_VAULT_URLS = vault.url
  const m = new SecretManager({ allowInsecureLoopback: true })
  open.push(m)
  expect(m.source).toBe('key-vault')
  const r = await m.getSecretValue('db-password', 'https://any.commerce.dynamics.com/')
  expect(r.value).toBe('SENTINEL-DB')
  expect(r.id).toBe(`${vault.url}secrets/db-password/c8057e1c0e694d29a73c363af8b51e92`)
  expect(r.error).toBeUndefined()

  expect(vault.requests).toHaveLength(2)
  const [first, second] = vault.requests
  expect(first.path).toBe('/secrets/db-password')
  expect(first.query).toEqual({ 'api-version': '7.4' })
  expect(first.headers.authorization).toBeUndefined()
  expect(second.headers.authorization).toBe('Bearer SENTINEL-AAD-TOKEN-1')

  expect(aad.requests).toHaveLength(1)
  const t = aad.requests[0]
  expect(t.method).toBe('POST')
  expect(t.path).toBe('/tenant-from-challenge/oauth2/v2.0/token')
  expect(Object.fromEntries(new URLSearchParams(t.body))).toMatchObject({
    grant_type: 'client_credentials',
    client_id: 'app-id',
    scope: 'https://vault.azure.net/.default',
  })

  // The challenge is remembered: the next key goes straight with the token.
  await m.getSecretValue('expires-soon', '')
  expect(vault.requests).toHaveLength(3)
  expect(vault.requests[2].headers.authorization).toBe('Bearer SENTINEL-AAD-TOKEN-1')
})

test('a pinned version, and the vault:/// form of a name', async () => {
  const m = manager()
  const old = await m.getSecretValue('db-password/0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f', '')
  expect(old.value).toBe('older-value')
  expect(old.id).toMatch(/\/secrets\/db-password\/0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f$/)
  expect((await m.getSecretValue('vault:///db-password', '')).value).toBe('SENTINEL-DB')
  expect(vault.requests.map((r) => r.path)).toContain('/secrets/db-password/0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f')
})

test.each([
  ['not found', 'missing', 'NOT_FOUND', /SecretNotFound/],
  ['disabled', 'disabled', 'FORBIDDEN', /Forbidden\/SecretDisabled/],
  ['expired (exp in the past)', 'expired', 'FORBIDDEN', /expired/],
  ['not yet valid (nbf in the future)', 'not-yet', 'FORBIDDEN', /not valid before/],
])('%s: %s', async (_, key, code, pattern) => {
  const r = await manager().getSecretValue(key, '')
  expect(r.value).toBe('')
  expect(r.error.code).toBe(code)
  expect(r.error.message).toMatch(pattern)
  expect(r.error.secretKey).toBe(key)
})

test('expiresOn is no later than the secret\'s exp', async () => {
  const r = await manager().getSecretValue('expires-soon', '')
  expect(r.value).toBe('soon')
  expect(r.expiresOn).toBeLessThanOrEqual(vault.secrets['expires-soon'].exp)
  expect(r.expiresOn).toBeGreaterThan(now())
})

test.each([
  ['Retry-After', { 'retry-after': '1' }, 950],
  ['retry-after-ms', { 'retry-after-ms': '300' }, 280],
  ['x-ms-retry-after-ms', { 'x-ms-retry-after-ms': '300' }, 280],
])('throttled with %s: the wait is honoured, then the value', async (_, headers, atLeast) => {
  const m = manager()
  await m.getSecretValue('expires-soon', '') // learn the challenge first
  vault.queue({ status: 429, headers, body: { error: { code: 'Throttled', message: 'Request was not processed because too many requests were received.' } } })
  const started = Date.now()
  const r = await m.getSecretValue('db-password', '')
  expect(r.value).toBe('SENTINEL-DB')
  expect(Date.now() - started).toBeGreaterThanOrEqual(atLeast)
})

test('still throttled after retrying: THROTTLED', async () => {
  const m = manager({ timeoutMs: 3000 })
  await m.getSecretValue('expires-soon', '')
  vault.setDefault({ status: 429, headers: { 'retry-after-ms': '50' }, body: { error: { code: 'Throttled', message: 'slow down' } } })
  const r = await m.getSecretValue('db-password', '')
  expect(r.error.code).toBe('THROTTLED')
  expect(r.error.status).toBe(429)
})

test('the first vault failing and the second serving', async () => {
  const first = await startServer({ status: 500, body: '' })
  closers.push(first)
  const m = manager({ vaultUrls: [first.url, vault.url], timeoutMs: 4000 })
  const r = await m.getSecretValue('db-password', '')
  expect(r.value).toBe('SENTINEL-DB')
  expect(first.requests.length).toBeGreaterThan(0)
})

test('the second vault is asked when the first says NOT_FOUND', async () => {
  const first = await startVault({})
  closers.push(first)
  const r = await manager({ vaultUrls: [first.url, vault.url] }).getSecretValue('db-password', '')
  expect(r.value).toBe('SENTINEL-DB')
})

test('both failing: the error names both vaults', async () => {
  const first = await startVault({})
  closers.push(first)
  const r = await manager({ vaultUrls: [first.url, vault.url] }).getSecretValue('missing', '')
  expect(r.error.code).toBe('NOT_FOUND')
  expect(r.error.message).toContain(first.url.slice(0, -1))
  expect(r.error.message).toContain(vault.url.slice(0, -1))
})

test('a challenge for a foreign resource is refused: no token is requested or sent', async () => {
  vault.resource = 'https://management.azure.com'
  const r = await manager().getSecretValue('db-password', '')
  expect(r.error.code).toBe('UNAUTHORIZED')
  expect(r.error.message).toMatch(/management\.azure\.com.*not this vault's domain; no token was sent/)
  expect(aad.requests).toHaveLength(0)
  expect(vault.requests.every((q) => q.headers.authorization === undefined)).toBe(true)
})

test('1,000 concurrent cold calls: one challenge, one token request, one secret request', async () => {
  const m = manager()
  const all = await Promise.all(Array.from({ length: 1000 }, () => m.getSecretValue('db-password', '')))
  expect(all.every((r) => r.value === 'SENTINEL-DB')).toBe(true)
  expect(vault.requests.filter((q) => !q.headers.authorization)).toHaveLength(1)
  expect(aad.requests).toHaveLength(1)
  expect(vault.requests.filter((q) => q.headers.authorization)).toHaveLength(1)
})

test('a managed identity gets a token for the challenge\'s resource', async () => {
  const identity = await startIdentity()
  closers.push(identity)
  process.env.IDENTITY_ENDPOINT = identity.endpoint
  process.env.IDENTITY_HEADER = 'h'
  // DefaultAzureCredential's order: a client secret in the environment comes first.
  delete process.env.AZURE_CLIENT_SECRET
  const r = await manager({ source: 'key-vault' }).getSecretValue('db-password', '')
  expect(r.value).toBe('SENTINEL-DB')
  expect(identity.requests[0].query.resource).toBe('https://vault.azure.net')
  expect(aad.requests).toHaveLength(0)
})

test.each(['has space', 'under_score', 'a'.repeat(128), 'x/y/z', '../etc', 'ünicode'])(
  'the name %p is INVALID_ARGUMENT before any request',
  async (key) => {
    const r = await manager().getSecretValue(key, '')
    expect(r.error.code).toBe('INVALID_ARGUMENT')
    expect(vault.requests).toHaveLength(0)
  },
)

test.each([
  [['https://a.vault.azure.net', 'https://b.vault.azure.net', 'https://c.vault.azure.net'], /one or two/],
  [['not a url'], /not an absolute url/],
  [['https://vault.example.com'], /may not receive a token/],
  [['http://a.vault.azure.net'], /https/],
  [['https://a.vault.azure.net/secrets/x'], /just the vault's address/],
])('vaultUrls %p: a TypeError', (vaultUrls, pattern) => {
  expect(() => new SecretManager({ vaultUrls })).toThrow(TypeError)
  expect(() => new SecretManager({ vaultUrls })).toThrow(pattern)
})

test('no token, client secret or value in errors or events', async () => {
  const m = manager()
  await m.getSecretValue('db-password', '')
  await m.getSecretValue('disabled', '')
  vault.setDefault({ status: 401, body: '' })
  m.invalidate()
  const r = await m.getSecretValue('db-password', '')
  expect(r.error.code).toBe('UNAUTHORIZED')
  expect(JSON.stringify(m.events) + r.error.message + r.error.stack).not.toMatch(/SENTINEL/)
})

describe('the command line in key-vault mode', () => {
  const run = (args) =>
    runCli(args, { env: { AZURE_AUTHORITY_HOST: aad.url, AZURE_CLIENT_ID: 'app-id', AZURE_CLIENT_SECRET: 'SENTINEL-CLIENT-SECRET' } })

  test('validate prints Validation successful per key, like headquarters\' Validate button', async () => {
    const r = await run(['validate', 'db-password', 'disabled', '--vault-url', vault.url, '--allow-insecure-loopback'])
    expect(r.out).toMatch(/^db-password: Validation successful\ndisabled: FORBIDDEN /)
    expect(r.code).toBe(1)
    expect(r.out + r.err).not.toMatch(/SENTINEL/)
  })

  test('doctor reports the vaults, the challenge tenant and whether a token can be had', async () => {
    const r = await run(['doctor', '--vault-url', vault.url, '--allow-insecure-loopback'])
    expect(r.out).toMatch(/^source: key-vault\n  why: key-vault: the vaultUrls option was given/)
    expect(r.out).toContain(`vaults: ${vault.url}`)
    expect(r.out).toMatch(/challenge tenant tenant-from-challenge, resource https:\/\/vault\.azure\.net; a token was obtained/)
    expect(r.out + r.err).not.toMatch(/SENTINEL/)
    expect(r.code).toBe(0)
  })
})

test('a vault that echoes the bearer token in its error text: the message has [redacted], never the token', async () => {
  const echoing = await startServer()
  closers.push(echoing)
  echoing.setDefault((req, res) => {
    const auth = req.headers.authorization
    if (!auth) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer authorization="https://login.microsoftonline.com/tenant-x", resource="https://vault.azure.net"' })
      return res.end(JSON.stringify({ error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } }))
    }
    res.writeHead(403, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: { code: 'Forbidden', message: `Caller with token ${auth.slice(7)} has no get permission` } }))
  })
  const r = await manager({ vaultUrls: [echoing.url] }).getSecretValue('db-password', '')
  expect(r.error.code).toBe('FORBIDDEN')
  expect(r.error.message).toMatch(/Caller with token \[redacted\] has no get permission/)
  const shown = [r.error.message, r.error.stack, require('node:util').inspect(r, { depth: 5 }), JSON.stringify(r)].join('\n')
  expect(shown).not.toMatch(/SENTINEL-AAD-TOKEN/)
})

test("a challenge whose authority is of another cloud is refused: no token is requested or sent", async () => {
  const foreign = await startServer()
  closers.push(foreign)
  foreign.setDefault((req, res) => {
    res.writeHead(401, {
      'content-type': 'application/json',
      'www-authenticate': 'Bearer authorization="https://login.chinacloudapi.cn/tenant-cn", resource="https://vault.azure.net"',
    })
    res.end(JSON.stringify({ error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } }))
  })
  delete process.env.AZURE_AUTHORITY_HOST // the public cloud
  const r = await manager({ vaultUrls: [foreign.url] }).getSecretValue('db-password', '')
  expect(r.error.code).toBe('UNAUTHORIZED')
  expect(r.error.message).toMatch(/the challenge's authority login\.chinacloudapi\.cn is not of the configured cloud \(public;/)
  expect(aad.requests).toHaveLength(0)
  expect(foreign.requests.every((q) => q.headers.authorization === undefined)).toBe(true)
})

describe('Key Vault references as keys', () => {
  test('a secret id url and the App Service reference forms read the secret (a pinned version too)', async () => {
    const m = manager()
    expect((await m.getSecretValue(`${vault.url}secrets/db-password`, '')).value).toBe('SENTINEL-DB')
    expect((await m.getSecretValue(`${vault.url}secrets/db-password/0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f`, '')).value).toBe('older-value')
    expect((await m.getSecretValue(`@Microsoft.KeyVault(SecretUri=${vault.url}secrets/db-password/)`, '')).value).toBe('SENTINEL-DB')
    const missing = await m.getSecretValue(`${vault.url}secrets/nope`, '')
    expect(missing.error.code).toBe('NOT_FOUND')
    expect(missing.error.secretKey).toBe(`${vault.url}secrets/nope`)
  })

  test('a reference to a vault that is neither configured nor an allowed host: HOST_NOT_ALLOWED, nothing sent', async () => {
    const m = manager()
    for (const key of ['https://vault.attacker.example/secrets/db-password', '@Microsoft.KeyVault(SecretUri=https://vault.attacker.example/secrets/k)']) {
      const r = await m.getSecretValue(key, '')
      expect(r.error.code).toBe('HOST_NOT_ALLOWED')
      expect(r.error.message).toMatch(/neither in vaultUrls nor an allowed host/)
    }
    expect(vault.requests).toHaveLength(0)
    expect(aad.requests).toHaveLength(0)
  })

  test('a malformed reference is INVALID_ARGUMENT before any request', async () => {
    const m = manager()
    for (const key of [`${vault.url}keys/k`, '@Microsoft.KeyVault(VaultName=v)', `${vault.url}secrets/bad_name`]) {
      expect((await m.getSecretValue(key, '')).error.code).toBe('INVALID_ARGUMENT')
    }
    expect(vault.requests).toHaveLength(0)
  })
})

test('the fake vault accepts only tokens a fake identity issued: a wrong bearer token is not authenticated', async () => {
  const { startVault: vaultOf } = require('./fakes/azure')
  const v = await vaultOf({ k: { value: 'v' } })
  try {
    const r = await fetch(`${v.url}secrets/k?api-version=7.4`, { headers: { authorization: 'Bearer made-up' } })
    expect(r.status).toBe(401)
    expect(v.refused).toBe(1)
  } finally {
    await v.close()
  }
})
