'use strict'
// The public entry on the server: a thin layer over the native addon.
//
// Why there is JS here at all:
// - Errors are made here, in the caller's realm, so `instanceof Error` holds (in Jest too).
// - The hit path: the mirror of the cache's answers (mirror.js), so a hit costs a JS Map
//   lookup, not a call into the addon.
// - Events: onEvent and diagnostics_channel are JS.
//
// Bundled as is by the Commerce SDK's webpack 4 (no loader for node_modules), so this file
// parses at ES2018: no `#private`, `?.`, `??`, and built-ins are required without `node:`.
// The addon is loaded on first use by binding.js, in a way bundlers leave alone.

const diagnostics = require('diagnostics_channel')
const shared = require('./shared.js')
const binding = require('./binding.js')
const { Mirror, splitCacheKey } = require('./mirror.js')
const telemetry = require('./telemetry.js')

const { SecretError, SecretValue, typeName, failure, argumentFailure } = shared
const channel = diagnostics.channel('commerce-secret-manager')
const INTERNALS = Symbol.for('commerce-secret-manager.internals')
const INSPECT = Symbol.for('nodejs.util.inspect.custom')
// Marks the default instance: built from the environment on first use.
const FROM_ENVIRONMENT = Symbol('from environment')
// Telemetry is the app's provider's code: a fault there must never reach a caller of a contract
// that never throws (nor the constructor, nor a hit). What it throws is dropped.
function quietly(fn) {
  try {
    return fn()
  } catch (e) {
    return undefined
  }
}

function environment() {
  const env = {}
  for (const k of Object.keys(process.env)) {
    const v = process.env[k]
    if (typeof v === 'string') env[k] = v
  }
  return env
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
    this._onEvent = undefined
    // OpenTelemetry (telemetry.js): undefined when off or the API is absent.
    this._telemetry = undefined
    this._mirror = new Mirror()
    this._changing = new Map() // cache key -> { running, queued }: secretChanged's refreshes
    this._authRetries = new Map() // cache key -> { flight, at }: withSecret's refreshes (shared.js)
    this._readiness = new shared.Readiness() // what prefetch / install started, for ready()
    this._closed = false
    // The default instance: why it could not be built, once it was tried.
    this._unavailable = undefined
    // Methods work detached (`const { getSecretValue } = manager`), as a contract that never
    // throws must: each is bound to this instance.
    for (const name of shared.BOUND_METHODS) this[name] = this[name].bind(this)
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
    this._onEvent = onEvent
    this._mirror.attach(native)
    this._telemetry = quietly(() => telemetry.attach(this, rest.telemetry))
  }

  // The default instance builds itself from the environment on first use. False (and the
  // reason kept) when that failed: every call then answers NOT_CONFIGURED.
  _ready() {
    if (this._native !== undefined) return true
    if (this._unavailable !== undefined) return false
    // Closed before first use (the default instance): never built, every call CLOSED.
    if (this._closed) return false
    try {
      this._build(undefined)
      return true
    } catch (e) {
      this._unavailable = `secret manager could not be built from the environment: ${String(e && e.message)}`
      return false
    }
  }

  _notConfigured(secretKey) {
    if (this._closed && this._native === undefined) {
      return failure('CLOSED', `secret '${secretKey}': the secret manager was closed`, secretKey)
    }
    return failure('NOT_CONFIGURED', this._unavailable, secretKey)
  }

  get source() {
    this._ready()
    return this._source
  }

  getSecretValue(secretKey, baseRetailServerUrl) {
    // No clock here (Date.now() alone would double the cost of a hit): the cache's timer moves
    // the change counter when an answer's refresh or expiry time comes (see mirror.js).
    const mirror = this._mirror
    if (mirror.behind()) this._sync()
    const found = mirror.find(secretKey, baseRetailServerUrl)
    if (found !== undefined) {
      const answer = found.answer
      if (answer.code === undefined) {
        if (this._onEvent !== undefined || channel.hasSubscribers) this._emit('hit', secretKey)
        return answer
      }
      // A remembered failure (NOT_FOUND): an error event, as when the addon answers it.
      this._emit('error', secretKey, undefined, answer.code)
      return Promise.resolve(failure(answer.code, answer.message, secretKey, answer.status, answer.expiresOn))
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
    if (!Array.isArray(secretKeys)) return this.getSecretValues(secretKeys, baseRetailServerUrl)
    const attempts = secretKeys.map((k) =>
      spreadMs === 0
        ? this.getSecretValue(k, baseRetailServerUrl)
        : new Promise((resolve) => {
            const t = setTimeout(() => resolve(this.getSecretValue(k, baseRetailServerUrl)), Math.random() * spreadMs)
            if (t && typeof t.unref === 'function') t.unref()
          }),
    )
    // ready() follows these reads (whether each answered with a value; never the value).
    return Promise.all(shared.trackPrefetch(this._readiness, secretKeys, baseRetailServerUrl, attempts))
  }

  // Run fn with the secret's value; on an authentication failure of fn, refresh once
  // (coalesced per cache key, at most once per few seconds) and run it again (shared.js).
  // Rejects with the SecretError when the secret cannot be had, and with fn's own error else.
  withSecret(secretKey, baseRetailServerUrl, fn, options) {
    const cacheKeyOf = (k, u) => (this._mirror.keyedByUrl ? `${u}\0${k}` : k)
    return shared.withSecret(this, this._authRetries, cacheKeyOf, secretKey, baseRetailServerUrl, fn, options)
  }

  // Resolves { ready, pending } when what install / prefetch started has answered, or when
  // timeoutMs (default 30000) passed; at once with nothing started. pending: the keys not yet
  // answered with a value; a key whose read had failed is asked again by each call.
  ready(options) {
    const timeoutMs = shared.readyTimeout(options)
    if (timeoutMs instanceof TypeError) return Promise.reject(timeoutMs)
    return this._readiness.wait((k, u) => this.getSecretValue(k, u), timeoutMs)
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
    this._sync()
  }

  // Push invalidation: the secret `name` of `vault` (a vault url or name this manager reads)
  // changed. Every cached entry that pair serves is refreshed, one flight per entry however
  // many calls come: a call while a refresh is running waits for one that starts after it
  // (at most one queued behind the running one). Refused with a SecretError (rejects), nothing
  // sent, for anything that is not a vault this manager reads or not a secret name.
  secretChanged(vault, name) {
    return this._secretChanged(vault, name).then((r) => ({ refreshed: r.refreshed }))
  }

  // secretChanged with the count of refreshes that failed too (the Event Grid handler answers
  // a retryable 503 then, so the push is not lost).
  _secretChanged(vault, name) {
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
      return { refreshed, failed: results.length - refreshed }
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
      const next = () => this.refresh(parts.key, parts.url)
      state.queued = state.running.then(next, next)
    }
    return state.queued
  }

  _whenRefreshed(cacheKey, state) {
    const settled = () => {
      if (state.queued === null) {
        this._changing.delete(cacheKey)
        return
      }
      state.running = state.queued
      state.queued = null
      this._whenRefreshed(cacheKey, state)
    }
    state.running.then(settled, settled)
  }

  stats() {
    if (this._native === undefined) {
      return { entries: 0, hits: 0, misses: 0, staleServed: 0, upstreamRequests: 0, upstreamErrors: 0, inFlight: 0 }
    }
    if (this._mirror.behind()) this._sync()
    const s = this._native.stats()
    return {
      entries: s.entries,
      hits: s.hits + this._mirror.hits,
      misses: s.misses,
      staleServed: s.staleServed,
      upstreamRequests: s.upstreamRequests,
      upstreamErrors: s.upstreamErrors,
      inFlight: s.inFlight,
    }
  }

  close() {
    if (this._telemetry !== undefined && !this._closed) quietly(() => this._telemetry.close())
    this._closed = true
    this._authRetries.clear()
    if (this._native !== undefined) this._native.close()
    this._mirror.close()
    return Promise.resolve()
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
    const touched = this._mirror.takeTouched()
    // The read's span (telemetry.js), whose traceparent goes upstream; undefined when off.
    const read = this._telemetry === undefined ? undefined : quietly(() => this._telemetry.start(secretKey, why))
    let pending
    try {
      pending = this._native.fetch(secretKey, url, refresh, touched, read === undefined ? undefined : read.traceparent)
    } catch (e) {
      if (read !== undefined) quietly(() => read.fail())
      return Promise.resolve(this._internal(e, secretKey))
    }
    return pending.then(
      (reply) => {
        if (read !== undefined) quietly(() => read.end(reply))
        return this._settle(reply, secretKey, url, why)
      },
      (e) => {
        if (read !== undefined) quietly(() => read.fail())
        return this._internal(e, secretKey)
      },
    )
  }

  // Bring the mirror up to date with the cache, and emit what happened in the background.
  _sync() {
    if (this._native === undefined) return
    this._events(this._mirror.sync(undefined, 0))
  }

  // The addon's sync: evictions and what background refreshes found, as events.
  _events(s) {
    if (s === undefined) return
    for (const k of s.evicted) this._emit('evict', splitCacheKey(k).key)
    for (const e of s.events) {
      if (this._telemetry !== undefined) quietly(() => this._telemetry.background(e))
      this._emit(e.code ? 'error' : 'refresh', e.key, e.durationMs, e.code, e)
      if (!e.code && e.changed === true) this._emit('rotate', e.key, undefined, undefined, e)
    }
  }

  // Apply a reply to the mirror (see mirror.js for when it keeps it), emit its events, and
  // make the caller's ISecretValue.
  _settle(reply, secretKey, url, why) {
    this._events(this._mirror.settle(reply, secretKey, url, this._closed))
    if (this._telemetry !== undefined && reply.event === 'stale') quietly(() => this._telemetry.stale(reply))
    if (this._onEvent !== undefined || channel.hasSubscribers) {
      const type = reply.code !== undefined ? 'error' : why === 'get' ? reply.event : 'refresh'
      this._emit(type, secretKey, reply.durationMs, reply.code !== undefined ? reply.code : reply.staleCode, reply)
      if (type === 'refresh' && reply.changed === true) this._emit('rotate', secretKey, undefined, undefined, reply)
    }
    // Frozen, as a hit's (shared) result is: a caller sees the same kind of object either way.
    return reply.code !== undefined
      ? failure(reply.code, reply.message, secretKey, reply.status, reply.expiresOn, reply.requestId)
      : Object.freeze(new SecretValue(reply.value, reply.id, undefined, reply.expiresOn))
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
    // The closed-set fields of a reply that went upstream: the vault (host) and its place, the
    // store's request id, and on a failure (or a stale answer) the failure in words.
    if (detail !== undefined && type !== 'evict') {
      if (typeof detail.vault === 'string') event.vault = detail.vault
      if (typeof detail.vaultIndex === 'number') event.vaultIndex = detail.vaultIndex
      const requestId = typeof detail.requestId === 'string' ? detail.requestId : lastRequestId(detail.upstream)
      if (requestId !== undefined) event.requestId = requestId
    }
    if (type === 'error' || type === 'stale') {
      const reason = telemetry.reasonOf(code)
      if (reason !== undefined) event.reason = reason
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

// The store's request id of a read's last secret request (telemetry.js records), if any.
function lastRequestId(upstream) {
  if (!Array.isArray(upstream)) return undefined
  for (let i = upstream.length - 1; i >= 0; i--) {
    const r = upstream[i]
    if (r.operation === 'secret') return typeof r.requestId === 'string' ? r.requestId : undefined
  }
  return undefined
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
// `prefetch` (keys) and `url` start those reads at once, so the token and the values are in
// before traffic comes (see ready()); options without anything else install the default
// instance, which takes them from COMMERCE_SECRETS_PREFETCH (comma-separated) and
// COMMERCE_SECRETS_PREFETCH_URL when not given.
function install(target, options) {
  if (shared.targetIsBrowser(target)) return undefined
  // Checked before a manager is built, so a bad target leaves nothing behind.
  shared.checkTarget(target, 'install')
  const split = shared.installOptions(options, 'install')
  let manager = secretManager
  let prefetch = split.prefetch
  let url = split.url
  if (split.options !== undefined) {
    manager = createSecretManager(split.options)
  } else {
    if (prefetch === undefined) prefetch = shared.prefetchFromEnvironment(process.env.COMMERCE_SECRETS_PREFETCH)
    if (url === undefined && typeof process.env.COMMERCE_SECRETS_PREFETCH_URL === 'string') {
      url = process.env.COMMERCE_SECRETS_PREFETCH_URL.trim()
    }
  }
  shared.installOn(target, manager, 'install')
  if (prefetch !== undefined && prefetch.length > 0) manager.prefetch(prefetch, url === undefined ? '' : url)
  return manager
}

// A health-check endpoint: 503 until manager.ready() says ready, then 200 (shared.js).
function createReadinessHandler(manager, options) {
  return shared.createReadinessHandler(manager, options)
}

// Event Grid push invalidation (event-grid.js): loaded when first asked for.
function createEventGridHandler(manager, options) {
  return require('./event-grid.js').createEventGridHandler(manager, options)
}

module.exports = {
  SecretManager,
  SecretError,
  createSecretManager,
  secretManager,
  install,
  createEventGridHandler,
  createReadinessHandler,
}
