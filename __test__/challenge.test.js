'use strict'
// No challenge round trip where it is not needed (issue 22): with the tenant known (configured,
// or learnt from a verified challenge of a configured vault), a configured vault's first
// request carries the token; a 401 still makes the full challenge, its resource verified.
const { SecretManager } = require('..')
const { isolateEnv } = require('./helpers')
const { startAad, startVault } = require('./fakes/azure')

isolateEnv(['AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_AUTHORITY_HOST', 'IDENTITY_ENDPOINT', 'MSI_ENDPOINT',
  'COMMERCE_SECRETS_VAULT_URLS', 'NODE_ENV', 'COMMERCE_SECRETS_SOURCE', 'AZURE_ADDITIONALLY_ALLOWED_TENANTS'])
const open = []
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
})
const track = (x) => {
  open.push(x)
  return x
}
const unauthenticated = (v) => v.requests.filter((r) => !r.headers.authorization).length

let aad
beforeEach(async () => {
  aad = track(await startAad())
  process.env.AZURE_AUTHORITY_HOST = aad.url
  process.env.AZURE_CLIENT_ID = 'app-id'
  process.env.AZURE_CLIENT_SECRET = 'client-secret-value'
})

test('a configured tenant: a cold read is one vault round trip, not two', async () => {
  const vault = track(await startVault({ k: { value: 'v' } }, { tenant: 'my-tenant' }))
  const m = track(new SecretManager({ vaultUrls: [vault.url], allowInsecureLoopback: true, tenantId: 'my-tenant' }))
  expect((await m.getSecretValue('k', '')).value).toBe('v')
  expect(vault.requests).toHaveLength(1)
  expect(vault.requests[0].headers.authorization).toMatch(/^Bearer SENTINEL-AAD-TOKEN-/)
  expect(aad.requests[0].rawPath).toBe('/my-tenant/oauth2/v2.0/token')
  expect(new URLSearchParams(aad.requests[0].body).get('scope')).toBe('https://vault.azure.net/.default')
})

test('without a configured tenant the first vault is challenged once; the second vault is asked with the token at once', async () => {
  const first = track(await startVault({ a: { value: 'a1' } }))
  const second = track(await startVault({ b: { value: 'b1' } }))
  const m = track(new SecretManager({ vaultUrls: [first.url, second.url], allowInsecureLoopback: true }))
  expect((await m.getSecretValue('a', '')).value).toBe('a1')
  expect(unauthenticated(first)).toBe(1) // the challenge, learnt and verified
  expect((await m.getSecretValue('b', '')).value).toBe('b1') // 404 in the first, then the second
  expect(unauthenticated(first)).toBe(1)
  expect(unauthenticated(second)).toBe(0)
  expect(second.requests).toHaveLength(1)
})

test('a 401 to the token still makes the full challenge, and a challenge for a foreign resource is refused', async () => {
  const vault = track(await startVault({ k: { value: 'v' } }, { tenant: 'my-tenant', resource: 'https://management.azure.com' }))
  const foreign = { status: 401, headers: { 'www-authenticate': 'Bearer authorization="https://login.microsoftonline.com/my-tenant", resource="https://management.azure.com"' }, body: { error: { code: 'Unauthorized', message: 'AKV10022: Invalid audience.' } } }
  vault.queue(foreign, foreign)
  const m = track(new SecretManager({ vaultUrls: [vault.url], allowInsecureLoopback: true, tenantId: 'my-tenant' }))
  const r = await m.getSecretValue('k', '')
  expect(r.error.code).toBe('UNAUTHORIZED')
  expect(vault.requests).toHaveLength(2) // the presumed request, then one retry with a fresh token; no third
  // Tokens only for the vault's own cloud's resource; none for the foreign one.
  const scopes = aad.requests.map((q) => new URLSearchParams(q.body).get('scope'))
  expect(scopes.length).toBeGreaterThan(0)
  expect(scopes.every((x) => x === 'https://vault.azure.net/.default')).toBe(true)
})
