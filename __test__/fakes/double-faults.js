'use strict'
// The test double's faults, delays and controls: one suite, run under Jest's node environment
// (testing-double.test.js) and its jsdom one (testing-double-jsdom.test.js). Pure JS: no addon.
const testing = require('../../testing.js')

const URL = 'https://scu1234ret.commerce.dynamics.com/'
const CODES = ['INVALID_ARGUMENT', 'NOT_FOUND', 'LOCAL_FILE_MISSING', 'LOCAL_FILE_INVALID', 'HOST_NOT_ALLOWED', 'UNAUTHORIZED',
  'FORBIDDEN', 'THROTTLED', 'TIMEOUT', 'UNAVAILABLE', 'BAD_RESPONSE', 'IDENTITY_UNAVAILABLE', 'NOT_CONFIGURED', 'CLOSED']
const STALE = ['THROTTLED', 'TIMEOUT', 'UNAVAILABLE']
const DROPS = ['UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND']
const DAY_MS = 86400 * 1000

function make(options) {
  const events = []
  const m = testing.createTestSecretManager({ k: 'v1' }, Object.assign({ onEvent: (e) => events.push(e) }, options))
  m.events = events
  return m
}
const types = (m) => m.events.map((e) => `${e.type}${e.code ? `:${e.code}` : ''}${e.changed !== undefined ? `:${e.changed}` : ''}`)

function faultSuite() {
  afterEach(() => jest.useRealTimers())

  describe.each(CODES)('fail(key, %s)', (code) => {
    test('a cold read fails with the code, the addon\'s message, a real SecretError', async () => {
      const m = make()
      m.fail('k', code)
      const r = await m.getSecretValue('k', URL)
      expect(r.value).toBe('')
      expect(r.expiresOn).toBe(0)
      expect(r.error).toBeInstanceOf(Error)
      expect(r.error).toBeInstanceOf(testing.SecretError)
      expect(r.error).toMatchObject({ code, secretKey: 'k', message: `secret 'k': the memory source was told to fail with ${code}` })
      expect(r.error.status).toBeUndefined()
      expect(types(m)).toEqual(['error:' + code])
    })

    test('a cached value: served while fresh; a failed refresh returns the error and keeps it unless the code drops it', async () => {
      const m = make()
      await m.getSecretValue('k', URL)
      m.fail('k', code)
      expect((await m.getSecretValue('k', URL)).value).toBe('v1') // fresh: no read
      const r = await m.refresh('k', URL)
      expect(r.error.code).toBe(code)
      const after = await m.getSecretValue('k', URL)
      if (DROPS.includes(code)) expect(after.error.code).toBe(code)
      else expect(after.value).toBe('v1')
      expect(m.stats().upstreamRequests).toBe(code === 'NOT_FOUND' ? 2 : DROPS.includes(code) ? 3 : 2)
    })

    test('past expiry: stale for THROTTLED/TIMEOUT/UNAVAILABLE within staleIfErrorSeconds, else the error', async () => {
      jest.useFakeTimers({ now: Date.UTC(2030, 0, 1) })
      const m = make()
      await m.getSecretValue('k', URL)
      m.fail('k', code)
      jest.setSystemTime(Date.now() + DAY_MS + 1000)
      const r = await m.getSecretValue('k', URL)
      if (STALE.includes(code)) {
        expect(r.value).toBe('v1')
        expect(r.error).toBeUndefined()
        expect(types(m).slice(-1)).toEqual([`stale:${code}`])
        expect(m.stats().staleServed).toBe(1)
        jest.setSystemTime(Date.now() + 3600 * 1000)
        expect((await m.getSecretValue('k', URL)).error.code).toBe(code)
      } else {
        expect(r.error.code).toBe(code)
        expect(m.stats().staleServed).toBe(0)
      }
    })
  })

  test('times, status and message', async () => {
    const m = make()
    m.fail('k', 'UNAVAILABLE', { times: 2, status: 503, message: 'scripted outage' })
    const a = await m.getSecretValue('k', URL)
    expect(a.error).toMatchObject({ code: 'UNAVAILABLE', status: 503, message: 'scripted outage' })
    expect((await m.getSecretValue('k', URL)).error.code).toBe('UNAVAILABLE')
    expect((await m.getSecretValue('k', URL)).value).toBe('v1')
    expect(() => m.fail('k', 'NOPE')).toThrow(/fail: the code must be one of INVALID_ARGUMENT, .* \(got 'NOPE'\)/)
    expect(() => m.fail('k', 'UNAVAILABLE', { times: 0 })).toThrow(TypeError)
  })

  test('delay: driven by fake timers; concurrent reads share one; timeoutMs answers TIMEOUT', async () => {
    jest.useFakeTimers()
    const m = make({ timeoutMs: 5000 })
    m.delay('k', 1000)
    let settled = 0
    const all = Promise.all([m.getSecretValue('k', URL), m.getSecretValue('k', URL)]).then((r) => {
      settled++
      return r
    })
    await jest.advanceTimersByTimeAsync(999)
    expect(settled).toBe(0)
    await jest.advanceTimersByTimeAsync(1)
    expect((await all).map((r) => r.value)).toEqual(['v1', 'v1'])
    expect(m.stats().upstreamRequests).toBe(1)
    m.delay('k', 60000)
    const slow = m.refresh('k', URL)
    await jest.advanceTimersByTimeAsync(5000)
    const t = await slow
    expect(t.error).toMatchObject({ code: 'TIMEOUT', message: "secret 'k': no answer from the memory source within 5000 ms" })
    // close() answers what is in flight with CLOSED at once.
    const pending = m.refresh('k', URL)
    await m.close()
    expect((await pending).error.code).toBe('CLOSED')
  })

  test('rotate: the cache keeps the old value until a refresh, which emits refresh (changed) then rotate', async () => {
    const m = make()
    await m.getSecretValue('k', URL)
    m.rotate('k', 'v2')
    expect((await m.getSecretValue('k', URL)).value).toBe('v1')
    expect((await m.refresh('k', URL)).value).toBe('v2')
    expect(m.events.slice(-2)).toEqual([
      expect.objectContaining({ type: 'refresh', secretKey: 'k', source: 'memory', changed: true }),
      { type: 'rotate', secretKey: 'k', source: 'memory', changed: true },
    ])
    expect((await m.getSecretValue('k', URL)).value).toBe('v2')
  })

  test('set changes the value for the next read; reset puts everything back; calls lists what was asked', async () => {
    const m = make()
    await m.getSecretValue('k', URL)
    m.set('k', 'v9')
    expect((await m.getSecretValue('k', URL)).value).toBe('v9')
    await m.getSecretValues(['k', 'x'], URL)
    await m.prefetch(['k'], '')
    await m.withSecret('k', URL, (v) => v)
    m.invalidate('k')
    expect(m.calls()).toEqual([
      { method: 'getSecretValue', secretKey: 'k', url: URL },
      { method: 'getSecretValue', secretKey: 'k', url: URL },
      { method: 'getSecretValues', secretKey: 'k', url: URL },
      { method: 'getSecretValues', secretKey: 'x', url: URL },
      { method: 'prefetch', secretKey: 'k', url: '' },
      { method: 'withSecret', secretKey: 'k', url: URL },
      { method: 'invalidate', secretKey: 'k', url: undefined },
    ])
    m.fail('k', 'FORBIDDEN')
    m.delay('k', 10)
    m.reset()
    expect(m.calls()).toEqual([])
    expect(m.stats()).toMatchObject({ entries: 0, hits: 0, misses: 0, upstreamRequests: 0 })
    expect((await m.getSecretValue('k', URL)).value).toBe('v1')
  })

  test('options are checked with the addon\'s messages; prefetch spreadMs too', async () => {
    expect(() => testing.createTestSecretManager({}, { timeoutMS: 5 })).toThrow(/^unknown option `timeoutMS` \(known: source, /)
    expect(() => testing.createTestSecretManager({}, { watch: 'yes' })).toThrow('option `watch` must be a boolean (got a string)')
    expect(() => testing.createTestSecretManager({}, { source: 'nope' })).toThrow(
      "option `source` must be one of 'auto', 'local', 'memory', 'retail-server', 'key-vault' (got 'nope')",
    )
    expect(() => testing.createTestSecretManager({}, { timeoutMs: 0 })).toThrow('option `timeoutMs` must be a number from 1 to 600000 (got 0)')
    await expect(make().prefetch(['k'], URL, { spreadMs: -1 })).rejects.toThrow(
      'prefetch: option `spreadMs` must be a number from 0 to 3600000 (got -1)',
    )
  })

  test('diagnostics_channel carries the same events, when the runtime has it', async () => {
    const dc = require('diagnostics_channel')
    const seen = []
    const listener = (e) => seen.push(e)
    dc.subscribe('commerce-secret-manager', listener)
    try {
      const m = testing.createTestSecretManager({ k: 'v1' })
      await m.getSecretValue('k', URL)
      await m.getSecretValue('k', URL)
      expect(seen.map((e) => e.type)).toEqual(['miss', 'hit'])
      expect(JSON.stringify(seen)).not.toContain('v1')
    } finally {
      dc.unsubscribe('commerce-secret-manager', listener)
    }
  })
}

module.exports = { faultSuite }
