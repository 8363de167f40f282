'use strict'
// Tenants as the Azure SDKs decide them (processMultiTenantRequest): a configured tenant is the
// one used; a vault's challenge naming another is refused unless additionallyAllowedTenants
// allows it; with none configured, only a well-formed challenge tenant is used (never as an
// argument of az). The AAD fake accepts only the tenants each test expects.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { SecretManager } = require('..')
const { startAad, startVault, acceptToken } = require('./fakes/azure')
const { isolateEnv } = require('./helpers')

isolateEnv(['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'MSI_ENDPOINT', 'MSI_SECRET', 'IMDS_ENDPOINT', 'AZURE_CLIENT_ID', 'AZURE_TENANT_ID',
  'AZURE_CLIENT_SECRET', 'AZURE_AUTHORITY_HOST', 'AZURE_ADDITIONALLY_ALLOWED_TENANTS', 'AZURE_FEDERATED_TOKEN_FILE',
  'AZURE_CLIENT_CERTIFICATE_PATH', 'COMMERCE_SECRETS_VAULT_URLS', 'COMMERCE_SECRETS_SOURCE', 'NODE_ENV', 'PATH'])

const open = []
const track = (x) => {
  open.push(x)
  return x
}
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
})

async function setup(challengeTenant, aadTenants) {
  const aad = track(await startAad({ tenant: aadTenants, clientId: 'app-id', clientSecret: 'SENTINEL-CLIENT-SECRET' }))
  const vault = track(await startVault({ k: { value: 'the-value' } }, { tenant: challengeTenant }))
  const manager = (options = {}) => track(new SecretManager({
    vaultUrls: [vault.url], allowInsecureLoopback: true, identity: 'client-secret', clientId: 'app-id',
    clientSecret: 'SENTINEL-CLIENT-SECRET', authorityHost: aad.url, ...options,
  }))
  return { aad, vault, manager }
}

test('a configured tenant is the one used; a challenge naming another is refused, naming both and the option; the secret goes nowhere', async () => {
  const { aad, manager } = await setup('attacker-tenant', ['my-tenant'])
  const r = await manager({ tenantId: 'my-tenant' }).getSecretValue('k', '')
  expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
  expect(r.error.message).toMatch(/challenge names tenant 'attacker-tenant', but tenant 'my-tenant' is configured/)
  expect(r.error.message).toMatch(/additionallyAllowedTenants/)
  expect(r.error.message).toMatch(/AZURE_ADDITIONALLY_ALLOWED_TENANTS/)
  // The secret went to the configured tenant only (its token was presumed right for the
  // configured vault, which refused it with a challenge naming its own tenant).
  expect(aad.requests.map((q) => q.rawPath)).toEqual(['/my-tenant/oauth2/v2.0/token'])
  expect(JSON.stringify(r) + r.error.stack).not.toMatch(/SENTINEL/)
})

test('the same tenant in the challenge (any case) is used', async () => {
  const { aad, manager } = await setup('My-Tenant', ['my-tenant'])
  expect((await manager({ tenantId: 'my-tenant' }).getSecretValue('k', '')).value).toBe('the-value')
  expect(aad.requests.map((q) => q.rawPath)).toEqual(['/my-tenant/oauth2/v2.0/token'])
})

test('additionallyAllowedTenants (the option, or the variable, or *) lets a challenge name another tenant', async () => {
  const { aad, manager } = await setup('other-tenant', ['my-tenant', 'other-tenant'])
  expect((await manager({ tenantId: 'my-tenant', additionallyAllowedTenants: ['other-tenant'] }).getSecretValue('k', '')).value).toBe('the-value')
  process.env.AZURE_ADDITIONALLY_ALLOWED_TENANTS = 'x.example, other-tenant'
  expect((await manager({ tenantId: 'my-tenant' }).getSecretValue('k', '')).value).toBe('the-value')
  process.env.AZURE_ADDITIONALLY_ALLOWED_TENANTS = '*'
  expect((await manager({ tenantId: 'my-tenant' }).getSecretValue('k', '')).value).toBe('the-value')
  // The option beats the variable.
  const r = await manager({ tenantId: 'my-tenant', additionallyAllowedTenants: ['third'] }).getSecretValue('k', '')
  expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
  // Each manager first presumes its configured tenant (one round trip when the vault is in it);
  // this vault answers with its challenge, and the other tenant is used where it is allowed.
  const my = '/my-tenant/oauth2/v2.0/token'
  const other = '/other-tenant/oauth2/v2.0/token'
  expect(aad.requests.map((q) => q.rawPath)).toEqual([my, other, my, other, my, other, my])
})

test('additionallyAllowedTenants of the wrong type or shape: a TypeError naming the option', () => {
  for (const bad of ['t1', [1], ['a b'], ['--debug']]) {
    expect(() => new SecretManager({ source: 'memory', secrets: {}, additionallyAllowedTenants: bad })).toThrow(TypeError)
    expect(() => new SecretManager({ source: 'memory', secrets: {}, additionallyAllowedTenants: bad })).toThrow(/additionallyAllowedTenants/)
  }
})

test('no tenant configured: the challenge\'s tenant is used when well-formed; never passed to az as an option', async () => {
  const { aad, manager } = await setup('72f988bf-86f1-41af-91ab-2d7cd011db47', ['72f988bf-86f1-41af-91ab-2d7cd011db47'])
  expect((await manager().getSecretValue('k', '')).value).toBe('the-value')
  expect(aad.requests[0].rawPath).toBe('/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token')

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'csm-tenant-'))
  try {
    const bin = path.join(dir, 'bin')
    fs.mkdirSync(bin)
    const log = path.join(dir, 'az.args')
    fs.writeFileSync(path.join(bin, 'az'), `#!/bin/sh\nprintf '%s\\n' "$@" >> '${log}'\necho '{"accessToken":"az-token","expires_on":${Math.floor(Date.now() / 1000) + 3600}}'\n`, { mode: 0o755 })
    process.env.PATH = `${bin}:/usr/bin:/bin`
    acceptToken('az-token') // the fake az's token, for the fake vault
    for (const tenant of ['--debug', '-x']) {
      const vault = track(await startVault({ k: { value: 'v' } }, { tenant }))
      const m = track(new SecretManager({ vaultUrls: [vault.url], allowInsecureLoopback: true, identity: 'azure-cli' }))
      const r = await m.getSecretValue('k', '')
      expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
      expect(r.error.message).toMatch(/not a tenant id or domain name; no token was requested/)
    }
    expect(fs.existsSync(log)).toBe(false)
    // A well-formed one is passed after --tenant.
    const vault = track(await startVault({ k: { value: 'v' } }, { tenant: 'contoso.onmicrosoft.com' }))
    const m = track(new SecretManager({ vaultUrls: [vault.url], allowInsecureLoopback: true, identity: 'azure-cli' }))
    expect((await m.getSecretValue('k', '')).value).toBe('v')
    expect(fs.readFileSync(log, 'utf8').trim().split('\n').slice(-2)).toEqual(['--tenant', 'contoso.onmicrosoft.com'])
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
