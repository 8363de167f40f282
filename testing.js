'use strict'
// `commerce-secret-manager/testing`: a memory-source manager in pure JS, for app tests.
//
// No native code and no Node built-in, so it is the same under node and browser conditions
// (Jest's jsdom environment picks the browser condition) and in any bundle. It has the whole
// SecretManager surface with the memory source's semantics and the same result and error
// shapes (SecretError and the result class are shared with the main entry). The addon's
// memory source and this one answer the same cases (`__test__/testing.test.js`).

const shared = require('./shared.js')

const { SecretError, SecretValue, typeName, failure, argumentFailure, keyProblem } = shared
const INSPECT = Symbol.for('nodejs.util.inspect.custom')

const DEFAULTS = {
  refreshAfterSeconds: 300,
  maxAgeSeconds: 86400,
  staleIfErrorSeconds: 3600,
  negativeTtlSeconds: 5,
  maxEntries: 10000,
  maxRefreshAfterSeconds: 3600,
}

function readSecrets(secrets) {
  if (secrets === null || typeof secrets !== 'object' || Array.isArray(secrets)) {
    throw new TypeError(`secrets must be an object of name: value strings (got ${typeName(secrets)})`)
  }
  const values = new Map()
  for (const k of Object.keys(secrets)) {
    const v = secrets[k]
    if (typeof v !== 'string') throw new TypeError(`option \`secrets.${k}\` must be a string (got ${typeName(v)})`)
    values.set(k, v)
  }
  return values
}

function readPolicy(options) {
  const policy = Object.assign({ enabled: true }, DEFAULTS)
  const cache = options.cache
  if (cache === undefined || cache === null || cache === true) return policy
  if (cache === false) {
    policy.enabled = false
    return policy
  }
  if (typeof cache !== 'object' || Array.isArray(cache)) {
    throw new TypeError(`option \`cache\` must be false or an object (got ${typeName(cache)})`)
  }
  for (const k of Object.keys(cache)) {
    if (!(k in DEFAULTS)) throw new TypeError(`unknown option \`cache.${k}\` (known: ${Object.keys(DEFAULTS).join(', ')})`)
    if (cache[k] !== undefined && cache[k] !== null) policy[k] = cache[k]
  }
  return policy
}

class TestSecretManager {
  constructor(secrets, options) {
    if (options !== undefined && options !== null && (typeof options !== 'object' || Array.isArray(options))) {
      throw new TypeError(`options must be an object (got ${typeName(options)})`)
    }
    const o = options || {}
    if (o.onEvent !== undefined && typeof o.onEvent !== 'function') {
      throw new TypeError(`option \`onEvent\` must be a function (got ${typeName(o.onEvent)})`)
    }
    shared.checkNumberOptions(o)
    this._values = readSecrets(secrets)
    this._policy = readPolicy(o)
    this._onEvent = o.onEvent
    this._entries = new Map() // key -> { value | error, expiresAt, refreshAt } in LRU order
    this._closed = false
    this._stats = { hits: 0, misses: 0, staleServed: 0, upstreamRequests: 0, upstreamErrors: 0 }
    this._authRetries = new Map() // withSecret's refreshes (shared.js)
    this._readiness = new shared.Readiness() // what prefetch started, for ready()
    // Methods work detached, as the addon's do.
    for (const name of shared.BOUND_METHODS) this[name] = this[name].bind(this)
  }

  get source() {
    return 'memory'
  }

  getSecretValue(secretKey, baseRetailServerUrl) {
    return Promise.resolve(this._get(secretKey, baseRetailServerUrl, false))
  }

  getSecretValues(secretKeys, baseRetailServerUrl) {
    if (!Array.isArray(secretKeys)) {
      return Promise.reject(new TypeError(`secretKeys must be an array of strings (got ${typeName(secretKeys)})`))
    }
    return Promise.all(secretKeys.map((k) => this.getSecretValue(k, baseRetailServerUrl)))
  }

  // The memory source has no fleet to spread: `spreadMs` is accepted and ignored.
  prefetch(secretKeys, baseRetailServerUrl) {
    if (!Array.isArray(secretKeys)) return this.getSecretValues(secretKeys, baseRetailServerUrl)
    const attempts = secretKeys.map((k) => this.getSecretValue(k, baseRetailServerUrl))
    return Promise.all(shared.trackPrefetch(this._readiness, secretKeys, baseRetailServerUrl, attempts))
  }

  withSecret(secretKey, baseRetailServerUrl, fn, options) {
    return shared.withSecret(this, this._authRetries, (k) => k, secretKey, baseRetailServerUrl, fn, options)
  }

  ready(options) {
    const timeoutMs = shared.readyTimeout(options)
    if (timeoutMs instanceof TypeError) return Promise.reject(timeoutMs)
    return this._readiness.wait((k, u) => this.getSecretValue(k, u), timeoutMs)
  }

  refresh(secretKey, baseRetailServerUrl) {
    return Promise.resolve(this._get(secretKey, baseRetailServerUrl, true))
  }

  invalidate(secretKey) {
    if (secretKey === undefined || secretKey === null) {
      this._entries.clear()
      return
    }
    if (typeof secretKey !== 'string') {
      throw new TypeError(`invalidate takes a secret key string or nothing (got ${typeName(secretKey)})`)
    }
    this._entries.delete(secretKey)
  }

  // As the addon's memory source: push invalidation is for the key-vault source.
  secretChanged(vault, name) {
    if (typeof vault !== 'string' || typeof name !== 'string') {
      return Promise.reject(
        new SecretError('INVALID_ARGUMENT', `secretChanged takes a vault (url or name) and a secret name, as strings (got ${typeName(vault)} and ${typeName(name)})`),
      )
    }
    return Promise.reject(
      new SecretError('INVALID_ARGUMENT', 'secretChanged is for the key-vault source (this manager reads memory); nothing was refreshed', name),
    )
  }

  stats() {
    const s = this._stats
    return {
      entries: this._entries.size,
      hits: s.hits,
      misses: s.misses,
      staleServed: s.staleServed,
      upstreamRequests: s.upstreamRequests,
      upstreamErrors: s.upstreamErrors,
      inFlight: 0,
    }
  }

  close() {
    this._closed = true
    this._entries.clear()
    this._values.clear()
    return Promise.resolve()
  }

  toJSON() {
    return { source: 'memory' }
  }

  [INSPECT]() {
    return "SecretManager { source: 'memory' }"
  }

  _get(secretKey, url, refresh) {
    const bad = argumentFailure(secretKey, url)
    if (bad !== undefined) return bad
    const problem = keyProblem(secretKey)
    if (problem !== undefined) {
      this._emit('error', secretKey, undefined, 'INVALID_ARGUMENT')
      return failure('INVALID_ARGUMENT', problem, secretKey)
    }
    if (this._closed) {
      this._emit('error', secretKey, undefined, 'CLOSED')
      return failure('CLOSED', `secret '${secretKey}': the secret manager was closed`, secretKey)
    }
    const now = Date.now() / 1000
    const entry = this._entries.get(secretKey)
    if (!refresh && entry !== undefined && now < entry.expiresAt) {
      this._stats.hits++
      this._entries.delete(secretKey) // most recently used last
      this._entries.set(secretKey, entry)
      if (entry.error === undefined && now >= entry.refreshAt) return this._read(secretKey, 'refresh', now)
      this._emit(entry.error === undefined ? 'hit' : 'error', secretKey, undefined, entry.error && entry.error.code)
      return entry.error === undefined
        ? new SecretValue(entry.value, undefined, undefined, Math.floor(entry.expiresAt))
        : failure(entry.error.code, entry.error.message, secretKey, entry.error.status, 0)
    }
    if (!refresh) this._stats.misses++
    return this._read(secretKey, refresh ? 'refresh' : 'miss', now)
  }

  // "Upstream": the secrets given. Stored as the addon's cache stores a memory read.
  _read(secretKey, event, now) {
    const started = Date.now()
    const p = this._policy
    this._stats.upstreamRequests++
    const value = this._values.get(secretKey)
    if (value === undefined) {
      this._stats.upstreamErrors++
      const error = { code: 'NOT_FOUND', message: `secret '${secretKey}' is not in the memory source`, status: 404 }
      this._entries.delete(secretKey)
      if (p.enabled && p.negativeTtlSeconds > 0) {
        this._store(secretKey, { error, expiresAt: now + p.negativeTtlSeconds, refreshAt: Infinity })
      }
      this._emit('error', secretKey, Date.now() - started, 'NOT_FOUND')
      return failure(error.code, error.message, secretKey, error.status, 0)
    }
    const expiresAt = now + p.maxAgeSeconds
    const before = this._entries.get(secretKey)
    const changed = before !== undefined && before.error === undefined ? before.value !== value : undefined
    if (p.enabled) this._store(secretKey, { value, expiresAt, refreshAt: now + p.refreshAfterSeconds })
    this._emit(event, secretKey, Date.now() - started, undefined, event === 'refresh' ? changed : undefined)
    if (event === 'refresh' && changed === true) this._emit('rotate', secretKey)
    return new SecretValue(value, undefined, undefined, Math.floor(expiresAt))
  }

  _store(secretKey, entry) {
    this._entries.delete(secretKey)
    this._entries.set(secretKey, entry)
    while (this._entries.size > this._policy.maxEntries) {
      const oldest = this._entries.keys().next().value
      this._entries.delete(oldest)
      this._emit('evict', oldest)
    }
  }

  _emit(type, secretKey, durationMs, code, changed) {
    if (this._onEvent === undefined) return
    const event = { type, secretKey, source: 'memory' }
    if (durationMs !== undefined) event.durationMs = durationMs
    if (code !== undefined) event.code = code
    if (typeof changed === 'boolean') event.changed = changed
    try {
      this._onEvent(event)
    } catch (e) {
      // A listener's fault must not become the caller's.
    }
  }
}

// A memory-source manager for app tests: the whole SecretManager surface, no native code.
function createTestSecretManager(secrets, options) {
  return new TestSecretManager(secrets, options)
}

// Installs one on target even where target.isBrowser is true (jsdom), for data-action tests
// that read msdyn365Commerce.secretManager; returns it. A target that cannot take it gets a
// TypeError and is left as it was.
function installTestSecretManager(target, secrets, options) {
  shared.checkTarget(target, 'installTestSecretManager')
  return shared.installOn(target, createTestSecretManager(secrets, options), 'installTestSecretManager')
}

module.exports = {
  createTestSecretManager,
  installTestSecretManager,
  TestSecretManager,
  SecretError: shared.SecretError,
}
