'use strict'
// Lifecycle (issue 20): close() aborts every flight it ever started, detached ones included
// (an invalidate() or a refresh() detaches the flight it replaces); methods work detached.
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { SecretManager, secretManager } = require('..')
const { createTestSecretManager } = require('../testing')
const { control, URL, sleep } = require('./helpers')

const root = path.join(__dirname, '..')
const open = []
afterEach(async () => {
  for (const m of open.splice(0)) await m.close()
})

function manager(options = {}) {
  const m = new SecretManager({ source: 'memory', secrets: { a: 'a1', b: 'b1' }, timeoutMs: 60000, ...options })
  open.push(m)
  return m
}

test('close() answers CLOSED at once to callers whose flight invalidate() or refresh() detached', async () => {
  const m = manager()
  control(m, { delayMs: 10000 })
  const detachedByInvalidate = m.getSecretValue('a', URL)
  const detachedByRefresh = m.refresh('b', URL)
  await sleep(30)
  m.invalidate('a')
  const current = m.refresh('b', URL) // replaces (detaches) the first refresh of 'b'
  await sleep(30)
  const started = Date.now()
  await m.close()
  const results = await Promise.all([detachedByInvalidate, detachedByRefresh, current])
  expect(Date.now() - started).toBeLessThan(2000) // was the store's 10 s; generous for a loaded CI
  for (const r of results) expect(r.error.code).toBe('CLOSED')
})

test('a script that invalidates a slow key and closes exits at once, not at timeoutMs', () => {
  const script = `
    const { SecretManager } = require(${JSON.stringify(root)})
    const { control } = require(${JSON.stringify(path.join(__dirname, 'helpers.js'))})
    const m = new SecretManager({ source: 'memory', secrets: { k: 'v' }, timeoutMs: 600000 })
    control(m, { delayMs: 8000 })
    const pending = m.getSecretValue('k', '')
    setTimeout(async () => {
      m.invalidate('k')
      await m.close()
      console.log((await pending).error.code)
    }, 50)`
  const started = Date.now()
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 })
  expect(r.stdout.trim()).toBe('CLOSED')
  expect(r.status).toBe(0)
  expect(Date.now() - started).toBeLessThan(6000) // the read alone would take 8 s
})

describe('methods work detached (the contract never throws)', () => {
  test.each([
    ['a manager', () => manager()],
    ['the testing entry', () => createTestSecretManager({ a: 'a1' })],
  ])('%s', async (_, make) => {
    const m = make()
    const { getSecretValue, getSecretValues, prefetch, refresh, invalidate, stats, secretChanged, close } = m
    expect((await getSecretValue('a', '')).value).toBe('a1')
    expect((await getSecretValues(['a'], ''))[0].value).toBe('a1')
    expect((await prefetch(['a'], ''))[0].value).toBe('a1')
    expect((await refresh('a', '')).value).toBe('a1')
    expect(() => invalidate('a')).not.toThrow()
    expect(stats().entries).toBeGreaterThanOrEqual(0)
    await expect(secretChanged('v', 'a')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await close()
    expect((await getSecretValue('a', '')).error.code).toBe('CLOSED')
  })

  test('the default instance', async () => {
    const { getSecretValue } = secretManager
    const r = await getSecretValue('k', '') // whatever this environment configures: an answer, not a throw
    expect(typeof r.expiresOn).toBe('number')
  })
})
