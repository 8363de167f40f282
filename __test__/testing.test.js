'use strict'
// `commerce-secret-manager/testing` (pure JS) and the addon's memory source: one behaviour.
// Every case below runs against both and must give the same results, errors and events.
const util = require('node:util')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const main = require('..')
const testing = require('../testing.js')
const { URL } = require('./helpers')

const SECRETS = { paymentApiKey: 'pay-123', signingKey: 'sign-456', "it's": 'quoted' }

const kinds = {
  native: (secrets, options) => main.createSecretManager(Object.assign({ source: 'memory', secrets }, options)),
  testing: (secrets, options) => testing.createTestSecretManager(secrets, options),
}

// A result as data: what a caller can see, with expiresOn relative to now.
// expiresOn is whole seconds, taken when each manager answered: the two runs of a case may
// straddle a second. So it is compared as "maxAge from now, within 2 s", not to the second.
function shape(r) {
  const left = r.expiresOn - Date.now() / 1000
  const expiresIn = r.expiresOn === 0 ? 0 : Math.abs(left - 86400) <= 2 ? 'maxAge (86400 s) from now' : Math.round(left)
  const out = { value: r.value, expiresIn }
  if (r.id !== undefined) out.id = r.id
  if (r.error !== undefined) {
    out.error = { code: r.error.code, message: r.error.message, secretKey: r.error.secretKey, status: r.error.status }
    out.isError = r.error instanceof Error && r.error instanceof main.SecretError
  }
  return out
}

// Run a scenario on both; return both transcripts.
async function both(secrets, options, scenario) {
  const out = {}
  for (const [kind, make] of Object.entries(kinds)) {
    const events = []
    const m = make(secrets, Object.assign({ onEvent: (e) => events.push(`${e.type}:${e.secretKey}${e.code ? `:${e.code}` : ''}`) }, options))
    try {
      // Sorted: concurrent calls of the addon settle in any order.
      out[kind] = { steps: await scenario(m), events: events.slice().sort(), order: events }
    } finally {
      await m.close()
    }
  }
  return out
}

const cases = {
  'a value, a hit, a missing key (remembered), every bad argument': async (m) => [
    shape(await m.getSecretValue('paymentApiKey', URL)),
    shape(await m.getSecretValue('paymentApiKey', URL)),
    shape(await m.getSecretValue("it's", URL)),
    shape(await m.getSecretValue('absent', URL)),
    shape(await m.getSecretValue('absent', URL)),
    shape(await m.getSecretValue('', URL)),
    shape(await m.getSecretValue('k'.repeat(257), URL)),
    shape(await m.getSecretValue('a\nb', URL)),
    shape(await m.getSecretValue('bell\u0007', URL)),
    shape(await m.getSecretValue(42, URL)),
    shape(await m.getSecretValue('paymentApiKey', undefined)),
    shape(await m.getSecretValue('lone\uD800', URL)),
    m.stats(),
  ],
  'several at once, in order; prefetch; a non-array is rejected': async (m) => [
    (await m.getSecretValues(['signingKey', 'absent', 'paymentApiKey'], URL)).map(shape),
    (await m.prefetch(['paymentApiKey'], URL)).map(shape),
    await m.getSecretValues('paymentApiKey', URL).catch((e) => `${e.constructor.name}: ${e.message}`),
    m.stats(),
  ],
  'refresh goes upstream; invalidate forgets one key or all': async (m) => {
    await m.getSecretValue('paymentApiKey', URL)
    await m.getSecretValue('signingKey', URL)
    const r = shape(await m.refresh('paymentApiKey', URL))
    m.invalidate('paymentApiKey')
    const afterOne = m.stats().entries
    await m.getSecretValue('paymentApiKey', URL)
    m.invalidate()
    return [r, afterOne, m.stats(), () => m.invalidate(5)].map((x) => {
      if (typeof x !== 'function') return x
      try {
        x()
        return 'no throw'
      } catch (e) {
        return `${e.constructor.name}: ${e.message}`
      }
    })
  },
  'close: every later call answers CLOSED': async (m) => {
    await m.getSecretValue('paymentApiKey', URL)
    await m.close()
    return [shape(await m.getSecretValue('paymentApiKey', URL)), shape(await m.refresh('signingKey', URL)), m.stats().entries]
  },
}

for (const [name, scenario] of Object.entries(cases)) {
  test(`same behaviour: ${name}`, async () => {
    const r = await both(SECRETS, {}, scenario)
    expect(r.testing.steps).toEqual(r.native.steps)
    expect(r.testing.events).toEqual(r.native.events)
  })
}

test('same behaviour: maxEntries evicts the least recently used', async () => {
  const r = await both(SECRETS, { cache: { maxEntries: 2 } }, async (m) => {
    await m.getSecretValue('paymentApiKey', URL)
    await m.getSecretValue('signingKey', URL)
    await m.getSecretValue("it's", URL)
    return [m.stats().entries]
  })
  expect(r.testing.steps).toEqual(r.native.steps)
  expect(r.testing.events).toEqual(r.native.events)
  expect(r.testing.events).toContain('evict:paymentApiKey')
})

test('same behaviour: cache false keeps nothing', async () => {
  const r = await both(SECRETS, { cache: false }, async (m) => {
    const a = shape(await m.getSecretValue('paymentApiKey', URL))
    await m.getSecretValue('paymentApiKey', URL)
    return [a, m.stats()]
  })
  expect(r.testing.steps).toEqual(r.native.steps)
  expect(r.testing.events).toEqual(r.native.events)
})

test('same behaviour: the first-step sanity of the transcript (not vacuous)', async () => {
  const r = await both(SECRETS, {}, cases['a value, a hit, a missing key (remembered), every bad argument'])
  const [found, , , missing] = r.testing.steps
  expect(found.value).toBe('pay-123')
  expect(found.expiresIn).toBe('maxAge (86400 s) from now')
  expect(missing.error).toEqual({ code: 'NOT_FOUND', message: "secret 'absent' is not in the memory source", secretKey: 'absent', status: 404 })
  expect(r.testing.order.slice(0, 2)).toEqual(['miss:paymentApiKey', 'hit:paymentApiKey'])
  expect(r.native.order.slice(0, 2)).toEqual(['miss:paymentApiKey', 'hit:paymentApiKey'])
})

test('same option errors: a TypeError naming the option and the range', () => {
  for (const bad of [{ timeoutMs: 0 }, { timeoutMs: 1e23 }, { cache: { maxEntries: 1.5 } }, { cache: { maxAgeSeconds: 1e300 } }]) {
    const errors = Object.values(kinds).map((make) => {
      try {
        make(SECRETS, bad)
        return 'no throw'
      } catch (e) {
        return `${e.constructor.name}: ${e.message}`
      }
    })
    expect(errors[0]).toMatch(/^TypeError: option `(timeoutMs|cache\.\w+)` must be an? (integer|number) from /)
    expect(errors[1]).toBe(errors[0])
  }
})

test('results of the testing manager: inspect redacts, JSON shows the contract', async () => {
  const m = testing.createTestSecretManager({ k: 'sentinel-value' })
  const r = await m.getSecretValue('k', URL)
  expect(util.inspect(r)).not.toContain('sentinel-value')
  expect(JSON.parse(JSON.stringify(r)).value).toBe('sentinel-value')
  expect(util.inspect(m)).toBe("SecretManager { source: 'memory' }")
  expect(m.source).toBe('memory')
})

test('installTestSecretManager installs where isBrowser is true, and answers', async () => {
  class MSDyn365Commerce {
    get secretManager() {
      return this._secretManager
    }
    get isBrowser() {
      return true
    }
  }
  const o = new MSDyn365Commerce()
  const m = testing.installTestSecretManager(o, { k: 'v' })
  expect(o.secretManager).toBe(m)
  expect((await o.secretManager.getSecretValue('k', URL)).value).toBe('v')
  expect(() => testing.installTestSecretManager(null, {})).toThrow(/installTestSecretManager takes the object/)
  expect(() => testing.installTestSecretManager({}, { k: 1 })).toThrow(/`secrets.k` must be a string/)
})

test('the testing entry is the same file under node and browser conditions, and loads no native code', () => {
  const root = path.join(__dirname, '..')
  for (const conditions of [[], ['--conditions=browser']]) {
    const r = spawnSync(
      process.execPath,
      [...conditions, '-e', `const t = require('commerce-secret-manager/testing')
        console.log(JSON.stringify({ f: Object.keys(require.cache).map((f) => require('path').basename(f)).sort(), ok: typeof t.createTestSecretManager }))`],
      { cwd: root, encoding: 'utf8', timeout: 15000 },
    )
    expect(JSON.parse(r.stdout)).toEqual({ f: ['shared.js', 'testing.js'], ok: 'function' })
  }
})
