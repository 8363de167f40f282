'use strict'
// Issue 14's credentials through the public surface, against loopback fakes: workload
// identity, client certificate, Azure CLI and Azure Developer CLI (fake tools on PATH), Cloud
// Shell, Azure Arc, and the `auto` chain. Every fake checks what it is sent.
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { SecretManager } = require('..')
const { startServer } = require('./fakes/server')
const { startRetailServer, startAad: startAadFake, RESOURCE } = require('./fakes/azure')
const { isolateEnv, until } = require('./helpers')

isolateEnv(['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'MSI_ENDPOINT', 'MSI_SECRET', 'IMDS_ENDPOINT', 'AZURE_CLIENT_ID',
  'AZURE_TENANT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_AUTHORITY_HOST', 'AZURE_FEDERATED_TOKEN_FILE', 'AZURE_CLIENT_CERTIFICATE_PATH',
  'AZURE_POD_IDENTITY_AUTHORITY_HOST', 'COMMERCE_SECRETS_VAULT_URLS', 'NODE_ENV', 'COMMERCE_SECRETS_SOURCE', 'PATH', 'IDENTITY_SERVER_THUMBPRINT'])

const open = []
let dir
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'csm-cred-'))
})
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
  fs.rmSync(dir, { recursive: true, force: true })
})
const track = (x) => {
  open.push(x)
  return x
}

// The AAD fake (it refuses what AAD would refuse), with each request's path and form.
async function startAad(expect) {
  const aad = track(await startAadFake(expect))
  Object.defineProperty(aad, 'forms', {
    get: () => aad.requests.map((q) => ({ path: q.rawPath, form: Object.fromEntries(new URLSearchParams(q.body)) })),
  })
  return aad
}

async function retailManager(options) {
  const rs = track(await startRetailServer({ k: 'the-value' }))
  const m = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true, ...options }))
  return { m, rs }
}

test('workload identity: the federated token file is sent as a client assertion, read anew for every token request', async () => {
  const aad = await startAad({ tenant: 'tenant-wi', clientId: 'wi-client' })
  const tokenFile = path.join(dir, 'azure-identity-token')
  fs.writeFileSync(tokenFile, 'federated-jwt-ONE\n')
  const { m, rs } = await retailManager({
    identity: 'workload-identity', clientId: 'wi-client', tenantId: 'tenant-wi', authorityHost: aad.url, federatedTokenFile: tokenFile,
  })
  expect((await m.getSecretValue('k', rs.url)).value).toBe('the-value')
  expect(aad.forms[0].path).toBe('/tenant-wi/oauth2/v2.0/token')
  expect(aad.forms[0].form).toEqual({
    grant_type: 'client_credentials', client_id: 'wi-client', scope: `${RESOURCE}/.default`,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: 'federated-jwt-ONE',
  })
  expect(rs.requests[0].headers.authorization).toBe('Bearer SENTINEL-AAD-TOKEN-1')
  // The platform rotates the file; the next token request sends the new one.
  fs.writeFileSync(tokenFile, 'federated-jwt-TWO')
  rs.setDefault({ status: 401, body: '' })
  rs.queue({ status: 401, body: '' })
  await m.refresh('k', rs.url)
  expect(aad.forms[1].form.client_assertion).toBe('federated-jwt-TWO')
})

test('client certificate: an RS256 assertion signed with the key, x5t the certificate thumbprint, for this authority', async () => {
  const keyFile = path.join(dir, 'key.pem')
  const certFile = path.join(dir, 'cert.pem')
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=csm-test'], { encoding: 'utf8' })
  expect(r.status).toBe(0)
  const pemFile = path.join(dir, 'client.pem')
  fs.writeFileSync(pemFile, fs.readFileSync(certFile, 'utf8') + fs.readFileSync(keyFile, 'utf8'))
  const aad = await startAad({ tenant: 'tenant-c', clientId: 'cert-client' })
  const { m, rs } = await retailManager({
    identity: 'client-certificate', clientId: 'cert-client', tenantId: 'tenant-c', authorityHost: aad.url, clientCertificatePath: pemFile,
  })
  expect((await m.getSecretValue('k', rs.url)).value).toBe('the-value')
  const form = aad.forms[0].form
  expect(form.client_assertion_type).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer')
  expect(form.client_secret).toBeUndefined()
  const [h, c, sig] = form.client_assertion.split('.')
  const header = JSON.parse(Buffer.from(h, 'base64url'))
  const claims = JSON.parse(Buffer.from(c, 'base64url'))
  const cert = new crypto.X509Certificate(fs.readFileSync(certFile))
  expect(header).toMatchObject({ alg: 'RS256', typ: 'JWT' })
  expect(header.x5t).toBe(crypto.createHash('sha1').update(cert.raw).digest('base64url'))
  expect(claims).toMatchObject({ iss: 'cert-client', sub: 'cert-client', aud: `${aad.url}tenant-c/oauth2/v2.0/token` })
  expect(claims.exp - claims.nbf).toBe(600)
  const verified = crypto.verify('RSA-SHA256', Buffer.from(`${h}.${c}`), cert.publicKey, Buffer.from(sig, 'base64url'))
  expect(verified).toBe(true)
})

test('client certificate: a file without a key is refused when the manager is made, saying why', async () => {
  const pemFile = path.join(dir, 'only-cert.pem')
  fs.writeFileSync(pemFile, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
  const { m, rs } = await retailManager({ identity: 'client-certificate', clientId: 'c', tenantId: 't', clientCertificatePath: pemFile })
  const r = await m.getSecretValue('k', rs.url)
  expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
  expect(r.error.message).toMatch(/no PRIVATE KEY or RSA PRIVATE KEY block/)
})

// A fake `az` / `azd` on a PATH of its own: records its arguments, prints a token.
function fakeTool(name, output, { exit = 0, stderr = '' } = {}) {
  const bin = path.join(dir, 'bin')
  fs.mkdirSync(bin, { recursive: true })
  const log = path.join(dir, `${name}.args`)
  fs.writeFileSync(
    path.join(bin, name),
    `#!/bin/sh\nprintf '%s\\n' "$@" > '${log}'\n${stderr ? `echo '${stderr}' >&2\n` : ''}${output ? `cat <<'EOF'\n${output}\nEOF\n` : ''}exit ${exit}\n`,
    { mode: 0o755 },
  )
  process.env.PATH = `${bin}:/usr/bin:/bin`
  return () => fs.readFileSync(log, 'utf8').trim().split('\n')
}

test('azure-cli: az account get-access-token for the resource (no shell), its token used', async () => {
  const args = fakeTool('az', JSON.stringify({ accessToken: 'az-cli-token', expires_on: Math.floor(Date.now() / 1000) + 3600, tokenType: 'Bearer' }))
  const { m, rs } = await retailManager({ identity: 'azure-cli', tenantId: 'tenant-az' })
  expect((await m.getSecretValue('k', rs.url)).value).toBe('the-value')
  expect(args()).toEqual(['account', 'get-access-token', '--output', 'json', '--resource', RESOURCE, '--tenant', 'tenant-az'])
  expect(rs.requests[0].headers.authorization).toBe('Bearer az-cli-token')
})

test('azure-cli: not logged in says to run az login; not installed says so', async () => {
  fakeTool('az', '', { exit: 1, stderr: "ERROR: Please run 'az login' to setup account." })
  const { m, rs } = await retailManager({ identity: 'azure-cli' })
  const r = await m.getSecretValue('k', rs.url)
  expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
  expect(r.error.message).toMatch(/azure-cli: `az` failed \(run `az login`\)/)
  process.env.PATH = path.join(dir, 'nothing-here')
  const m2 = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true, identity: 'azure-cli' }))
  const r2 = await m2.getSecretValue('k', rs.url)
  expect(r2.error.message).toMatch(/`az` was not found on PATH; install it and run `az login`/)
})

// Gone: no such process, or a zombie its new parent has not reaped yet (it runs no more).
function gone(pid) {
  try {
    process.kill(pid, 0)
  } catch (e) {
    return e.code === 'ESRCH'
  }
  try {
    return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch (e) {
    return true
  }
}

test('azure-cli: a tool that hangs is killed at the call\'s deadline (TIMEOUT), with what it started', async () => {
  const bin = path.join(dir, 'bin')
  fs.mkdirSync(bin, { recursive: true })
  const pidFile = path.join(dir, 'child.pid')
  // As the real az: a shell script whose child does the work (here: hangs).
  fs.writeFileSync(path.join(bin, 'az'), `#!/bin/sh\nsleep 30 &\necho $! > '${pidFile}'\nwait\n`, { mode: 0o755 })
  process.env.PATH = `${bin}:/usr/bin:/bin`
  const { m, rs } = await retailManager({ identity: 'azure-cli', timeoutMs: 1500 })
  const started = Date.now()
  const r = await m.getSecretValue('k', rs.url)
  expect(r.error.code).toBe('TIMEOUT')
  expect(Date.now() - started).toBeLessThan(10000)
  const pid = Number(fs.readFileSync(pidFile, 'utf8'))
  expect(pid).toBeGreaterThan(1)
  await until(() => gone(pid), { timeoutMs: 10000, stepMs: 50 })
})

test('azure-cli: output past 64 KiB stops the tool at once (not read whole, then checked)', async () => {
  const bin = path.join(dir, 'bin')
  fs.mkdirSync(bin, { recursive: true })
  const pidFile = path.join(dir, 'tool.pid')
  // Prints without end, and would hang after: only a cap while reading ends this before the deadline.
  fs.writeFileSync(path.join(bin, 'az'), `#!/bin/sh\necho $$ > '${pidFile}'\nexec yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n`, { mode: 0o755 })
  process.env.PATH = `${bin}:/usr/bin:/bin`
  const { m, rs } = await retailManager({ identity: 'azure-cli', timeoutMs: 20000 })
  const started = Date.now()
  const r = await m.getSecretValue('k', rs.url)
  expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
  expect(r.error.message).toMatch(/azure-cli: `az` printed more than 64 KiB/)
  expect(Date.now() - started).toBeLessThan(15000)
  const pid = Number(fs.readFileSync(pidFile, 'utf8'))
  await until(() => gone(pid), { timeoutMs: 10000, stepMs: 50 })
})

test('azure-developer-cli: azd auth token with the scope, its token used', async () => {
  const args = fakeTool('azd', JSON.stringify({ token: 'azd-token', expiresOn: new Date(Date.now() + 3600e3).toISOString() }))
  const { m, rs } = await retailManager({ identity: 'azure-developer-cli' })
  expect((await m.getSecretValue('k', rs.url)).value).toBe('the-value')
  expect(args()).toEqual(['auth', 'token', '--output', 'json', '--scope', `${RESOURCE}/.default`])
  expect(rs.requests[0].headers.authorization).toBe('Bearer azd-token')
})

test('Cloud Shell: MSI_ENDPOINT without a secret, a POST with Metadata: true', async () => {
  const shell = track(await startServer({ status: 200, body: { access_token: 'cloud-shell-token', expires_on: String(Math.floor(Date.now() / 1000) + 3600) } }))
  process.env.MSI_ENDPOINT = `${shell.url}oauth2/token`
  const { m, rs } = await retailManager({})
  expect((await m.getSecretValue('k', rs.url)).value).toBe('the-value')
  const q = shell.requests[0]
  expect(q.method).toBe('POST')
  expect(q.headers.metadata).toBe('true')
  expect(Object.fromEntries(new URLSearchParams(q.body))).toEqual({ resource: RESOURCE })
})

const arcDir = '/var/opt/azcmagent/tokens'
const asRoot = process.platform === 'linux' && typeof process.getuid === 'function' && process.getuid() === 0
;(asRoot ? test : test.skip)('Azure Arc: the 401 challenge names a key file in the agent folder; its contents authorize the retry', async () => {
  const created = !fs.existsSync(arcDir)
  fs.mkdirSync(arcDir, { recursive: true })
  const keyFile = path.join(arcDir, `csm-test-${process.pid}.key`)
  fs.writeFileSync(keyFile, 'arc-secret-key')
  try {
    const arc = track(await startServer())
    arc.setDefault((req, res) => {
      if (req.headers.authorization !== 'Basic arc-secret-key') {
        res.writeHead(401, { 'www-authenticate': `Basic realm=${keyFile}` })
        return res.end()
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ access_token: 'arc-token', expires_on: String(Math.floor(Date.now() / 1000) + 3600) }))
    })
    process.env.IDENTITY_ENDPOINT = `${arc.url}metadata/identity/oauth2/token`
    process.env.IMDS_ENDPOINT = arc.url
    const { m, rs } = await retailManager({})
    expect((await m.getSecretValue('k', rs.url)).value).toBe('the-value')
    expect(arc.requests).toHaveLength(2)
    expect(arc.requests[0].query).toEqual({ 'api-version': '2020-06-01', resource: RESOURCE })
    expect(arc.requests[0].headers.metadata).toBe('true')
    expect(rs.requests[0].headers.authorization).toBe('Bearer arc-token')
    // A challenge naming a file elsewhere is not read.
    arc.setDefault((req, res) => {
      res.writeHead(401, { 'www-authenticate': 'Basic realm=/etc/passwd' })
      res.end()
    })
    const m2 = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true }))
    const r = await m2.getSecretValue('k', rs.url)
    expect(r.error.message).toMatch(/names a file outside \/var\/opt\/azcmagent\/tokens/)
  } finally {
    fs.rmSync(keyFile, { force: true })
    if (created) fs.rmSync('/var/opt/azcmagent', { recursive: true, force: true })
  }
})

test('auto: with no IMDS answering and az logged in, the chain falls through to the Azure CLI and keeps it', async () => {
  const imds = track(await startServer({ hang: true }))
  process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = imds.url
  fakeTool('az', JSON.stringify({ accessToken: 'chained-az-token', expires_on: Math.floor(Date.now() / 1000) + 3600 }))
  const { m, rs } = await retailManager({ timeoutMs: 20000 })
  expect((await m.getSecretValue('k', rs.url)).value).toBe('the-value')
  expect(rs.requests[0].headers.authorization).toBe('Bearer chained-az-token')
  const d = m[Symbol.for('commerce-secret-manager.internals')]().describe()
  expect(d.identityProvider).toMatch(/^azure-cli .*the first of the chain that gave a token/)
})

test('Service Fabric: the endpoint\'s self-signed certificate is trusted by its thumbprint only; the secret header goes nowhere else', async () => {
  const keyFile = path.join(dir, 'sf-key.pem')
  const certFile = path.join(dir, 'sf-cert.pem')
  expect(spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile,
    '-out', certFile, '-days', '1', '-subj', '/CN=service-fabric-node']).status).toBe(0)
  const seen = []
  const server = require('node:https').createServer({ key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile) }, (req, res) => {
    seen.push({ url: req.url, secret: req.headers.secret })
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ access_token: 'sf-token', expires_on: String(Math.floor(Date.now() / 1000) + 3600), token_type: 'Bearer' }))
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  try {
    const thumbprint = new crypto.X509Certificate(fs.readFileSync(certFile)).fingerprint.replace(/:/g, '')
    process.env.IDENTITY_ENDPOINT = `https://127.0.0.1:${server.address().port}/metadata/identity/oauth2/token`
    process.env.IDENTITY_HEADER = 'sf-identity-header'
    process.env.IDENTITY_SERVER_THUMBPRINT = thumbprint
    const { m, rs } = await retailManager({})
    expect((await m.getSecretValue('k', rs.url)).value).toBe('the-value')
    expect(seen).toHaveLength(1)
    const q = new URL(seen[0].url, 'https://x')
    expect(Object.fromEntries(q.searchParams)).toEqual({ 'api-version': '2019-07-01-preview', resource: RESOURCE })
    expect(seen[0].secret).toBe('sf-identity-header')
    expect(rs.requests[0].headers.authorization).toBe('Bearer sf-token')
    // Another thumbprint: the handshake fails, and nothing is sent.
    process.env.IDENTITY_SERVER_THUMBPRINT = '00'.repeat(20)
    const m2 = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true }))
    const r = await m2.getSecretValue('k', rs.url)
    expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(r.error.message).toMatch(/TLS certificate of 127\.0\.0\.1 is not trusted/)
    expect(seen).toHaveLength(1)
  } finally {
    delete process.env.IDENTITY_SERVER_THUMBPRINT
    await new Promise((r) => server.close(r))
  }
})

describe('bad input: each a clear IDENTITY_UNAVAILABLE naming the credential and what to do, nothing secret', () => {
  test('a missing certificate file, a missing or empty token file', async () => {
    const { m: cert, rs } = await retailManager({ identity: 'client-certificate', clientId: 'c', tenantId: 't', clientCertificatePath: path.join(dir, 'nope.pem') })
    const a = await cert.getSecretValue('k', rs.url)
    expect(a.error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(a.error.message).toMatch(/client-certificate: .*nope\.pem cannot be read \(.*\)/)
    const wi = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true, identity: 'workload-identity', clientId: 'c', tenantId: 't', federatedTokenFile: path.join(dir, 'missing-token') }))
    const b = await wi.getSecretValue('k', rs.url)
    expect(b.error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(b.error.message).toMatch(/workload-identity: the federated token file .*missing-token cannot be read/)
    fs.writeFileSync(path.join(dir, 'empty-token'), '  \n')
    const wi2 = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true, identity: 'workload-identity', clientId: 'c', tenantId: 't', federatedTokenFile: path.join(dir, 'empty-token') }))
    expect((await wi2.getSecretValue('k', rs.url)).error.message).toMatch(/workload-identity: the federated token file .* is empty/)
  })

  test('an expired assertion: AAD says why, the credential is named, the assertion is not shown', async () => {
    const aad = track(await startServer({ status: 400, body: { error: 'invalid_client', error_description: 'AADSTS700024: Client assertion is not within its valid time range.' } }))
    const tokenFile = path.join(dir, 'token')
    fs.writeFileSync(tokenFile, 'SENTINEL-EXPIRED-ASSERTION')
    const { m, rs } = await retailManager({ identity: 'workload-identity', clientId: 'c', tenantId: 't', authorityHost: aad.url, federatedTokenFile: tokenFile })
    const r = await m.getSecretValue('k', rs.url)
    expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(r.error.status).toBe(400)
    expect(r.error.message).toMatch(/^secret 'k': workload-identity identity: .*answered 400: invalid_client: AADSTS700024/)
    expect(JSON.stringify(r) + r.error.stack).not.toMatch(/SENTINEL/)
  })

  test('an az that prints something that is not JSON', async () => {
    fakeTool('az', 'WARNING: this is not json')
    const { m, rs } = await retailManager({ identity: 'azure-cli' })
    const r = await m.getSecretValue('k', rs.url)
    expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(r.error.message).toMatch(/azure-cli: `az`: its output is not JSON/)
  })
})

describe('identity files that are not what they should be: refused at once, saying what to do', () => {
  const threads = () => Number(/^Threads:\s+(\d+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1])

  ;(process.platform === 'linux' ? test : test.skip)('a FIFO as the federated token file: refused at once, no thread left blocked on it', async () => {
    const fifo = path.join(dir, 'token-fifo')
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0)
    const rs = track(await startRetailServer({ k: 'v' }))
    const make = () => track(new SecretManager({
      source: 'retail-server', allowInsecureLoopback: true, identity: 'workload-identity', clientId: 'c', tenantId: 't',
      federatedTokenFile: fifo, timeoutMs: 20000,
    }))
    const started = Date.now()
    const r = await make().getSecretValue('k', rs.url)
    expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(r.error.message).toMatch(/workload-identity: the federated token file .*token-fifo is a FIFO \(named pipe\), not a regular file; it was not read/)
    expect(Date.now() - started).toBeLessThan(10000) // not the 20 s deadline
    const before = threads()
    for (let i = 0; i < 30; i++) {
      expect((await make().getSecretValue('k', rs.url)).error.code).toBe('IDENTITY_UNAVAILABLE')
    }
    expect(threads() - before).toBeLessThan(10) // the old code pinned one blocking thread per call
    expect(rs.requests).toHaveLength(0)
  })

  test('a directory as the token file or the certificate', async () => {
    const rs = track(await startRetailServer({ k: 'v' }))
    const wi = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true, identity: 'workload-identity', clientId: 'c', tenantId: 't', federatedTokenFile: dir }))
    expect((await wi.getSecretValue('k', rs.url)).error.message).toMatch(/the federated token file .* is a directory, not a regular file/)
    const cert = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true, identity: 'client-certificate', clientId: 'c', tenantId: 't', clientCertificatePath: dir }))
    expect((await cert.getSecretValue('k', rs.url)).error.message).toMatch(/client-certificate: .* is a directory, not a regular file/)
  })

  async function certificateError(file) {
    const { m, rs } = await retailManager({ identity: 'client-certificate', clientId: 'c', tenantId: 't', clientCertificatePath: file })
    const r = await m.getSecretValue('k', rs.url)
    expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(rs.requests).toHaveLength(0)
    return r.error.message
  }
  const openssl = (...args) => expect(spawnSync('openssl', args, { encoding: 'utf8' }).status).toBe(0)

  test('a PFX/PKCS#12 file: convert it to PEM, and how', async () => {
    const pfx = path.join(dir, 'cert.pfx')
    fs.writeFileSync(pfx, Buffer.concat([Buffer.from([0x30, 0x82, 0x09, 0xf1, 0x02, 0x01, 0x03]), crypto.randomBytes(600)]))
    expect(await certificateError(pfx)).toMatch(/looks like a PFX\/PKCS#12 .*convert it to PEM with `openssl pkcs12 -in cert\.pfx -out cert\.pem -nodes`/)
    const renamed = path.join(dir, 'client.pem')
    fs.copyFileSync(pfx, renamed)
    expect(await certificateError(renamed)).toMatch(/openssl pkcs12 -in cert\.pfx -out cert\.pem -nodes/)
  })

  test('an EC key (PKCS#8 or SEC1): only RSA keys are supported', async () => {
    const key = path.join(dir, 'ec-key.pem')
    const cert = path.join(dir, 'ec-cert.pem')
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key)
    openssl('req', '-x509', '-key', key, '-out', cert, '-days', '1', '-subj', '/CN=csm-ec')
    const pkcs8 = path.join(dir, 'ec-pkcs8.pem')
    fs.writeFileSync(pkcs8, fs.readFileSync(cert, 'utf8') + fs.readFileSync(key, 'utf8'))
    expect(fs.readFileSync(key, 'utf8')).toMatch(/BEGIN PRIVATE KEY/)
    expect(await certificateError(pkcs8)).toMatch(/the private key in .*ec-pkcs8\.pem is an EC key: only RSA keys are supported/)
    const sec1Key = path.join(dir, 'ec-sec1-key.pem')
    openssl('ec', '-in', key, '-out', sec1Key)
    const sec1 = path.join(dir, 'ec-sec1.pem')
    fs.writeFileSync(sec1, fs.readFileSync(cert, 'utf8') + fs.readFileSync(sec1Key, 'utf8'))
    expect(fs.readFileSync(sec1Key, 'utf8')).toMatch(/BEGIN EC PRIVATE KEY/)
    expect(await certificateError(sec1)).toMatch(/is an EC key: only RSA keys are supported/)
  })

  test('an encrypted key: decrypt it, and how', async () => {
    const key = path.join(dir, 'key.pem')
    const cert = path.join(dir, 'cert.pem')
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=csm-enc')
    const enc = path.join(dir, 'enc-key.pem')
    openssl('pkcs8', '-topk8', '-in', key, '-passout', 'pass:SENTINEL-PASS', '-out', enc)
    expect(fs.readFileSync(enc, 'utf8')).toMatch(/-----BEGIN ENCRYPTED PRIVATE KEY-----/)
    const file = path.join(dir, 'client-enc.pem')
    fs.writeFileSync(file, fs.readFileSync(cert, 'utf8') + fs.readFileSync(enc, 'utf8'))
    const said = await certificateError(file)
    expect(said).toMatch(/the private key in .*client-enc\.pem is encrypted, .*decrypt it with `openssl pkey -in key\.pem -out plain\.pem`/)
    expect(said).not.toMatch(/SENTINEL/)
  })
})

test('auto: the chain in DefaultAzureCredential\'s order, as doctor shows it', () => {
  const cli = path.join(__dirname, '..', 'bin', 'cli.js')
  const r = spawnSync(process.execPath, [cli, 'doctor', '--offline', '--source', 'retail-server'], {
    encoding: 'utf8',
    env: {
      PATH: '/usr/bin:/bin', AZURE_CLIENT_ID: 'c', AZURE_TENANT_ID: 't', AZURE_CLIENT_SECRET: 'SENTINEL-SECRET',
      AZURE_FEDERATED_TOKEN_FILE: '/var/run/secrets/azure/tokens/azure-identity-token', IDENTITY_ENDPOINT: 'http://127.0.0.1:9/msi/token/', IDENTITY_HEADER: 'h',
    },
  })
  const line = r.stdout.split('\n').find((l) => l.startsWith('identity: auto -> '))
  const order = ['client-secret', 'workload-identity', 'app-service', 'azure-cli', 'azure-developer-cli'].map((k) => line.indexOf(`→ ${k}`) >= 0 ? line.indexOf(`→ ${k}`) : line.indexOf(k))
  expect(order.every((p) => p >= 0)).toBe(true)
  expect([...order].sort((a, b) => a - b)).toEqual(order)
  expect(r.stdout).not.toMatch(/SENTINEL/)
})
