'use strict'
// The identity providers, each with its request shape (protocol.md §3), through the Retail
// Server source against loopback fakes.
const { SecretManager } = require('..')
const { startServer } = require('./fakes/server')
const { startRetailServer, startAad, RESOURCE } = require('./fakes/azure')
const { isolateEnv } = require('./helpers')

const ENV = ['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'IDENTITY_USER_ASSIGNED_CLIENTID_ENVSPECIFIC', 'MSI_ENDPOINT', 'MSI_SECRET',
  'AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_AUTHORITY_HOST', 'AZURE_POD_IDENTITY_AUTHORITY_HOST', 'NODE_ENV']
isolateEnv(ENV)
let rs
let endpoint
const open = []

beforeEach(async () => {
  rs = await startRetailServer({ k: 'v' })
})

afterEach(async () => {
  for (const m of open.splice(0)) await m.close()
  await rs.close()
  if (endpoint) await endpoint.close()
  endpoint = undefined
})

function manager(options = {}) {
  const m = new SecretManager({ source: 'retail-server', allowInsecureLoopback: true, ...options })
  open.push(m)
  return m
}

const now = () => Math.floor(Date.now() / 1000)

test('legacy App Service: MSI_ENDPOINT + secret header, api-version 2017-09-01, clientid', async () => {
  endpoint = await startServer({ status: 200, body: { access_token: 'tok', expires_on: String(now() + 3600), token_type: 'Bearer' } })
  process.env.MSI_ENDPOINT = `${endpoint.url}msi/token`
  process.env.MSI_SECRET = 'msi-secret'
  process.env.IDENTITY_USER_ASSIGNED_CLIENTID_ENVSPECIFIC = 'uai'
  expect((await manager().getSecretValue('k', rs.url)).value).toBe('v')
  const [t] = endpoint.requests
  expect(t.path).toBe('/msi/token')
  expect(t.query).toEqual({ resource: RESOURCE, 'api-version': '2017-09-01', clientid: 'uai' })
  expect(t.headers.secret).toBe('msi-secret')
  expect(rs.requests[0].headers.authorization).toBe('Bearer tok')
})

test('App Service: an expires_on date string is accepted', async () => {
  const d = new Date(Date.now() + 3600e3)
  const pad = (n) => String(n).padStart(2, '0')
  const text = `${pad(d.getUTCMonth() + 1)}/${pad(d.getUTCDate())}/${d.getUTCFullYear()} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +00:00`
  endpoint = await startServer({ status: 200, body: { access_token: 'tok', expires_on: text, resource: RESOURCE, token_type: 'Bearer' } })
  process.env.IDENTITY_ENDPOINT = `${endpoint.url}msi/token`
  process.env.IDENTITY_HEADER = 'h'
  const m = manager()
  expect((await m.getSecretValue('k', rs.url)).value).toBe('v')
  m.invalidate()
  await m.getSecretValue('k', rs.url)
  expect(endpoint.requests).toHaveLength(1) // the token was understood to be valid for an hour
})

test('IMDS: Metadata header, api-version 2018-02-01, the base overridable, 410 retried', async () => {
  endpoint = await startServer({
    status: 200,
    body: { access_token: 'imds-tok', expires_in: '28799', expires_on: String(now() + 28799), resource: RESOURCE, token_type: 'Bearer' },
  })
  endpoint.queue({ status: 410, body: '' })
  process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = endpoint.url
  process.env.AZURE_CLIENT_ID = 'vm-identity'
  expect((await manager({ identity: 'imds' }).getSecretValue('k', rs.url)).value).toBe('v')
  expect(endpoint.requests).toHaveLength(2)
  const t = endpoint.requests[1]
  expect(t.path).toBe('/metadata/identity/oauth2/token')
  expect(t.query).toEqual({ 'api-version': '2018-02-01', resource: RESOURCE, client_id: 'vm-identity' })
  expect(t.headers.metadata).toBe('true')
  expect(rs.requests[0].headers.authorization).toBe('Bearer imds-tok')
})

test('client secret: AAD v2 client credentials, the authority overridable', async () => {
  endpoint = await startAad({ tenant: 'contoso.onmicrosoft.com', clientId: 'app-id', clientSecret: 'S3CRET&=' })
  process.env.AZURE_AUTHORITY_HOST = endpoint.url
  const m = manager({ identity: 'client-secret', clientId: 'app-id', clientSecret: 'S3CRET&=', tenantId: 'contoso.onmicrosoft.com' })
  expect((await m.getSecretValue('k', rs.url)).value).toBe('v')
  const [t] = endpoint.requests
  expect(t.method).toBe('POST')
  expect(t.path).toBe('/contoso.onmicrosoft.com/oauth2/v2.0/token')
  expect(t.headers['content-type']).toBe('application/x-www-form-urlencoded')
  expect(Object.fromEntries(new URLSearchParams(t.body))).toEqual({
    grant_type: 'client_credentials',
    client_id: 'app-id',
    client_secret: 'S3CRET&=',
    scope: `${RESOURCE}/.default`,
  })
  expect(rs.requests[0].headers.authorization).toBe('Bearer SENTINEL-AAD-TOKEN-1')
})

test('client secret never goes over plain http to a real host', async () => {
  process.env.AZURE_AUTHORITY_HOST = 'http://login.example.com/'
  const m = manager({ identity: 'client-secret', clientId: 'a', clientSecret: 's', tenantId: 't' })
  const r = await m.getSecretValue('k', rs.url)
  expect(r.error.code).toBe('HOST_NOT_ALLOWED')
  expect(r.error.message).not.toMatch(/\bs\b.*secret/)
})

test('identity: app-service without its variables: IDENTITY_UNAVAILABLE saying what is missing', async () => {
  const r = await manager({ identity: 'app-service' }).getSecretValue('k', rs.url)
  expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
  expect(r.error.message).toMatch(/IDENTITY_ENDPOINT/)
  expect(rs.requests).toHaveLength(0)
})

test('the AAD fake refuses what AAD refuses: another tenant, another client, a wrong secret', async () => {
  endpoint = await startAad({ tenant: 'contoso.onmicrosoft.com', clientId: 'app-id', clientSecret: 'right-secret' })
  process.env.AZURE_AUTHORITY_HOST = endpoint.url
  const cases = [
    [{ tenantId: 'fabrikam.onmicrosoft.com', clientId: 'app-id', clientSecret: 'right-secret' }, /400: invalid_request: AADSTS90002/],
    [{ tenantId: 'contoso.onmicrosoft.com', clientId: 'other-app', clientSecret: 'right-secret' }, /400: unauthorized_client: AADSTS700016/],
    [{ tenantId: 'contoso.onmicrosoft.com', clientId: 'app-id', clientSecret: 'wrong-secret' }, /400: invalid_client: AADSTS7000215/],
  ]
  for (const [options, said] of cases) {
    const r = await manager({ identity: 'client-secret', ...options }).getSecretValue('k', rs.url)
    expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(r.error.message).toMatch(said)
  }
  expect(endpoint.refusals).toEqual(['invalid_request', 'unauthorized_client', 'invalid_client'])
  expect(rs.requests).toHaveLength(0)
})
