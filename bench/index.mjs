// `npm run bench`: each figure beside its anchor, measured in the same run, with the ratio.
// Prints a Markdown table (pasted into the README) and writes bench/results.json.
import { Bench } from 'tinybench'
import { createRequire } from 'node:module'
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const here = path.dirname(fileURLToPath(import.meta.url))
const { SecretManager } = require('../index.js')
const { noopAsync } = require('../binding.js').load()

// A throwaway CA and a certificate for 127.0.0.1 it signed, made now: the fake vault speaks
// https (the Azure SDK sends tokens only over https), and both clients trust this CA only in
// this run (NODE_EXTRA_CA_CERTS for the SDK's process, COMMERCE_SECRETS_EXTRA_CA_CERTS for
// ours, read at our first remote call, so it is set before any).
const certDir = mkdtempSync(path.join(os.tmpdir(), 'csm-bench-'))
function makeCertificates() {
  const run = (args) => execFileSync('openssl', args, { cwd: certDir, stdio: ['ignore', 'ignore', 'pipe'] })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=commerce-secret-manager bench CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'])
  run(['req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=127.0.0.1'])
  writeFileSync(path.join(certDir, 'leaf.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n')
  run(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'leaf.ext'])
  return { ca: path.join(certDir, 'ca.pem'), cert: path.join(certDir, 'leaf.pem'), key: path.join(certDir, 'leaf.key') }
}
const certs = makeCertificates()
process.env.COMMERCE_SECRETS_EXTRA_CA_CERTS = certs.ca

const INTERNALS = Symbol.for('commerce-secret-manager.internals')
const control = (manager, c) => require('../binding.js').load().testControl(manager[INTERNALS]().native, c)
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
  row('(a) awaited cache hit', hit, '`await Promise.resolve(map.get(k))`', ns['JS Map.get + Promise.resolve (awaited)'], 'ns/op', '≤ 1.2×')
  const napi = ns['no-op async fn across napi (awaited)']
  row('(b) awaited cache hit', hit, 'awaited no-op `async fn` across napi', napi, 'ns/op', '≥ 20× faster', napi / hit)
  const stats = manager.stats()
  if (stats.upstreamRequests !== keys.length) throw new Error(`hits went upstream: ${JSON.stringify(stats)}`)
}

// (c): 1,000 concurrent cold calls of one key, against a store that takes 20 ms.
async function herd() {
  const manager = new SecretManager({ source: 'memory', secrets: { k: 'v' } })
  control(manager, { delayMs: 20 })
  await Promise.all(Array.from({ length: 1000 }, () => manager.getSecretValue('k', URL)))
  const ours = control(manager, {})

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

// (a″): the hit as deployed Commerce makes it: the retail-server source, whose cache key
// includes the https base url, next to the same Map anchor in the same run.
async function retailHits(baseUrl) {
  const keys = Array.from({ length: 100 }, (_, i) => `key-${i}`)
  const manager = new SecretManager({ source: 'retail-server', allowInsecureLoopback: true })
  const got = await manager.prefetch(keys, baseUrl)
  if (got.some((r) => r.error)) throw new Error(got.find((r) => r.error).error.message)
  const map = new Map(keys.map((k) => [k, { value: 'bench-value', expiresOn: 1 }]))
  const bench = new Bench({ time: 1500, warmupTime: 300 })
  bench
    .add('JS Map.get + Promise.resolve (awaited)', async () => {
      for (let i = 0; i < BATCH; i++) await Promise.resolve(map.get(keys[i % 100]))
    })
    .add('getSecretValue hit, retail-server (awaited)', async () => {
      for (let i = 0; i < BATCH; i++) await manager.getSecretValue(keys[i % 100], baseUrl)
    })
  await bench.run()
  const ns = Object.fromEntries(bench.tasks.map((t) => [t.name, (t.result.latency.mean * 1e6) / BATCH]))
  row('(a″) awaited cache hit, retail-server, https base url', ns['getSecretValue hit, retail-server (awaited)'], '`await Promise.resolve(map.get(k))`', ns['JS Map.get + Promise.resolve (awaited)'], 'ns/op', '≤ 1.1×')
  const stats = manager.stats()
  if (stats.upstreamRequests !== keys.length) throw new Error(`hits went upstream: ${JSON.stringify(stats)}`)
  await manager.close()
}

// Cold miss against loopback fakes of the identity endpoint and Retail Server: a token request
// and a secret request, through a fresh manager, next to Node's own fetch making the same two.
async function coldMiss() {
  const child = spawn(process.execPath, [path.join(here, 'upstream.mjs'), certs.cert, certs.key], { stdio: ['pipe', 'pipe', 'inherit'] })
  const urls = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(JSON.parse(String(d)))))
  process.env.IDENTITY_ENDPOINT = urls.identity
  process.env.IDENTITY_HEADER = 'bench-header'
  await retailHits(urls.retailHttps)
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

// The most common alternative: @azure/keyvault-secrets with @azure/identity (App Service
// managed identity), against the same fake vault, with and without a hand-written Map cache.
async function azureSdk() {
  const child = spawn(process.execPath, [path.join(here, 'vault.mjs'), certs.cert, certs.key], { stdio: ['pipe', 'pipe', 'inherit'] })
  const urls = await new Promise((resolve) => child.stdout.once('data', (d) => resolve(JSON.parse(String(d)))))
  const env = { PATH: process.env.PATH, IDENTITY_ENDPOINT: urls.identity, IDENTITY_HEADER: 'bench', BENCH_VAULT_URL: urls.vault, NODE_EXTRA_CA_CERTS: certs.ca }
  const sdk = JSON.parse(
    execFileSync(process.execPath, ['-r', path.join(here, 'loopback-only.cjs'), path.join(here, 'azure-sdk.mjs')], { env, encoding: 'utf8' }),
  )
  process.env.IDENTITY_ENDPOINT = urls.identity
  process.env.IDENTITY_HEADER = 'bench'
  const fresh = () => new SecretManager({ source: 'key-vault', vaultUrls: [urls.vault], allowInsecureLoopback: true })
  const counts = async () => (await fetch(`${urls.identity}__counts`)).json()
  const warm = fresh()
  const first = await warm.getSecretValue('bench-secret', '')
  if (first.value !== 'bench-value') throw new Error(`ours did not read the fake vault: ${first.error && first.error.message}`)
  const anchor = new Map([['bench-secret', { value: 'bench-value', expiresOn: 1 }]])
  const bench = new Bench({ time: 2000, warmupTime: 300 })
  bench
    .add('JS Map.get + Promise.resolve (awaited)', async () => {
      for (let i = 0; i < BATCH; i++) await Promise.resolve(anchor.get('bench-secret'))
    })
    .add('ours: hit', async () => {
      for (let i = 0; i < BATCH; i++) await warm.getSecretValue('bench-secret', '')
    })
    .add('ours: cold miss (new manager)', async () => {
      const m = fresh()
      const r = await m.getSecretValue('bench-secret', '')
      if (r.error) throw new Error(r.error.message)
      await m.close()
    })
  await bench.run()
  const ms = Object.fromEntries(bench.tasks.map((t) => [t.name, t.result.latency.mean]))
  await fetch(`${urls.identity}__reset`)
  const herdManager = fresh()
  await Promise.all(Array.from({ length: 1000 }, () => herdManager.getSecretValue('bench-secret', '')))
  const herd = await counts()
  child.stdin.end()
  const hit = (ms['ours: hit'] * 1e6) / BATCH
  row('(a‴) awaited cache hit, Key Vault', hit, '`await Promise.resolve(map.get(k))`', (ms['JS Map.get + Promise.resolve (awaited)'] * 1e6) / BATCH, 'ns/op', '≤ 1.1×')
  row('(g) awaited hit, Key Vault', hit, '`@azure/keyvault-secrets` + a `Map` cache', sdk.hitNs, 'ns/op', '—')
  row('(g′) awaited hit, Key Vault', hit, '`@azure/keyvault-secrets` alone (a vault round trip)', sdk.roundTripUs * 1000, 'ns/op', '—')
  row('(h) cold miss: challenge + token + secret, new client', ms['ours: cold miss (new manager)'] * 1000, '`@azure/keyvault-secrets` + `@azure/identity`', sdk.coldMissUs, 'µs', '—')
  row('(i) 1,000 concurrent cold calls, Key Vault', herd.challenges + herd.gets + herd.tokens, '`@azure/keyvault-secrets` (a `Map` cache does not help here)', sdk.herdRequests, 'upstream requests', '—')
}

// (k), (k′): the hit with OpenTelemetry absent, and with the SDK registered, each beside the
// Map floor in the same Bench (bench/telemetry-hits.mjs, one process each).
function telemetryHits() {
  const run = (mode) => JSON.parse(execFileSync(process.execPath, [path.join(here, 'telemetry-hits.mjs'), mode], { encoding: 'utf8' }))
  const absent = run('absent')
  const sdk = run('sdk')
  if (sdk.spans !== 100 || sdk.upstreamRequests !== 100) throw new Error(`a span per upstream read, none per hit: ${JSON.stringify(sdk)}`)
  row('(k) awaited cache hit, OpenTelemetry absent', absent.hitNs, '`await Promise.resolve(map.get(k))`', absent.floorNs, 'ns/op', '≤ 1.15×')
  row('(k′) awaited cache hit, OpenTelemetry SDK registered (traces + metrics)', sdk.hitNs, '`await Promise.resolve(map.get(k))`', sdk.floorNs, 'ns/op', '≤ 1.15×')
}

// Module load: a fresh process from require to the first answered hit, median of 5.
function moduleLoad() {
  const time = (code) => {
    const runs = Array.from({ length: 5 }, () => Number(execFileSync(process.execPath, ['-e', code], { cwd: path.join(here, '..'), encoding: 'utf8' })))
    return runs.sort((a, b) => a - b)[2]
  }
  const ours = time(`const t = process.hrtime.bigint()
    const { SecretManager } = require('./index.js')
    const m = new SecretManager({ source: 'memory', secrets: { k: 'v' } })
    m.getSecretValue('k', '').then(() => m.getSecretValue('k', '')).then(() => console.log(Number(process.hrtime.bigint() - t) / 1e6))`)
  const sdk = time(`const t = process.hrtime.bigint()
    const { SecretClient } = require('@azure/keyvault-secrets')
    const { ManagedIdentityCredential } = require('@azure/identity')
    new SecretClient('https://bench.vault.azure.net', new ManagedIdentityCredential())
    console.log(Number(process.hrtime.bigint() - t) / 1e6)`)
  row('(j) module load: require → first hit (fresh process, median of 5)', ours, 'require `@azure/keyvault-secrets` + `@azure/identity`, make a client', sdk, 'ms', '—')
}

function fmt(x) {
  return x >= 100 ? x.toFixed(0) : x.toFixed(1)
}

// Small ratios read better as fractions: 1/1000× rather than 0.00×.
function ratio(r) {
  return r >= 0.1 ? `${r.toFixed(2)}×` : `1/${Math.round(1 / r)}×`
}

await hits()
telemetryHits()
await herd()
await coldMiss()
await azureSdk()
moduleLoad()
rmSync(certDir, { recursive: true, force: true })
const memory = rss()

const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.arch()}`
const lines = [
  `Machine: ${machine}`,
  '',
  '| measure | commerce-secret-manager | anchor (same run) | anchor | ratio | target |',
  '|---|---|---|---|---|---|',
  ...rows.map(
    (r) => `| ${r.name} | ${fmt(r.ours)} ${r.unit} | ${r.anchorName} | ${fmt(r.anchor)} ${r.unit} | ${ratio(r.ratio)} | ${r.target} |`,
  ),
]
console.log(lines.join('\n'))
console.log(
  `\n(d) detail: ours ${fmt(memory.ours.perEntry)} bytes/entry in all, the Map ${fmt(memory.map.perEntry)}; ` +
    `key + value ${fmt(memory.ours.payload)} bytes. Ratios: ours/anchor, except (b): anchor/ours.`,
)
writeFileSync(path.join(here, 'results.json'), JSON.stringify({ machine, date: new Date().toISOString(), rows, memory }, null, 2))
