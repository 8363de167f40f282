'use strict'
// Issue 12's defects, each through the public surface against loopback fakes: numbers that
// used to panic or abort, files that used to block, keys that used to be altered, tokens the
// caller was blamed for, and credentials echoed back by an upstream.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const util = require('node:util')
const { spawnSync } = require('node:child_process')
const { SecretManager } = require('..')
const { startServer } = require('./fakes/server')
const { startIdentity, startRetailServer } = require('./fakes/azure')
const { isolateEnv } = require('./helpers')

const ENV = ['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'IDENTITY_USER_ASSIGNED_CLIENTID_ENVSPECIFIC', 'MSI_ENDPOINT', 'MSI_SECRET',
  'COMMERCE_SECRETS_OUN', 'MSDyn365Commerce_RSVERSION', 'NODE_ENV', 'COMMERCE_SECRETS_SOURCE', 'AZURE_CLIENT_ID',
  'AZURE_CLIENT_SECRET', 'AZURE_TENANT_ID', 'AZURE_AUTHORITY_HOST', 'COMMERCE_SECRETS_VAULT_URLS', 'AZURE_POD_IDENTITY_AUTHORITY_HOST']
isolateEnv(ENV)
const root = path.join(__dirname, '..')
const open = []
afterEach(async () => {
  for (const c of open.splice(0)) await c.close()
})

function track(x) {
  open.push(x)
  return x
}

function everything(r) {
  return [r.error && r.error.message, r.error && r.error.stack, util.inspect(r, { depth: 5 }), JSON.stringify(r)].join('\n')
}

describe('numbers that used to panic or abort', () => {
  test.each([
    [{ timeoutMs: 1e23 }, /option `timeoutMs` must be a number from 1 to 600000 \(got 1e\+23\)/],
    [{ timeoutMs: 1e22 }, /option `timeoutMs` must be a number from 1 to 600000/],
    [{ timeoutMs: 0.5 }, /option `timeoutMs` must be a number from 1 to 600000/],
    [{ cache: { maxAgeSeconds: 1e300 } }, /option `cache.maxAgeSeconds` must be a number from 0.001 to 31536000/],
    [{ cache: { refreshAfterSeconds: -1 } }, /option `cache.refreshAfterSeconds` must be a number from 0 to 31536000/],
    [{ cache: { staleIfErrorSeconds: 1e19 } }, /option `cache.staleIfErrorSeconds`/],
    [{ cache: { negativeTtlSeconds: 1e300 } }, /option `cache.negativeTtlSeconds`/],
    [{ cache: { maxEntries: 2.5 } }, /option `cache.maxEntries` must be an integer from 1 to 10000000/],
    [{ cache: { maxRefreshAfterSeconds: 0 } }, /option `cache.maxRefreshAfterSeconds`/],
  ])('%j: a TypeError naming the option and its range', (options, message) => {
    expect(() => new SecretManager({ source: 'memory', secrets: {}, ...options })).toThrow(TypeError)
    expect(() => new SecretManager({ source: 'memory', secrets: {}, ...options })).toThrow(message)
  })

  test('the range edges are accepted', async () => {
    const m = track(new SecretManager({ source: 'memory', secrets: { k: 'v' }, timeoutMs: 600000, cache: { maxEntries: 10000000, maxRefreshAfterSeconds: 31536000 } }))
    expect((await m.getSecretValue('k', '')).value).toBe('v')
  })

  test.each([
    ['retry-after', '1e300'],
    ['retry-after', '1e19'],
    ['retry-after-ms', '1e300'],
    ['x-ms-retry-after-ms', '1e19'],
    ['retry-after', 'Fri, 31 Dec 9999 23:59:59 GMT'],
  ])('a 429 with %s: %s answers THROTTLED at once (no panic, no wait)', async (header, value) => {
    process.env.IDENTITY_ENDPOINT = (track(await startIdentity())).endpoint
    process.env.IDENTITY_HEADER = 'identity-header-value'
    const rs = track(await startServer({ status: 429, headers: { [header]: value }, body: '' }))
    const m = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true, timeoutMs: 30000 }))
    const started = Date.now()
    const r = await m.getSecretValue('k', rs.url)
    expect(r.error.code).toBe('THROTTLED')
    expect(Date.now() - started).toBeLessThan(10000) // the wait does not fit the deadline: answered now
    expect(rs.requests).toHaveLength(1)
  })

  test('a 429 whose HTTP-date Retry-After has passed is retried at once', async () => {
    process.env.IDENTITY_ENDPOINT = (track(await startIdentity())).endpoint
    process.env.IDENTITY_HEADER = 'identity-header-value'
    const rs = track(await startServer({ status: 200, body: { value: 'v' } }))
    rs.queue({ status: 429, headers: { 'retry-after': 'Wed, 21 Oct 2015 07:28:00 GMT' }, body: '' })
    const m = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true }))
    const r = await m.getSecretValue('k', rs.url)
    expect(r.value).toBe('v')
    expect(rs.requests).toHaveLength(2)
  })
})

test('a FIFO as the secrets file is refused at once with LOCAL_FILE_INVALID; the JS thread never blocks', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'csm-fifo-'))
  try {
    const fifo = path.join(dir, 'secrets.json')
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0)
    // In a child with a time limit: if the open blocked, the child would be killed, not Jest.
    const r = spawnSync(
      process.execPath,
      ['-e', `const { SecretManager } = require(${JSON.stringify(root)})
        new SecretManager({ source: 'local', secretsFile: ${JSON.stringify(fifo)} }).getSecretValue('k', '')
          .then((r) => console.log(JSON.stringify({ code: r.error.code, message: r.error.message })))`],
      { encoding: 'utf8', timeout: 15000 },
    )
    expect(r.signal).toBeNull()
    const out = JSON.parse(r.stdout)
    expect(out.code).toBe('LOCAL_FILE_INVALID')
    expect(out.message).toMatch(/is not a regular file \(a FIFO, socket or device\)/)
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('a key with a lone surrogate is INVALID_ARGUMENT and reaches no store (it used to read the U+FFFD secret)', async () => {
  const m = track(new SecretManager({ source: 'memory', secrets: { 'a\uFFFD': 'other-secret' } }))
  for (const key of ['a\uD800', 'a\uDC00', '\uDBFFx']) {
    const r = await m.getSecretValue(key, '')
    expect(r.error.code).toBe('INVALID_ARGUMENT')
    expect(r.error.message).toMatch(/lone surrogate/)
    expect(r.value).toBe('')
  }
  expect((await m.refresh('a\uD800', '')).error.code).toBe('INVALID_ARGUMENT')
  // A well-formed pair is an ordinary character.
  expect((await m.getSecretValue('a\uD83D\uDE00', '')).error.code).toBe('NOT_FOUND')
  expect(m.stats().upstreamRequests).toBe(1)
})

test('a token with CR/LF from the identity endpoint is IDENTITY_UNAVAILABLE, not the caller\'s INVALID_ARGUMENT', async () => {
  const identity = track(await startServer({ status: 200, body: { access_token: 'abc\r\nX-Evil: 1', expires_on: String(Math.floor(Date.now() / 1000) + 3600) } }))
  process.env.IDENTITY_ENDPOINT = `${identity.url}msi/token/`
  process.env.IDENTITY_HEADER = 'identity-header-value'
  const rs = track(await startRetailServer({ k: 'v' }))
  const m = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true }))
  const r = await m.getSecretValue('k', rs.url)
  expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
  expect(r.error.message).toMatch(/access_token has characters a bearer token cannot have/)
  expect(rs.requests).toHaveLength(0)
})

describe('credentials echoed back by an upstream never reach a message', () => {
  test('Retail Server echoing the bearer token in its error text', async () => {
    const identity = track(await startIdentity())
    process.env.IDENTITY_ENDPOINT = identity.endpoint
    process.env.IDENTITY_HEADER = 'SENTINEL-IDENTITY-HEADER'
    const rs = track(await startServer((req, res) => {
      const token = String(req.headers.authorization).replace('Bearer ', '')
      res.writeHead(403, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ ErrorResourceId: 'Denied', LocalizedMessage: `token ${token} (encoded ${encodeURIComponent(token)}) is not allowed` }))
    }))
    const m = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true }))
    const r = await m.getSecretValue('k', rs.url)
    expect(r.error.code).toBe('FORBIDDEN')
    expect(r.error.message).toMatch(/Denied: token \[redacted\]/)
    expect(everything(r)).not.toMatch(/SENTINEL-TOKEN/)
  })

  test('the identity endpoint echoing its secret header', async () => {
    const identity = track(await startServer((req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: 'invalid_request', error_description: `bad header ${req.headers['x-identity-header']}` }))
    }))
    process.env.IDENTITY_ENDPOINT = `${identity.url}msi/token/`
    process.env.IDENTITY_HEADER = 'SENTINEL-IDENTITY-HEADER-2'
    const m = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true }))
    const r = await m.getSecretValue('k', 'https://scu1234ret.commerce.dynamics.com/')
    expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(r.error.message).toMatch(/bad header \[redacted\]/)
    expect(everything(r)).not.toMatch(/SENTINEL-IDENTITY-HEADER-2/)
  })

  test('AAD echoing the client secret (as sent, form-encoded)', async () => {
    const aad = track(await startServer())
    aad.setDefault((req, res) => {
      const secret = /client_secret=([^&]*)/.exec(aad.requests[aad.requests.length - 1].body)[1]
      res.writeHead(401, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: 'invalid_client', error_description: `AADSTS7000215: Invalid client secret ${secret} / ${decodeURIComponent(secret)}` }))
    })
    process.env.AZURE_AUTHORITY_HOST = aad.url
    const m2 = track(new SecretManager({
      source: 'retail-server', identity: 'client-secret', clientId: 'app-id', tenantId: 'tenant-1',
      clientSecret: 'SENTINEL/CLIENT+SECRET=1', allowInsecureLoopback: true,
    }))
    const r = await m2.getSecretValue('k', 'https://scu1234ret.commerce.dynamics.com/')
    expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(r.error.message).toMatch(/Invalid client secret \[redacted\] \/ \[redacted\]/)
    expect(everything(r)).not.toMatch(/SENTINEL|CLIENT%2BSECRET/)
  })

  test('user info in a refused base url or in AZURE_AUTHORITY_HOST is not echoed', async () => {
    process.env.IDENTITY_ENDPOINT = 'http://127.0.0.1:9/msi/token/'
    process.env.IDENTITY_HEADER = 'identity-header-value'
    const m = track(new SecretManager({ source: 'retail-server' }))
    const r = await m.getSecretValue('k', 'https://admin:SENTINEL-PASSWORD@scu1234ret.commerce.dynamics.com/')
    expect(r.error.code).toBe('HOST_NOT_ALLOWED')
    expect(everything(r)).not.toMatch(/SENTINEL-PASSWORD|admin:/)

    delete process.env.IDENTITY_ENDPOINT
    process.env.AZURE_AUTHORITY_HOST = 'https://user:SENTINEL-PASSWORD@login.example.com/'
    const m2 = track(new SecretManager({ source: 'retail-server', identity: 'client-secret', clientId: 'a', clientSecret: 'client-secret-value', tenantId: 't' }))
    const r2 = await m2.getSecretValue('k', 'https://scu1234ret.commerce.dynamics.com/')
    expect(r2.error).toBeDefined()
    expect(everything(r2)).not.toMatch(/SENTINEL-PASSWORD/)
  })
})

describe('tokens: one request for every waiter, failure included', () => {
  test('a failing token endpoint is asked once (with its retries) for 20 cold keys, and the failure is remembered', async () => {
    const identity = track(await startServer({ status: 500, body: { error: 'boom' } }))
    process.env.IDENTITY_ENDPOINT = `${identity.url}msi/token/`
    process.env.IDENTITY_HEADER = 'identity-header-value'
    const rs = track(await startRetailServer({}))
    const m = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true }))
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`)
    const results = await m.getSecretValues(keys, rs.url)
    for (const r of results) expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(identity.requests.length).toBeLessThanOrEqual(3) // one request, its retries (was 60)
    expect(m[Symbol.for('commerce-secret-manager.internals')]().tokenRequests()).toBe(1)
    // Remembered for a few seconds: the next call does not ask again.
    expect((await m.getSecretValue('another', rs.url)).error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(identity.requests.length).toBeLessThanOrEqual(3)
    expect(rs.requests).toHaveLength(0)
  })

  test('an IMDS that never answers costs a short probe once, then nothing, not the deadline every call', async () => {
    const imds = track(await startServer({ hang: true }))
    // AZURE_POD_IDENTITY_AUTHORITY_HOST points IMDS at the loopback fake (read at construction).
    process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = imds.url
    const m2 = track(new SecretManager({ source: 'retail-server', identity: 'imds', allowInsecureLoopback: true, timeoutMs: 20000 }))
    delete process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST
    let started = Date.now()
    const first = await m2.getSecretValue('k', 'https://scu1234ret.commerce.dynamics.com/')
    expect(first.error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(first.error.message).toMatch(/no IMDS at .*not asked again for 60 s/)
    expect(Date.now() - started).toBeLessThan(8000) // a 1 s probe, not the 20 s deadline
    started = Date.now()
    const second = await m2.getSecretValue('k2', 'https://scu1234ret.commerce.dynamics.com/')
    expect(second.error.code).toBe('IDENTITY_UNAVAILABLE')
    expect(Date.now() - started).toBeLessThan(3000)
    expect(imds.requests).toHaveLength(1)
  })

  test('after a 401, a token refresh that fails transiently never lets a stale value out', async () => {
    const identity = track(await startIdentity())
    process.env.IDENTITY_ENDPOINT = identity.endpoint
    process.env.IDENTITY_HEADER = 'identity-header-value'
    const rs = track(await startRetailServer({ k: 'v1' }))
    const m = track(new SecretManager({
      source: 'retail-server', allowInsecureLoopback: true,
      cache: { refreshAfterSeconds: 0, maxAgeSeconds: 0.05, staleIfErrorSeconds: 600 },
    }))
    expect((await m.getSecretValue('k', rs.url)).value).toBe('v1')
    await new Promise((r) => setTimeout(r, 120)) // expired: a stale value is now possible
    rs.setDefault({ status: 401, body: { ErrorResourceId: 'Unauthorized', LocalizedMessage: 'token revoked' } })
    identity.setDefault({ status: 503, body: '' })
    const r = await m.getSecretValue('k', rs.url)
    expect(r.value).toBe('')
    expect(r.error.code).toBe('UNAUTHORIZED')
    expect(r.error.status).toBe(401)
    expect(r.error.message).toMatch(/a fresh token could not be had \(IDENTITY_UNAVAILABLE/)
    // And it stays so: the entry was dropped.
    expect((await m.getSecretValue('k', rs.url)).value).toBe('')
  })
})

describe('network failures read as words a person can act on', () => {
  test('a TLS certificate from an unknown issuer', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'csm-tls-'))
    try {
      const key = path.join(dir, 'k.pem')
      const cert = path.join(dir, 'c.pem')
      expect(spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key,
        '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']).status).toBe(0)
      const server = require('node:https').createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (req, res) => res.end('{}'))
      await new Promise((r) => server.listen(0, '127.0.0.1', r))
      try {
        process.env.IDENTITY_ENDPOINT = (track(await startIdentity())).endpoint
        process.env.IDENTITY_HEADER = 'identity-header-value'
        const m = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true }))
        const r = await m.getSecretValue('k', `https://127.0.0.1:${server.address().port}/`)
        expect(r.error.code).toBe('UNAVAILABLE')
        expect(r.error.message).toMatch(/the TLS certificate of 127\.0\.0\.1 is not trusted: (its issuer is not a trusted CA|it is self-signed)/)
      } finally {
        await new Promise((r) => server.close(r))
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  test('a connection reset', async () => {
    process.env.IDENTITY_ENDPOINT = (track(await startIdentity())).endpoint
    process.env.IDENTITY_HEADER = 'identity-header-value'
    const server = require('node:net').createServer((s) => s.resetAndDestroy())
    await new Promise((r) => server.listen(0, '127.0.0.1', r))
    try {
      const m = track(new SecretManager({ source: 'retail-server', allowInsecureLoopback: true }))
      const r = await m.getSecretValue('k', `http://127.0.0.1:${server.address().port}/`)
      expect(r.error.code).toBe('UNAVAILABLE')
      expect(r.error.message).toMatch(/the connection to 127\.0\.0\.1:\d+ was reset/)
    } finally {
      await new Promise((r) => server.close(r))
    }
  })
})
