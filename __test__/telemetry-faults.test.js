'use strict'
// A provider that throws (an exporter bug) never reaches a caller: getSecretValue neither throws
// nor rejects, the constructor builds (found by an attacker's read, issue 21).
const api = require('@opentelemetry/api')
const { SecretManager } = require('..')

const boom = () => {
  throw new Error('exporter bug')
}
const span = { setAttribute: boom, setAttributes: boom, addEvent: boom, setStatus: boom, end: boom, recordException: boom, isRecording: () => true, spanContext: () => ({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 }), updateName: boom }
const tracer = { startSpan: () => span, startActiveSpan: boom }

afterEach(() => {
  api.trace.disable()
})

test.each([
  ['startSpan throws', { getTracer: () => ({ startSpan: boom, startActiveSpan: boom }) }],
  ['every span method throws', { getTracer: () => tracer }],
])('%s: answers come as ever', async (_, provider) => {
  api.trace.setGlobalTracerProvider(provider)
  const m = new SecretManager({ source: 'memory', secrets: { k: 'v' } })
  try {
    const r = await m.getSecretValue('k', '')
    expect(r.value).toBe('v')
    expect((await m.refresh('k', '')).value).toBe('v')
    expect((await m.getSecretValue('k', '')).value).toBe('v')
  } finally {
    await m.close()
  }
})
