// `npm run bench`: each figure beside its anchor, measured in the same run, with the ratio.
// Prints a Markdown table (pasted into the README) and writes bench/results.json.
import { Bench } from 'tinybench'
import { createRequire } from 'node:module'
import { execFileSync, spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const here = path.dirname(fileURLToPath(import.meta.url))
const { SecretManager } = require('../index.js')
const { noopAsync } = require('../native.js')

const TEST_CONTROL = Symbol.for('commerce-secret-manager.testControl')
const URL = 'https://scu1234ret.commerce.dynamics.com/'
const BATCH = 1000
const rows = []

function row(name, ours, anchorName, anchor, unit, target, ratio = ours / anchor) {
  rows.push({ name, ours, anchorName, anchor, unit, ratio, target })
}

// (a), (b): an awaited cache hit. Each task awaits BATCH calls, so the harness's own
// per-iteration cost does not swamp a sub-microsecond operation.
async function hits() {
  const keys = Array.from({ length: 100 }, (_, i) => `key-${i}`)
  const secrets = Object.fromEntries(keys.map((k, i) => [k, `value-${i}`]))
  const manager = new SecretManager({ source: 'memory', secrets })
  await manager.prefetch(keys, URL)
  const map = new Map(keys.map((k) => [k, { value: secrets[k], expiresOn: 1 }]))

  const bench = new Bench({ time: 1500, warmupTime: 300 })
  bench
    .add('JS Map.get + Promise.resolve (awaited)', async () => {
      for (let i = 0; i < BATCH; i++) await Promise.resolve(map.get(keys[i % 100]))
    })
    .add('getSecretValue hit (awaited)', async () => {
      for (let i = 0; i < BATCH; i++) await manager.getSecretValue(keys[i % 100], URL)
    })
    .add('no-op async fn across napi (awaited)', async () => {
      for (let i = 0; i < BATCH; i++) await noopAsync()
    })
  await bench.run()
  const ns = Object.fromEntries(bench.tasks.map((t) => [t.name, (t.result.latency.mean * 1e6) / BATCH]))
  const hit = ns['getSecretValue hit (awaited)']
  row('(a) awaited cache hit', hit, '`await Promise.resolve(map.get(k))`', ns['JS Map.get + Promise.resolve (awaited)'], 'ns/op', '≤ 2× (goal 1×)')
  const napi = ns['no-op async fn across napi (awaited)']
  row('(b) awaited cache hit', hit, 'awaited no-op `async fn` across napi', napi, 'ns/op', '≥ 20× faster', napi / hit)
  const stats = manager.stats()
  if (stats.upstreamRequests !== keys.length) throw new Error(`hits went upstream: ${JSON.stringify(stats)}`)
}

// (c): 1,000 concurrent cold calls of one key, against a store that takes 20 ms.
async function herd() {
  const manager = new SecretManager({ source: 'memory', secrets: { k: 'v' } })
  manager[TEST_CONTROL]({ delayMs: 20 })
  await Promise.all(Array.from({ length: 1000 }, () => manager.getSecretValue('k', URL)))
  const ours = manager[TEST_CONTROL]({})

  // The anchor: the Map cache people write by hand, in front of the same kind of store.
  let upstream = 0
  const cache = new Map()
  const fetchSecret = async (k) => {
    upstream++
    await new Promise((r) => setTimeout(r, 20))
    return { value: 'v', expiresOn: 1 }
  }
  const get = async (k) => cache.get(k) ?? (cache.set(k, await fetchSecret(k)), cache.get(k))
  await Promise.all(Array.from({ length: 1000 }, () => get('k')))
  row('(c) 1,000 concurrent cold calls', ours, 'hand-written Map cache', upstream, 'upstream requests', 'exactly 1')
}

// (d): RSS per cached entry with 100,000 entries, each in its own process.
function rss() {
  const run = (which) =>
    JSON.parse(execFileSync(process.execPath, ['--expose-gc', path.join(here, 'rss.mjs'), which, '100000'], { encoding: 'utf8' }))
  const ours = run('ours')
  const map = run('map')
  row(
    '(d) memory per entry beyond key + value (100,000 entries)',
    ours.beyondPayload,
    'JS `Map` of `{ value, expiresOn }`',
    map.beyondPayload,
    'bytes',
    '≤ 300 bytes',
  )
  return { ours, map }
}

// Cold miss against loopback fakes of the identity endpoint and Retail Server: a token request
// and a secret request, through a fresh manager, next to Node's own fetch making the same two.
async function coldMiss() {
  const child = spawn(process.execPath, [path.join(here, 'upstream.mjs')], { stdio: ['pipe', 'pipe', 'inherit'] })
  const urls = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(JSON.parse(String(d)))))
  process.env.IDENTITY_ENDPOINT = urls.identity
  process.env.IDENTITY_HEADER = 'bench-header'
  const fresh = () => new SecretManager({ source: 'retail-server', allowInsecureLoopback: true })
  const ours = async (keys) => {
    const m = fresh()
    const got = await m.getSecretValues(keys, urls.retail)
    if (got.some((r) => r.error)) throw new Error(got.find((r) => r.error).error.message)
    await m.close()
  }
  const node = async (key) => {
    const t = await fetch(`${urls.identity}?resource=https%3A%2F%2Fcommerce.dynamics.com&api-version=2019-08-01`, {
      headers: { 'x-identity-header': 'bench-header' },
    }).then((r) => r.json())
    const name = encodeURIComponent(key.replace(/'/g, "''"))
    const s = await fetch(`${urls.retail}Commerce/GetUserDefinedSecretString(secretName='${name}')`, {
      headers: { authorization: `Bearer ${t.access_token}`, oun: '128', accept: 'application/json' },
    }).then((r) => r.json())
    if (s.value !== 'bench-value') throw new Error('bad reply')
  }
  const keys50 = Array.from({ length: 50 }, (_, i) => `key-${i}`)
  const bench = new Bench({ time: 2000, warmupTime: 300 })
  bench
    .add('ours: one cold miss', () => ours(['key-0']))
    .add('node fetch: token + secret', () => node('key-0'))
    .add('ours: 50 cold misses at once', () => ours(keys50))
    .add('node fetch: 50 × (token + secret) at once', () => Promise.all(keys50.map(node)))
  await bench.run()
  child.stdin.end()
  const ms = Object.fromEntries(bench.tasks.map((t) => [t.name, t.result.latency.mean]))
  row('(e) cold miss, one at a time', ms['ours: one cold miss'] * 1000, 'Node `fetch`: token + secret request', ms['node fetch: token + secret'] * 1000, 'µs', '≤ 1.5×')
  row(
    '(f) 50 cold misses of different keys at once',
    ms['ours: 50 cold misses at once'] * 1000,
    'Node `fetch`: 50 × (token + secret)',
    ms['node fetch: 50 × (token + secret) at once'] * 1000,
    'µs',
    '≤ 1×',
  )
}

function fmt(x) {
  return x >= 100 ? x.toFixed(0) : x.toFixed(1)
}

await hits()
await herd()
await coldMiss()
const memory = rss()

const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.arch()}`
const lines = [
  `Machine: ${machine}`,
  '',
  '| measure | commerce-secret-manager | anchor (same run) | anchor | ratio | target |',
  '|---|---|---|---|---|---|',
  ...rows.map(
    (r) => `| ${r.name} | ${fmt(r.ours)} ${r.unit} | ${r.anchorName} | ${fmt(r.anchor)} ${r.unit} | ${r.ratio.toFixed(2)}× | ${r.target} |`,
  ),
]
console.log(lines.join('\n'))
console.log(
  `\n(d) detail: ours ${fmt(memory.ours.perEntry)} bytes/entry in all, the Map ${fmt(memory.map.perEntry)}; ` +
    `key + value ${fmt(memory.ours.payload)} bytes. Ratios: (a), (c)–(f) ours/anchor, (b) anchor/ours.`,
)
writeFileSync(path.join(here, 'results.json'), JSON.stringify({ machine, date: new Date().toISOString(), rows, memory }, null, 2))
