'use strict'
// Deployed Commerce: managed identity -> Retail Server, against loopback fakes. Asserts the
// exact requests and every fault of the issue; nothing here leaves 127.0.0.1.
const util = require('node:util')
const { SecretManager } = require('..')
const { startServer } = require('./fakes/server')
const { startIdentity, startRetailServer, odata, retailError, RESOURCE } = require('./fakes/azure')
const { sleep, isolateEnv, runCli } = require('./helpers')

const ENV = ['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'IDENTITY_USER_ASSIGNED_CLIENTID_ENVSPECIFIC', 'MSI_ENDPOINT', 'MSI_SECRET',
  'COMMERCE_SECRETS_OUN', 'MSDyn365Commerce_RSVERSION', 'NODE_ENV', 'COMMERCE_SECRETS_SOURCE', 'AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET']
isolateEnv(ENV)
let identity
let rs
const open = []

beforeEach(async () => {
  identity = await startIdentity()
  rs = await startRetailServer({ paymentKey: 'SENTINEL-VALUE', "it's/a key": 'quoted' })
  process.env.IDENTITY_ENDPOINT = identity.endpoint
  process.env.IDENTITY_HEADER = 'SENTINEL-IDENTITY-HEADER'
})

afterEach(async () => {
  for (const m of open.splice(0)) await m.close()
  await identity.close()
  await rs.close()
})

function manager(options = {}) {
  const events = []
  const m = new SecretManager({ allowInsecureLoopback: true, onEvent: (e) => events.push(e), ...options })
  m.events = events
  open.push(m)
  return m
}

test('auto picks retail-server from the App Service identity, and the requests are exact', async () => {
  process.env.IDENTITY_USER_ASSIGNED_CLIENTID_ENVSPECIFIC = 'user-assigned-id'
  const m = manager()
  expect(m.source).toBe('retail-server')
  const r = await m.getSecretValue("it's/a key", rs.url)
  expect(r).toMatchObject({ value: 'quoted' })
  expect(r.error).toBeUndefined()

  expect(identity.requests).toHaveLength(1)
  const t = identity.requests[0]
  expect(t.method).toBe('GET')
  expect(t.path).toBe('/msi/token/')
  expect(t.query).toEqual({ resource: RESOURCE, 'api-version': '2019-08-01', client_id: 'user-assigned-id' })
  expect(t.headers['x-identity-header']).toBe('SENTINEL-IDENTITY-HEADER')
  expect(t.headers.authorization).toBeUndefined()

  expect(rs.requests).toHaveLength(1)
  const s = rs.requests[0]
  expect(s.method).toBe('GET')
  expect(s.rawPath).toBe("/Commerce/GetUserDefinedSecretString(secretName='it''s%2Fa%20key')")
  expect(s.headers.authorization).toBe('Bearer SENTINEL-TOKEN-1')
  expect(s.headers.oun).toBe('128')
  expect(s.headers.accept).toBe('application/json')
  expect(s.headers['x-identity-header']).toBeUndefined()
})

test('the OUN comes from the option, else COMMERCE_SECRETS_OUN', async () => {
  process.env.COMMERCE_SECRETS_OUN = '77'
  await manager().getSecretValue('paymentKey', rs.url)
  await manager({ oun: '313' }).getSecretValue('paymentKey', rs.url)
  expect(rs.requests.map((r) => r.headers.oun)).toEqual(['77', '313'])
})

test('a base url without its trailing slash works the same', async () => {
  expect((await manager().getSecretValue('paymentKey', rs.url.slice(0, -1))).value).toBe('SENTINEL-VALUE')
})

test('1,000 concurrent cold calls: one token request and one secret request', async () => {
  rs.queue((req, res) => setTimeout(() => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify(odata('v').body))
  }, 50))
  const m = manager()
  const all = await Promise.all(Array.from({ length: 1000 }, () => m.getSecretValue('paymentKey', rs.url)))
  expect(all.every((r) => r.value === 'v')).toBe(true)
  expect(identity.requests).toHaveLength(1)
  expect(rs.requests).toHaveLength(1)
})

test('no answer: TIMEOUT near timeoutMs', async () => {
  rs.setDefault({ hang: true })
  const m = manager({ timeoutMs: 300 })
  const started = Date.now()
  const r = await m.getSecretValue('paymentKey', rs.url)
  const took = Date.now() - started
  expect(r.error.code).toBe('TIMEOUT')
  expect(took).toBeGreaterThanOrEqual(250)
  expect(took).toBeLessThan(2000)
})

test('connection refused: UNAVAILABLE after retries', async () => {
  const gone = await startServer()
  const url = gone.url
  await gone.close()
  const r = await manager({ timeoutMs: 3000 }).getSecretValue('paymentKey', url)
  expect(r.error.code).toBe('UNAVAILABLE')
  expect(r.error.message).toMatch(/127\.0\.0\.1:\d+ refused the connection \(nothing listens there\?\)/)
})

test('reset mid-body: UNAVAILABLE after three attempts', async () => {
  rs.setDefault({ resetMidBody: true, body: JSON.stringify(odata('v').body) })
  const r = await manager({ timeoutMs: 5000 }).getSecretValue('paymentKey', rs.url)
  expect(r.error.code).toBe('UNAVAILABLE')
  expect(rs.requests).toHaveLength(3)
})

test('500 then 200: retried, the value is served', async () => {
  rs.queue({ status: 500, body: 'boom' })
  const r = await manager().getSecretValue('paymentKey', rs.url)
  expect(r.value).toBe('SENTINEL-VALUE')
  expect(rs.requests).toHaveLength(2)
})

test('429 with Retry-After: 1, then 200: the wait is honoured', async () => {
  rs.queue({ status: 429, headers: { 'retry-after': '1' }, body: '' })
  const started = Date.now()
  const r = await manager().getSecretValue('paymentKey', rs.url)
  expect(r.value).toBe('SENTINEL-VALUE')
  expect(Date.now() - started).toBeGreaterThanOrEqual(950)
  expect(rs.requests).toHaveLength(2)
})

test('429 whose Retry-After does not fit in the deadline: THROTTLED at once', async () => {
  rs.setDefault({ status: 429, headers: { 'retry-after': '30' }, body: '' })
  const started = Date.now()
  const r = await manager({ timeoutMs: 2000 }).getSecretValue('paymentKey', rs.url)
  expect(r.error.code).toBe('THROTTLED')
  expect(r.error.status).toBe(429)
  expect(Date.now() - started).toBeLessThan(1500)
})

test('401 then 200: one fresh token, one retry', async () => {
  rs.queue({ status: 401, body: '' })
  const r = await manager().getSecretValue('paymentKey', rs.url)
  expect(r.value).toBe('SENTINEL-VALUE')
  expect(identity.requests).toHaveLength(2)
  expect(rs.requests.map((q) => q.headers.authorization)).toEqual(['Bearer SENTINEL-TOKEN-1', 'Bearer SENTINEL-TOKEN-2'])
})

test('401 twice: UNAUTHORIZED, and no third try', async () => {
  rs.setDefault({ status: 401, body: '' })
  const r = await manager().getSecretValue('paymentKey', rs.url)
  expect(r.error.code).toBe('UNAUTHORIZED')
  expect(r.error.status).toBe(401)
  expect(rs.requests).toHaveLength(2)
  expect(identity.requests).toHaveLength(2)
})

test.each([
  [403, 'FORBIDDEN'],
  [404, 'NOT_FOUND'],
])('%i: %s with Retail Server\'s error details', async (status, code) => {
  rs.setDefault(retailError(status, 'Microsoft_Dynamics_Commerce_Runtime_X', 'The secret is not available.'))
  const r = await manager().getSecretValue('paymentKey', rs.url)
  expect(r.error.code).toBe(code)
  expect(r.error.status).toBe(status)
  expect(r.error.message).toMatch(/Microsoft_Dynamics_Commerce_Runtime_X: The secret is not available\./)
  expect(r.error.secretKey).toBe('paymentKey')
})

test.each([
  ['malformed JSON', { status: 200, headers: { 'content-type': 'application/json' }, body: '{"value": ' }],
  ['an HTML error page', { status: 200, headers: { 'content-type': 'text/html' }, body: '<html><body>Sign in</body></html>' }],
  ['a value that is not a string', { status: 200, body: { value: 42 } }],
  ['a 10 MiB body', { status: 200, body: Buffer.alloc(10 * 1024 * 1024, 0x20) }],
])('%s: BAD_RESPONSE', async (_, reply) => {
  rs.setDefault(reply)
  const r = await manager().getSecretValue('paymentKey', rs.url)
  expect(r.error.code).toBe('BAD_RESPONSE')
})

test('a 302 to another host is not followed: the other host receives nothing', async () => {
  const elsewhere = await startServer({ status: 200, body: odata('stolen').body })
  try {
    rs.setDefault({ status: 302, headers: { location: `${elsewhere.url}steal` }, body: '' })
    const r = await manager().getSecretValue('paymentKey', rs.url)
    expect(r.error.code).toBe('BAD_RESPONSE')
    expect(r.error.status).toBe(302)
    expect(elsewhere.requests).toHaveLength(0)
  } finally {
    await elsewhere.close()
  }
})

test('token endpoint down: IDENTITY_UNAVAILABLE; slow: TIMEOUT', async () => {
  await identity.close()
  const down = await manager({ timeoutMs: 3000 }).getSecretValue('paymentKey', rs.url)
  expect(down.error.code).toBe('IDENTITY_UNAVAILABLE')
  expect(rs.requests).toHaveLength(0)

  identity = await startIdentity()
  identity.setDefault({ hang: true })
  process.env.IDENTITY_ENDPOINT = identity.endpoint
  const slow = await manager({ timeoutMs: 300 }).getSecretValue('paymentKey', rs.url)
  expect(slow.error.code).toBe('TIMEOUT')
  expect(rs.requests).toHaveLength(0)
})

test('the token endpoint\'s own error is carried, with its status', async () => {
  identity.setDefault({ status: 400, body: { error: 'invalid_request', error_description: 'Identity not found' } })
  const r = await manager().getSecretValue('paymentKey', rs.url)
  expect(r.error.code).toBe('IDENTITY_UNAVAILABLE')
  expect(r.error.status).toBe(400)
  expect(r.error.message).toMatch(/invalid_request: Identity not found/)
})

test('a token close to expiry is refreshed before use', async () => {
  identity.lifetimeSeconds = 2 // fresh for half its life: refreshed after about a second
  const m = manager()
  await m.getSecretValue('paymentKey', rs.url)
  await sleep(1100)
  m.invalidate()
  await m.getSecretValue('paymentKey', rs.url)
  expect(identity.requests).toHaveLength(2)
  expect(rs.requests.map((q) => q.headers.authorization)).toEqual(['Bearer SENTINEL-TOKEN-1', 'Bearer SENTINEL-TOKEN-2'])
})

test.each([
  ['a host not allowed', 'https://evil.example.com/'],
  ['a look-alike host', 'https://scu1.commerce.dynamics.com.evil.example/'],
  ['plain http to a real host', 'http://scu1.commerce.dynamics.com/'],
  ['user info', 'https://user:pw@scu1.commerce.dynamics.com/'],
])('%s: HOST_NOT_ALLOWED and no request at all, not even for a token', async (_, url) => {
  const r = await manager().getSecretValue('paymentKey', url)
  expect(r.error.code).toBe('HOST_NOT_ALLOWED')
  expect(r.error.message).toMatch(/nothing was sent/)
  expect(identity.requests).toHaveLength(0)
})

test('loopback over http needs allowInsecureLoopback', async () => {
  const r = await manager({ allowInsecureLoopback: false }).getSecretValue('paymentKey', rs.url)
  expect(r.error.code).toBe('HOST_NOT_ALLOWED')
  expect(rs.requests).toHaveLength(0)
  expect(identity.requests).toHaveLength(0)
})

test('a url that is not a url: INVALID_ARGUMENT', async () => {
  const r = await manager().getSecretValue('paymentKey', 'not a url')
  expect(r.error.code).toBe('INVALID_ARGUMENT')
})

test('Retail Server older than 9.24.2: NOT_CONFIGURED with the reason', async () => {
  process.env.MSDyn365Commerce_RSVERSION = '9.23.1'
  const r = await manager().getSecretValue('paymentKey', rs.url)
  expect(r.error.code).toBe('NOT_CONFIGURED')
  expect(r.error.message).toMatch(/9\.23\.1.*older than 9\.24\.2/)
  expect(rs.requests).toHaveLength(0)
})

test('two Retail Servers do not share values, and keys are case-sensitive', async () => {
  const other = await startRetailServer({ paymentKey: 'other-value', PaymentKey: 'upper' })
  try {
    const m = manager()
    expect((await m.getSecretValue('paymentKey', rs.url)).value).toBe('SENTINEL-VALUE')
    expect((await m.getSecretValue('paymentKey', other.url)).value).toBe('other-value')
    expect((await m.getSecretValue('PaymentKey', other.url)).value).toBe('upper')
  } finally {
    await other.close()
  }
})

test('a Retail Server blink: the last good value is served (stale), a 404 is never served stale', async () => {
  const m = manager({ cache: { refreshAfterSeconds: 0.02, maxAgeSeconds: 0.05, staleIfErrorSeconds: 60 }, timeoutMs: 2000 })
  expect((await m.getSecretValue('paymentKey', rs.url)).value).toBe('SENTINEL-VALUE')
  rs.setDefault({ status: 503, body: '' })
  await sleep(70)
  const r = await m.getSecretValue('paymentKey', rs.url)
  expect(r.value).toBe('SENTINEL-VALUE')
  expect(m.events.some((e) => e.type === 'stale' && e.code === 'UNAVAILABLE')).toBe(true)
  rs.setDefault(retailError(404, 'Gone', 'Removed.'))
  await sleep(30)
  await m.refresh('paymentKey', rs.url)
  const after = await m.getSecretValue('paymentKey', rs.url)
  expect(after.error.code).toBe('NOT_FOUND')
})

test('no token, identity header or value in any error, event or inspect', async () => {
  const m = manager()
  await m.getSecretValue('paymentKey', rs.url)
  rs.setDefault({ status: 401, body: '' })
  m.invalidate()
  const r = await m.getSecretValue('paymentKey', rs.url)
  expect(r.error.code).toBe('UNAUTHORIZED')
  for (const shown of [util.inspect(r, { depth: 9 }), JSON.stringify(r), r.error.stack, JSON.stringify(m.events), util.inspect(m)]) {
    expect(shown).not.toMatch(/SENTINEL/)
  }
})

describe('the command line in retail-server mode', () => {
  const run = (args) => runCli(args, { env: { IDENTITY_ENDPOINT: identity.endpoint, IDENTITY_HEADER: 'SENTINEL-IDENTITY-HEADER' } })

  test('validate --url prints Validation successful per key, or the error', async () => {
    const r = await run(['validate', 'paymentKey', 'missing', '--url', rs.url, '--allow-insecure-loopback'])
    expect(r.out).toMatch(/^paymentKey: Validation successful\nmissing: NOT_FOUND secret 'missing' was not found by Retail Server/)
    expect(r.code).toBe(1)
    expect(r.out + r.err).not.toMatch(/SENTINEL/)
  })

  test('doctor reports the identity it found and whether a token can be had, never the token', async () => {
    const r = await run(['doctor', '--allow-insecure-loopback'])
    expect(r.out).toMatch(/^source: retail-server\n  why: retail-server: an App Service managed identity is present/)
    expect(r.out).toMatch(/identity: auto -> app-service \(IDENTITY_ENDPOINT http:\/\/127\.0\.0\.1:\d+\/msi\/token\/\)/)
    expect(r.out).toMatch(/token: a token for https:\/\/commerce\.dynamics\.com was obtained; it expires in \d+ s \(not shown\)/)
    expect(r.out).toMatch(/identity variables set: IDENTITY_ENDPOINT, IDENTITY_HEADER \(values not shown\)/)
    expect(r.out).toMatch(/oun: 128 \(from the platform default\)/)
    expect(r.out + r.err).not.toMatch(/SENTINEL/)
    expect(r.code).toBe(0)
  })

  test('doctor says when no token can be had', async () => {
    identity.setDefault({ status: 500, body: { error: 'boom' } })
    const r = await run(['doctor', '--allow-insecure-loopback'])
    expect(r.out).toMatch(/token: cannot be had: IDENTITY_UNAVAILABLE/)
    expect(r.code).toBe(1)
  })
})
