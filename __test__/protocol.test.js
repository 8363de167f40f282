'use strict'
// The cache protocol between Rust and the JS mirror, and close(), through the public surface
// (memory source with the addon's test hooks: values changed, reads delayed).
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { SecretManager } = require('..')
const { control, INTERNALS, URL, sleep } = require('./helpers')
const { startServer } = require('./fakes/server')

const root = path.join(__dirname, '..')
const open = []
afterEach(async () => {
  for (const m of open.splice(0)) await m.close()
})

function manager(options = {}, secrets = { a: 'a1', b: 'b1' }) {
  const events = []
  const m = new SecretManager({ source: 'memory', secrets, onEvent: (e) => events.push(e), ...options })
  m.events = events
  open.push(m)
  return m
}

test('refresh() after a rotation never joins a request that started before it', async () => {
  const m = manager()
  control(m, { delayMs: 300 })
  const before = m.getSecretValue('a', URL) // reads 'a1', slowly
  await sleep(50)
  control(m, { key: 'a', value: 'a2', delayMs: 0 }) // rotated
  const refreshed = await m.refresh('a', URL)
  expect(refreshed.value).toBe('a2')
  expect((await before).value).toBe('a1') // its own caller gets its own answer
  expect((await m.getSecretValue('a', URL)).value).toBe('a2') // and it did not write back
})

test('a get after invalidate() never joins a request that started before it', async () => {
  const m = manager()
  control(m, { delayMs: 300 })
  const before = m.getSecretValue('a', URL)
  await sleep(50)
  control(m, { key: 'a', value: 'a2', delayMs: 0 })
  m.invalidate('a')
  expect((await m.getSecretValue('a', URL)).value).toBe('a2')
  expect((await before).value).toBe('a1')
  expect((await m.getSecretValue('a', URL)).value).toBe('a2')
})

test("invalidate('b') leaves the in-flight result of 'a' alone", async () => {
  const m = manager()
  expect((await m.getSecretValue('a', URL)).value).toBe('a1')
  control(m, { key: 'a', value: 'a2', delayMs: 200 })
  const refreshing = m.refresh('a', URL)
  await sleep(50)
  m.invalidate('b')
  expect((await refreshing).value).toBe('a2')
  const reads = control(m, { delayMs: 0 })
  // The refresh's value is what the cache holds: the next get answers it, from the cache.
  expect((await m.getSecretValue('a', URL)).value).toBe('a2')
  expect(control(m, {})).toBe(reads)
})

test('the mirror never answers an entry the cache evicted and never holds more than maxEntries', async () => {
  const keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7']
  const secrets = Object.fromEntries(keys.map((k) => [k, `${k}-v1`]))
  for (let round = 0; round < 40; round++) {
    const m = manager({ cache: { maxEntries: 2 } }, secrets)
    await Promise.all(keys.map((k) => m.getSecretValue(k, URL)))
    await Promise.all(keys.map((k) => m.getSecretValue(k, URL)))
    const native = m[INTERNALS]().native
    expect(m._mirror.hot.size).toBeLessThanOrEqual(2)
    // Every key the mirror holds is in the cache (a lookup there answers it).
    for (const k of m._mirror.hot.keys()) expect(native.lookup(k, URL)).not.toBeNull()
    // Rotate everything at the store: only keys the cache still holds may answer the old value.
    for (const k of keys) control(m, { key: k, value: `${k}-v2` })
    const answers = await Promise.all(keys.map((k) => m.getSecretValue(k, URL)))
    expect(answers.filter((r, i) => r.value === `${keys[i]}-v1`).length).toBeLessThanOrEqual(2)
    expect(m.stats().entries).toBeLessThanOrEqual(2)
    expect(m._mirror.hot.size).toBeLessThanOrEqual(2)
    await m.close()
  }
})

test('an entry the cache drops (NOT_FOUND after a refresh) is not answered by the mirror', async () => {
  const m = manager({ cache: { negativeTtlSeconds: 0 } })
  expect((await m.getSecretValue('a', URL)).value).toBe('a1')
  control(m, { key: 'a', remove: true })
  expect((await m.refresh('a', URL)).error.code).toBe('NOT_FOUND')
  const r = await m.getSecretValue('a', URL)
  expect(r.error.code).toBe('NOT_FOUND')
  expect(r.value).toBe('')
})

test('close() resolves every pending call CLOSED within tens of ms, not at the store\'s pace', async () => {
  const m = manager()
  control(m, { delayMs: 10000 })
  const pending = [m.getSecretValue('a', URL), m.refresh('b', URL), m.getSecretValue('a', URL)]
  await sleep(30)
  const started = Date.now()
  await m.close()
  const results = await Promise.all(pending)
  expect(Date.now() - started).toBeLessThan(2000) // was up to timeoutMs (10 s); generous for a loaded CI
  for (const r of results) expect(r.error.code).toBe('CLOSED')
  expect(m.stats().inFlight).toBe(0)
})

test('close() cancels a request hanging at Retail Server and its token fetch', async () => {
  const identity = await startServer({ hang: true })
  try {
    process.env.IDENTITY_HEADER = 'identity-header-value'
    process.env.IDENTITY_ENDPOINT = `${identity.url}msi/token/`
    const m2 = new SecretManager({ source: 'retail-server', allowInsecureLoopback: true, timeoutMs: 60000 })
    open.push(m2)
    const pending = m2.getSecretValue('k', 'https://scu1234ret.commerce.dynamics.com/')
    await sleep(100)
    const started = Date.now()
    await m2.close()
    expect((await pending).error.code).toBe('CLOSED')
    expect(Date.now() - started).toBeLessThan(2000)
  } finally {
    delete process.env.IDENTITY_ENDPOINT
    delete process.env.IDENTITY_HEADER
    await identity.close()
  }
})

test('nothing of the library keeps a finished script alive: not a refresh-ahead, not close()', () => {
  // A hit after refreshAfterSeconds starts a background refresh against a store that takes
  // 8 s; the script then ends. It must exit at once, not when the refresh is done.
  const script = `
    const { SecretManager } = require(${JSON.stringify(root)})
    const { control } = require(${JSON.stringify(path.join(__dirname, 'helpers.js'))})
    const m = new SecretManager({ source: 'memory', secrets: { k: 'v' }, cache: { refreshAfterSeconds: 0.01 }, timeoutMs: 600000 })
    ;(async () => {
      await m.getSecretValue('k', '')
      await new Promise((r) => setTimeout(r, 30))
      control(m, { delayMs: 8000 })
      await m.getSecretValue('k', '') // starts the background refresh
      console.log('done')
    })()`
  const started = Date.now()
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 })
  expect(r.stdout.trim()).toBe('done')
  expect(r.status).toBe(0)
  expect(Date.now() - started).toBeLessThan(6000) // the refresh alone would take 8 s
})

test('an app that invalidates all the time does not grow the mirror\'s schedule without bound', async () => {
  const m = manager({}, { a: 'a1' })
  for (let i = 0; i < 5000; i++) {
    await m.getSecretValue('a', URL)
    m.invalidate('a')
  }
  expect(m._mirror.due.length).toBeLessThanOrEqual(1025)
  expect((await m.getSecretValue('a', URL)).value).toBe('a1')
})
