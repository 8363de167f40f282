'use strict'
// Memory comes back (issue 20): a replaced or removed answer holds no value anywhere in JS, so
// any number of refresh / invalidate rounds leave the heap where it was. Values of 1 MB, 100
// keys, 6 rounds (refresh, then invalidate + get, alternately); measured with gc() in a child
// process of its own (--expose-gc).
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const root = path.join(__dirname, '..')

test('100 secrets of 1 MB refreshed 6 rounds: the heap is back within 10% after gc()', () => {
  const script = `
    const { SecretManager } = require(${JSON.stringify(root)})
    const { control } = require(${JSON.stringify(path.join(__dirname, 'helpers.js'))})
    ;(async () => {
      const keys = Array.from({ length: 100 }, (_, i) => 'k' + i)
      const big = (round, i) => round + '-' + i + '-' + 'x'.repeat(1024 * 1024)
      const m = new SecretManager({ source: 'memory', secrets: Object.fromEntries(keys.map((k, i) => [k, big(0, i)])) })
      await Promise.all(keys.map((k) => m.getSecretValue(k, '')))
      const heap = () => { global.gc(); global.gc(); return process.memoryUsage().heapUsed }
      const base = heap()
      const rounds = []
      for (let round = 1; round <= 6; round++) {
        for (let i = 0; i < keys.length; i++) control(m, { key: keys[i], value: big(round, i) })
        if (round % 2) await Promise.all(keys.map((k) => m.refresh(k, '')))
        else {
          for (const k of keys) m.invalidate(k)
          await Promise.all(keys.map((k) => m.getSecretValue(k, '')))
        }
        rounds.push(heap())
      }
      const last = await m.getSecretValue('k7', '')
      console.log(JSON.stringify({ base, rounds, current: last.value.startsWith('6-7-') }))
      await m.close()
    })()`
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 60000 })
  expect(r.stderr).toBe('')
  const { base, rounds, current } = JSON.parse(r.stdout)
  expect(current).toBe(true)
  // The current values are about 100 MB of it; before the fix every round added another 100 MB.
  for (const h of rounds) expect(h).toBeLessThan(base * 1.1)
}, 90000)
