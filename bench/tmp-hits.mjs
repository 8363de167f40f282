import { Bench } from 'tinybench'
import { createRequire } from 'node:module'
const require = createRequire('/work/main/bench/index.mjs')
const { SecretManager } = require(process.env.IDX)
const BATCH = 1000
const keys = Array.from({ length: 100 }, (_, i) => `key-${i}`)
const secrets = Object.fromEntries(keys.map((k, i) => [k, `value-${i}`]))
const manager = new SecretManager({ source: 'memory', secrets })
const URL = 'https://scu1234ret.commerce.dynamics.com/'
await manager.prefetch(keys, URL)
const map = new Map(keys.map((k) => [k, { value: secrets[k], expiresOn: 1 }]))
for (let round = 0; round < 3; round++) {
  const bench = new Bench({ time: 1500, warmupTime: 300 })
  bench
    .add('map', async () => { for (let i = 0; i < BATCH; i++) await Promise.resolve(map.get(keys[i % 100])) })
    .add('hit', async () => { for (let i = 0; i < BATCH; i++) await manager.getSecretValue(keys[i % 100], URL) })
  await bench.run()
  const ns = Object.fromEntries(bench.tasks.map((t) => [t.name, (t.result.latency.mean * 1e6) / BATCH]))
  console.log(ns.map.toFixed(1), ns.hit.toFixed(1), (ns.hit / ns.map).toFixed(3))
}
