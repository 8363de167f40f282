'use strict'
// The test double under Jest's node environment: every fault and control (the same suite as
// testing-double-jsdom.test.js), and one parity transcript: a scripted sequence of calls run
// against the addon's memory source and against createTestSecretManager, whose transcripts
// (result shapes, error codes and messages, events, diagnostics_channel messages) must be equal.
const dc = require('node:diagnostics_channel')
const main = require('..')
const testing = require('../testing.js')
const { faultSuite } = require('./fakes/double-faults')
const { control, URL } = require('./helpers')

faultSuite()

const SECRETS = { paymentApiKey: 'pay-1', signingKey: 'sign-1' }

// How each kind is driven from outside: the addon's test hooks, the double's controls.
const kinds = {
  addon: {
    make: (options) =>
      options !== null && typeof options === 'object' && !Array.isArray(options)
        ? main.createSecretManager(Object.assign({ source: 'memory', secrets: SECRETS }, options))
        : main.createSecretManager(options),
    rotate: (m, key, value) => control(m, { key, value }),
    fault: (m, key, code) => control(m, { key, fault: code }),
    clear: (m, key) => control(m, { key, fault: '' }),
  },
  double: {
    make: (options) => testing.createTestSecretManager(SECRETS, options),
    rotate: (m, key, value) => m.rotate(key, value),
    // The script knows how many reads each fault lasts; the addon's lasts until cleared.
    fault: (m, key, code, times) => m.fail(key, code, { times }),
    clear: () => undefined,
  },
}

function shape(r) {
  const out = { value: r.value, expires: r.expiresOn === 0 ? 0 : Math.abs(r.expiresOn - Date.now() / 1000 - 86400) <= 2 ? 'maxAge' : 'other' }
  if (r.id !== undefined) out.id = r.id
  if (r.error !== undefined) {
    out.error = { code: r.error.code, message: r.error.message, secretKey: r.error.secretKey, status: r.error.status }
    out.isError = r.error instanceof Error
  }
  return out
}
const settle = (p) =>
  Promise.resolve()
    .then(p)
    .then(
      (v) => ({ ok: Array.isArray(v) ? v.map(shape) : v && typeof v === 'object' && 'expiresOn' in v ? shape(v) : v }),
      (e) => ({ rejected: `${e.constructor.name}: ${e.message}`, code: e.code, isError: e instanceof Error }),
    )
const attempt = (fn) => {
  try {
    fn()
    return 'no throw'
  } catch (e) {
    return `${e.constructor.name}: ${e.message}`
  }
}
const eventShape = (e) => {
  const out = { type: e.type, secretKey: e.secretKey, source: e.source, durationMs: typeof e.durationMs }
  if (e.code !== undefined) out.code = e.code
  if (e.changed !== undefined) out.changed = e.changed
  return out
}

const BAD_OPTIONS = [
  { timeoutMS: 5 }, { zeta: 1, alpha: 2 }, { watch: 'yes' }, { source: 'nope' }, { source: '' }, { source: 5 }, { timeoutMs: 0 },
  { timeoutMs: '5' }, { cache: 'x' }, { cache: { bogus: 1 } }, { cache: { maxEntries: 1.5 } }, { secrets: [] }, { secrets: { a: 1 } },
  { vaultUrls: 'x' }, { vaultUrls: ['a', 'b', 'c'] }, { vaultUrls: [' '] }, { vaultUrls: ['nope'] }, { vaultUrls: ['http://x.vault.azure.net'] },
  { vaultUrls: ['https://v.vault.azure.net/x'] }, { vaultUrls: ['https://u:p@v.vault.azure.net'] }, { vaultUrls: ['https://v.example.com'] },
  { vaultUrls: ['http://127.0.0.1:8080'] }, { vaultUrls: ['ftp://v.vault.azure.net'] }, { allowedHosts: ['bad host'] }, { identity: 'x' },
  { additionallyAllowedTenants: ['-x'] }, { clientId: '' }, { oun: 5 }, { allowInsecureLoopback: 1 }, { onEvent: 1 }, { onEvent: () => 1, timeoutMs: () => 1 },
  { timeoutMs: Infinity }, 'string', [], { cache: true, watch: null, timeoutMS: undefined },
]

// The script: every step's outcome, in order.
async function script(kind) {
  const drive = kinds[kind]
  const steps = []
  const events = []
  const published = []
  const listener = (e) => published.push(eventShape(e))
  dc.subscribe('commerce-secret-manager', listener)
  const m = drive.make({ onEvent: (e) => events.push(eventShape(e)) })
  try {
    const step = async (name, p) => steps.push([name, await settle(p)])
    await step('get (miss)', () => m.getSecretValue('paymentApiKey', URL))
    await step('get (hit)', () => m.getSecretValue('paymentApiKey', URL))
    await step('get absent', () => m.getSecretValue('absent', URL))
    await step('get absent (remembered)', () => m.getSecretValue('absent', URL))
    await step('refresh, unchanged', () => m.refresh('paymentApiKey', URL))
    drive.rotate(m, 'paymentApiKey', 'pay-2')
    await step('get after rotation (cached)', () => m.getSecretValue('paymentApiKey', URL))
    await step('refresh after rotation', () => m.refresh('paymentApiKey', URL))
    await step('get after refresh', () => m.getSecretValue('paymentApiKey', URL))
    await step('several', () => m.getSecretValues(['signingKey', 'absent', 'paymentApiKey'], URL))
    await step('prefetch', () => m.prefetch(['signingKey'], URL))
    await step('ready', () => m.ready({ timeoutMs: 1000 }))
    steps.push(['invalidate one', attempt(() => m.invalidate('paymentApiKey')), m.stats().entries])
    await step('get after invalidate', () => m.getSecretValue('paymentApiKey', URL))
    steps.push(['invalidate all', attempt(() => m.invalidate()), m.stats().entries])
    // Bad arguments.
    await step('empty key', () => m.getSecretValue('', URL))
    await step('key not a string', () => m.getSecretValue(42, URL))
    await step('url not a string', () => m.getSecretValue('paymentApiKey', undefined))
    await step('control character', () => m.refresh('a\nb', URL))
    await step('too long', () => m.getSecretValue('k'.repeat(257), URL))
    await step('lone surrogate', () => m.getSecretValue('lone\uD800', URL))
    steps.push(['invalidate(5)', attempt(() => m.invalidate(5))])
    await step('getSecretValues of a string', () => m.getSecretValues('paymentApiKey', URL))
    await step('prefetch spreadMs -1', () => m.prefetch(['paymentApiKey'], URL, { spreadMs: -1 }))
    await step('secretChanged', () => m.secretChanged('https://v.vault.azure.net', 'n'))
    await step('withSecret without fn', () => m.withSecret('paymentApiKey', URL))
    await step('withSecret of a missing key', () => m.withSecret('absent', URL, (v) => v))
    await step('ready bad timeout', () => m.ready({ timeoutMs: -1 }))
    // Faults: a transient one keeps the cached value, one that drops it does.
    await step('get to cache', () => m.getSecretValue('signingKey', URL))
    drive.fault(m, 'signingKey', 'UNAVAILABLE', 1)
    await step('get during outage (hit)', () => m.getSecretValue('signingKey', URL))
    await step('refresh during outage', () => m.refresh('signingKey', URL))
    await step('get after failed refresh', () => m.getSecretValue('signingKey', URL))
    drive.clear(m, 'signingKey')
    drive.fault(m, 'signingKey', 'FORBIDDEN', 2)
    await step('refresh forbidden', () => m.refresh('signingKey', URL))
    await step('get after forbidden (dropped)', () => m.getSecretValue('signingKey', URL))
    drive.clear(m, 'signingKey')
    await step('get after the fault', () => m.getSecretValue('signingKey', URL))
    steps.push(['stats', m.stats()])
    await m.close()
    await step('after close', () => m.getSecretValue('paymentApiKey', URL))
    // Bad options.
    for (const o of BAD_OPTIONS) {
      steps.push(['options ' + (typeof o === 'object' ? JSON.stringify(o) : String(o)), attempt(() => drive.make(o))])
    }
  } finally {
    dc.unsubscribe('commerce-secret-manager', listener)
    await m.close()
  }
  return { steps, events, published }
}

test('parity transcript: the addon\'s memory source and the test double give the same transcript', async () => {
  const addon = await script('addon')
  const double = await script('double')
  // Not vacuous: the script reached what it is about.
  const step = (t, name) => t.steps.find((s) => s[0] === name)
  expect(step(addon, 'refresh after rotation')[1].ok.value).toBe('pay-2')
  expect(step(addon, 'get absent')[1].ok.error.code).toBe('NOT_FOUND')
  expect(step(addon, 'refresh during outage')[1].ok.error.code).toBe('UNAVAILABLE')
  expect(step(addon, 'get after forbidden (dropped)')[1].ok.error.code).toBe('FORBIDDEN')
  expect(step(addon, 'options {"watch":"yes"}')[1]).toBe('TypeError: option `watch` must be a boolean (got a string)')
  expect(addon.events.map((e) => e.type)).toEqual(expect.arrayContaining(['miss', 'hit', 'refresh', 'rotate', 'error']))
  expect(addon.published).toEqual(addon.events)

  for (let i = 0; i < Math.max(addon.steps.length, double.steps.length); i++) {
    expect([i, double.steps[i]]).toEqual([i, addon.steps[i]])
  }
  expect(double.events).toEqual(addon.events)
  expect(double.published).toEqual(addon.published)
})
