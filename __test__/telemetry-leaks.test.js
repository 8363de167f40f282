'use strict'
// The leak audit: sentinel values, tokens and credentials through every source and failure
// mode, with the real SDK registered (spans, metrics) and every event listener on; none may be
// in any exported byte. Fakes echo what they were sent back in their error text and headers.
const api = require('@opentelemetry/api')
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base')
const { MeterProvider, InMemoryMetricExporter, PeriodicExportingMetricReader, AggregationTemporality } = require('@opentelemetry/sdk-metrics')
const { AsyncHooksContextManager } = require('@opentelemetry/context-async-hooks')
const diagnostics = require('node:diagnostics_channel')
const fs = require('node:fs')
const path = require('node:path')
const { SecretManager } = require('..')
const { startServer } = require('./fakes/server')
const { startAad, startVault, startIdentity, startRetailServer } = require('./fakes/azure')
const { isolateEnv, control, sleep, tempDir } = require('./helpers')

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

afterAll(async () => {
  await meterProvider.shutdown()
  contextManager.disable()
  api.trace.disable()
  api.metrics.disable()
  api.context.disable()
})

const events = []
const listener = (e) => events.push(e)
const closers = []

afterEach(async () => {
  for (const c of closers.splice(0)) await c.close()
})

// A vault that answers every failure mode by name, quoting what it was sent (the token too) in
// its error text, with the token as a request id when asked to.
async function hostileVault() {
  const v = await startVault({ ok: { value: 'SENTINEL-VALUE-KV' }, disabled: { value: 'SENTINEL-VALUE-DISABLED', enabled: false } })
  const plain = v.requests
  const base = v
  const echoing = await startServer()
  echoing.setDefault((req, res) => {
    const auth = req.headers.authorization || ''
    if (!auth) {
      res.writeHead(401, { 'www-authenticate': 'Bearer authorization="https://login.microsoftonline.com/tenant-from-challenge", resource="https://vault.azure.net"' })
      return res.end()
    }
    const name = req.url.split('?')[0].split('/')[2]
    const said = { error: { code: 'Echo', message: `you sent ${auth} for ${name} SENTINEL-UPSTREAM-TEXT` } }
    const status = { 'e-500': 500, 'e-429': 429, 'e-401': 401, 'e-403': 403, 'e-404': 404, 'e-400': 400 }[name]
    if (name === 'e-big') {
      res.writeHead(200, { 'content-type': 'application/json' })
      return res.end(JSON.stringify({ value: 'SENTINEL-VALUE-BIG' + 'x'.repeat(1100 * 1024) }))
    }
    if (name === 'e-notjson') {
      res.writeHead(200, { 'content-type': 'text/html' })
      return res.end(`<html>SENTINEL-UPSTREAM-TEXT ${auth}</html>`)
    }
    if (name === 'e-reset') return req.socket.destroy()
    if (name === 'ok-echo') {
      res.writeHead(200, { 'content-type': 'application/json', 'x-ms-request-id': auth.slice(7), 'retry-after': '0' })
      return res.end(JSON.stringify({ value: 'SENTINEL-VALUE-ECHO', id: `${echoing.url}secrets/ok-echo/v1` }))
    }
    res.writeHead(status || 418, { 'content-type': 'application/json', 'retry-after-ms': '10', 'x-ms-request-id': auth.slice(7) })
    res.end(JSON.stringify(said))
  })
  return { plain: base, echoing, plainRequests: plain }
}

// Every exported byte: spans (all fields an exporter reads), metrics (the whole export), events.
async function exportedBytes() {
  await reader.forceFlush()
  const spans = spanExporter.getFinishedSpans().map((s) => ({
    name: s.name, kind: s.kind, attributes: s.attributes, events: s.events, status: s.status, links: s.links,
    resource: s.resource.attributes, scope: s.instrumentationScope, parent: s.parentSpanContext, context: s.spanContext(),
  }))
  const metrics = metricExporter.getMetrics().map((rm) => rm.scopeMetrics)
  return JSON.stringify({ spans, metrics, events })
}

const SENTINELS = [/SENTINEL/i, /Bearer /, /client_secret/, /x-identity-header/i]

test('no value, token, credential or upstream text in any span, metric or event, whatever the source and the failure', async () => {
  diagnostics.subscribe('commerce-secret-manager', listener)
  try {
    // Key Vault, client secret identity.
    const aad = await startAad()
    closers.push(aad)
    const { plain, echoing } = await hostileVault()
    closers.push(plain, echoing)
    process.env.AZURE_AUTHORITY_HOST = aad.url
    process.env.AZURE_CLIENT_ID = 'app-id'
    process.env.AZURE_TENANT_ID = 'tenant-from-challenge'
    process.env.AZURE_CLIENT_SECRET = 'SENTINEL-CLIENT-SECRET'
    for (const secretNames of [false, true]) {
      const kv = new SecretManager({ vaultUrls: [echoing.url, plain.url], allowInsecureLoopback: true, timeoutMs: 3000, onEvent: listener, telemetry: { secretNames } })
      for (const k of ['ok', 'disabled', 'missing', 'ok-echo', 'e-500', 'e-429', 'e-401', 'e-403', 'e-404', 'e-400', 'e-big', 'e-notjson', 'e-reset']) {
        const r = await kv.getSecretValue(k, '')
        expect(r.error === undefined || typeof r.error.code === 'string').toBe(true)
      }
      await kv.refresh('ok', '')
      await kv.close()
    }
    // AAD refusing the client secret (its error text quotes it).
    aad.expect = { clientSecret: 'something-else' }
    const refused = new SecretManager({ vaultUrls: [plain.url], allowInsecureLoopback: true, onEvent: listener })
    expect((await refused.getSecretValue('ok', '')).error.code).toBe('IDENTITY_UNAVAILABLE')
    await refused.close()

    // Retail Server with the App Service identity; the identity failing; a hostile Retail Server.
    const identity = await startIdentity()
    const retail = await startRetailServer({ present: 'SENTINEL-VALUE-RS' })
    closers.push(identity, retail)
    process.env.IDENTITY_ENDPOINT = identity.endpoint
    process.env.IDENTITY_HEADER = 'SENTINEL-IDENTITY-HEADER'
    const rs = new SecretManager({ source: 'retail-server', allowInsecureLoopback: true, onEvent: listener, timeoutMs: 2000 })
    await rs.getSecretValue('present', retail.url)
    await rs.getSecretValue('absent', retail.url)
    retail.queue({ status: 500, headers: { 'request-id': 'SENTINEL-TOKEN-1' }, body: { ErrorResourceId: 'X', LocalizedMessage: 'SENTINEL-UPSTREAM-TEXT' } })
    retail.queue({ status: 500, body: 'SENTINEL-UPSTREAM-TEXT' }, { status: 500, body: 'SENTINEL-UPSTREAM-TEXT' })
    await rs.getSecretValue('present2', retail.url)
    identity.setDefault({ status: 500, body: { error: 'SENTINEL-UPSTREAM-TEXT SENTINEL-IDENTITY-HEADER' } })
    await rs.getSecretValue('again', 'https://other.commerce.dynamics.com/')
    await rs.getSecretValue('denied', 'https://evil.example.com/') // HOST_NOT_ALLOWED: nothing sent
    await rs.close()

    // Memory (faults, stale, background refresh) and local (missing, invalid, present).
    const mem = new SecretManager({ source: 'memory', secrets: { k: 'SENTINEL-VALUE-MEM' }, cache: { refreshAfterSeconds: 0.02, maxAgeSeconds: 0.05 }, onEvent: listener, telemetry: { secretNames: true } })
    await mem.getSecretValue('k', '')
    for (const code of ['UNAVAILABLE', 'THROTTLED', 'FORBIDDEN', 'NOT_FOUND']) {
      control(mem, { key: 'k', fault: code })
      await sleep(70)
      await mem.getSecretValue('k', '')
      await mem.refresh('k', '')
      control(mem, { key: 'k', fault: '', value: 'SENTINEL-VALUE-MEM-2' })
      await mem.getSecretValue('k', '')
    }
    mem.stats()
    await mem.close()
    const { dir } = tempDir()
    fs.writeFileSync(path.join(dir, 'secrets.json'), JSON.stringify({ a: 'SENTINEL-VALUE-LOCAL' }))
    fs.writeFileSync(path.join(dir, 'bad.json'), '{"a": "SENTINEL-VALUE-LOCAL-BAD", oops}')
    for (const file of ['secrets.json', 'bad.json', 'absent.json']) {
      const local = new SecretManager({ source: 'local', secretsFile: path.join(dir, file), watch: false, onEvent: listener })
      await local.getSecretValue('a', '')
      await local.refresh('a', '')
      await local.close()
    }
  } finally {
    diagnostics.unsubscribe('commerce-secret-manager', listener)
  }

  const bytes = await exportedBytes()
  // It exported something of every kind.
  expect(bytes).toContain('commerce-secret-manager get')
  expect(bytes).toContain('commerce-secret-manager token')
  expect(bytes).toContain('commerce_secret_manager.upstream.requests')
  expect(events.length).toBeGreaterThan(20)
  for (const s of SENTINELS) expect(bytes).not.toMatch(s)
}, 60000)
