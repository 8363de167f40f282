'use strict'
// The reliability suite: a bad-input table, the fault matrix (each upstream fault × each
// remote source) and a redaction audit with planted sentinels. Loopback fakes only.
const util = require('node:util')
const diagnostics = require('node:diagnostics_channel')
const { SecretManager } = require('..')
const { startServer } = require('./fakes/server')
const { startIdentity, startRetailServer, startAad, startVault, odata } = require('./fakes/azure')
const { sleep, tempDir, isolateEnv, runCli } = require('./helpers')

const ENV = ['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'AZURE_AUTHORITY_HOST', 'AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET', 'NODE_ENV',
  'COMMERCE_SECRETS_SOURCE', 'COMMERCE_SECRETS_VAULT_URLS', 'MSI_ENDPOINT', 'MSI_SECRET']
isolateEnv(ENV)
const cleanup = []
beforeEach(() => {
})
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
})

describe('bad inputs: each resolves (or throws at construction) with its code', () => {
  let rs
  let identity
  let rsManager
  let kvManager
  let memory
  beforeEach(async () => {
    identity = await startIdentity()
    rs = await startRetailServer({ k: 'v' })
    process.env.IDENTITY_ENDPOINT = identity.endpoint
    process.env.IDENTITY_HEADER = 'h'
    rsManager = new SecretManager({ source: 'retail-server', allowInsecureLoopback: true, timeoutMs: 2000 })
    kvManager = new SecretManager({ source: 'key-vault', vaultUrls: ['https://myvault.vault.azure.net'], timeoutMs: 2000 })
    memory = new SecretManager({ source: 'memory', secrets: { k: 'v' } })
    cleanup.push(() => rs.close(), () => identity.close(), () => rsManager.close(), () => kvManager.close(), () => memory.close())
  })

  const badKeys = [
    ['number', 1],
    ['bigint', 1n],
    ['undefined', undefined],
    ['null', null],
    ['boolean', true],
    ['object', {}],
    ['array', ['k']],
    ['function', () => 'k'],
    ['symbol', Symbol('k')],
    ['String object', new String('k')], // eslint-disable-line no-new-wrappers
    ['empty', ''],
    ['257 characters', 'k'.repeat(257)],
    ['a megabyte', 'k'.repeat(1 << 20)],
    ['NUL', 'k\0'],
    ['newline', 'k\n'],
    ['carriage return', 'k\r'],
    ['tab', '\tk'],
    ['escape', '\u001b[31mk'],
    ['DEL', 'k\u007f'],
    ['C1 control', '\u009bk'],
  ]
  test.each(badKeys)('key: %s -> INVALID_ARGUMENT (every source)', async (_, key) => {
    for (const m of [memory, rsManager, kvManager]) {
      const r = await m.getSecretValue(key, rs.url)
      expect(r.error.code).toBe('INVALID_ARGUMENT')
      expect(r.value).toBe('')
    }
    expect(identity.requests.length + rs.requests.length).toBe(0)
  })

  const kvOnly = [
    ['quote', "it's"],
    ['slash traversal', '../k'],
    ['underscore', 'a_b'],
    ['unicode', 'clé'],
    ['128 characters', 'a'.repeat(128)],
    ['space', 'a b'],
    ['two versions', 'a/b/c'],
    ['empty version', 'a/'],
  ]
  test.each(kvOnly)('key-vault key: %s -> INVALID_ARGUMENT before any request', async (_, key) => {
    const r = await kvManager.getSecretValue(key, '')
    expect(r.error.code).toBe('INVALID_ARGUMENT')
  })

  const urls = [
    ['undefined', undefined, 'INVALID_ARGUMENT'],
    ['number', 42, 'INVALID_ARGUMENT'],
    ['object', { href: 'https://x/' }, 'INVALID_ARGUMENT'],
    ['empty', '', 'INVALID_ARGUMENT'],
    ['not a url', 'scu1234ret', 'INVALID_ARGUMENT'],
    ['relative', '/Commerce/', 'INVALID_ARGUMENT'],
    ['with a query', 'https://scu1.commerce.dynamics.com/?x=1', 'INVALID_ARGUMENT'],
    ['with a fragment', 'https://scu1.commerce.dynamics.com/#x', 'INVALID_ARGUMENT'],
    ['http to a real host', 'http://scu1.commerce.dynamics.com/', 'HOST_NOT_ALLOWED'],
    ['ftp', 'ftp://scu1.commerce.dynamics.com/', 'HOST_NOT_ALLOWED'],
    ['user info', 'https://u:p@scu1.commerce.dynamics.com/', 'HOST_NOT_ALLOWED'],
    ['user only', 'https://u@scu1.commerce.dynamics.com/', 'HOST_NOT_ALLOWED'],
    ['look-alike suffix', 'https://scu1.commerce.dynamics.com.evil.example/', 'HOST_NOT_ALLOWED'],
    ['look-alike prefix', 'https://evilcommerce.dynamics.com/', 'HOST_NOT_ALLOWED'],
    ['bare domain', 'https://commerce.dynamics.com/', 'HOST_NOT_ALLOWED'],
    ['IP literal', 'https://10.1.2.3/', 'HOST_NOT_ALLOWED'],
    ['IPv6 literal', 'https://[fd00::1]/', 'HOST_NOT_ALLOWED'],
    ['link-local IMDS', 'http://169.254.169.254/', 'HOST_NOT_ALLOWED'],
    ['IDN look-alike', 'https://scu1.cοmmerce.dynamics.com/', 'HOST_NOT_ALLOWED'],
    ['javascript', 'javascript:alert(1)', 'INVALID_ARGUMENT'],
    ['data', 'data:text/plain,x', 'INVALID_ARGUMENT'],
  ]
  test.each(urls)('retail-server url: %s -> %s, and nothing is sent', async (_, url, code) => {
    const r = await rsManager.getSecretValue('k', url)
    expect(r.error.code).toBe(code)
    expect(identity.requests.length + rs.requests.length).toBe(0)
  })

  const options = [
    [{ timeoutMs: Infinity }, /timeoutMs/],
    [{ timeoutMs: NaN }, /timeoutMs/],
    [{ cache: { maxEntries: -1 } }, /maxEntries/],
    [{ cache: { maxEntries: 2 ** 40 } }, /maxEntries/],
    [{ cache: { staleIfErrorSeconds: '60' } }, /staleIfErrorSeconds/],
    [{ cache: { negativeTtlSeconds: -1 } }, /negativeTtlSeconds/],
    [{ oun: 'a\nb' }, /oun/],
    [{ secretsFile: '' }, /secretsFile/],
    [{ allowedHosts: ['*'] }, /allowedHosts/],
    [{ allowedHosts: ['host/path'] }, /allowedHosts/],
    [{ allowInsecureLoopback: 'yes' }, /allowInsecureLoopback/],
    [{ vaultUrls: ['https://u:p@v.vault.azure.net'] }, /vaultUrls/],
    [{ vaultUrls: ['http://127.0.0.1:1'] }, /vaultUrls/],
    [{ vaultUrls: [5] }, /vaultUrls/],
    [{ source: 'LOCAL' }, /source/],
    [{ identity: '' }, /identity/],
    [{ onEvent: {} }, /onEvent/],
  ]
  test.each(options)('option %p -> TypeError naming it', (o, pattern) => {
    expect(() => new SecretManager(o)).toThrow(TypeError)
    expect(() => new SecretManager(o)).toThrow(pattern)
  })
})

// Each fault, for each remote source: the promise resolves, the code is right, the deadline
// holds, and a last good value is served after expiry exactly for the transient codes.
describe('the fault matrix', () => {
  const TIMEOUT = 600
  const faults = [
    ['no answer', { hang: true }, 'TIMEOUT'],
    ['connection refused', 'refused', 'UNAVAILABLE'],
    ['reset mid-body', { resetMidBody: true, body: '{"value":"x","id":"y"}' }, 'UNAVAILABLE'],
    ['500', { status: 500, body: '' }, 'UNAVAILABLE'],
    ['503 with an HTML page', { status: 503, headers: { 'content-type': 'text/html' }, body: '<h1>down</h1>' }, 'UNAVAILABLE'],
    ['429', { status: 429, headers: { 'retry-after-ms': '20' }, body: '' }, 'THROTTLED'],
    ['401', { status: 401, body: '' }, 'UNAUTHORIZED'],
    ['403', { status: 403, body: { error: { code: 'Forbidden', message: 'no' } } }, 'FORBIDDEN'],
    ['404', { status: 404, body: { error: { code: 'SecretNotFound', message: 'gone' } } }, 'NOT_FOUND'],
    ['malformed JSON', { status: 200, headers: { 'content-type': 'application/json' }, body: '{"value":' }, 'BAD_RESPONSE'],
    ['an HTML 200', { status: 200, headers: { 'content-type': 'text/html' }, body: '<html>login</html>' }, 'BAD_RESPONSE'],
    ['a 2 MiB body', { status: 200, body: Buffer.alloc(2 << 20, 0x20) }, 'BAD_RESPONSE'],
    ['a redirect', { status: 307, headers: { location: 'http://127.0.0.1:1/' }, body: '' }, 'BAD_RESPONSE'],
  ]
  const STALE = new Set(['TIMEOUT', 'UNAVAILABLE', 'THROTTLED'])

  // A store whose behaviour the test switches between healthy and a fault. For Key Vault the
  // challenge is always answered, so the fault hits the authenticated request.
  async function store(kind) {
    const state = { fault: undefined, refused: false }
    const healthy = kind === 'retail-server' ? odata('GOOD-VALUE') : { status: 200, body: { value: 'GOOD-VALUE', id: 'https://v/secrets/k/1', attributes: { enabled: true } } }
    const server = await startServer()
    server.setDefault((req, res) => {
      const reply =
        kind === 'key-vault' && !req.headers.authorization
          ? { status: 401, headers: { 'www-authenticate': 'Bearer authorization="https://login.microsoftonline.com/t", resource="https://vault.azure.net"' }, body: '' }
          : (state.fault ?? healthy)
      if (typeof reply === 'function') return reply(req, res)
      return require('./fakes/server').answerForTests(reply, req, res)
    })
    cleanup.push(() => server.close())
    return { server, state }
  }

  async function manager(kind, server, extra = {}) {
    if (kind === 'retail-server') {
      const identity = await startIdentity()
      cleanup.push(() => identity.close())
      process.env.IDENTITY_ENDPOINT = identity.endpoint
      process.env.IDENTITY_HEADER = 'h'
    } else {
      const aad = await startAad()
      cleanup.push(() => aad.close())
      process.env.AZURE_AUTHORITY_HOST = aad.url
      process.env.AZURE_CLIENT_ID = 'a'
      process.env.AZURE_CLIENT_SECRET = 's'
    }
    const m = new SecretManager({
      source: kind,
      vaultUrls: kind === 'key-vault' ? [server.url] : undefined,
      allowInsecureLoopback: true,
      timeoutMs: TIMEOUT,
      ...extra,
    })
    cleanup.push(() => m.close())
    return m
  }

  for (const kind of ['retail-server', 'key-vault']) {
    test.each(faults)(`${kind}: %s -> %s, within the deadline`, async (_, fault, code) => {
      const { server, state } = await store(kind)
      const m = await manager(kind, server)
      if (fault === 'refused') await server.close()
      else state.fault = fault
      const started = Date.now()
      const r = await m.getSecretValue('k', server.url)
      expect(r.error && r.error.code).toBe(code)
      expect(r.value).toBe('')
      expect(Date.now() - started).toBeLessThan(TIMEOUT + 500)
    })

    test.each(faults)(`${kind}: %s after expiry: stale only for transient codes`, async (_, fault, code) => {
      const { server, state } = await store(kind)
      const m = await manager(kind, server, { cache: { refreshAfterSeconds: 0.02, maxAgeSeconds: 0.05, staleIfErrorSeconds: 60, negativeTtlSeconds: 0 } })
      expect((await m.getSecretValue('k', server.url)).value).toBe('GOOD-VALUE')
      if (fault === 'refused') await server.close()
      else state.fault = fault
      await sleep(70)
      const r = await m.getSecretValue('k', server.url)
      if (STALE.has(code)) {
        expect(r.value).toBe('GOOD-VALUE')
        expect(r.error).toBeUndefined()
      } else {
        expect(r.value).toBe('')
        expect(r.error.code).toBe(code)
      }
    })
  }
})

describe('the redaction audit', () => {
  const SENTINELS = ['SENTINEL-VALUE', 'SENTINEL-TOKEN', 'SENTINEL-IDENTITY-HEADER', 'SENTINEL-CLIENT-SECRET']
  const leaks = (text) => SENTINELS.filter((s) => text.includes(s))

  test('no sentinel in errors, stacks, events, diagnostics, inspect or JSON, whatever the source does', async () => {
    const identity = await startIdentity()
    const rs = await startRetailServer({ k: 'SENTINEL-VALUE' })
    cleanup.push(() => identity.close(), () => rs.close())
    process.env.IDENTITY_ENDPOINT = identity.endpoint
    process.env.IDENTITY_HEADER = 'SENTINEL-IDENTITY-HEADER'
    const published = []
    const listen = (e) => published.push(e)
    diagnostics.subscribe('commerce-secret-manager', listen)
    cleanup.push(() => diagnostics.unsubscribe('commerce-secret-manager', listen))
    const events = []
    const m = new SecretManager({ source: 'retail-server', allowInsecureLoopback: true, clientSecret: 'SENTINEL-CLIENT-SECRET', onEvent: (e) => events.push(e), timeoutMs: 1000 })
    cleanup.push(() => m.close())
    const results = [await m.getSecretValue('k', rs.url)]
    for (const fault of [{ status: 401, body: 'SENTINEL-TOKEN' }, { status: 500, body: '' }, { status: 200, body: '{"value":' }, { status: 302, headers: { location: 'http://127.0.0.1:1/SENTINEL-VALUE' }, body: '' }]) {
      rs.setDefault(fault)
      m.invalidate()
      results.push(await m.getSecretValue('k', rs.url))
    }
    expect(results[0].value).toBe('SENTINEL-VALUE')
    const errors = results.slice(1).map((r) => r.error)
    expect(errors.every((e) => e instanceof Error)).toBe(true)
    const shown = [
      ...errors.flatMap((e) => [e.message, e.stack, String(e), util.inspect(e, { depth: 9 }), JSON.stringify(e)]),
      ...results.map((r) => util.inspect(r, { depth: 9 })),
      JSON.stringify(events),
      JSON.stringify(published),
      util.inspect(m, { depth: 9, showHidden: true }),
      JSON.stringify(m.stats()),
    ].join('\n')
    expect(leaks(shown)).toEqual([])
    // The tokens really were in play: the identity endpoint issued them, the server saw them.
    expect(rs.requests.some((q) => String(q.headers.authorization).includes('SENTINEL-TOKEN'))).toBe(true)
  })

  test('no sentinel on the command line\'s stderr', async () => {
    const t = tempDir()
    cleanup.push(() => t.cleanup())
    t.write('secrets/secrets.json', JSON.stringify({ good: 'SENTINEL-VALUE', bad: 5 }))
    const run = (args) =>
      runCli(args, { cwd: t.dir, env: { AZURE_CLIENT_SECRET: 'SENTINEL-CLIENT-SECRET', IDENTITY_HEADER: 'SENTINEL-IDENTITY-HEADER' } })
    for (const args of [['get', 'bad', '--source', 'local'], ['get', 'missing', '--source', 'local'], ['validate', '--source', 'local'], ['doctor', '--source', 'local'], ['get', 'k', '--source', 'retail-server', '--url', 'https://evil.example/']]) {
      const { err, out } = await run(args)
      expect(leaks(err)).toEqual([])
      expect(leaks(out)).toEqual([])
    }
  })
})

test.each([
  [{ cache: { maxAgeSeconds: Infinity } }, /cache\.maxAgeSeconds/],
  [{ cache: { refreshAfterSeconds: NaN } }, /cache\.refreshAfterSeconds/],
  [{ secrets: { k: 1n } }, /secrets\.k/],
  [{ vaultUrls: [() => 'x'] }, /vaultUrls\[0\]/],
])('a value JSON cannot carry %p -> TypeError naming it', (o, pattern) => {
  expect(() => new SecretManager(o)).toThrow(TypeError)
  expect(() => new SecretManager(o)).toThrow(pattern)
})
