// Memory per cached entry: run as `node --expose-gc bench/rss.mjs ours|map N`, prints JSON.
// The store's own copy (the memory source's secrets) is in place before the first reading,
// so the difference is what caching N entries costs: Rust's entries plus the JS mirror.
// JS memory is V8's heapUsed growth (RSS alone misses it: V8 reuses heap pages it already
// committed); native memory is RSS growth beyond V8's committed heap growth (malloc).
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const which = process.argv[2]
const n = Number(process.argv[3] ?? 100000)
const keys = Array.from({ length: n }, (_, i) => `secret-key-${String(i).padStart(6, '0')}`)
const values = keys.map((k, i) => `value-${i}-${'x'.repeat(24)}`.slice(0, 32))
const secrets = Object.fromEntries(keys.map((k, i) => [k, values[i]]))
// Top-level module code runs as an async function: without this, V8 frees these inputs after
// their last use, between the two readings, and the difference comes out negative.
globalThis.inputsKeptAlive = { keys, values, secrets }
const payload = keys.reduce((s, k, i) => s + k.length + values[i].length, 0) / n

// One round of gc() does not settle V8's heap (seen here: heapUsed fell by a further 7 MB on
// the second round), so settle until two readings agree.
function settle() {
  let last = -1
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 3; i++) globalThis.gc()
    const used = process.memoryUsage().heapUsed
    if (Math.abs(used - last) < 64 * 1024) break
    last = used
  }
  return process.memoryUsage()
}

let holder
let before
if (which === 'ours') {
  const { SecretManager } = require('../index.js')
  holder = new SecretManager({ source: 'memory', secrets, cache: { maxEntries: n * 2 } })
  await holder.getSecretValue(keys[0], '') // runtime and first allocations before the baseline
  holder.invalidate()
  before = settle()
  for (let i = 0; i < n; i += 1000) await holder.prefetch(keys.slice(i, i + 1000), '')
  if (holder.stats().entries !== n) throw new Error('not every entry cached')
} else {
  // The anchor: a plain Map of ISecretValue objects, each value a fresh copy as a fetch would give.
  holder = new Map()
  before = settle()
  for (let i = 0; i < n; i++) holder.set(keys[i], { value: Buffer.from(values[i]).toString(), expiresOn: 1 })
}
globalThis.inputsKeptAlive.holder = holder // the thing measured must outlive the reading, too
const after = settle()
const js = after.heapUsed - before.heapUsed
const native = Math.max(0, after.rss - before.rss - (after.heapTotal - before.heapTotal))
const perEntry = (js + native) / n
console.log(JSON.stringify({ which, n, perEntry, jsPerEntry: js / n, nativePerEntry: native / n, payload, beyondPayload: perEntry - payload }))
