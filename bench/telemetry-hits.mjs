// Bench (k): an awaited cache hit beside the `await Promise.resolve(map.get(k))` floor, in one
// Bench, in a process of its own: `absent` (@opentelemetry/api cannot be resolved here) or
// `sdk` (the real SDK registered: a BasicTracerProvider with a span processor, a MeterProvider
// with a reader). Prints { floorNs, hitNs, spans, upstreamRequests } as JSON.
import { Bench } from 'tinybench'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const mode = process.argv[2]
const Module = require('node:module')
if (mode === 'absent') {
  const resolve = Module._resolveFilename
  Module._resolveFilename = function (request, ...rest) {
    if (request === '@opentelemetry/api' || request.startsWith('@opentelemetry/')) {
      const e = new Error(`Cannot find module '${request}'`)
      e.code = 'MODULE_NOT_FOUND'
      throw e
    }
    return resolve.call(this, request, ...rest)
  }
}
let spans
let reader
if (mode === 'sdk') {
  const api = require('@opentelemetry/api')
  const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base')
  const { MeterProvider, InMemoryMetricExporter, PeriodicExportingMetricReader, AggregationTemporality } = require('@opentelemetry/sdk-metrics')
  spans = new InMemorySpanExporter()
  api.trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }))
  reader = new PeriodicExportingMetricReader({ exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE), exportIntervalMillis: 3600000 })
  api.metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }))
}
const { SecretManager } = require('../index.js')
const BATCH = 1000
const URL = 'https://scu1234ret.commerce.dynamics.com/'
const keys = Array.from({ length: 100 }, (_, i) => `key-${i}`)
const secrets = Object.fromEntries(keys.map((k, i) => [k, `value-${i}`]))
const manager = new SecretManager({ source: 'memory', secrets })
if ((manager._telemetry !== undefined) !== (mode === 'sdk')) throw new Error(`telemetry should be ${mode === 'sdk' ? 'on' : 'absent'}`)
await manager.prefetch(keys, URL)
const map = new Map(keys.map((k) => [k, { value: secrets[k], expiresOn: 1 }]))
const bench = new Bench({ time: 1500, warmupTime: 300 })
bench
  .add('floor', async () => {
    for (let i = 0; i < BATCH; i++) await Promise.resolve(map.get(keys[i % 100]))
  })
  .add('hit', async () => {
    for (let i = 0; i < BATCH; i++) await manager.getSecretValue(keys[i % 100], URL)
  })
await bench.run()
const ns = Object.fromEntries(bench.tasks.map((t) => [t.name, (t.result.latency.mean * 1e6) / BATCH]))
if (reader) await reader.forceFlush()
console.log(JSON.stringify({ floorNs: ns.floor, hitNs: ns.hit, spans: spans ? spans.getFinishedSpans().length : 0, upstreamRequests: manager.stats().upstreamRequests }))
