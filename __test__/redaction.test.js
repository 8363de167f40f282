'use strict'
// Redaction that lasts: a credential is scrubbed from upstream text for as long as it can be
// sent (the identity header for the manager's life, a token while it is in use), however many
// other credentials came and went; and in every form it is sent in (the Azure Arc key bare).
const fs = require('node:fs')
const path = require('node:path')
const util = require('node:util')
const { SecretManager } = require('..')
const { startServer } = require('./fakes/server')
const { startIdentity, startRetailServer } = require('./fakes/azure')
const { isolateEnv } = require('./helpers')

isolateEnv(['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'IDENTITY_USER_ASSIGNED_CLIENTID_ENVSPECIFIC', 'MSI_ENDPOINT', 'MSI_SECRET',
  'IMDS_ENDPOINT', 'IDENTITY_SERVER_THUMBPRINT', 'AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_TENANT_ID', 'AZURE_AUTHORITY_HOST',
  'COMMERCE_SECRETS_VAULT_URLS', 'COMMERCE_SECRETS_SOURCE', 'NODE_ENV'])

const open = []
const track = (x) => {
  open.push(x)
  return x
}
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
})

const everything = (r) => [r.error && r.error.message, r.error && r.error.stack, util.inspect(r, { depth: 5 }), JSON.stringify(r)].join('\n')

test('after 140 token fetches and headers, the first identity header and the token in use are still redacted', async () => {
  const identity = track(await startIdentity())
  process.env.IDENTITY_ENDPOINT = identity.endpoint
  const firstHeader = 'SENTINEL-HEADER-FIRST-0001'
  process.env.IDENTITY_HEADER = firstHeader
  const rs = track(await startRetailServer({ k: 'v' }))
  const m = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true, cache: false }))
  expect((await m.getSecretValue('k', rs.url)).value).toBe('v')
  // 70 token fetches by this manager: each 401 makes it fetch a fresh token.
  for (let i = 0; i < 70; i++) {
    rs.queue({ status: 401, body: '' })
    expect((await m.getSecretValue('k', rs.url)).value).toBe('v')
  }
  // And 70 other managers, each with its own header and token, come and go.
  for (let i = 0; i < 70; i++) {
    process.env.IDENTITY_HEADER = `SENTINEL-OTHER-HEADER-${String(i).padStart(4, '0')}`
    const other = new SecretManager({ source: 'retail-server', allowInsecureLoopback: true, cache: false })
    expect((await other.getSecretValue('k', rs.url)).value).toBe('v')
    await other.close()
  }
  expect(identity.requests.length).toBeGreaterThanOrEqual(141)
  const inUse = identity.requests.filter((q) => q.headers['x-identity-header'] === firstHeader).length
  const currentToken = `SENTINEL-TOKEN-${inUse}`
  expect(rs.requests.filter((q) => q.headers.authorization === `Bearer ${currentToken}`).length).toBeGreaterThan(0)
  rs.setDefault({ status: 403, body: { ErrorResourceId: 'Forbidden', LocalizedMessage: `header ${firstHeader} token ${currentToken} bearer Bearer ${currentToken}` } })
  const before = identity.requests.length
  const r = await m.getSecretValue('k', rs.url)
  expect(identity.requests.length).toBe(before) // the token in use is the one echoed
  expect(r.error.code).toBe('FORBIDDEN')
  expect(r.error.message).toMatch(/header \[redacted\] token \[redacted\]/)
  expect(everything(r)).not.toMatch(/SENTINEL-HEADER-FIRST|SENTINEL-TOKEN/)
})

const arcDir = '/var/opt/azcmagent/tokens'
const asRoot = process.platform === 'linux' && typeof process.getuid === 'function' && process.getuid() === 0
;(asRoot ? test : test.skip)('Azure Arc: an endpoint echoing the bare key (not as Basic <key>) gets [redacted]', async () => {
  const created = !fs.existsSync(arcDir)
  fs.mkdirSync(arcDir, { recursive: true })
  const keyFile = path.join(arcDir, `csm-redaction-${process.pid}.key`)
  const key = 'SENTINEL-ARC-KEY-0123456789'
  fs.writeFileSync(keyFile, `${key}\n`)
  try {
    const arc = track(await startServer())
    arc.setDefault((req, res) => {
      if (!req.headers.authorization) {
        res.writeHead(401, { 'www-authenticate': `Basic realm=${keyFile}` })
        return res.end()
      }
      res.writeHead(400, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: 'invalid_request', error_description: `the key ${req.headers.authorization.slice(6)} is not valid` }))
    })
    process.env.IDENTITY_ENDPOINT = `${arc.url}metadata/identity/oauth2/token`
    process.env.IMDS_ENDPOINT = arc.url
    const rs = track(await startRetailServer({ k: 'v' }))
    const m = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true }))
    const r = await m.getSecretValue('k', rs.url)
    expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(arc.requests[1].headers.authorization).toBe(`Basic ${key}`)
    expect(r.error.message).toMatch(/the key \[redacted\] is not valid/)
    expect(everything(r)).not.toMatch(/SENTINEL-ARC-KEY/)
  } finally {
    fs.rmSync(keyFile, { force: true })
    if (created) fs.rmSync('/var/opt/azcmagent', { recursive: true, force: true })
  }
})
