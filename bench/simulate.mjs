// `npm run simulate`: Key Vault GETs of a fleet, second by second, over 24 h of simulated
// time. Pure computation, no network. Each instance reads S secrets; the cache follows
// src/cache.rs: a key is refreshed ahead of use after its interval, jittered ±10%, and
// adaptive refresh doubles the interval after every refresh that finds the same version
// (300 s, 600 s, … up to maxRefreshAfterSeconds, 3,600 s by default), with a jitter that widens
// to [½, 1) of the interval once it has doubled; a rotation starts over.
//
// Scenarios, for F instances:
// - start-up, all at once: every instance starts at t = 0 and prefetches its secrets spread
//   over PREFETCH_SPREAD seconds (`prefetch(keys, url, { spreadMs })`);
// - rolling deploy: instances start in batches of ROLL_BATCH every ROLL_EVERY seconds, each
//   prefetching spread over ROLL_EVERY seconds;
// - steady state: the peak after the first two hours (adaptive refresh vs the fixed 300 s);
// - a rotation of one secret at noon: with Event Grid push fanned out to every instance, each
//   refreshes at a random moment within PUSH_SPREAD seconds (`createEventGridHandler(m,
//   { spreadMs })`); without push, each picks it up at its next refresh.
// Reported: the peak GETs in any 10 s window, next to Key Vault's limit of about 4,000 GET
// per 10 s per vault, and when the last instance picked up the rotation.
const DAY = 86_400
const S = 50
const REFRESH = 300
const MAX_REFRESH = 3600
const PREFETCH_SPREAD = 600
const ROLL_BATCH = 50
const ROLL_EVERY = 60
const ROLL_SPREAD = 180
const PUSH_SPREAD = 50
const PUSH_LATENCY = 5
const ROTATION_AT = 43_200
const LIMIT = 4000
const FLEETS = [10, 100, 1000, 10_000]

const jitter = () => 0.9 + 0.2 * Math.random()

function peak(perSecond, from = 0, to = DAY) {
  let window = 0
  let best = 0
  for (let t = 0; t < DAY; t++) {
    window += perSecond[t] - (t >= 10 ? perSecond[t - 10] : 0)
    if (t >= from + 9 && t < to && window > best) best = window
  }
  return best
}

// One instance × one secret from `start` (its prefetch moment) to the end of the day; returns
// when it picked up the rotation (if the secret is the rotated one).
function run(perSecond, start, adaptive, rotated, push) {
  let t = start
  let doublings = 0
  let pickedUp
  const pushAt = push ? ROTATION_AT + PUSH_LATENCY + Math.random() * PUSH_SPREAD : Infinity
  let pushed = false
  while (t < DAY) {
    perSecond[Math.floor(t)]++
    if (rotated && pickedUp === undefined && t >= ROTATION_AT) pickedUp = t
    const interval = adaptive ? Math.min(REFRESH * 2 ** doublings, MAX_REFRESH) : REFRESH
    // Past the first interval, the jitter widens to [½, 1) of it (src/cache.rs `jitter_for`):
    // instances that started together drift apart instead of doubling in step.
    let next = t + interval * (adaptive && doublings > 0 ? 0.5 + 0.5 * Math.random() : jitter())
    if (rotated && !pushed && pushAt > t && pushAt < next) {
      next = pushAt
      pushed = true
    }
    // The refresh at `next` finds the same version unless the rotation happened since t.
    const changed = rotated && t < ROTATION_AT && next >= ROTATION_AT
    doublings = changed ? 0 : Math.min(doublings + 1, 30)
    t = next
  }
  return pickedUp
}

function scenario(F, { starts, adaptive = true, push = false }) {
  const perSecond = new Float64Array(DAY)
  let lastPickup = 0
  for (let i = 0; i < F; i++) {
    const start = starts(i)
    for (let j = 0; j < S; j++) {
      const at = start.t0 + Math.random() * start.spread
      const picked = run(perSecond, at, adaptive, j === 0, push)
      if (j === 0 && picked !== undefined) lastPickup = Math.max(lastPickup, picked - ROTATION_AT)
    }
  }
  return { perSecond, lastPickup }
}

const allAtOnce = () => ({ t0: 0, spread: PREFETCH_SPREAD })
const rolling = (i) => ({ t0: Math.floor(i / ROLL_BATCH) * ROLL_EVERY, spread: ROLL_SPREAD })

const fmt = (n) => Math.round(n).toLocaleString('en-US')
const mark = (n) => (n > LIMIT ? `${fmt(n)} (throttled)` : fmt(n))
const rows = []
for (const F of FLEETS) {
  const a = scenario(F, { starts: allAtOnce })
  const r = scenario(F, { starts: rolling })
  const fixed = scenario(F, { starts: allAtOnce, adaptive: false })
  const pushed = scenario(F, { starts: allAtOnce, push: true })
  const rollEnd = Math.ceil(F / ROLL_BATCH) * ROLL_EVERY + ROLL_EVERY
  rows.push({
    F,
    startup: peak(a.perSecond, 0, PREFETCH_SPREAD + 10),
    rolling: peak(r.perSecond, 0, rollEnd + MAX_REFRESH * 2),
    steady: peak(a.perSecond, 7200),
    steadyFixed: peak(fixed.perSecond, 7200),
    pushPeak: peak(pushed.perSecond, ROTATION_AT, ROTATION_AT + PUSH_LATENCY + PUSH_SPREAD + 20),
    pushPickup: pushed.lastPickup,
    pullPickup: a.lastPickup,
  })
}

console.log(
  `Fleet simulation: ${S} secrets per instance, 24 h, Key Vault limit ${fmt(LIMIT)} GET per 10 s per vault; ` +
    `refresh ${REFRESH} s doubling to ${MAX_REFRESH} s (jittered ±10%); prefetch spread ${PREFETCH_SPREAD} s; ` +
    `rolling deploy ${ROLL_BATCH} instances every ${ROLL_EVERY} s, each prefetch spread ${ROLL_SPREAD} s; push spread ${PUSH_SPREAD} s\n`,
)
console.log('| instances | start-up, all at once | rolling deploy | steady, adaptive | steady, fixed 300 s | rotation with Event Grid: peak | picked up by all, with Event Grid | picked up by all, without |')
console.log('|---|---|---|---|---|---|---|---|')
for (const r of rows) {
  console.log(
    `| ${fmt(r.F)} | ${mark(r.startup)} | ${mark(r.rolling)} | ${mark(r.steady)} | ${mark(r.steadyFixed)} | ${mark(r.pushPeak)} | ${fmt(r.pushPickup)} s | ${fmt(r.pullPickup)} s |`,
  )
}
console.log('\nPeaks are GETs in any 10 s window; "steady" is after the first two hours.')
