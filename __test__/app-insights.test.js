'use strict'
// Application Insights: the real @azure/monitor-opentelemetry-exporter (trace and metric
// exporters), registered as an app registers it, posting to a loopback ingestion endpoint
// (the connection string's IngestionEndpoint). The envelopes that arrive are checked, and no
// sentinel value or token may be anywhere in their bytes. Nothing leaves 127.0.0.1: statsbeat
// is off, offline storage is off, and any other connection fails the test.
//
// The exporter rewrites an http:// IngestionEndpoint to https:// (ConnectionStringParser.
// sanitizeUrl) and has no option against it, so the ingestion fake speaks https with a
// certificate for 127.0.0.1 signed by a CA made for this run (openssl), trusted through the
// exporter's client option `tlsOptions: { ca }` (core-rest-pipeline's tlsPolicy).
process.env.APPLICATIONINSIGHTS_STATSBEAT_DISABLED = 'true'
process.env.APPLICATION_INSIGHTS_NO_STATSBEAT = 'true'

const net = require('node:net')
const zlib = require('node:zlib')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const https = require('node:https')
const { execFileSync } = require('node:child_process')
const api = require('@opentelemetry/api')
const { BasicTracerProvider, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base')
const { MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics')
const { AsyncHooksContextManager } = require('@opentelemetry/context-async-hooks')
const { AzureMonitorTraceExporter, AzureMonitorMetricExporter } = require('@azure/monitor-opentelemetry-exporter')
const { SecretManager } = require('..')
const { startAad, startVault } = require('./fakes/azure')
const { isolateEnv, until } = require('./helpers')

isolateEnv(['AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_AUTHORITY_HOST', 'IDENTITY_ENDPOINT', 'MSI_ENDPOINT'])

// Any connection that is not to loopback is recorded (and refused).
const blocked = []
const connect = net.Socket.prototype.connect
net.Socket.prototype.connect = function guarded(...args) {
  const o = args[0] !== null && typeof args[0] === 'object' ? (Array.isArray(args[0]) ? args[0][0] : args[0]) : { host: args[1] }
  const host = o && o.host
  if (o && !o.path && host !== undefined && !/^(127\.|::1$|\[::1\]$|localhost$)/.test(host)) {
    blocked.push(host)
    throw new Error(`blocked a connection to ${host}: tests talk to loopback only`)
  }
  return connect.apply(this, args)
}

let ingestion
let vault
let aad
let tracerProvider
let meterProvider
let reader
const contextManager = new AsyncHooksContextManager().enable()

let certDir
function makeCertificates() {
  certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'csm-ai-'))
  const run = (args) => execFileSync('openssl', args, { cwd: certDir, stdio: ['ignore', 'ignore', 'pipe'] })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=commerce-secret-manager test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'])
  run(['req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=127.0.0.1'])
  fs.writeFileSync(path.join(certDir, 'leaf.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n')
  run(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'leaf.ext'])
  const read = (f) => fs.readFileSync(path.join(certDir, f), 'utf8')
  return { ca: read('ca.pem'), cert: read('leaf.pem'), key: read('leaf.key') }
}

// The ingestion endpoint (https on loopback): records each POST with its raw bytes.
async function startIngestion(certs) {
  const requests = []
  const sockets = new Set()
  const server = https.createServer({ cert: certs.cert, key: certs.key }, (req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const rawBuffer = Buffer.concat(chunks)
      requests.push({ method: req.method, path: req.url.split('?')[0], headers: req.headers, rawBuffer })
      const n = parse(rawBuffer, req.headers['content-encoding']).length
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ itemsReceived: n, itemsAccepted: n, errors: [] }))
    })
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    requests,
    url: `https://127.0.0.1:${server.address().port}/`,
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

beforeAll(async () => {
  const certs = makeCertificates()
  ingestion = await startIngestion(certs)
  const tlsOptions = { ca: certs.ca }
  const connectionString = `InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=${ingestion.url}`
  api.context.setGlobalContextManager(contextManager)
  tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(new AzureMonitorTraceExporter({ connectionString, disableOfflineStorage: true, tlsOptions }))],
  })
  api.trace.setGlobalTracerProvider(tracerProvider)
  reader = new PeriodicExportingMetricReader({
    exporter: new AzureMonitorMetricExporter({ connectionString, disableOfflineStorage: true, tlsOptions }),
    exportIntervalMillis: 3600000,
  })
  meterProvider = new MeterProvider({ readers: [reader] })
  api.metrics.setGlobalMeterProvider(meterProvider)
  aad = await startAad()
  vault = await startVault({ 'db-password': { value: 'SENTINEL-DB' } })
})

afterAll(async () => {
  await tracerProvider.shutdown()
  await meterProvider.shutdown()
  contextManager.disable()
  api.trace.disable()
  api.metrics.disable()
  api.context.disable()
  net.Socket.prototype.connect = connect
  await Promise.all([ingestion.close(), vault.close(), aad.close()])
  fs.rmSync(certDir, { recursive: true, force: true })
})

// The fake server keeps bodies as utf8; the exporter may gzip: keep the raw bytes too.
function parse(raw, encoding) {
  const text = encoding === 'gzip' ? zlib.gunzipSync(raw).toString('utf8') : raw.toString('utf8')
  const trimmed = text.trim()
  if (trimmed.startsWith('[')) return JSON.parse(trimmed)
  return trimmed.split('\n').filter(Boolean).map((l) => JSON.parse(l))
}

test('dependencies and metrics reach the ingestion endpoint as envelopes, nested under the page, with nothing secret in any byte', async () => {
  process.env.AZURE_AUTHORITY_HOST = aad.url
  process.env.AZURE_CLIENT_ID = 'app-id'
  // No tenant configured: the vault is challenged first, so the challenge is a dependency too.
  process.env.AZURE_CLIENT_SECRET = 'SENTINEL-CLIENT-SECRET'
  const m = new SecretManager({ vaultUrls: [vault.url], allowInsecureLoopback: true })
  const page = api.trace.getTracer('storefront')
  let pageSpan
  await page.startActiveSpan('GET /checkout', { kind: api.SpanKind.SERVER }, async (s) => {
    pageSpan = s
    const r = await m.getSecretValue('db-password', '')
    expect(r.error).toBeUndefined()
    expect(r.value).toBe('SENTINEL-DB')
    expect((await m.getSecretValue('missing', '')).error.code).toBe('NOT_FOUND')
    s.end()
  })
  await tracerProvider.forceFlush()
  await reader.forceFlush()
  await until(() => ingestion.requests.length >= 2, 10000)
  await m.close()

  const envelopes = []
  const bytes = []
  for (const q of ingestion.requests) {
    expect(q.method).toBe('POST')
    expect(q.path).toBe('/v2.1/track')
    const raw = q.rawBuffer
    const text = q.headers['content-encoding'] === 'gzip' ? zlib.gunzipSync(raw).toString('utf8') : raw.toString('utf8')
    bytes.push(raw.toString('latin1'), text)
    envelopes.push(...parse(raw, q.headers['content-encoding']))
  }
  const traceId = pageSpan.spanContext().traceId
  const deps = envelopes.filter((e) => e.data && e.data.baseType === 'RemoteDependencyData')
  const get = deps.filter((e) => e.data.baseData.name === 'commerce-secret-manager get')
  expect(get).toHaveLength(2)
  for (const e of get) {
    expect(e.iKey).toBe('00000000-0000-0000-0000-000000000000')
    expect(e.tags['ai.operation.id']).toBe(traceId)
    expect(e.tags['ai.operation.parentId']).toBe(pageSpan.spanContext().spanId)
    expect(e.data.baseData.duration).toMatch(/^00\.00:00:0\d\.\d+$|^00:00:0\d\.\d+$/)
    expect(e.data.baseData.properties['commerce_secret_manager.source']).toBe('key-vault')
  }
  const ok = get.find((e) => e.data.baseData.success === true)
  const failed = get.find((e) => e.data.baseData.success === false)
  expect(ok.data.baseData.properties['commerce_secret_manager.request_id']).toMatch(/^[0-9a-f-]{36}$/)
  // The exporter takes the semantic-convention attributes (error.type, server.address, the
  // status) into its own fields; ours stay as properties.
  expect(failed.data.baseData.properties).toMatchObject({ 'commerce_secret_manager.event': 'error', 'commerce_secret_manager.vault_index': '0' })
  expect(failed.data.baseData.properties['commerce_secret_manager.request_id']).toBe(vault.requestIds[vault.requestIds.length - 1])
  // The token request and the challenge, nested under the first read.
  const children = deps.filter((e) => /^commerce-secret-manager (token|challenge)$/.test(e.data.baseData.name))
  expect(children.map((e) => e.data.baseData.name).sort()).toEqual(['commerce-secret-manager challenge', 'commerce-secret-manager token'])
  for (const c of children) expect(c.tags['ai.operation.id']).toBe(traceId)

  const metrics = envelopes.filter((e) => e.data && e.data.baseType === 'MetricData')
  const names = new Set(metrics.map((e) => e.data.baseData.metrics[0].name))
  for (const n of ['commerce_secret_manager.upstream.requests', 'commerce_secret_manager.upstream.duration', 'commerce_secret_manager.cache.misses', 'commerce_secret_manager.cache.entries']) {
    expect(names).toContain(n)
  }
  const secretRequests = metrics.find(
    (e) => e.data.baseData.metrics[0].name === 'commerce_secret_manager.upstream.requests' && e.data.baseData.properties['commerce_secret_manager.operation'] === 'secret' && e.data.baseData.properties['commerce_secret_manager.outcome'] === 'success',
  )
  expect(secretRequests.data.baseData.properties).toMatchObject({ 'commerce_secret_manager.source': 'key-vault', 'server.address': '127.0.0.1' })
  const duration = metrics.find((e) => e.data.baseData.metrics[0].name === 'commerce_secret_manager.upstream.duration')
  expect(duration.data.baseData.metrics[0].value).toBeGreaterThan(0)
  expect(duration.data.baseData.metrics[0].value).toBeLessThan(10)

  const all = bytes.join('\n')
  for (const sentinel of ['SENTINEL', 'Bearer', 'client_secret']) expect(all).not.toContain(sentinel)
  expect(blocked).toEqual([])
}, 30000)
