'use strict'
// withSecret: a downstream API that starts refusing the old key after a rotation. The store is
// the addon's memory source; its test hooks rotate the value and count the store's reads.
const http = require('node:http')
const util = require('node:util')
const { createSecretManager, SecretError } = require('..')
const testing = require('../testing.js')
const { control, fakeClock, URL } = require('./helpers')

// A loopback API that takes one key (header x-api-key) and answers 401 to any other.
async function startApi(accepted) {
  const api = { accepted, seen: [] }
  const server = http.createServer((req, res) => {
    const key = req.headers['x-api-key']
    api.seen.push(key)
    res.writeHead(key === api.accepted ? 200 : 401, { 'content-type': 'text/plain', connection: 'close' })
    res.end(key === api.accepted ? `ok:${key}` : 'unauthorized')
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  api.url = `http://127.0.0.1:${server.address().port}/`
  api.close = () => new Promise((resolve) => server.close(resolve))
  return api
}

// The caller's function: a request with the key; an error with `status` when refused.
function callApi(api) {
  return (key) =>
    new Promise((resolve, reject) => {
      const req = http.get(api.url, { headers: { 'x-api-key': key }, agent: false, timeout: 5000 }, (res) => {
        let body = ''
        res.on('data', (d) => (body += d))
        res.on('end', () => {
          if (res.statusCode === 200) return resolve(body)
          const err = new Error(`the API answered ${res.statusCode}`)
          err.status = res.statusCode
          reject(err)
        })
      })
      req.on('timeout', () => req.destroy(new Error('timeout')))
      req.on('error', reject)
    })
}

let api
let m
beforeEach(async () => {
  api = await startApi('old-key')
  m = createSecretManager({ source: 'memory', secrets: { apiKey: 'old-key' } })
})
afterEach(async () => {
  await m.close()
  await api.close()
})

const reads = () => control(m, {})

test('after a rotation, 50 concurrent callers cause one refresh and every retry succeeds with the new value', async () => {
  expect(await m.withSecret('apiKey', URL, callApi(api))).toBe('ok:old-key')
  expect(reads()).toBe(1)
  // Rotation: the store has the new key and the API takes only that; the cache still holds the old.
  control(m, { key: 'apiKey', value: 'new-key' })
  api.accepted = 'new-key'
  api.seen.length = 0
  const results = await Promise.all(Array.from({ length: 50 }, () => m.withSecret('apiKey', URL, callApi(api))))
  expect(results).toEqual(Array(50).fill('ok:new-key'))
  expect(reads()).toBe(2) // exactly one refresh
  expect(api.seen.filter((k) => k === 'old-key')).toHaveLength(50)
  expect(api.seen.filter((k) => k === 'new-key')).toHaveLength(50)
  // Later callers read the new value from the cache: no failure, no read.
  expect(await m.withSecret('apiKey', URL, callApi(api))).toBe('ok:new-key')
  expect(reads()).toBe(2)
})

test('a second failure is the caller\'s; within 5 s of a refresh no new one, after it one', async () => {
  const clock = fakeClock() // Date only: the window is measured on Date
  try {
    await m.getSecretValue('apiKey', URL)
    api.accepted = 'nobody' // the API refuses every key
    const first = await m.withSecret('apiKey', URL, callApi(api)).catch((e) => e)
    expect(first).toBeInstanceOf(Error)
    expect(first.status).toBe(401)
    expect(first).not.toBeInstanceOf(SecretError) // fn's own error
    expect(reads()).toBe(2) // the one refresh
    // Within the window: 20 more failing callers retry with the cached value, no refresh.
    clock.advance(4000, m)
    const again = await Promise.all(Array.from({ length: 20 }, () => m.withSecret('apiKey', URL, callApi(api)).catch((e) => e.status)))
    expect(again).toEqual(Array(20).fill(401))
    expect(reads()).toBe(2)
    // After it: one refresh again.
    clock.advance(2000, m)
    expect(await m.withSecret('apiKey', URL, callApi(api)).catch((e) => e.status)).toBe(401)
    expect(reads()).toBe(3)
  } finally {
    clock.restore()
  }
})

test('a store failure rejects with the SecretError, and fn is never called', async () => {
  control(m, { key: 'broken', fault: 'UNAVAILABLE' })
  const fn = jest.fn()
  const err = await m.withSecret('broken', URL, fn).catch((e) => e)
  expect(err).toBeInstanceOf(Error)
  expect(err).toBeInstanceOf(SecretError)
  expect(err.code).toBe('UNAVAILABLE')
  expect(err.secretKey).toBe('broken')
  expect(fn).not.toHaveBeenCalled()
  expect((await m.withSecret('absent', URL, fn).catch((e) => e)).code).toBe('NOT_FOUND')
  expect((await m.withSecret('', URL, fn).catch((e) => e)).code).toBe('INVALID_ARGUMENT')
  // A refresh that fails after an auth failure: that SecretError too.
  const calls = []
  const refused = await m
    .withSecret('apiKey', URL, (v) => {
      calls.push(v)
      control(m, { key: 'apiKey', fault: 'FORBIDDEN' })
      throw Object.assign(new Error('refused'), { statusCode: 403 })
    })
    .catch((e) => e)
  expect(refused).toBeInstanceOf(SecretError)
  expect(refused.code).toBe('FORBIDDEN')
  expect(calls).toEqual(['old-key'])
  expect(util.inspect(refused)).not.toContain('old-key')
})

test('what counts as an auth failure: status/statusCode 401 or 403, or isAuthFailure', async () => {
  const failing = (err) => {
    let n = 0
    return (v) => (n++ === 0 ? Promise.reject(err) : `retried:${v}`)
  }
  expect(await m.withSecret('apiKey', URL, failing({ status: 403 }))).toBe('retried:old-key')
  expect(await m.withSecret('apiKey', URL, failing(Object.assign(new Error('x'), { statusCode: 401 })))).toBe('retried:old-key')
  // Not an auth failure: fn's error at once, no refresh.
  const before = reads()
  const boom = new Error('boom')
  boom.status = 500
  await expect(m.withSecret('apiKey', URL, failing(boom))).rejects.toBe(boom)
  await expect(m.withSecret('apiKey', URL, () => { throw boom })).rejects.toBe(boom)
  expect(reads()).toBe(before)
  // A predicate of the caller's (e.g. a client whose errors carry a code).
  const isAuthFailure = (e) => e !== null && typeof e === 'object' && e.code === 'EAUTH'
  expect(await m.withSecret('apiKey', URL, failing({ code: 'EAUTH' }), { isAuthFailure })).toBe('retried:old-key')
  // A throwing predicate counts as "no".
  await expect(m.withSecret('apiKey', URL, failing(boom), { isAuthFailure: () => { throw new Error('bad predicate') } })).rejects.toBe(boom)
  // Synchronous results and detached use.
  const { withSecret } = m
  expect(await withSecret('apiKey', URL, (v) => v.length)).toBe(7)
})

test('misuse rejects with a TypeError', async () => {
  await expect(m.withSecret('apiKey', URL)).rejects.toThrow(/withSecret takes a function \(value\) => result as its third argument \(got undefined\)/)
  await expect(m.withSecret('apiKey', URL, () => 1, 'x')).rejects.toThrow(/withSecret: options must be an object \(got string\)/)
  await expect(m.withSecret('apiKey', URL, () => 1, { isAuthFailure: true })).rejects.toThrow(TypeError)
})

test('the testing entry: the same withSecret, rotate drives it', async () => {
  const t = testing.createTestSecretManager({ apiKey: 'old-key' })
  await t.getSecretValue('apiKey', URL)
  t.rotate('apiKey', 'new-key')
  api.accepted = 'new-key'
  const results = await Promise.all(Array.from({ length: 10 }, () => t.withSecret('apiKey', URL, callApi(api))))
  expect(results).toEqual(Array(10).fill('ok:new-key'))
  expect(t.calls().filter((c) => c.method === 'refresh')).toHaveLength(1)
  await t.close()
})
