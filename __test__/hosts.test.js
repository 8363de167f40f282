'use strict'
// Who may receive a token (issue 18): every Retail Server host Microsoft operates for Commerce
// by default; more through COMMERCE_SECRETS_ALLOWED_HOSTS / COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK,
// which is how the default instance (install(msdyn365Commerce)) is told. Nothing leaves 127.0.0.1:
// for the Microsoft hosts the identity fake refuses the token, so the host check is all that
// runs and nothing is sent to them.
const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { startServer } = require('./fakes/server')
const { startIdentity, odata } = require('./fakes/azure')
const { isolateEnv, runCli, tempDir, INTERNALS } = require('./helpers')

const ENV = ['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'MSI_ENDPOINT', 'NODE_ENV', 'COMMERCE_SECRETS_SOURCE',
  'COMMERCE_SECRETS_VAULT_URLS', 'COMMERCE_SECRETS_ALLOWED_HOSTS', 'COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK',
  'MSDyn365Commerce_RSVERSION', 'AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_TENANT_ID']
isolateEnv(ENV)

let refusing
const open = []
beforeEach(async () => {
  // An App Service identity endpoint that refuses every token: a host that passes the check
  // gets IDENTITY_UNAVAILABLE, one that does not gets HOST_NOT_ALLOWED before any request.
  refusing = await startServer({ status: 400, body: { error: 'invalid_request', error_description: 'no' } })
  process.env.IDENTITY_ENDPOINT = `${refusing.url}msi/token/`
  process.env.IDENTITY_HEADER = 'SENTINEL-IDENTITY-HEADER'
})
afterEach(async () => {
  for (const m of open.splice(0)) await m.close()
  await refusing.close()
})

// The default instance, built from this test's environment (a fresh module registry each time).
function defaultInstance() {
  let m
  jest.isolateModules(() => {
    m = require('..').secretManager
  })
  open.push(m)
  return m
}

describe('the default allow-list covers the Retail Servers Microsoft operates', () => {
  test.each([
    ['a Commerce Scale Unit', 'https://scu1234ret.commerce.dynamics.com/'],
    ['a UAT sandbox', 'https://contoso-uatret.sandbox.operations.dynamics.com/'],
    ['a cloud-hosted (tier-1) development environment', 'https://usnconeboxax1ret.cloudax.dynamics.com/'],
  ])('%s passes the host check (the token is asked for; nothing goes to the host)', async (_, url) => {
    const m = defaultInstance()
    expect(m.source).toBe('retail-server')
    const r = await m.getSecretValue('paymentKey', url)
    expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(refusing.requests).toHaveLength(1)
    expect(refusing.requests[0].path).toBe('/msi/token/')
  })

  test.each([
    ['two labels below a wildcard', 'https://a.b.sandbox.operations.dynamics.com/'],
    ['the bare domain', 'https://sandbox.operations.dynamics.com/'],
    ['a sibling of the sandbox domain', 'https://contosoret.operations.dynamics.com/'],
    ['a look-alike', 'https://contosoret.sandbox.operations.dynamics.com.evil.example/'],
    ['plain http to a sandbox', 'http://contosoret.sandbox.operations.dynamics.com/'],
    ['a self-hosted scale unit not listed', 'https://rs.contoso-retail.example/'],
  ])('%s is refused: HOST_NOT_ALLOWED, no request at all', async (_, url) => {
    const r = await defaultInstance().getSecretValue('paymentKey', url)
    expect(r.error.code).toBe('HOST_NOT_ALLOWED')
    expect(r.error.message).toMatch(/nothing was sent/)
    expect(refusing.requests).toHaveLength(0)
  })
})

test('HOST_NOT_ALLOWED says exactly what to set, with the host to add', async () => {
  const r = await defaultInstance().getSecretValue('paymentKey', 'https://rs.contoso-retail.example/')
  expect(r.error.message).toContain("add 'rs.contoso-retail.example' to the allowedHosts option or to COMMERCE_SECRETS_ALLOWED_HOSTS")
  const http = await defaultInstance().getSecretValue('paymentKey', 'http://127.0.0.1:9/')
  expect(http.error.code).toBe('HOST_NOT_ALLOWED')
  expect(http.error.message).toContain('COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK=1')
})

test('COMMERCE_SECRETS_ALLOWED_HOSTS adds a self-hosted host to the default instance (and keeps the defaults)', async () => {
  process.env.COMMERCE_SECRETS_ALLOWED_HOSTS = 'rs.contoso-retail.example, *.scale.fabrikam.example'
  const m = defaultInstance()
  for (const url of ['https://rs.contoso-retail.example/', 'https://eu1.scale.fabrikam.example/', 'https://contosoret.sandbox.operations.dynamics.com/']) {
    const r = await m.getSecretValue('paymentKey', url)
    expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
  }
  // (a refused token is remembered for a moment: one token request may serve all three)
  expect(refusing.requests.length).toBeGreaterThanOrEqual(1)
  const d = m[INTERNALS]().describe()
  expect(d.allowedHosts).toEqual(expect.arrayContaining(['*.commerce.dynamics.com', 'rs.contoso-retail.example', '*.scale.fabrikam.example']))
  expect(d.allowedHostOrigins[d.allowedHosts.indexOf('rs.contoso-retail.example')]).toBe('COMMERCE_SECRETS_ALLOWED_HOSTS')
})

test('COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK=1 lets the default instance reach a loopback fake over http', async () => {
  const identity = await startIdentity()
  const rs = await startServer()
  rs.setDefault((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(odata('SENTINEL-VALUE').body))
  })
  try {
    process.env.IDENTITY_ENDPOINT = identity.endpoint
    process.env.COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK = 'true'
    const r = await defaultInstance().getSecretValue('paymentKey', rs.url)
    expect(r.error).toBeUndefined()
    expect(r.value).toBe('SENTINEL-VALUE')
    expect(rs.requests[0].headers.authorization).toBe('Bearer SENTINEL-TOKEN-1')
  } finally {
    await identity.close()
    await rs.close()
  }
})

describe('a bad variable is NOT_CONFIGURED naming it, never silently ignored', () => {
  test.each([
    ['COMMERCE_SECRETS_ALLOWED_HOSTS', 'rs.contoso.example,https://x.example'],
    ['COMMERCE_SECRETS_ALLOWED_HOSTS', '*'],
    ['COMMERCE_SECRETS_ALLOWED_HOSTS', 'rs.contoso.example,,other.example'],
    ['COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK', 'yes'],
  ])('%s=%s', async (name, value) => {
    process.env[name] = value
    const r = await defaultInstance().getSecretValue('paymentKey', 'https://scu1234ret.commerce.dynamics.com/')
    expect(r.error.code).toBe('NOT_CONFIGURED')
    expect(r.error.message).toContain(name)
    expect(refusing.requests).toHaveLength(0)
  })

  test('the CLI says so too (validate exits 1, doctor names the variable)', async () => {
    const env = { IDENTITY_ENDPOINT: process.env.IDENTITY_ENDPOINT, IDENTITY_HEADER: 'x', COMMERCE_SECRETS_ALLOWED_HOSTS: 'a b' }
    const v = await runCli(['validate', 'paymentKey', '--url', 'https://scu1234ret.commerce.dynamics.com/'], { env })
    expect(v.code).toBe(1)
    expect(v.err).toMatch(/NOT_CONFIGURED: .*COMMERCE_SECRETS_ALLOWED_HOSTS/)
    const d = await runCli(['doctor', '--offline'], { env })
    expect(d.code).toBe(1)
    expect(d.out + d.err).toMatch(/COMMERCE_SECRETS_ALLOWED_HOSTS/)
  })
})

test('doctor shows the allow-list and where each entry came from', async () => {
  const env = {
    IDENTITY_ENDPOINT: process.env.IDENTITY_ENDPOINT, IDENTITY_HEADER: 'x',
    COMMERCE_SECRETS_ALLOWED_HOSTS: 'rs.contoso-retail.example', COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK: '1',
  }
  const d = await runCli(['doctor', '--offline'], { env })
  expect(d.out).toMatch(/\*\.commerce\.dynamics\.com {2}\(default: Commerce Scale Unit/)
  expect(d.out).toMatch(/\*\.sandbox\.operations\.dynamics\.com {2}\(default: .*sandbox/)
  expect(d.out).toMatch(/\*\.cloudax\.dynamics\.com {2}\(default: .*development/)
  expect(d.out).toMatch(/rs\.contoso-retail\.example {2}\(COMMERCE_SECRETS_ALLOWED_HOSTS\)/)
  expect(d.out).toMatch(/loopback over http: allowed \(COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK\)/)
})

// A self-hosted scale unit end to end: a real https Retail Server on `localhost` with a
// certificate of its own CA, allowed by the variable alone (no loopback opt-in), gets the token.
test('a self-hosted Retail Server allowed by COMMERCE_SECRETS_ALLOWED_HOSTS receives the token over https', async () => {
  const t = tempDir()
  const identity = await startIdentity()
  let server
  try {
    const run = (args) => spawnSync('openssl', args, { cwd: t.dir, encoding: 'utf8' })
    expect(run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=csm-test-ca']).status).toBe(0)
    expect(run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'rs.key', '-out', 'rs.csr', '-subj', '/CN=localhost']).status).toBe(0)
    t.write('ext.cnf', 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n')
    expect(run(['x509', '-req', '-in', 'rs.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'rs.pem', '-days', '1', '-extfile', 'ext.cnf']).status).toBe(0)
    const seen = []
    server = require('node:https').createServer({ key: fs.readFileSync(path.join(t.dir, 'rs.key')), cert: fs.readFileSync(path.join(t.dir, 'rs.pem')) }, (req, res) => {
      seen.push({ url: req.url, authorization: req.headers.authorization })
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(odata('SENTINEL-SELF-HOSTED').body))
    })
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    const url = `https://localhost:${server.address().port}/`
    const env = {
      IDENTITY_ENDPOINT: identity.endpoint, IDENTITY_HEADER: 'x', COMMERCE_SECRETS_SOURCE: 'retail-server',
      COMMERCE_SECRETS_EXTRA_CA_CERTS: path.join(t.dir, 'ca.pem'),
    }
    const refused = await runCli(['get', 'paymentKey', '--url', url], { env })
    expect(refused.code).toBe(1)
    expect(refused.err).toMatch(/HOST_NOT_ALLOWED: .*add 'localhost' to the allowedHosts option or to COMMERCE_SECRETS_ALLOWED_HOSTS/)
    expect(seen).toHaveLength(0)
    const ok = await runCli(['get', 'paymentKey', '--url', url], { env: { ...env, COMMERCE_SECRETS_ALLOWED_HOSTS: 'localhost' } })
    expect(ok.err).toBe('')
    expect(ok.out).toBe('SENTINEL-SELF-HOSTED\n')
    expect(seen).toEqual([{ url: "/Commerce/GetUserDefinedSecretString(secretName='paymentKey')", authorization: 'Bearer SENTINEL-TOKEN-1' }])
  } finally {
    if (server) await new Promise((resolve) => server.close(resolve))
    await identity.close()
    t.cleanup()
  }
})
