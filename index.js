'use strict'
// The public entry on the server: a thin layer over the native addon.
//
// Why there is JS here at all:
// - Errors are made here, in the caller's realm, so `instanceof Error` holds (in Jest too).
// - The hit path. Any call into the addon costs more than a JS Map lookup plus a promise, so
//   this layer keeps a mirror of the cache's answers, each valid until the `freshUntilMs` the
//   cache gave with it (before refresh-ahead is due and before expiry). The Rust cache stays
//   the only owner of entries and policy. The protocol between the two, correct by
//   construction:
//   * every entry has a stamp; the mirror keeps an answer only if, at the moment it is put
//     in (a sync call on this thread), the cache says that stamp is still the key's entry;
//   * every removal or replacement in the cache moves a change counter, which this layer
//     reads from shared memory (a Float64Array over the cache's own) before every hit; when
//     it moved, a sync call lists what was removed, and the mirror drops it before answering.
//   * the time an answer may be reused until (refresh-ahead, expiry less a margin) is kept in
//     a min-heap here; at every sync the addon is told the earliest, and its timer moves the
//     same counter then: the hit path reads no clock.
//   So the mirror never answers an entry the cache dropped, and holds a subset of the
//   cache's entries (never more than maxEntries). Hits answered here are reported back
//   (`touched`) so the cache's LRU order stays true.
// - Events: onEvent and diagnostics_channel are JS.
//
// Bundled as is by the Commerce SDK's webpack 4 (no loader for node_modules), so this file
// parses at ES2018: no `#private`, `?.`, `??`, and built-ins are required without `node:`.
// The addon is loaded on first use by binding.js, in a way bundlers leave alone.

const diagnostics = require('diagnostics_channel')
const shared = require('./shared.js')
const binding = require('./binding.js')

const { SecretError, SecretValue, typeName, failure, argumentFailure } = shared
const channel = diagnostics.channel('commerce-secret-manager')
const INTERNALS = Symbol.for('commerce-secret-manager.internals')
const INSPECT = Symbol.for('nodejs.util.inspect.custom')
// Marks the default instance: built from the environment on first use.
const FROM_ENVIRONMENT = Symbol('from environment')
// Url and key in a composite cache key of the addon (keys cannot contain control characters).
const SEP = '\0'
// The change counter of a manager not built yet (the default instance before first use).
const NO_COUNTER = new Float64Array(1)

function splitCacheKey(cacheKey) {
  const i = cacheKey.lastIndexOf(SEP)
  return i < 0 ? { url: '', key: cacheKey } : { url: cacheKey.slice(0, i), key: cacheKey.slice(i + 1) }
}

function environment() {
  const env = {}
  for (const k of Object.keys(process.env)) {
    const v = process.env[k]
    if (typeof v === 'string') env[k] = v
  }
  return env
}

// Slot times are kept relative to this (ms), so they stay small integers (no boxed doubles).
const BASE_MS = Date.now() - 1000

// A binary min-heap of slots by `until`: the mirror's own schedule of when answers stop being
// good. Slots dropped for other reasons stay in it until their time (then they are skipped).
function heapPush(heap, slot) {
  let i = heap.push(slot) - 1
  while (i > 0) {
    const p = (i - 1) >> 1
    if (heap[p].until <= slot.until) break
    heap[i] = heap[p]
    i = p
  }
  heap[i] = slot
}

function heapPop(heap) {
  const top = heap[0]
  const last = heap.pop()
  if (heap.length > 0) {
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= heap.length) break
      const c = l + 1 < heap.length && heap[l + 1].until < heap[l].until ? l + 1 : l
      if (heap[c].until >= last.until) break
      heap[i] = heap[c]
      i = c
    }
    heap[i] = last
  }
  return top
}

// One mirrored answer. A class, so every slot has one small fixed shape (there may be many).
class Slot {
  constructor(reply, cacheKey) {
    // The value as a string; with an id, { value, id } (rare: one field less per slot); for a
    // remembered failure (a cached NOT_FOUND), { code, message, status }.
    this.value =
      reply.code !== undefined
        ? { code: reply.code, message: reply.message, status: reply.status }
        : reply.id === undefined || reply.id === null
          ? reply.value
          : { value: reply.value, id: reply.id }
    this.expiresOn = reply.expiresOn
    this.until = reply.freshUntilMs - BASE_MS // when it stops being good (ms after BASE_MS)
    this.epoch = -1 // not yet reported as touched
    this.cacheKey = cacheKey
  }
}

// Values the addon's JSON conversion cannot carry get a message naming the option here.
function screenOptions(rest) {
  const screen = (name, v) => {
    if (typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint') {
      throw new TypeError(`option \`${name}\` cannot be ${typeof v}`)
    }
    if (typeof v === 'number' && !Number.isFinite(v)) {
      throw new TypeError(`option \`${name}\` must be a finite number (got ${v})`)
    }
  }
  for (const k of Object.keys(rest)) {
    const v = rest[k]
    screen(k, v)
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const k2 of Object.keys(v)) screen(`${k}.${k2}`, v[k2])
    }
    if (Array.isArray(v)) v.forEach((x, i) => screen(`${k}[${i}]`, x))
  }
}

class SecretManager {
  constructor(options) {
    // State lives in plain fields (not `#private`: webpack 4 cannot parse those). None of it
    // is enumerable-worthy: `toJSON` and the inspect hook below show only the source.
    this._native = undefined
    this._source = undefined
    this._keyedByUrl = false
    this._onEvent = undefined
    // Not keyed by url: key -> Slot. Keyed by url: url -> (key -> Slot), so a hit builds no
    // string; the last url's map is kept at hand.
    this._hot = new Map()
    this._lastUrl = undefined
    this._lastMap = undefined
    this._due = [] // min-heap of slots by `until`
    this._changing = new Map() // cache key -> { running, queued }: secretChanged's refreshes
    this._touched = [] // cache keys answered from the mirror since the last fetch
    this._epoch = 0
    this._hits = 0
    // The cache's change counter (shared memory) and the last change this mirror synced to.
    this._counter = NO_COUNTER
    this._seen = 0
    // False where the runtime copies external buffers (the counter would not move): then no
    // mirror, every call asks the addon.
    this._mirror = false
    this._closed = false
    // The default instance: why it could not be built, once it was tried.
    this._unavailable = undefined
    if (options === FROM_ENVIRONMENT) return
    this._build(options)
  }

  _build(options) {
    if (options !== undefined && options !== null && (typeof options !== 'object' || Array.isArray(options))) {
      throw new TypeError(`options must be an object (got ${typeName(options)})`)
    }
    const rest = Object.assign({}, options)
    const onEvent = rest.onEvent
    delete rest.onEvent
    if (onEvent !== undefined && typeof onEvent !== 'function') {
      throw new TypeError(`option \`onEvent\` must be a function (got ${typeName(onEvent)})`)
    }
    screenOptions(rest)
    shared.checkNumberOptions(rest)
    const NativeManager = binding.load().NativeManager
    let native
    try {
      native = new NativeManager(rest, environment(), process.cwd())
    } catch (e) {
      throw new TypeError(String(e && e.message))
    }
    this._native = native
    this._source = native.source
    this._keyedByUrl = native.keyedByUrl
    this._onEvent = onEvent
    this._counter = native.changeCounter()
    const probed = native.probeCounter()
    this._mirror = this._counter[0] === probed
    this._seen = probed
    if (!this._mirror) {
      // The runtime copied the buffer: no mirror, and no sync on the way in (every call asks
      // the addon, and its reply path syncs).
      this._counter = NO_COUNTER
      this._seen = 0
    }
  }

  // The default instance builds itself from the environment on first use. False (and the
  // reason kept) when that failed: every call then answers NOT_CONFIGURED.
  _ready() {
    if (this._native !== undefined) return true
    if (this._unavailable !== undefined) return false
    try {
      this._build(undefined)
      return true
    } catch (e) {
      this._unavailable = `secret manager could not be built from the environment: ${String(e && e.message)}`
      return false
    }
  }

  _notConfigured(secretKey) {
    return failure('NOT_CONFIGURED', this._unavailable, secretKey)
  }

  get source() {
    this._ready()
    return this._source
  }

  getSecretValue(secretKey, baseRetailServerUrl) {
    if (this._counter[0] !== this._seen) this._sync(undefined, 0)
    let slot
    if (this._keyedByUrl) {
      let map = this._lastMap
      if (baseRetailServerUrl !== this._lastUrl) {
        map = typeof baseRetailServerUrl === 'string' ? this._hot.get(baseRetailServerUrl) : undefined
        if (map !== undefined) {
          this._lastUrl = baseRetailServerUrl
          this._lastMap = map
        }
      }
      if (map !== undefined) slot = map.get(secretKey)
    } else if (typeof baseRetailServerUrl === 'string') {
      slot = this._hot.get(secretKey)
    }
    // Only a string key with a string url can be in the mirror: the checks come after it.
    // No clock here (Date.now() alone would double the cost of a hit): the cache's timer moves
    // the change counter when a slot's refresh or expiry time comes (see the top of the file).
    if (slot !== undefined) {
      this._hits++
      if (slot.epoch !== this._epoch) {
        slot.epoch = this._epoch
        this._touched.push(slot.cacheKey)
      }
      const v = slot.value
      if (typeof v === 'string' || v.code === undefined) {
        if (this._onEvent !== undefined || channel.hasSubscribers) this._emit('hit', secretKey)
        return Promise.resolve(
          typeof v === 'string'
            ? new SecretValue(v, undefined, undefined, slot.expiresOn)
            : new SecretValue(v.value, v.id, undefined, slot.expiresOn),
        )
      }
      // A remembered failure (NOT_FOUND): an error event, as when the addon answers it.
      this._emit('error', secretKey, undefined, v.code)
      return Promise.resolve(failure(v.code, v.message, secretKey, v.status, slot.expiresOn))
    }
    const bad = argumentFailure(secretKey, baseRetailServerUrl)
    if (bad !== undefined) return Promise.resolve(bad)
    if (!this._ready()) return Promise.resolve(this._notConfigured(secretKey))
    return this._ask(secretKey, baseRetailServerUrl, false)
  }

  getSecretValues(secretKeys, baseRetailServerUrl) {
    if (!Array.isArray(secretKeys)) {
      return Promise.reject(new TypeError(`secretKeys must be an array of strings (got ${typeName(secretKeys)})`))
    }
    return Promise.all(secretKeys.map((k) => this.getSecretValue(k, baseRetailServerUrl)))
  }

  // Warm the cache at start-up. `spreadMs` spreads the requests over a window (each key at a
  // random moment in it), so a fleet that starts at once does not ask at once. The waits are
  // unref'd timers: they keep nothing alive.
  prefetch(secretKeys, baseRetailServerUrl, options) {
    const spreadMs = options && options.spreadMs !== undefined ? options.spreadMs : 0
    if (typeof spreadMs !== 'number' || !Number.isFinite(spreadMs) || spreadMs < 0 || spreadMs > 3600000) {
      return Promise.reject(new TypeError(`prefetch: option \`spreadMs\` must be a number from 0 to 3600000 (got ${spreadMs})`))
    }
    if (spreadMs === 0 || !Array.isArray(secretKeys)) return this.getSecretValues(secretKeys, baseRetailServerUrl)
    return Promise.all(
      secretKeys.map(
        (k) =>
          new Promise((resolve) => {
            const t = setTimeout(() => resolve(this.getSecretValue(k, baseRetailServerUrl)), Math.random() * spreadMs)
            if (t && typeof t.unref === 'function') t.unref()
          }),
      ),
    )
  }

  refresh(secretKey, baseRetailServerUrl) {
    const bad = argumentFailure(secretKey, baseRetailServerUrl)
    if (bad !== undefined) return Promise.resolve(bad)
    if (!this._ready()) return Promise.resolve(this._notConfigured(secretKey))
    return this._ask(secretKey, baseRetailServerUrl, true)
  }

  invalidate(secretKey) {
    if (secretKey !== undefined && secretKey !== null && typeof secretKey !== 'string') {
      throw new TypeError(`invalidate takes a secret key string or nothing (got ${typeName(secretKey)})`)
    }
    if (this._native === undefined) return
    // The cache logs what it removes; the sync right after drops it from the mirror.
    this._native.invalidate(secretKey === undefined || secretKey === null ? null : secretKey)
    this._sync(undefined, 0)
  }

  // Push invalidation: the secret `name` of `vault` (a vault url or name this manager reads)
  // changed. Every cached entry that pair serves is refreshed, one flight per entry however
  // many calls come: a call while a refresh is running waits for one that starts after it
  // (at most one queued behind the running one). Refused with a SecretError (rejects), nothing
  // sent, for anything that is not a vault this manager reads or not a secret name.
  secretChanged(vault, name) {
    if (typeof vault !== 'string' || typeof name !== 'string') {
      return Promise.reject(
        new SecretError('INVALID_ARGUMENT', `secretChanged takes a vault (url or name) and a secret name, as strings (got ${typeName(vault)} and ${typeName(name)})`),
      )
    }
    if (!this._ready()) return Promise.reject(this._notConfigured(name).error)
    const targets = this._native.changedKeys(vault, name)
    if (targets.code !== undefined && targets.code !== null) {
      return Promise.reject(new SecretError(targets.code, targets.message, name))
    }
    // `refreshed`: the entries that now hold what the store says (a failed refresh keeps the
    // last good value as refresh() does, and is an 'error' event).
    return Promise.all(targets.keys.map((k) => this._refreshCoalesced(k))).then((results) => {
      let refreshed = 0
      for (const r of results) if (r.error === undefined) refreshed++
      return { refreshed }
    })
  }

  // One refresh of a cache key at a time, and at most one queued after it (see secretChanged).
  _refreshCoalesced(cacheKey) {
    const parts = splitCacheKey(cacheKey)
    let state = this._changing.get(cacheKey)
    if (state === undefined) {
      state = { running: this.refresh(parts.key, parts.url), queued: null }
      this._changing.set(cacheKey, state)
      this._whenRefreshed(cacheKey, state)
      return state.running
    }
    if (state.queued === null) {
      // Starts when the running one settles (after _whenRefreshed has made it the running one).
      state.queued = state.running.then(() => this.refresh(parts.key, parts.url))
    }
    return state.queued
  }

  _whenRefreshed(cacheKey, state) {
    state.running.then(() => {
      if (state.queued === null) {
        this._changing.delete(cacheKey)
        return
      }
      state.running = state.queued
      state.queued = null
      this._whenRefreshed(cacheKey, state)
    })
  }

  stats() {
    if (this._native === undefined) {
      return { entries: 0, hits: 0, misses: 0, staleServed: 0, upstreamRequests: 0, upstreamErrors: 0, inFlight: 0 }
    }
    if (this._counter[0] !== this._seen) this._sync(undefined, 0)
    const s = this._native.stats()
    return {
      entries: s.entries,
      hits: s.hits + this._hits,
      misses: s.misses,
      staleServed: s.staleServed,
      upstreamRequests: s.upstreamRequests,
      upstreamErrors: s.upstreamErrors,
      inFlight: s.inFlight,
    }
  }

  close() {
    this._closed = true
    if (this._native !== undefined) this._native.close()
    this._clearMirror()
    this._touched = []
    return Promise.resolve()
  }

  _clearMirror() {
    this._hot.clear()
    this._due = []
    this._lastUrl = undefined
    this._lastMap = undefined
  }

  _mirrorGet(url) {
    if (!this._keyedByUrl) return this._hot
    let map = this._hot.get(url)
    if (map === undefined) {
      map = new Map()
      this._hot.set(url, map)
    }
    return map
  }

  _mirrorDelete(url, secretKey) {
    if (!this._keyedByUrl) {
      this._hot.delete(secretKey)
      return
    }
    const map = this._hot.get(url)
    if (map === undefined) return
    map.delete(secretKey)
    if (map.size === 0) {
      this._hot.delete(url)
      if (this._lastMap === map) {
        this._lastUrl = undefined
        this._lastMap = undefined
      }
    }
  }

  // The slow path: the addon answers now (a hit needing a look, a bad key, an in-process
  // source) or goes upstream through the cache's single flight.
  _ask(secretKey, url, refresh) {
    if (!refresh) {
      let now
      try {
        now = this._native.lookup(secretKey, url)
      } catch (e) {
        return Promise.resolve(this._internal(e, secretKey))
      }
      if (now !== null) return Promise.resolve(this._settle(now, secretKey, url, 'get'))
    }
    return this._fetch(secretKey, url, refresh, refresh ? 'refresh' : 'get')
  }

  _fetch(secretKey, url, refresh, why) {
    const touched = this._touched
    if (touched.length > 0) {
      this._touched = []
      this._epoch++
    }
    let pending
    try {
      pending = this._native.fetch(secretKey, url, refresh, touched)
    } catch (e) {
      return Promise.resolve(this._internal(e, secretKey))
    }
    return pending.then(
      (reply) => this._settle(reply, secretKey, url, why),
      (e) => this._internal(e, secretKey),
    )
  }

  // Follow the cache's change log: drop what it removed (all, when the log overflowed), emit
  // what background refreshes found, and say whether the entry of `cacheKey` with `stamp` is
  // still current. Runs on this thread, so what the mirror holds after it is in the cache.
  _sync(cacheKey, stamp) {
    // Answers whose time has come leave first; the cache's timer is then set for the next.
    const due = this._due
    const now = Date.now() - BASE_MS
    while (due.length > 0 && due[0].until <= now) this._dropSlot(heapPop(due))
    const wake = due.length > 0 ? due[0].until + BASE_MS : 0
    const s = this._native.sync(this._seen, cacheKey === undefined ? null : cacheKey, stamp, wake)
    this._seen = s.changes
    if (s.removed === undefined || s.removed === null) {
      this._clearMirror()
    } else {
      for (const k of s.removed) {
        const parts = splitCacheKey(k)
        this._mirrorDelete(parts.url, parts.key)
      }
    }
    for (const k of s.evicted) this._emit('evict', splitCacheKey(k).key)
    for (const e of s.events) {
      this._emit(e.code ? 'error' : 'refresh', e.key, e.durationMs, e.code, e)
      if (!e.code && e.changed === true) this._emit('rotate', e.key, undefined, undefined, e)
    }
    return s.current
  }

  _mirrorSize() {
    if (!this._keyedByUrl) return this._hot.size
    let n = 0
    this._hot.forEach((map) => {
      n += map.size
    })
    return n
  }

  _rebuildDue() {
    const live = this._due.filter((slot) => this._holds(slot))
    live.sort((a, b) => a.until - b.until) // a sorted array is a heap
    this._due = live
  }

  // Whether the mirror still holds this very slot (not a newer one for its key).
  _holds(slot) {
    const parts = splitCacheKey(slot.cacheKey)
    const map = this._keyedByUrl ? this._hot.get(parts.url) : this._hot
    return map !== undefined && map.get(parts.key) === slot
  }

  // Drop a slot whose time has come, if the mirror still holds that very slot.
  _dropSlot(slot) {
    if (!this._holds(slot)) return
    const parts = splitCacheKey(slot.cacheKey)
    this._mirrorDelete(parts.url, parts.key)
  }

  // Apply a reply to the mirror, emit its events, and make the caller's ISecretValue.
  // The mirror keeps an answer under the key it was asked with, and only when that key is
  // the cache key the addon answered for (its canonical form: every form of a Key Vault
  // reference shares one entry). So every key the cache's log names is a key the mirror may
  // hold, and dropping it drops everything that answered for it. Other forms ask the addon
  // (a synchronous lookup, no runtime).
  _settle(reply, secretKey, url, why) {
    const asked = this._keyedByUrl ? url + SEP + secretKey : secretKey
    const cacheKey = reply.cacheKey === undefined || reply.cacheKey === null ? undefined : reply.cacheKey
    const current = this._closed ? false : this._sync(cacheKey, cacheKey === undefined ? 0 : reply.stamp)
    if (current && cacheKey === asked && this._mirror && reply.freshUntilMs > Date.now()) {
      const slot = new Slot(reply, cacheKey)
      this._mirrorGet(url).set(secretKey, slot)
      heapPush(this._due, slot)
      // Slots replaced or dropped early stay in the heap until their time; when they are most
      // of it (an app that invalidates a lot), keep only the live ones.
      if (this._due.length > 1024 && this._due.length > 4 * this._mirrorSize()) this._rebuildDue()
    } else {
      this._mirrorDelete(url, secretKey)
    }
    if (this._onEvent !== undefined || channel.hasSubscribers) {
      const type = reply.code !== undefined ? 'error' : why === 'get' ? reply.event : 'refresh'
      this._emit(type, secretKey, reply.durationMs, reply.code !== undefined ? reply.code : reply.staleCode, reply)
      if (type === 'refresh' && reply.changed === true) this._emit('rotate', secretKey, undefined, undefined, reply)
    }
    return reply.code !== undefined
      ? failure(reply.code, reply.message, secretKey, reply.status, reply.expiresOn)
      : new SecretValue(reply.value, reply.id, undefined, reply.expiresOn)
  }

  _internal(e, secretKey) {
    const message = `secret '${secretKey}': internal error: ${String(e && e.message)}`
    this._emit('error', secretKey, undefined, 'UNAVAILABLE')
    return failure('UNAVAILABLE', message, secretKey)
  }

  // `detail`: a reply or background event whose `changed` and `version` go on refresh and
  // rotate events.
  _emit(type, secretKey, durationMs, code, detail) {
    if (this._onEvent === undefined && !channel.hasSubscribers) return
    const event = { type, secretKey, source: this._source }
    if (durationMs !== undefined && durationMs !== null) event.durationMs = durationMs
    if (code !== undefined && code !== null) event.code = code
    if (detail !== undefined && (type === 'refresh' || type === 'rotate')) {
      if (typeof detail.changed === 'boolean') event.changed = detail.changed
      if (typeof detail.version === 'string') event.version = detail.version
    }
    if (this._onEvent !== undefined) {
      try {
        this._onEvent(event)
      } catch (err) {
        // A listener's fault must not become the caller's.
      }
    }
    if (channel.hasSubscribers) channel.publish(event)
  }

  toJSON() {
    return { source: this._source }
  }

  [INSPECT]() {
    return `SecretManager { source: '${this._source}' }`
  }

  // For the CLI (doctor, validate) and the project's tests: the resolved configuration, the
  // local file's keys, the addon object. Not part of the public API.
  [INTERNALS]() {
    this._ready()
    const native = this._native
    return {
      native,
      describe: () => native.describe(),
      localKeys: () => native.localKeys(),
      checkToken: () => native.checkToken(),
      tokenRequests: () => native.tokenRequests(),
    }
  }
}

function createSecretManager(options) {
  return new SecretManager(options)
}

// The default instance: a SecretManager with the whole surface, built from the environment
// on first use, so that importing the package costs nothing and a bad environment (or a
// missing binary) surfaces as NOT_CONFIGURED values, not a throw.
const secretManager = new SecretManager(FROM_ENVIRONMENT)

// Sets target.secretManager (msdyn365Commerce's getter-only accessor included: see
// shared.installOn) to the default instance, or to a new one built from `options`. On a
// target that says it is in a browser, changes nothing.
function install(target, options) {
  if (shared.targetIsBrowser(target)) return undefined
  // Checked before a manager is built, so a bad target leaves nothing behind.
  shared.checkTarget(target, 'install')
  const manager = options === undefined ? secretManager : createSecretManager(options)
  return shared.installOn(target, manager, 'install')
}

// Event Grid push invalidation (event-grid.js): loaded when first asked for.
function createEventGridHandler(manager, options) {
  return require('./event-grid.js').createEventGridHandler(manager, options)
}

module.exports = { SecretManager, SecretError, createSecretManager, secretManager, install, createEventGridHandler }
