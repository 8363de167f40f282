'use strict'
// OpenTelemetry with the real SDK: a BasicTracerProvider with an InMemorySpanExporter and a
// MeterProvider with an InMemoryMetricExporter, registered globally (as an app does), an
// AsyncHooksContextManager for the caller's active span. Loopback fakes only.
const api = require('@opentelemetry/api')
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base')
const { MeterProvider, InMemoryMetricExporter, PeriodicExportingMetricReader, AggregationTemporality } = require('@opentelemetry/sdk-metrics')
const { AsyncHooksContextManager } = require('@opentelemetry/context-async-hooks')
const diagnostics = require('node:diagnostics_channel')
const { SecretManager } = require('..')
const { startServer } = require('./fakes/server')
const { startAad, startVault, startIdentity, startRetailServer } = require('./fakes/azure')
const { isolateEnv, control, sleep, until } = require('./helpers')

isolateEnv(['IDENTITY_ENDPOINT', 'IDENTITY_HEADER', 'MSI_ENDPOINT', 'MSI_SECRET', 'AZURE_CLIENT_ID', 'AZURE_TENANT_ID',
  'AZURE_CLIENT_SECRET', 'AZURE_AUTHORITY_HOST', 'COMMERCE_SECRETS_VAULT_URLS', 'NODE_ENV', 'COMMERCE_SECRETS_SOURCE'])

const spanExporter = new InMemorySpanExporter()
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3600000 })
const contextManager = new AsyncHooksContextManager().enable()
api.context.setGlobalContextManager(contextManager)
api.trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spanExporter)] }))
const meterProvider = new MeterProvider({ readers: [reader] })
api.metrics.setGlobalMeterProvider(meterProvider)

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/
const URL = 'https://scu1234ret.commerce.dynamics.com/'

let aad
let vault
const open = []
const closers = []

beforeEach(async () => {
  spanExporter.reset()
  aad = await startAad()
  vault = await startVault({ 'db-password': { value: 'SENTINEL-DB' }, other: { value: 'SENTINEL-OTHER' } })
  process.env.AZURE_AUTHORITY_HOST = aad.url
  process.env.AZURE_CLIENT_ID = 'app-id'
  process.env.AZURE_TENANT_ID = 'tenant-from-challenge'
  process.env.AZURE_CLIENT_SECRET = 'SENTINEL-CLIENT-SECRET'
})

afterEach(async () => {
  for (const m of open.splice(0)) await m.close()
  for (const c of closers.splice(0)) await c.close()
  await aad.close()
  await vault.close()
})

afterAll(async () => {
  await meterProvider.shutdown()
  contextManager.disable()
  api.trace.disable()
  api.metrics.disable()
  api.context.disable()
})

function manager(options = {}) {
  const events = []
  const m = new SecretManager({ vaultUrls: [vault.url], allowInsecureLoopback: true, onEvent: (e) => events.push(e), ...options })
  m.events = events
  open.push(m)
  return m
}

const spans = () => spanExporter.getFinishedSpans()
// Everything a span exporter would see of the spans, as text.
const spanBytes = () =>
  JSON.stringify(
    spans().map((s) => ({ name: s.name, kind: s.kind, attributes: s.attributes, events: s.events, status: s.status, links: s.links, resource: s.resource.attributes, scope: s.instrumentationScope })),
  )
const named = (name) => spans().filter((s) => s.name === name)
const parentOf = (s) => (s.parentSpanContext ? s.parentSpanContext.spanId : s.parentSpanId)

// The latest cumulative export: { name: { unit, points: [{ attributes, value }] } }.
async function collect() {
  await reader.forceFlush()
  const all = metricExporter.getMetrics()
  const latest = all[all.length - 1]
  const out = {}
  for (const scope of latest.scopeMetrics) {
    if (scope.scope.name !== 'commerce-secret-manager') continue
    expect(scope.scope.version).toBe(require('../package.json').version)
    for (const metric of scope.metrics) {
      out[metric.descriptor.name] = { unit: metric.descriptor.unit, type: metric.descriptor.type, points: metric.dataPoints }
    }
  }
  return out
}
const sum = (metric, match) =>
  (metric ? metric.points : [])
    .filter((p) => Object.keys(match).every((k) => p.attributes[k] === match[k]))
    .reduce((n, p) => n + (typeof p.value === 'number' ? p.value : p.value.count), 0)

test('a miss under the page\'s span: a CLIENT span child of it, challenge and token as its children; every request carries a client request id and the span\'s traceparent; a hit makes no span', async () => {
  // No tenant configured: the vault is challenged first (with one, the first request carries
  // the token and there is no challenge span).
  delete process.env.AZURE_TENANT_ID
  const m = manager()
  const page = api.trace.getTracer('storefront')
  let pageSpan
  await page.startActiveSpan('GET /checkout', { kind: api.SpanKind.SERVER }, async (s) => {
    pageSpan = s
    const r = await m.getSecretValue('db-password', '')
    expect(r.value).toBe('SENTINEL-DB')
    s.end()
  })
  const [read] = named('commerce-secret-manager get')
  expect(read).toBeDefined()
  expect(read.kind).toBe(api.SpanKind.CLIENT)
  expect(read.spanContext().traceId).toBe(pageSpan.spanContext().traceId)
  expect(parentOf(read)).toBe(pageSpan.spanContext().spanId)
  expect(read.attributes).toMatchObject({
    'commerce_secret_manager.source': 'key-vault',
    'commerce_secret_manager.operation': 'secret',
    'commerce_secret_manager.event': 'miss',
    'commerce_secret_manager.vault_index': 0,
    'server.address': '127.0.0.1',
    'http.response.status_code': 200,
    'commerce_secret_manager.request_id': vault.requestIds[vault.requestIds.length - 1],
  })
  expect(read.attributes['commerce_secret_manager.client_request_id']).toMatch(UUID_V4)
  expect(read.attributes).not.toHaveProperty('commerce_secret_manager.secret_name')
  expect(read.status.code).not.toBe(api.SpanStatusCode.ERROR)

  const challenge = named('commerce-secret-manager challenge')[0]
  const token = named('commerce-secret-manager token')[0]
  for (const child of [challenge, token]) {
    expect(child.kind).toBe(api.SpanKind.CLIENT)
    expect(parentOf(child)).toBe(read.spanContext().spanId)
    expect(child.attributes['commerce_secret_manager.client_request_id']).toMatch(UUID_V4)
  }
  expect(challenge.attributes).toMatchObject({ 'http.response.status_code': 401, 'commerce_secret_manager.outcome': 'success', 'commerce_secret_manager.vault_index': 0 })
  expect(token.attributes).toMatchObject({ 'http.response.status_code': 200, 'commerce_secret_manager.operation': 'token', 'server.address': '127.0.0.1' })

  // On the wire: the read's own span as parent, and a fresh client request id per request.
  const expected = `00-${read.spanContext().traceId}-${read.spanContext().spanId}-01`
  const sent = [...vault.requests, ...aad.requests]
  expect(sent).toHaveLength(3)
  for (const q of sent) {
    expect(q.headers.traceparent).toBe(expected)
    expect(q.headers['x-ms-client-request-id']).toMatch(UUID_V4)
  }
  expect(new Set(sent.map((q) => q.headers['x-ms-client-request-id'])).size).toBe(3)

  // A hit: no span, no request.
  const before = spans().length
  expect((await m.getSecretValue('db-password', '')).value).toBe('SENTINEL-DB')
  expect(spans().length).toBe(before)

  const metrics = await collect()
  expect(metrics['commerce_secret_manager.upstream.requests'].unit).toBe('{request}')
  for (const operation of ['challenge', 'token', 'secret']) {
    expect(sum(metrics['commerce_secret_manager.upstream.requests'], { 'commerce_secret_manager.operation': operation, 'commerce_secret_manager.outcome': 'success' })).toBeGreaterThanOrEqual(1)
  }
  const duration = metrics['commerce_secret_manager.upstream.duration']
  expect(duration.unit).toBe('s')
  const secretDuration = duration.points.find((p) => p.attributes['commerce_secret_manager.operation'] === 'secret' && p.attributes['server.address'] === '127.0.0.1')
  expect(secretDuration.value.count).toBeGreaterThanOrEqual(1)
  expect(secretDuration.value.sum).toBeGreaterThan(0)
  expect(secretDuration.value.sum).toBeLessThan(10)
  expect(sum(metrics['commerce_secret_manager.cache.hits'], { 'commerce_secret_manager.source': 'key-vault' })).toBeGreaterThanOrEqual(1)
  expect(sum(metrics['commerce_secret_manager.cache.misses'], { 'commerce_secret_manager.source': 'key-vault' })).toBeGreaterThanOrEqual(1)
  expect(metrics['commerce_secret_manager.cache.entries'].unit).toBe('{entry}')
  expect(sum(metrics['commerce_secret_manager.cache.entries'], { 'commerce_secret_manager.source': 'key-vault' })).toBeGreaterThanOrEqual(1)
  expect(metrics['commerce_secret_manager.reads.in_flight'].unit).toBe('{read}')
  expect(Object.keys(metrics)).toContain('commerce_secret_manager.cache.stale_answers')

  // Events carry the vault, its place and the store's request id.
  expect(m.events.find((e) => e.type === 'miss')).toMatchObject({ vault: '127.0.0.1', vaultIndex: 0, requestId: vault.requestIds[vault.requestIds.length - 1] })
})

test('secretNames puts the key on spans; telemetry: false makes none and sends no traceparent (the client request id still goes)', async () => {
  await manager({ telemetry: { secretNames: true } }).getSecretValue('db-password', '')
  expect(named('commerce-secret-manager get')[0].attributes['commerce_secret_manager.secret_name']).toBe('db-password')
  spanExporter.reset()
  vault.requests.length = 0
  await manager({ telemetry: false }).getSecretValue('other', '')
  expect(spans()).toHaveLength(0)
  expect(vault.requests.length).toBeGreaterThan(0)
  for (const q of vault.requests) {
    expect(q.headers.traceparent).toBeUndefined()
    expect(q.headers['x-ms-client-request-id']).toMatch(UUID_V4)
  }
})

test.each([
  [true, 'option `telemetry` must be false or an object (got a boolean)'],
  ['on', 'option `telemetry` must be false or an object (got a string)'],
  [{ secretNames: 'yes' }, 'option `telemetry.secretNames` must be a boolean (got a string)'],
  [{ names: true }, 'unknown option `telemetry.names`'],
])('telemetry: %p is a TypeError naming the option', (telemetry, message) => {
  expect(() => new SecretManager({ source: 'memory', secrets: {}, telemetry })).toThrow(TypeError)
  expect(() => new SecretManager({ source: 'memory', secrets: {}, telemetry })).toThrow(message)
})

test('two vaults: the first says NOT_FOUND, the second serves: vault index 1 on the span, the event and the metrics; the first as a span event', async () => {
  const first = await startVault({})
  closers.push(first)
  const m = manager({ vaultUrls: [first.url, vault.url] })
  expect((await m.getSecretValue('db-password', '')).value).toBe('SENTINEL-DB')
  const [read] = named('commerce-secret-manager get')
  expect(read.attributes).toMatchObject({ 'commerce_secret_manager.vault_index': 1, 'http.response.status_code': 200 })
  const fallback = read.events.find((e) => e.name === 'upstream request')
  expect(fallback.attributes).toMatchObject({ 'commerce_secret_manager.vault_index': 0, 'http.response.status_code': 404, 'error.type': 'NOT_FOUND' })
  expect(fallback.attributes['commerce_secret_manager.request_id']).toBe(first.requestIds[first.requestIds.length - 1])
  expect(m.events.find((e) => e.type === 'miss')).toMatchObject({ vault: '127.0.0.1', vaultIndex: 1 })
  const metrics = await collect()
  const requests = metrics['commerce_secret_manager.upstream.requests']
  expect(sum(requests, { 'commerce_secret_manager.vault_index': 0, 'commerce_secret_manager.operation': 'secret', 'error.type': 'NOT_FOUND' })).toBeGreaterThanOrEqual(1)
  expect(sum(requests, { 'commerce_secret_manager.vault_index': 1, 'commerce_secret_manager.operation': 'secret', 'commerce_secret_manager.outcome': 'success' })).toBeGreaterThanOrEqual(1)
})

test('throttled (429 with Retry-After): the retry is a span event, then the value; still 429: THROTTLED with the request id in the error, the span and the event', async () => {
  const m = manager({ timeoutMs: 5000 })
  await m.getSecretValue('other', '') // learn the challenge
  spanExporter.reset()
  vault.queue({ status: 429, headers: { 'retry-after': '1', 'x-ms-request-id': 'throttle-0001' }, body: { error: { code: 'Throttled', message: 'slow down' } } })
  const started = Date.now()
  expect((await m.getSecretValue('db-password', '')).value).toBe('SENTINEL-DB')
  expect(Date.now() - started).toBeGreaterThanOrEqual(950)
  const [ok] = named('commerce-secret-manager get')
  const retry = ok.events.find((e) => e.name === 'retry')
  expect(retry.attributes).toMatchObject({ 'http.response.status_code': 429, 'error.type': 'THROTTLED', 'commerce_secret_manager.attempt': 1 })
  expect(retry.attributes['commerce_secret_manager.retry_wait']).toBeGreaterThanOrEqual(1)

  spanExporter.reset()
  vault.setDefault({ status: 429, headers: { 'retry-after-ms': '50', 'x-ms-request-id': 'throttle-0002' }, body: { error: { code: 'Throttled', message: 'slow down' } } })
  const r = await m.getSecretValue('throttled-key', '')
  expect(r.error.code).toBe('THROTTLED')
  expect(r.error.requestId).toBe('throttle-0002')
  expect(r.error.message).toMatch(/\(request id throttle-0002\)$/)
  const [failed] = named('commerce-secret-manager get')
  expect(failed.status.code).toBe(api.SpanStatusCode.ERROR)
  expect(failed.status.message).toBe('the store throttled the requests (429), after honouring Retry-After')
  expect(failed.attributes).toMatchObject({ 'error.type': 'THROTTLED', 'http.response.status_code': 429, 'commerce_secret_manager.request_id': 'throttle-0002' })
  expect(failed.events.filter((e) => e.name === 'retry')).toHaveLength(2)
  expect(m.events.find((e) => e.type === 'error')).toMatchObject({
    code: 'THROTTLED', requestId: 'throttle-0002', vault: '127.0.0.1', vaultIndex: 0, reason: 'the store throttled the requests (429), after honouring Retry-After',
  })
  const metrics = await collect()
  expect(sum(metrics['commerce_secret_manager.upstream.requests'], { 'commerce_secret_manager.outcome': 'throttled', 'error.type': 'THROTTLED' })).toBeGreaterThanOrEqual(1)
})

test('Retail Server: the token as a child span, request-id read from its reply into the span and into a NOT_FOUND error', async () => {
  const identity = await startIdentity()
  const retail = await startRetailServer({ present: 'SENTINEL-RS' })
  closers.push(identity, retail)
  process.env.IDENTITY_ENDPOINT = identity.endpoint
  process.env.IDENTITY_HEADER = 'SENTINEL-IDENTITY-HEADER'
  const m = manager({ source: 'retail-server', vaultUrls: undefined })
  expect((await m.getSecretValue('present', retail.url)).value).toBe('SENTINEL-RS')
  const [read] = named('commerce-secret-manager get')
  expect(read.attributes).toMatchObject({ 'commerce_secret_manager.source': 'retail-server', 'commerce_secret_manager.request_id': retail.requestIds[0], 'http.response.status_code': 200 })
  expect(parentOf(named('commerce-secret-manager token')[0])).toBe(read.spanContext().spanId)
  for (const q of [...identity.requests, ...retail.requests]) expect(q.headers['x-ms-client-request-id']).toMatch(UUID_V4)
  const missing = await m.getSecretValue('absent', retail.url)
  expect(missing.error.code).toBe('NOT_FOUND')
  expect(missing.error.requestId).toBe(retail.requestIds[1])
  expect(missing.error.message).toContain(`(request id ${retail.requestIds[1]})`)
  expect(m.events.find((e) => e.type === 'error')).toMatchObject({ code: 'NOT_FOUND', requestId: retail.requestIds[1], reason: 'the secret does not exist in the store' })
})

test('a stale answer: the age histogram (seconds), the stale event with its reason, the counter', async () => {
  const m = new SecretManager({ source: 'memory', secrets: { k: 'v1' }, cache: { refreshAfterSeconds: 0.02, maxAgeSeconds: 0.05, staleIfErrorSeconds: 60 } })
  open.push(m)
  const events = []
  const listener = (e) => events.push(e)
  diagnostics.subscribe('commerce-secret-manager', listener)
  try {
    await m.getSecretValue('k', URL)
    control(m, { key: 'k', fault: 'UNAVAILABLE' })
    await sleep(120)
    const r = await m.getSecretValue('k', URL)
    expect(r.value).toBe('v1')
    expect(events.find((e) => e.type === 'stale')).toMatchObject({ code: 'UNAVAILABLE', reason: expect.stringMatching(/could not be reached/) })
  } finally {
    diagnostics.unsubscribe('commerce-secret-manager', listener)
  }
  const [read] = named('commerce-secret-manager get').filter((s) => s.attributes['commerce_secret_manager.stale'])
  expect(read.attributes).toMatchObject({ 'error.type': 'UNAVAILABLE', 'commerce_secret_manager.event': 'stale' })
  const metrics = await collect()
  const age = metrics['commerce_secret_manager.stale.age']
  expect(age.unit).toBe('s')
  const point = age.points.find((p) => p.attributes['commerce_secret_manager.source'] === 'memory' && p.attributes['error.type'] === 'UNAVAILABLE')
  expect(point.value.count).toBeGreaterThanOrEqual(1)
  expect(point.value.min).toBeGreaterThan(0)
  expect(point.value.max).toBeLessThan(5)
  expect(sum(metrics['commerce_secret_manager.cache.stale_answers'], { 'commerce_secret_manager.source': 'memory' })).toBeGreaterThanOrEqual(1)
})

test('a background refresh is a root span named to be filtered, and the refresh counter says unchanged / changed; an explicit refresh is a child span', async () => {
  const m = new SecretManager({ source: 'memory', secrets: { k: 'v1' }, cache: { refreshAfterSeconds: 0.05 } })
  open.push(m)
  await m.getSecretValue('k', URL)
  await sleep(120)
  await m.getSecretValue('k', URL) // due: answered, and refreshed in the background
  await until(() => {
    m.stats() // the sync that delivers background events
    return named('commerce-secret-manager background refresh').length > 0
  })
  const [bg] = named('commerce-secret-manager background refresh')
  expect(parentOf(bg)).toBeUndefined()
  expect(bg.kind).toBe(api.SpanKind.CLIENT)
  expect(bg.attributes).toMatchObject({ 'commerce_secret_manager.background': true, 'commerce_secret_manager.source': 'memory' })
  expect(bg.status.code).not.toBe(api.SpanStatusCode.ERROR)

  control(m, { key: 'k', value: 'v2' })
  const tracer = api.trace.getTracer('app')
  await tracer.startActiveSpan('admin rotate', async (s) => {
    expect((await m.refresh('k', URL)).value).toBe('v2')
    s.end()
  })
  const [explicit] = named('commerce-secret-manager refresh')
  expect(parentOf(explicit)).toBe(named('admin rotate')[0].spanContext().spanId)
  expect(explicit.attributes['commerce_secret_manager.event']).toBe('refresh')
  const metrics = await collect()
  const refreshes = metrics['commerce_secret_manager.refreshes']
  expect(sum(refreshes, { 'commerce_secret_manager.source': 'memory', 'commerce_secret_manager.result': 'unchanged' })).toBeGreaterThanOrEqual(1)
  expect(sum(refreshes, { 'commerce_secret_manager.source': 'memory', 'commerce_secret_manager.result': 'changed' })).toBeGreaterThanOrEqual(1)
})

test('a failed refresh counts as failed, with error.type', async () => {
  const m = new SecretManager({ source: 'memory', secrets: { k: 'v1' } })
  open.push(m)
  await m.getSecretValue('k', URL)
  control(m, { key: 'k', fault: 'FORBIDDEN' })
  expect((await m.refresh('k', URL)).error.code).toBe('FORBIDDEN')
  const metrics = await collect()
  expect(sum(metrics['commerce_secret_manager.refreshes'], { 'commerce_secret_manager.result': 'failed', 'error.type': 'FORBIDDEN' })).toBeGreaterThanOrEqual(1)
  expect(named('commerce-secret-manager refresh')[0].status.code).toBe(api.SpanStatusCode.ERROR)
})

test('a malformed traceparent from JS is not sent (checked in the addon)', async () => {
  const m = manager({ telemetry: false })
  const { native } = m[Symbol.for('commerce-secret-manager.internals')]()
  await native.fetch('db-password', '', false, [], '00-XYZ-bad\r\nx-injected: 1')
  await native.fetch('other', '', false, [], '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')
  const withHeader = vault.requests.filter((q) => q.headers.traceparent !== undefined)
  expect(withHeader.length).toBeGreaterThan(0)
  for (const q of withHeader) expect(q.headers.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')
  expect(vault.requests.filter((q) => q.path === '/secrets/db-password').every((q) => q.headers.traceparent === undefined)).toBe(true)
  expect(vault.requests.every((q) => q.headers['x-injected'] === undefined)).toBe(true)
})

test('a store echoing a credential as its request id gets none', async () => {
  const echo = await startServer()
  closers.push(echo)
  echo.setDefault((req, res) => {
    const auth = req.headers.authorization
    if (!auth) {
      res.writeHead(401, { 'www-authenticate': `Bearer authorization="https://login.microsoftonline.com/tenant-from-challenge", resource="https://vault.azure.net"` })
      return res.end()
    }
    res.writeHead(404, { 'content-type': 'application/json', 'x-ms-request-id': auth.slice(7) })
    res.end(JSON.stringify({ error: { code: 'SecretNotFound', message: `echo ${auth}` } }))
  })
  const m = manager({ vaultUrls: [echo.url] })
  const r = await m.getSecretValue('db-password', '')
  expect(r.error.code).toBe('NOT_FOUND')
  expect(r.error.requestId).toBeUndefined()
  expect(spanBytes()).not.toContain('SENTINEL')
  expect(r.error.message).not.toContain('SENTINEL')
})
