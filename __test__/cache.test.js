'use strict'
// The cache through the public surface, on the memory source. The memory source's test hooks
// (delay, faults, changing values; not public API) stand in for a remote store, and its read
// counter is the count of upstream requests.
const diagnostics = require('node:diagnostics_channel')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { SecretManager } = require('..')
const { control: controlOf, fakeClock, URL, until, sleep } = require('./helpers')

function manager(options = {}, secrets = { k: 'v1' }) {
  const events = []
  const m = new SecretManager({ source: 'memory', secrets, onEvent: (e) => events.push(e), ...options })
  const control = (c = {}) => controlOf(m, c)
  return { m, events, control, reads: () => control() }
}

test('1,000 concurrent calls of a cold key make one upstream request and all get its value', async () => {
  const { m, reads, control } = manager()
  control({ delayMs: 50 })
  const results = await Promise.all(Array.from({ length: 1000 }, () => m.getSecretValue('k', URL)))
  expect(results.every((r) => r.value === 'v1' && r.error === undefined)).toBe(true)
  expect(reads()).toBe(1)
  expect(m.stats()).toMatchObject({ upstreamRequests: 1, misses: 1000, inFlight: 0, entries: 1 })
})

test('a hit is served from the cache without going upstream', async () => {
  const { m, reads, events } = manager()
  const first = await m.getSecretValue('k', URL)
  const second = await m.getSecretValue('k', URL)
  expect(second).toEqual(first)
  expect(reads()).toBe(1)
  expect(events.map((e) => e.type)).toEqual(['miss', 'hit'])
  expect(m.stats()).toMatchObject({ hits: 1, misses: 1 })
  expect(first.expiresOn).toBeGreaterThan(Date.now() / 1000 + 86400 - 5)
})

test('refresh-ahead: after refreshAfterSeconds the old value is served at once and one refresh runs (injected clock)', async () => {
  const clock = fakeClock()
  try {
    const { m, reads, control, events } = manager({ cache: { refreshAfterSeconds: 10 } })
    expect((await m.getSecretValue('k', URL)).value).toBe('v1')
    control({ key: 'k', value: 'v2', delayMs: 300 })
    clock.advance(15000, m)
    const during = await Promise.all([m.getSecretValue('k', URL), m.getSecretValue('k', URL), m.getSecretValue('k', URL)])
    expect(during.map((r) => r.value)).toEqual(['v1', 'v1', 'v1'])
    await until(async () => (await m.getSecretValue('k', URL)).value === 'v2')
    expect(reads()).toBe(2)
    expect(events.filter((e) => e.type === 'refresh')).toHaveLength(1)
  } finally {
    clock.restore()
  }
})

test.each(['UNAVAILABLE', 'THROTTLED', 'TIMEOUT'])(
  'stale-if-error: on %s after expiry the last good value is served, with a stale event (injected clock)',
  async (code) => {
    const clock = fakeClock()
    try {
    const { m, control, events } = manager({
      cache: { refreshAfterSeconds: 10, maxAgeSeconds: 30, staleIfErrorSeconds: 600 },
      timeoutMs: 100,
    })
    expect((await m.getSecretValue('k', URL)).value).toBe('v1')
    if (code === 'TIMEOUT') control({ delayMs: 2000 })
    else control({ key: 'k', fault: code })
    clock.advance(40000, m) // past maxAge, within the stale window
    const r = await m.getSecretValue('k', URL)
    expect(r).toMatchObject({ value: 'v1' })
    expect(r.error).toBeUndefined()
    const stale = events.find((e) => e.type === 'stale')
    expect(stale).toMatchObject({ secretKey: 'k', source: 'memory', code })
    // While the store stays down, the next caller does not wait for it.
    expect((await m.getSecretValue('k', URL)).value).toBe('v1')
    expect(m.stats().staleServed).toBeGreaterThanOrEqual(2)
    } finally {
      clock.restore()
    }
  },
)

test('stale-if-error ends after staleIfErrorSeconds (injected clock)', async () => {
  const clock = fakeClock()
  try {
    const { m, control } = manager({ cache: { refreshAfterSeconds: 10, maxAgeSeconds: 30, staleIfErrorSeconds: 50 } })
    await m.getSecretValue('k', URL)
    control({ key: 'k', fault: 'UNAVAILABLE' })
    clock.advance(40000, m) // past maxAge, within the stale window
    expect((await m.getSecretValue('k', URL)).value).toBe('v1')
    clock.advance(45000, m) // 85 s: past maxAge + staleIfErrorSeconds
    const r = await m.getSecretValue('k', URL)
    expect(r.error.code).toBe('UNAVAILABLE')
    expect(r.value).toBe('')
  } finally {
    clock.restore()
  }
})

test('the mirror stops answering at the refresh time, with no clock on the hit path (injected clock)', async () => {
  const clock = fakeClock()
  try {
    const { m, reads, control } = manager({ cache: { refreshAfterSeconds: 100 } })
    expect((await m.getSecretValue('k', URL)).value).toBe('v1')
    control({ key: 'k', value: 'v2' })
    clock.advance(50000, m)
    expect((await m.getSecretValue('k', URL)).value).toBe('v1') // fresh: the mirror answers
    expect(reads()).toBe(1)
    clock.advance(60000, m) // past the refresh time: the cache's timer moved the counter
    expect((await m.getSecretValue('k', URL)).value).toBe('v1') // served at once, refresh started
    await until(async () => (await m.getSecretValue('k', URL)).value === 'v2')
    expect(reads()).toBe(2)
  } finally {
    clock.restore()
  }
})

test.each(['UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND'])(
  'never stale after %s: the entry is dropped at once, even on a background refresh (injected clock)',
  async (code) => {
    const clock = fakeClock()
    try {
    const { m, control } = manager({ cache: { refreshAfterSeconds: 10, staleIfErrorSeconds: 60, negativeTtlSeconds: 0 } })
    expect((await m.getSecretValue('k', URL)).value).toBe('v1')
    control({ key: 'k', fault: code })
    clock.advance(15000, m)
    // Still fresh: served, and this hit starts the refresh that learns the bad news.
    expect((await m.getSecretValue('k', URL)).value).toBe('v1')
    await until(() => m.stats().entries === 0)
    const r = await m.getSecretValue('k', URL)
    expect(r.value).toBe('')
    expect(r.error.code).toBe(code)
    } finally {
      clock.restore()
    }
  },
)

test('a failed background refresh keeps serving the good value until expiry (injected clock)', async () => {
  const clock = fakeClock()
  try {
  const { m, control, events } = manager({ cache: { refreshAfterSeconds: 10 } })
  await m.getSecretValue('k', URL)
  control({ key: 'k', fault: 'BAD_RESPONSE' })
  clock.advance(15000, m)
  expect((await m.getSecretValue('k', URL)).value).toBe('v1')
  // The background refresh's outcome is reported with the next call (or stats()).
  await until(() => {
    m.stats()
    return events.some((e) => e.type === 'error' && e.code === 'BAD_RESPONSE')
  })
  expect((await m.getSecretValue('k', URL)).value).toBe('v1')
  } finally {
    clock.restore()
  }
})

test('NOT_FOUND is remembered for negativeTtlSeconds (injected clock)', async () => {
  const clock = fakeClock()
  try {
    const { m, control, reads } = manager({ cache: { negativeTtlSeconds: 5 } }, {})
    expect((await m.getSecretValue('k', URL)).error.code).toBe('NOT_FOUND')
    control({ key: 'k', value: 'arrived' })
    clock.advance(4000, m)
    const again = await m.getSecretValue('k', URL)
    expect(again.error.code).toBe('NOT_FOUND')
    expect(again.error).toBeInstanceOf(Error)
    expect(reads()).toBe(1)
    clock.advance(2000, m)
    expect((await m.getSecretValue('k', URL)).value).toBe('arrived')
    expect(reads()).toBe(2)
  } finally {
    clock.restore()
  }
})

test('past maxEntries the least recently used key is evicted, with an evict event', async () => {
  const { m, reads, events } = manager({ cache: { maxEntries: 2 } }, { a: '1', b: '2', c: '3' })
  await m.getSecretValue('a', URL)
  await m.getSecretValue('b', URL)
  await m.getSecretValue('a', URL) // a hit: a is now more recent than b
  await m.getSecretValue('c', URL)
  expect(events.filter((e) => e.type === 'evict')).toEqual([{ type: 'evict', secretKey: 'b', source: 'memory' }])
  expect(m.stats().entries).toBe(2)
  const before = reads()
  await m.getSecretValue('a', URL)
  expect(reads()).toBe(before)
  await m.getSecretValue('b', URL)
  expect(reads()).toBe(before + 1)
})

test('invalidate forgets one key or all; refresh goes upstream now; prefetch warms', async () => {
  const { m, reads, control } = manager({}, { a: '1', b: '2' })
  const warmed = await m.prefetch(['a', 'b'], URL)
  expect(warmed.map((r) => r.value)).toEqual(['1', '2'])
  expect(reads()).toBe(2)
  await m.getSecretValues(['a', 'b'], URL)
  expect(reads()).toBe(2)

  control({ key: 'a', value: '1-rotated' })
  expect((await m.getSecretValue('a', URL)).value).toBe('1')
  expect((await m.refresh('a', URL)).value).toBe('1-rotated')
  expect((await m.getSecretValue('a', URL)).value).toBe('1-rotated')
  expect(reads()).toBe(3)

  control({ key: 'b', value: '2-rotated' })
  m.invalidate('b')
  expect((await m.getSecretValue('b', URL)).value).toBe('2-rotated')
  expect(reads()).toBe(4)
  m.invalidate()
  expect(m.stats().entries).toBe(0)
  await m.getSecretValues(['a', 'b'], URL)
  expect(reads()).toBe(6)
  expect(() => m.invalidate(5)).toThrow(TypeError)
})

test('refresh reports a failure and keeps the cached value for transient errors', async () => {
  const { m, control } = manager()
  await m.getSecretValue('k', URL)
  control({ key: 'k', fault: 'UNAVAILABLE' })
  expect((await m.refresh('k', URL)).error.code).toBe('UNAVAILABLE')
  expect((await m.getSecretValue('k', URL)).value).toBe('v1')
})

test('close wipes the cache; later calls answer CLOSED', async () => {
  const { m } = manager()
  await m.getSecretValue('k', URL)
  await expect(m.close()).resolves.toBeUndefined()
  expect(m.stats().entries).toBe(0)
  for (const r of [await m.getSecretValue('k', URL), await m.refresh('k', URL), ...(await m.prefetch(['k'], URL))]) {
    expect(r.value).toBe('')
    expect(r.error.code).toBe('CLOSED')
  }
  await m.close()
})

test('a call in flight when the manager closes answers CLOSED', async () => {
  const { m, control } = manager()
  control({ delayMs: 50 })
  const pending = m.getSecretValue('k', URL)
  await m.close()
  expect((await pending).error.code).toBe('CLOSED')
})

test('cache: false goes upstream every time but still shares one request among concurrent callers', async () => {
  const { m, reads, control } = manager({ cache: false })
  await m.getSecretValue('k', URL)
  await m.getSecretValue('k', URL)
  expect(reads()).toBe(2)
  control({ delayMs: 30 })
  await Promise.all(Array.from({ length: 50 }, () => m.getSecretValue('k', URL)))
  expect(reads()).toBe(3)
  expect(m.stats().entries).toBe(0)
})

test('the deadline: a store slower than timeoutMs answers TIMEOUT', async () => {
  const { m, control } = manager({ timeoutMs: 100 })
  control({ delayMs: 8000 })
  const started = Date.now()
  const r = await m.getSecretValue('k', URL)
  expect(r.error.code).toBe('TIMEOUT')
  expect(r.error.message).toMatch(/within 100 ms/)
  expect(Date.now() - started).toBeLessThan(5000) // the store alone takes 8 s; wide for a loaded CI
})

test('events go to onEvent and diagnostics_channel, never carry a value, and a throwing listener is harmless', async () => {
  const published = []
  const listener = (e) => published.push(e)
  diagnostics.subscribe('commerce-secret-manager', listener)
  try {
    const m = new SecretManager({
      source: 'memory',
      secrets: { k: 'SENTINEL-VALUE' },
      onEvent: () => {
        throw new Error('listener bug')
      },
    })
    expect((await m.getSecretValue('k', URL)).value).toBe('SENTINEL-VALUE')
    expect((await m.getSecretValue('k', URL)).value).toBe('SENTINEL-VALUE')
    await m.getSecretValue('absent', URL)
  } finally {
    diagnostics.unsubscribe('commerce-secret-manager', listener)
  }
  expect(published.map((e) => e.type)).toEqual(['miss', 'hit', 'error'])
  expect(published[0]).toMatchObject({ secretKey: 'k', source: 'memory' })
  expect(typeof published[0].durationMs).toBe('number')
  expect(published[2]).toMatchObject({ code: 'NOT_FOUND', secretKey: 'absent' })
  expect(JSON.stringify(published)).not.toContain('SENTINEL')
})

test('a script that reads one secret exits at once: no timer or handle keeps Node alive', () => {
  const script = `
    const { SecretManager } = require(${JSON.stringify(path.join(__dirname, '..'))})
    const m = new SecretManager({ source: 'memory', secrets: { k: 'v' } })
    m.getSecretValue('k', '').then((r) => console.log(r.value))`
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10000 })
  expect(r.signal).toBeNull()
  expect(r.status).toBe(0)
  expect(r.stdout).toBe('v\n')
})
