'use strict'
// `commerce-secret-manager/testing`: a memory-source manager in pure JS, for app tests: a test
// double with the whole SecretManager surface, plus what tests need to drive it (set, rotate,
// fail, delay, reset, calls).
//
// No native code and no Node built-in a bundler could see, so it is the same under node and
// browser conditions (Jest's jsdom environment picks the browser condition) and in any bundle.
// It has the memory source's semantics and the same result, error and event shapes, and
// validates options with the addon's messages (`__test__/testing.test.js` and
// `__test__/testing-double.test.js` run the same scripts on both and compare transcripts).
// Parses at ES2018 (webpack 4's parser).

const shared = require('./shared.js')

const { SecretError, SecretValue, typeName, failure, argumentFailure, keyProblem } = shared
const INSPECT = Symbol.for('nodejs.util.inspect.custom')

// diagnostics_channel when the runtime has it (Node, Jest's node and jsdom environments), found
// at run time (process.getBuiltinModule, else the CommonJS module's own loader) so that no
// bundler sees a Node built-in to resolve; in a browser bundle there is none, and no channel.
const channel = (function openChannel() {
  try {
    let dc
    if (typeof process === 'object' && process !== null && typeof process.getBuiltinModule === 'function') {
      dc = process.getBuiltinModule('diagnostics_channel')
    } else if (typeof module === 'object' && module !== null && typeof module['require'] === 'function') {
      dc = module['require']('diagnostics_channel')
    }
    return dc && typeof dc.channel === 'function' ? dc.channel('commerce-secret-manager') : undefined
  } catch (e) {
    return undefined
  }
})()

const DEFAULTS = {
  refreshAfterSeconds: 300,
  maxAgeSeconds: 86400,
  staleIfErrorSeconds: 3600,
  negativeTtlSeconds: 5,
  maxEntries: 10000,
  maxRefreshAfterSeconds: 3600,
}
const DEFAULT_TIMEOUT_MS = 10000

const CODES = [
  'INVALID_ARGUMENT', 'NOT_FOUND', 'LOCAL_FILE_MISSING', 'LOCAL_FILE_INVALID', 'HOST_NOT_ALLOWED', 'UNAUTHORIZED',
  'FORBIDDEN', 'THROTTLED', 'TIMEOUT', 'UNAVAILABLE', 'BAD_RESPONSE', 'IDENTITY_UNAVAILABLE', 'NOT_CONFIGURED', 'CLOSED',
]
// The cache's rules (src/error.rs): these serve the last good value past expiry...
const ALLOWS_STALE = ['TIMEOUT', 'UNAVAILABLE', 'THROTTLED']
// ...and these drop the entry at once.
const DROPS_ENTRY = ['UNAUTHORIZED', 'FORBIDDEN', 'NOT_FOUND']

// ---- Options, checked as the addon checks them (index.js, then src/config.rs, in that order).

// index.js's screen: what the addon's JSON conversion cannot carry.
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

// serde_json's view of a value: napi drops undefined properties; objects have sorted keys.
function jsonType(v) {
  if (v === null || v === undefined) return 'null'
  if (typeof v === 'boolean') return 'a boolean'
  if (typeof v === 'number') return 'a number'
  if (typeof v === 'string') return 'a string'
  if (Array.isArray(v)) return 'an array'
  return 'an object'
}
function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}
function keysOf(o) {
  return Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
}
const RUST_CONTROL = /[\u0000-\u001f\u007f-\u009f]/

function optString(o, name) {
  const v = o[name]
  if (v === undefined || v === null) return undefined
  if (typeof v === 'string' && v !== '' && !RUST_CONTROL.test(v)) return v
  if (typeof v === 'string') throw new TypeError(`option \`${name}\` must be a non-empty string without control characters`)
  throw new TypeError(`option \`${name}\` must be a string (got ${jsonType(v)})`)
}
function optBool(o, name) {
  const v = o[name]
  if (v === undefined || v === null || typeof v === 'boolean') return v === undefined || v === null ? undefined : v
  throw new TypeError(`option \`${name}\` must be a boolean (got ${jsonType(v)})`)
}
function optStringList(o, name) {
  const v = o[name]
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v)) throw new TypeError(`option \`${name}\` must be an array of strings (got ${jsonType(v)})`)
  return v.map((x, i) => {
    if (typeof x === 'string' && x.trim() !== '') return x.trim()
    throw new TypeError(`option \`${name}[${i}]\` must be a non-empty string (got ${jsonType(x)})`)
  })
}

const KNOWN = ['source', 'secretsFile', 'watch', 'secrets', 'oun', 'allowedHosts', 'allowInsecureLoopback', 'identity', 'clientId',
  'tenantId', 'additionallyAllowedTenants', 'clientSecret', 'clientCertificatePath', 'federatedTokenFile', 'authorityHost',
  'vaultUrls', 'cache', 'timeoutMs', 'telemetry']
const SOURCES = ['auto', 'local', 'memory', 'retail-server', 'key-vault']
const IDENTITIES = ['auto', 'app-service', 'imds', 'client-secret', 'client-certificate', 'workload-identity', 'azure-cli',
  'azure-developer-cli']
// As src/hosts.rs: the vault urls are checked against the Key Vault hosts (a vault token goes
// to Key Vault's domains and the allowed hosts only, never to a Retail Server host).
const VAULT_TOKEN_HOSTS = ['*.vault.azure.net', '*.vault.azure.cn', '*.vault.usgovcloudapi.net']

function hostProblem(pattern) {
  const bare = pattern.indexOf('*.') === 0 ? pattern.slice(2) : pattern
  const labelOk = (l) => l !== '' && l.length <= 63 && l[0] !== '-' && l[l.length - 1] !== '-' && /^[0-9A-Za-z-]+$/.test(l)
  if (bare === '' || bare.length > 253 || !bare.split('.').every(labelOk)) {
    return `'${shared.escapeDebug(pattern)}' is not a host name (use 'host' or '*.domain')`
  }
  return undefined
}
function hostAllowed(hosts, host) {
  const h = (host[host.length - 1] === '.' ? host.slice(0, -1) : host).toLowerCase()
  return hosts.some((p) => {
    if (p.indexOf('*.') !== 0) return h === p
    const dot = h.indexOf('.')
    return dot > 0 && h.slice(dot + 1) === p.slice(2)
  })
}
function isLoopback(u) {
  const h = u.hostname.toLowerCase()
  return h === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '[::1]'
}
function tokenUrlProblem(u, hosts, loopback) {
  if (u.username !== '' || u.password !== '') return 'the url carries user info'
  const scheme = u.protocol.slice(0, -1)
  if (loopback && isLoopback(u) && (scheme === 'http' || scheme === 'https')) return undefined
  if (scheme === 'http' && isLoopback(u)) {
    return 'plain http is allowed only to loopback, and only with the allowInsecureLoopback option or COMMERCE_SECRETS_ALLOW_INSECURE_LOOPBACK=1'
  }
  if (scheme === 'http') return 'a token is sent only over https'
  if (scheme !== 'https') return `the scheme '${scheme}' is not https`
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1')
  if (host === '') return 'the url has no host'
  if (hostAllowed(hosts, host)) return undefined
  return `the host '${host}' may not receive a token (allowed: ${hosts.join(', ')}); to allow it, add '${host}' to the allowedHosts option or to COMMERCE_SECRETS_ALLOWED_HOSTS (comma-separated)`
}
function validTenant(t) {
  return t !== '' && t.length <= 256 && t[0] !== '-' && /^[0-9A-Za-z.-]+$/.test(t)
}

// The options as the addon reads them: every check in the addon's order, with its message.
// Returns what this manager uses: the cache policy, the deadline, extra secrets.
function readOptions(options) {
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
  const o = {}
  for (const k of keysOf(rest)) o[k] = rest[k]
  const unknown = Object.keys(o).find((k) => KNOWN.indexOf(k) < 0)
  if (unknown !== undefined) throw new TypeError(`unknown option \`${unknown}\` (known: ${KNOWN.join(', ')}, onEvent)`)
  // As config.rs's check_telemetry: false, or { secretNames?: boolean }.
  const telemetry = o.telemetry
  if (telemetry !== undefined && telemetry !== null && telemetry !== false) {
    if (!isObject(telemetry)) throw new TypeError(`option \`telemetry\` must be false or an object (got ${jsonType(telemetry)})`)
    const extra = keysOf(telemetry).find((k) => k !== 'secretNames')
    if (extra !== undefined) throw new TypeError(`unknown option \`telemetry.${extra}\` (known: secretNames)`)
    const names = telemetry.secretNames
    if (names !== undefined && names !== null && typeof names !== 'boolean') {
      throw new TypeError(`option \`telemetry.secretNames\` must be a boolean (got ${jsonType(names)})`)
    }
  }
  const source = optString(o, 'source')
  if (source !== undefined && SOURCES.indexOf(source) < 0) {
    throw new TypeError(
      `option \`source\` must be one of 'auto', 'local', 'memory', 'retail-server', 'key-vault' (got '${shared.escapeDebug(source)}')`,
    )
  }
  optString(o, 'secretsFile')
  let secrets
  if (o.secrets !== undefined && o.secrets !== null) {
    if (!isObject(o.secrets)) throw new TypeError(`option \`secrets\` must be an object of strings (got ${jsonType(o.secrets)})`)
    secrets = {}
    for (const k of keysOf(o.secrets)) {
      if (typeof o.secrets[k] !== 'string') throw new TypeError(`option \`secrets.${k}\` must be a string (got ${jsonType(o.secrets[k])})`)
      secrets[k] = o.secrets[k]
    }
  }
  const loopback = optBool(o, 'allowInsecureLoopback') === true
  const vaultUrls = optStringList(o, 'vaultUrls') || []
  if (vaultUrls.length > 2) throw new TypeError(`option \`vaultUrls\` takes one or two vaults (got ${vaultUrls.length})`)
  const hosts = VAULT_TOKEN_HOSTS.slice()
  for (const h of optStringList(o, 'allowedHosts') || []) {
    const why = hostProblem(h)
    if (why !== undefined) throw new TypeError(`option \`allowedHosts\`: ${why}`)
    hosts.push(h.toLowerCase())
  }
  for (const v of vaultUrls) {
    const shown = shared.escapeDebug(v)
    let u
    try {
      u = new URL(v)
    } catch (e) {
      throw new TypeError(`option \`vaultUrls\`: '${shown}' is not an absolute url`)
    }
    if (!(u.pathname === '' || u.pathname === '/') || u.search !== '' || u.hash !== '') {
      throw new TypeError(`option \`vaultUrls\`: '${shown}' must be just the vault's address, e.g. https://myvault.vault.azure.net`)
    }
    const why = tokenUrlProblem(u, hosts, loopback)
    if (why !== undefined) throw new TypeError(`option \`vaultUrls\`: '${shown}': ${why}`)
  }
  const identity = optString(o, 'identity')
  if (identity !== undefined && IDENTITIES.indexOf(identity) < 0) {
    throw new TypeError(
      `option \`identity\` must be one of ${IDENTITIES.map((k) => `'${k}'`).join(', ')} (got '${shared.escapeDebug(identity)}')`,
    )
  }
  for (const t of optStringList(o, 'additionallyAllowedTenants') || []) {
    if (t !== '*' && !validTenant(t)) {
      throw new TypeError(`option \`additionallyAllowedTenants\`: '${shared.escapeDebug(t)}' is not a tenant id, a domain name or '*'`)
    }
  }
  for (const name of ['clientId', 'tenantId', 'clientSecret', 'clientCertificatePath', 'federatedTokenFile', 'authorityHost', 'oun']) {
    optString(o, name)
  }
  const policy = Object.assign({ enabled: true }, DEFAULTS)
  const cache = o.cache
  if (cache === false) policy.enabled = false
  else if (isObject(cache)) {
    const known = Object.keys(DEFAULTS)
    const bad = keysOf(cache).find((k) => known.indexOf(k) < 0)
    if (bad !== undefined) throw new TypeError(`unknown option \`cache.${bad}\` (known: ${known.join(', ')})`)
    for (const k of keysOf(cache)) if (cache[k] !== null) policy[k] = cache[k]
  } else if (cache !== undefined && cache !== null && cache !== true) {
    throw new TypeError(`option \`cache\` must be false or an object (got ${jsonType(cache)})`)
  }
  optBool(o, 'watch')
  return { onEvent, policy, secrets, timeoutMs: typeof o.timeoutMs === 'number' ? o.timeoutMs : DEFAULT_TIMEOUT_MS }
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

function checkKey(what, key) {
  if (typeof key !== 'string') throw new TypeError(`${what} takes a secret key string (got ${typeName(key)})`)
}

// ---- The manager.

class TestSecretManager {
  constructor(secrets, options) {
    const o = readOptions(options)
    const given = readSecrets(secrets)
    // The secrets option adds to the first argument (which wins on a name in both).
    const values = new Map()
    if (o.secrets !== undefined) for (const k of Object.keys(o.secrets)) values.set(k, o.secrets[k])
    given.forEach((v, k) => values.set(k, v))
    this._original = new Map(values)
    this._values = values
    this._policy = o.policy
    this._timeoutMs = o.timeoutMs
    this._onEvent = o.onEvent
    this._faults = new Map() // key -> { code, left, status, message }
    this._delays = new Map() // key -> ms
    this._calls = []
    this._closed = false
    this._timers = new Set()
    for (const name of shared.BOUND_METHODS) this[name] = this[name].bind(this)
    this._clear()
  }

  // Everything a reset empties (the stores' contents are put back by reset itself).
  _clear() {
    this._entries = new Map() // key -> entry, in LRU order (see _lookup)
    this._flights = new Map() // key -> flight: one read per key at a time
    this._background = [] // events of background refreshes, emitted with the next call
    this._stats = { hits: 0, misses: 0, staleServed: 0, upstreamRequests: 0, upstreamErrors: 0 }
    this._authRetries = new Map() // withSecret's refreshes (shared.js)
    this._readiness = new shared.Readiness() // what prefetch started, for ready()
  }

  get source() {
    return 'memory'
  }

  getSecretValue(secretKey, baseRetailServerUrl) {
    this._record('getSecretValue', secretKey, baseRetailServerUrl)
    return this._answer(secretKey, baseRetailServerUrl, 'get')
  }

  getSecretValues(secretKeys, baseRetailServerUrl) {
    if (!Array.isArray(secretKeys)) {
      return Promise.reject(new TypeError(`secretKeys must be an array of strings (got ${typeName(secretKeys)})`))
    }
    for (const k of secretKeys) this._record('getSecretValues', k, baseRetailServerUrl)
    return Promise.all(secretKeys.map((k) => this._answer(k, baseRetailServerUrl, 'get')))
  }

  // The memory source has no fleet to spread: `spreadMs` is checked as the addon checks it, and
  // every read starts now (no timer for a test to drive).
  prefetch(secretKeys, baseRetailServerUrl, options) {
    const spreadMs = options && options.spreadMs !== undefined ? options.spreadMs : 0
    if (typeof spreadMs !== 'number' || !Number.isFinite(spreadMs) || spreadMs < 0 || spreadMs > 3600000) {
      return Promise.reject(new TypeError(`prefetch: option \`spreadMs\` must be a number from 0 to 3600000 (got ${spreadMs})`))
    }
    if (!Array.isArray(secretKeys)) return this.getSecretValues(secretKeys, baseRetailServerUrl)
    for (const k of secretKeys) this._record('prefetch', k, baseRetailServerUrl)
    const attempts = secretKeys.map((k) => this._answer(k, baseRetailServerUrl, 'get'))
    return Promise.all(shared.trackPrefetch(this._readiness, secretKeys, baseRetailServerUrl, attempts))
  }

  refresh(secretKey, baseRetailServerUrl) {
    this._record('refresh', secretKey, baseRetailServerUrl)
    return this._answer(secretKey, baseRetailServerUrl, 'refresh')
  }

  invalidate(secretKey) {
    if (secretKey !== undefined && secretKey !== null && typeof secretKey !== 'string') {
      throw new TypeError(`invalidate takes a secret key string or nothing (got ${typeName(secretKey)})`)
    }
    this._record('invalidate', secretKey === null ? undefined : secretKey, undefined)
    this._flush()
    if (secretKey === undefined || secretKey === null) {
      this._entries.clear()
      this._flights.clear() // in-flight reads still answer their callers, but write nothing back
      return
    }
    this._entries.delete(secretKey)
    this._flights.delete(secretKey)
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

  withSecret(secretKey, baseRetailServerUrl, fn, options) {
    this._record('withSecret', secretKey, baseRetailServerUrl)
    const inner = {
      getSecretValue: (k, u) => this._answer(k, u, 'get'),
      refresh: (k, u) => {
        this._record('refresh', k, u)
        return this._answer(k, u, 'refresh')
      },
    }
    return shared.withSecret(inner, this._authRetries, (k) => k, secretKey, baseRetailServerUrl, fn, options)
  }

  ready(options) {
    const timeoutMs = shared.readyTimeout(options)
    if (timeoutMs instanceof TypeError) return Promise.reject(timeoutMs)
    return this._readiness.wait((k, u) => this._answer(k, u, 'get'), timeoutMs)
  }

  stats() {
    this._flush()
    const s = this._stats
    return {
      entries: this._entries.size,
      hits: s.hits,
      misses: s.misses,
      staleServed: s.staleServed,
      upstreamRequests: s.upstreamRequests,
      upstreamErrors: s.upstreamErrors,
      inFlight: this._flights.size,
    }
  }

  // In-flight reads answer CLOSED at once; delays are cancelled; nothing is kept.
  close() {
    this._closed = true
    this._timers.forEach((t) => t.cancel()) // their callers answer CLOSED
    this._entries.clear()
    this._flights.clear()
    this._values.clear()
    this._authRetries.clear()
    return Promise.resolve()
  }

  // ---- What tests drive.

  /** The value changes now, in the store and for the next read (the cached entry is dropped). */
  set(secretKey, value) {
    checkKey('set', secretKey)
    if (typeof value !== 'string') throw new TypeError(`set: the value of '${secretKey}' must be a string (got ${typeName(value)})`)
    this._values.set(secretKey, value)
    this._entries.delete(secretKey)
    this._flights.delete(secretKey)
  }

  /**
   * A rotation: the store has the new value; the cache keeps serving the old one until a refresh
   * (refresh(), withSecret's retry, refresh-ahead, expiry), which emits `refresh` with
   * `changed: true`, then `rotate`, as the addon does.
   */
  rotate(secretKey, value) {
    checkKey('rotate', secretKey)
    if (typeof value !== 'string') throw new TypeError(`rotate: the value of '${secretKey}' must be a string (got ${typeName(value)})`)
    this._values.set(secretKey, value)
  }

  /**
   * The next `times` reads of the key from the store (default: until reset) fail with `code`,
   * with the addon's message unless `message` is given, and `status` when given. The cache
   * applies its rules as the addon's does: THROTTLED, TIMEOUT and UNAVAILABLE serve the last
   * good value (stale) past expiry; UNAUTHORIZED, FORBIDDEN and NOT_FOUND drop it.
   */
  fail(secretKey, code, options) {
    checkKey('fail', secretKey)
    if (CODES.indexOf(code) < 0) throw new TypeError(`fail: the code must be one of ${CODES.join(', ')} (got ${typeof code === 'string' ? `'${code}'` : typeName(code)})`)
    const o = options === undefined || options === null ? {} : options
    if (typeof o !== 'object') throw new TypeError(`fail: options must be an object (got ${typeName(o)})`)
    const times = o.times === undefined ? Infinity : o.times
    if (times !== Infinity && (typeof times !== 'number' || !Number.isInteger(times) || times < 1)) {
      throw new TypeError(`fail: option \`times\` must be a whole number from 1 (got ${times})`)
    }
    if (o.status !== undefined && (typeof o.status !== 'number' || !Number.isInteger(o.status) || o.status < 100 || o.status > 599)) {
      throw new TypeError(`fail: option \`status\` must be an HTTP status from 100 to 599 (got ${o.status})`)
    }
    if (o.message !== undefined && typeof o.message !== 'string') {
      throw new TypeError(`fail: option \`message\` must be a string (got ${typeName(o.message)})`)
    }
    this._faults.set(secretKey, { code, left: times, status: o.status, message: o.message })
  }

  /** Reads of the key take `ms` (0: no delay); a setTimeout, so Jest's fake timers drive it. */
  delay(secretKey, ms) {
    checkKey('delay', secretKey)
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0 || ms > 3600000) {
      throw new TypeError(`delay: ms must be a number from 0 to 3600000 (got ${ms})`)
    }
    if (ms === 0) this._delays.delete(secretKey)
    else this._delays.set(secretKey, ms)
  }

  /** Values back to the originals; faults, delays, the cache, stats and calls cleared. */
  reset() {
    this._values = new Map(this._original)
    this._faults.clear()
    this._delays.clear()
    this._calls = []
    this._clear()
  }

  /** What was asked, in order: one entry per key and call. */
  calls() {
    return this._calls.map((c) => ({ method: c.method, secretKey: c.secretKey, url: c.url }))
  }

  toJSON() {
    return { source: 'memory' }
  }

  [INSPECT]() {
    return "SecretManager { source: 'memory' }"
  }

  // ---- The cache, as the addon's (src/cache.rs) for one in-process store.

  _record(method, secretKey, url) {
    this._calls.push({ method, secretKey, url })
  }

  // Background refreshes' events, as the addon emits them: with the next call.
  _flush() {
    const events = this._background
    if (events.length === 0) return
    this._background = []
    for (const e of events) this._emit(e[0], e[1], e[2], e[3], e[4])
  }

  _answer(secretKey, url, mode) {
    this._flush()
    const bad = argumentFailure(secretKey, url)
    if (bad !== undefined) return Promise.resolve(bad)
    const problem = keyProblem(secretKey)
    if (problem !== undefined) {
      // A get is refused by the addon's lookup (no duration), a refresh by its fetch (one).
      this._emit('error', secretKey, mode === 'refresh' ? 0 : undefined, 'INVALID_ARGUMENT')
      return Promise.resolve(failure('INVALID_ARGUMENT', problem, secretKey))
    }
    if (this._closed) return Promise.resolve(this._closedAnswer(secretKey))
    const now = Date.now() / 1000
    if (mode === 'get') {
      const hit = this._lookup(secretKey, now)
      if (hit !== undefined) return Promise.resolve(hit)
      this._stats.misses++
    }
    const joined = mode === 'get' ? this._flights.get(secretKey) : undefined
    const flight = joined !== undefined ? joined : this._startFlight(secretKey)
    return flight.promise.then((outcome) => this._settle(secretKey, mode, outcome))
  }

  _closedAnswer(secretKey) {
    this._emit('error', secretKey, undefined, 'CLOSED')
    return failure('CLOSED', `secret '${secretKey}': the secret manager was closed`, secretKey)
  }

  // A cached answer, or undefined (a miss). Starts a background refresh when one is due.
  _lookup(secretKey, now) {
    const p = this._policy
    if (!p.enabled) return undefined
    const e = this._entries.get(secretKey)
    if (e === undefined) return undefined
    const dead = e.error !== undefined ? now >= e.expiresAt : now >= e.expiresAt + p.staleIfErrorSeconds
    if (dead) {
      this._entries.delete(secretKey)
      return undefined
    }
    if (e.error === undefined && now >= e.expiresAt && e.failing === undefined) return undefined
    this._stats.hits++
    this._entries.delete(secretKey) // most recently used last
    this._entries.set(secretKey, e)
    if (e.error !== undefined) {
      this._emit('error', secretKey, undefined, e.error.code)
      return failure(e.error.code, e.error.message, secretKey, e.error.status, 0)
    }
    const stale = now >= e.expiresAt
    if ((stale || now >= e.refreshAt) && now >= e.retryAt && !this._flights.has(secretKey)) {
      e.retryAt = now + this._backoff()
      this._refreshInBackground(secretKey)
    }
    if (stale) {
      this._stats.staleServed++
      this._emit('stale', secretKey, undefined, e.failing)
    } else {
      this._emit('hit', secretKey)
    }
    return new SecretValue(e.value, undefined, undefined, Math.floor(e.expiresAt))
  }

  _backoff() {
    return Math.min(Math.max(this._policy.refreshAfterSeconds * 0.1, 0.001), 30)
  }

  _refreshInBackground(secretKey) {
    const flight = this._startFlight(secretKey)
    flight.promise.then((o) => {
      if (this._closed) return
      if (o.error !== undefined) this._background.push(['error', secretKey, o.durationMs, o.error.code])
      else {
        this._background.push(['refresh', secretKey, o.durationMs, undefined, o.changed])
        if (o.changed === true) this._background.push(['rotate', secretKey, undefined, undefined, true])
      }
    })
  }

  // One read of the store: what it holds (or the fault) when the read starts, answered after
  // the key's delay (TIMEOUT when that is past timeoutMs). Joined by concurrent gets.
  _startFlight(secretKey) {
    this._stats.upstreamRequests++
    const started = Date.now()
    let answer
    const fault = this._faults.get(secretKey)
    if (fault !== undefined) {
      if (--fault.left <= 0) this._faults.delete(secretKey)
      const message = fault.message !== undefined ? fault.message : `secret '${secretKey}': the memory source was told to fail with ${fault.code}`
      answer = { error: { code: fault.code, message, status: fault.status } }
    } else if (this._values.has(secretKey)) {
      answer = { value: this._values.get(secretKey) }
    } else {
      answer = { error: { code: 'NOT_FOUND', message: `secret '${secretKey}' is not in the memory source`, status: 404 } }
    }
    const delay = this._delays.get(secretKey) || 0
    if (delay >= this._timeoutMs) {
      answer = { error: { code: 'TIMEOUT', message: `secret '${secretKey}': no answer from the memory source within ${this._timeoutMs} ms` } }
    }
    const flight = { promise: undefined }
    flight.promise = new Promise((resolve) => {
      this._timer(Math.min(delay, this._timeoutMs), (closed) =>
        resolve(closed ? { closed: true } : this._complete(secretKey, flight, answer, Date.now() - started)),
      )
    })
    this._flights.set(secretKey, flight)
    return flight
  }

  // `wait` ms later (a microtask when 0): fn(false); or at close(), first: fn(true).
  _timer(wait, fn) {
    const timers = this._timers
    let handle
    let done = false
    const t = {
      cancel: () => {
        if (done) return
        done = true
        if (handle !== undefined) clearTimeout(handle)
        timers.delete(t)
        fn(true)
      },
    }
    const fire = () => {
      if (done) return
      done = true
      timers.delete(t)
      fn(false)
    }
    timers.add(t)
    if (wait > 0) {
      handle = setTimeout(fire, wait)
      if (handle && typeof handle.unref === 'function') handle.unref()
    } else Promise.resolve().then(fire)
  }

  // Record what the store said (once per flight, before its waiters), as the cache does.
  _complete(secretKey, flight, answer, durationMs) {
    const p = this._policy
    const now = Date.now() / 1000
    const current = this._flights.get(secretKey) === flight
    if (current) this._flights.delete(secretKey)
    const store = p.enabled && !this._closed && current
    const before = this._entries.get(secretKey)
    if (answer.error === undefined) {
      const expiresAt = now + p.maxAgeSeconds
      const previous = before !== undefined && before.error === undefined ? before : undefined
      const changed = previous !== undefined ? previous.value !== answer.value : undefined
      const doublings = previous !== undefined && !changed ? this._nextDoublings(previous.doublings) : 0
      if (store && expiresAt > now) {
        this._store(secretKey, {
          value: answer.value,
          expiresAt,
          refreshAt: now + this._interval(doublings),
          failing: undefined,
          retryAt: 0,
          doublings,
        })
      } else if (store) this._entries.delete(secretKey)
      return { value: answer.value, expiresAt, changed, durationMs }
    }
    const error = answer.error
    this._stats.upstreamErrors++
    if (DROPS_ENTRY.indexOf(error.code) >= 0 && current) {
      this._entries.delete(secretKey)
      if (store && error.code === 'NOT_FOUND' && p.negativeTtlSeconds > 0) {
        this._store(secretKey, { error, expiresAt: now + p.negativeTtlSeconds, refreshAt: Infinity })
      }
    } else if (before !== undefined && current) {
      before.failing = ALLOWS_STALE.indexOf(error.code) >= 0 ? error.code : undefined
      before.retryAt = now + this._backoff()
    }
    return { error, durationMs }
  }

  _interval(doublings) {
    const p = this._policy
    const cap = Math.max(p.maxRefreshAfterSeconds, p.refreshAfterSeconds)
    return Math.min(p.refreshAfterSeconds * Math.pow(2, Math.min(doublings, 60)), cap)
  }

  _nextDoublings(d) {
    const p = this._policy
    return this._interval(d) >= Math.max(p.maxRefreshAfterSeconds, p.refreshAfterSeconds) ? d : Math.min(d + 1, 60)
  }

  // A caller's answer from its flight's outcome (a get may fall back to a stale value).
  _settle(secretKey, mode, outcome) {
    this._flush()
    if (outcome.closed || this._closed) return this._closedAnswer(secretKey)
    if (outcome.error === undefined) {
      if (mode === 'get') this._emit('miss', secretKey, outcome.durationMs)
      else {
        this._emit('refresh', secretKey, outcome.durationMs, undefined, outcome.changed)
        if (outcome.changed === true) this._emit('rotate', secretKey, undefined, undefined, true)
      }
      return new SecretValue(outcome.value, undefined, undefined, Math.floor(outcome.expiresAt))
    }
    const error = outcome.error
    const e = this._entries.get(secretKey)
    const now = Date.now() / 1000
    if (mode === 'get' && ALLOWS_STALE.indexOf(error.code) >= 0 && this._policy.enabled && e !== undefined && e.error === undefined &&
      now < e.expiresAt + this._policy.staleIfErrorSeconds) {
      this._stats.staleServed++
      this._emit('stale', secretKey, outcome.durationMs, error.code)
      return new SecretValue(e.value, undefined, undefined, Math.floor(e.expiresAt))
    }
    this._emit('error', secretKey, outcome.durationMs, error.code)
    return failure(error.code, error.message, secretKey, error.status, 0)
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
    const publish = channel !== undefined && channel.hasSubscribers
    if (this._onEvent === undefined && !publish) return
    const event = { type, secretKey, source: 'memory' }
    if (durationMs !== undefined) event.durationMs = durationMs
    if (code !== undefined) event.code = code
    if ((type === 'refresh' || type === 'rotate') && typeof changed === 'boolean') event.changed = changed
    if (this._onEvent !== undefined) {
      try {
        this._onEvent(event)
      } catch (e) {
        // A listener's fault must not become the caller's.
      }
    }
    if (publish) channel.publish(event)
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
  createReadinessHandler: shared.createReadinessHandler,
  TestSecretManager,
  SecretError: shared.SecretError,
}
