// `npm run simulate`: the upstream load of a fleet over 24 h of simulated time. Pure
// computation, no network.
//
// The model: F instances start together. Each makes one getSecretValue call per second,
// cycling through its S secrets (instance i reads secret (t + i) mod S at second t), so each
// secret is read every S seconds per instance. An instance goes upstream:
// - no cache: on every call (1 request per second per instance);
// - fixed TTL (300 s, no jitter): on the first read after its entry expired;
// - ours: on the first read, then on the first read after the entry's refresh time, which is
//   300 s × a factor in [0.9, 1.1) drawn anew at every refresh (as src/cache.rs does). The
//   value never expires in between (max age 24 h), so no caller ever waits.
// It prints the peak upstream requests in any 10 s window, over the whole day and after the
// first hour (start-up is the same cold fetch for every cached policy), next to Key Vault's
// limit of about 4,000 GET per 10 s per vault.
const DAY = 86_400
const S = 50
const TTL = 300
const LIMIT = 4000
const FLEETS = [10, 100, 1000, 10_000]

function peaks(perSecond) {
  let window = 0
  let all = 0
  let steady = 0
  for (let t = 0; t < DAY; t++) {
    window += perSecond[t] - (t >= 10 ? perSecond[t - 10] : 0)
    if (window > all) all = window
    if (t >= 3600 + 9 && window > steady) steady = window
  }
  return { all, steady }
}

// Secret j is read by instance i at seconds first, first + S, first + 2S, ...
const firstRead = (i, j) => (((j - i) % S) + S) % S
const nextRead = (first, at) => first + S * Math.max(0, Math.ceil((at - first) / S))

function simulate(F, policy) {
  const perSecond = new Float64Array(DAY)
  if (policy === 'no cache') {
    perSecond.fill(F)
    return perSecond
  }
  // Instances with the same offset (i mod S) behave alike under a fixed TTL; with jitter each
  // pair draws its own factors, so every pair is simulated.
  for (let i = 0; i < F; i++) {
    for (let j = 0; j < S; j++) {
      const first = firstRead(i, j)
      let t = first
      while (t < DAY) {
        perSecond[t]++
        const due = policy === 'fixed TTL' ? t + TTL : t + TTL * (0.9 + 0.2 * Math.random())
        t = nextRead(first, due)
      }
    }
  }
  return perSecond
}

const policies = ['ours: refresh-ahead, jittered', 'fixed TTL', 'no cache']
const results = []
for (const F of FLEETS) {
  for (const p of policies) {
    const { all, steady } = peaks(simulate(F, p.startsWith('ours') ? 'ours' : p))
    results.push({ F, policy: p, all, steady })
  }
}

const fmt = (n) => Math.round(n).toLocaleString('en-US')
const mark = (n) => (n > LIMIT ? `${fmt(n)} (throttled)` : fmt(n))
console.log(`Fleet simulation: ${S} secrets per instance, 1 call per second per instance, 24 h, limit ${fmt(LIMIT)} GET per 10 s per vault\n`)
console.log('| instances | policy | peak per 10 s, whole day | peak per 10 s, after the first hour |')
console.log('|---|---|---|---|')
for (const r of results) console.log(`| ${fmt(r.F)} | ${r.policy} | ${mark(r.all)} | ${mark(r.steady)} |`)
console.log('\nFirst fleet size (of those simulated) at which each policy is throttled:')
for (const p of policies) {
  const first = (key) => results.find((r) => r.policy === p && r[key] > LIMIT)?.F
  const say = (f) => (f === undefined ? `not at ${fmt(FLEETS.at(-1))}` : `${fmt(f)} instances`)
  console.log(`- ${p}: whole day ${say(first('all'))}; after the first hour ${say(first('steady'))}`)
}
