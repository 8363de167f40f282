'use strict'
// Pure JS shared by every entry (server, browser, testing): the result and error shapes,
// argument checks, and installing a manager on a target object. No native code, no Node
// built-in, so it is safe in any bundle. Parses at ES2018 (webpack 4's parser).

// Where util.inspect looks, without requiring `util` (absent in browser bundles).
const INSPECT = Symbol.for('nodejs.util.inspect.custom')

class SecretError extends Error {
  // `requestId`: the store's request id (Key Vault x-ms-request-id, Retail Server's), set only
  // when known; what Azure support asks for (the message quotes it too).
  constructor(code, message, secretKey, status, requestId) {
    super(message)
    this.code = code
    if (secretKey !== undefined) this.secretKey = secretKey
    if (status !== undefined && status !== null) this.status = status
    if (typeof requestId === 'string' && requestId !== '') this.requestId = requestId
  }
}
SecretError.prototype.name = 'SecretError'

// The ISecretValue handed to callers. A class only so that logging one by accident
// (console.log, util.inspect) does not print the value; JSON and spreading see plain fields.
class SecretValue {
  constructor(value, id, error, expiresOn) {
    this.value = value
    if (id !== undefined && id !== null) this.id = id
    if (error !== undefined) this.error = error
    this.expiresOn = expiresOn
  }
}
SecretValue.prototype[INSPECT] = function inspect(depth, options, inspectFn) {
  const shown = Object.assign({}, this, { value: this.value === '' ? '' : '[redacted]' })
  return `SecretValue ${typeof inspectFn === 'function' ? inspectFn(shown, options) : JSON.stringify(shown)}`
}

// The public methods of a manager, bound per instance so they work detached
// (`const { getSecretValue } = manager`): a contract that never throws must.
const BOUND_METHODS = [
  'getSecretValue', 'getSecretValues', 'prefetch', 'refresh', 'invalidate', 'secretChanged', 'withSecret', 'ready', 'stats', 'close',
]

function typeName(v) {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v === 'object' ? 'an object' : typeof v
}

function failure(code, message, secretKey, status, expiresOn, requestId) {
  return new SecretValue('', undefined, new SecretError(code, message, secretKey, status, requestId), expiresOn || 0)
}

// A key the addon would see altered: napi turns a lone surrogate into U+FFFD, which would
// read the secret of another name.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/

// Checks made before anything reaches a source. Returns a failed ISecretValue, or undefined.
function argumentFailure(secretKey, url) {
  if (typeof secretKey !== 'string') {
    return failure('INVALID_ARGUMENT', `secret key must be a string (got ${typeName(secretKey)})`)
  }
  if (typeof url !== 'string') {
    return failure(
      'INVALID_ARGUMENT',
      `baseRetailServerUrl for secret '${secretKey}' must be a string (got ${typeName(url)})`,
      secretKey,
    )
  }
  if (LONE_SURROGATE.test(secretKey)) {
    return failure(
      'INVALID_ARGUMENT',
      'secret key is not well-formed UTF-16 (a lone surrogate); it would name another secret',
      secretKey,
    )
  }
  return undefined
}

// Rust's `char::escape_debug`, for the messages the pure-JS manager makes like the addon's.
function escapeDebug(s) {
  let out = ''
  for (const ch of s) {
    const c = ch.codePointAt(0)
    if (ch === '\0') out += '\\0'
    else if (ch === '\t') out += '\\t'
    else if (ch === '\r') out += '\\r'
    else if (ch === '\n') out += '\\n'
    else if (ch === '\\' || ch === "'" || ch === '"') out += `\\${ch}`
    else if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) out += `\\u{${c.toString(16)}}`
    else out += ch
  }
  return out
}

const MAX_KEY_CHARS = 256
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/

// The key rules of the addon (`validate_key`), for the pure-JS manager. A message, or undefined.
function keyProblem(key) {
  if (key === '') return 'secret key is empty'
  const chars = Array.from(key)
  if (chars.length > MAX_KEY_CHARS) {
    return `secret key is ${chars.length} characters long; the limit is ${MAX_KEY_CHARS}`
  }
  if (CONTROL.test(key)) {
    const pos = chars.findIndex((ch) => CONTROL.test(ch))
    return `secret key '${escapeDebug(key)}' has a control character at position ${pos}`
  }
  return undefined
}

// Make target.secretManager answer `manager`, on a plain object or on the platform's own
// `msdyn365Commerce`, whose `secretManager` is a getter-only accessor on the prototype over
// a private `_secretManager` that the platform's start-up assigns after app modules load.
// An own property on the instance shadows that getter, so whatever the platform assigns to
// `_secretManager` later, reads of `secretManager` answer ours. Checked first, done in one
// step: on a target it cannot take, a TypeError and nothing changed.
function checkTarget(target, what) {
  if (target === null || (typeof target !== 'object' && typeof target !== 'function')) {
    throw new TypeError(`${what} takes the object to install on, e.g. msdyn365Commerce (got ${typeName(target)})`)
  }
  const own = Object.getOwnPropertyDescriptor(target, 'secretManager')
  if (own !== undefined && !own.configurable) {
    throw new TypeError(
      `${what}: target.secretManager is a non-configurable own property, so it cannot be replaced; ` +
        'pass the object whose secretManager the app reads (e.g. msdyn365Commerce)',
    )
  }
  if (!Object.isExtensible(target) && own === undefined) {
    throw new TypeError(`${what}: the target is frozen or not extensible, so secretManager cannot be set on it`)
  }
}

function installOn(target, manager, what) {
  checkTarget(target, what)
  Object.defineProperty(target, 'secretManager', {
    value: manager,
    writable: true,
    enumerable: true,
    configurable: true,
  })
  return manager
}

// The platform's object says `isBrowser` (typeof window !== 'undefined'). Reading it must not
// throw into install, whatever the target is.
function targetIsBrowser(target) {
  try {
    return target !== null && typeof target === 'object' && target.isBrowser === true
  } catch (e) {
    return false
  }
}

module.exports = {
  BOUND_METHODS,
  SecretError,
  SecretValue,
  typeName,
  failure,
  argumentFailure,
  keyProblem,
  escapeDebug,
  checkTarget,
  installOn,
  targetIsBrowser,
}

// Every number option and its range (api.md: "Every number option has a range"). Checked
// here, before the addon sees a number, and again in Rust (config.rs) with the same bounds.
const YEAR = 31536000
const NUMBER_OPTIONS = {
  timeoutMs: { min: 1, max: 600000 },
  'cache.refreshAfterSeconds': { min: 0, max: YEAR },
  'cache.maxAgeSeconds': { min: 0.001, max: YEAR },
  'cache.staleIfErrorSeconds': { min: 0, max: YEAR },
  'cache.negativeTtlSeconds': { min: 0, max: YEAR },
  'cache.maxEntries': { min: 1, max: 10000000, integer: true },
  'cache.maxRefreshAfterSeconds': { min: 0.001, max: YEAR },
}

function checkNumber(name, v) {
  const r = NUMBER_OPTIONS[name]
  if (r === undefined || v === undefined || v === null) return
  if (typeof v !== 'number') throw new TypeError(`option \`${name}\` must be a number (got ${typeName(v)})`)
  if (!Number.isFinite(v) || v < r.min || v > r.max || (r.integer && !Number.isInteger(v))) {
    throw new TypeError(
      `option \`${name}\` must be ${r.integer ? 'an integer' : 'a number'} from ${r.min} to ${r.max} (got ${v})`,
    )
  }
}

// The number options of an options object, checked against their ranges.
function checkNumberOptions(options) {
  if (options === null || typeof options !== 'object') return
  checkNumber('timeoutMs', options.timeoutMs)
  const cache = options.cache
  if (cache !== null && typeof cache === 'object' && !Array.isArray(cache)) {
    for (const k of Object.keys(cache)) checkNumber(`cache.${k}`, cache[k])
  }
}

module.exports.NUMBER_OPTIONS = NUMBER_OPTIONS
module.exports.checkNumberOptions = checkNumberOptions

// withSecret: run `fn` with a secret's value; when fn fails with an authentication failure
// (the downstream API no longer takes the value: it was rotated), refresh that secret once and
// run fn again with the new value. Shared by the addon's manager and the testing one.
//
// Refreshes are coalesced per cache key: callers failing while one runs join it. After it, for
// AUTH_RETRY_WINDOW_MS, a failing caller retries with what the cache holds now (the value the
// last refresh brought) without a new refresh, so a downstream that rejects every value cannot
// turn callers into a storm of store reads. The second failure is the caller's.
const AUTH_RETRY_WINDOW_MS = 5000

// The default test: the error says HTTP 401 or 403 (`status`, as fetch's Response and many
// clients' errors carry it, or `statusCode`, as Node's and got's do).
function isAuthStatus(err) {
  if (err === null || (typeof err !== 'object' && typeof err !== 'function')) return false
  const s = err.status
  const c = err.statusCode
  return s === 401 || s === 403 || c === 401 || c === 403
}

function judgeAuthFailure(isAuthFailure, err) {
  try {
    return isAuthFailure(err) === true
  } catch (e) {
    return false // a faulty predicate: the caller's error stands
  }
}

function callWith(fn, value) {
  try {
    return Promise.resolve(fn(value))
  } catch (e) {
    return Promise.reject(e)
  }
}

// The value to retry with after an auth failure: a refresh (one per cache key at a time, at
// most one per window), or, within the window after one, what the cache holds.
function retryValue(manager, states, cacheKey, secretKey, url) {
  const now = Date.now()
  const inWindow = (s) => s.flight === null && now >= s.at && now - s.at < AUTH_RETRY_WINDOW_MS
  let state = states.get(cacheKey)
  if (state !== undefined) {
    if (state.flight !== null) return state.flight
    if (inWindow(state)) return manager.getSecretValue(secretKey, url)
  }
  if (states.size >= 1024) states.forEach((s, k) => (inWindow(s) || s.flight !== null ? undefined : states.delete(k)))
  state = { flight: null, at: 0 }
  states.set(cacheKey, state)
  const done = (r) => {
    state.flight = null
    state.at = Date.now()
    return r
  }
  state.flight = manager.refresh(secretKey, url).then(done, (e) => {
    done()
    throw e
  })
  return state.flight
}

function withSecret(manager, states, cacheKeyOf, secretKey, url, fn, options) {
  if (typeof fn !== 'function') {
    return Promise.reject(new TypeError(`withSecret takes a function (value) => result as its third argument (got ${typeName(fn)})`))
  }
  if (options !== undefined && options !== null && (typeof options !== 'object' || Array.isArray(options))) {
    return Promise.reject(new TypeError(`withSecret: options must be an object (got ${typeName(options)})`))
  }
  const given = options ? options.isAuthFailure : undefined
  if (given !== undefined && typeof given !== 'function') {
    return Promise.reject(new TypeError(`withSecret: option \`isAuthFailure\` must be a function (got ${typeName(given)})`))
  }
  const isAuthFailure = given === undefined ? isAuthStatus : given
  return manager.getSecretValue(secretKey, url).then((first) => {
    if (first.error !== undefined) throw first.error
    return callWith(fn, first.value).then(undefined, (err) => {
      if (!judgeAuthFailure(isAuthFailure, err)) throw err
      return retryValue(manager, states, cacheKeyOf(secretKey, url), secretKey, url).then((next) => {
        if (next.error !== undefined) throw next.error
        return callWith(fn, next.value)
      })
    })
  })
}

module.exports.AUTH_RETRY_WINDOW_MS = AUTH_RETRY_WINDOW_MS
module.exports.isAuthStatus = isAuthStatus
module.exports.withSecret = withSecret

// Readiness (ready() and the readiness handler): the reads install / prefetch started, followed
// per (url, key) until one answered with a value. Only whether each did is kept, never a value.
const READY_TIMEOUT_MS = { default: 30000, max: 600000 }

class Readiness {
  constructor() {
    // url \0 key -> { id, key, ok, attempt: promise | null }: the start-up reads not yet
    // answered with a value (one that is leaves: a prefetch of many keys keeps nothing of them).
    this.entries = new Map()
  }

  // A start-up read of (secretKey, url): `attempt` resolves with its ISecretValue.
  track(secretKey, url, attempt) {
    if (typeof secretKey !== 'string' || typeof url !== 'string') return
    const id = `${url}\u0000${secretKey}`
    let e = this.entries.get(id)
    if (e === undefined) {
      e = { id, key: secretKey, url, ok: false, attempt: null }
      this.entries.set(id, e)
    }
    if (!e.ok) this.follow(e, attempt)
  }

  follow(e, attempt) {
    const p = Promise.resolve(attempt)
      .then(
        (r) => {
          if (r !== null && typeof r === 'object' && r.error === undefined) {
            e.ok = true
            if (this.entries.get(e.id) === e) this.entries.delete(e.id)
          }
        },
        () => undefined,
      )
      .then(() => {
        if (e.attempt === p) e.attempt = null
      })
    e.attempt = p
    return p
  }

  status() {
    const pending = []
    this.entries.forEach((e) => {
      if (!e.ok && pending.indexOf(e.key) < 0) pending.push(e.key)
    })
    return { ready: pending.length === 0, pending }
  }

  // Resolves when every tracked read has answered (or timeoutMs passed). A key whose read had
  // already failed is asked again (`ask(key, url)`), once per call: a store that was down at
  // start-up does not leave the instance unready for good.
  wait(ask, timeoutMs) {
    const waiting = []
    this.entries.forEach((e) => {
      if (e.ok) return
      if (e.attempt === null) this.follow(e, ask(e.key, e.url))
      waiting.push(e.attempt)
    })
    if (waiting.length === 0) return Promise.resolve(this.status())
    return new Promise((resolve) => {
      let timer
      const finish = () => {
        if (timer !== undefined) clearTimeout(timer)
        timer = undefined
        resolve(this.status())
      }
      timer = setTimeout(finish, timeoutMs)
      if (timer && typeof timer.unref === 'function') timer.unref()
      Promise.all(waiting).then(finish)
    })
  }
}

// ready()'s options: a TypeError (as the rejection) for a bad timeoutMs, else the number.
function readyTimeout(options) {
  if (options !== undefined && options !== null && (typeof options !== 'object' || Array.isArray(options))) {
    return new TypeError(`ready: options must be an object (got ${typeName(options)})`)
  }
  const v = options ? options.timeoutMs : undefined
  if (v === undefined || v === null) return READY_TIMEOUT_MS.default
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > READY_TIMEOUT_MS.max) {
    return new TypeError(`ready: option \`timeoutMs\` must be a number from 0 to ${READY_TIMEOUT_MS.max} (got ${typeof v === 'number' ? v : typeName(v)})`)
  }
  return v
}

// The reads of a prefetch, each followed by the readiness of `manager` (its `_readiness`).
function trackPrefetch(readiness, secretKeys, url, attempts) {
  for (let i = 0; i < attempts.length; i++) readiness.track(secretKeys[i], url, attempts[i])
  return attempts
}

// A health-check endpoint (App Service Health check, a Kubernetes readiness probe): 503 until
// manager.ready() says ready, then 200. The body is `{ ready, pending }` with pending a COUNT:
// key names can say what a deployment holds, and a health endpoint is often public.
function createReadinessHandler(manager, options) {
  if (manager === null || typeof manager !== 'object' || typeof manager.ready !== 'function') {
    throw new TypeError(`createReadinessHandler takes a SecretManager (got ${typeName(manager)})`)
  }
  const timeoutMs = options && options.timeoutMs !== undefined ? options.timeoutMs : 1000
  const bad = readyTimeout({ timeoutMs })
  if (bad instanceof TypeError) throw new TypeError(bad.message.replace(/^ready/, 'createReadinessHandler'))
  return function readinessHandler(req, res, next) {
    let answered
    try {
      answered = Promise.resolve(manager.ready({ timeoutMs }))
    } catch (e) {
      answered = Promise.reject(e)
    }
    answered
      .then(
        (r) => ({ status: r.ready ? 200 : 503, body: { ready: r.ready === true, pending: r.pending.length } }),
        () => ({ status: 503, body: { ready: false, pending: 0 } }),
      )
      .then((r) => {
        try {
          if (res.headersSent) return
          const body = JSON.stringify(r.body)
          res.writeHead(r.status, {
            'content-type': 'application/json; charset=utf-8',
            'cache-control': 'no-store',
            'content-length': body.length,
          })
          res.end(req && req.method === 'HEAD' ? undefined : body)
        } catch (e) {
          if (typeof next === 'function') next(e)
        }
      })
  }
}

module.exports.Readiness = Readiness
module.exports.readyTimeout = readyTimeout
module.exports.trackPrefetch = trackPrefetch
module.exports.createReadinessHandler = createReadinessHandler

// install's own options (`prefetch`, `url`) apart from the manager's. `options` undefined when
// nothing else was given (the default instance). TypeErrors name the option.
function installOptions(options, what) {
  if (options === undefined) return { options: undefined }
  if (options === null) return { options: null } // a manager of its own, as before
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`options must be an object (got ${typeName(options)})`)
  }
  const rest = Object.assign({}, options)
  const prefetch = rest.prefetch
  const url = rest.url
  delete rest.prefetch
  delete rest.url
  if (prefetch !== undefined && (!Array.isArray(prefetch) || prefetch.some((k) => typeof k !== 'string'))) {
    throw new TypeError(`${what}: option \`prefetch\` must be an array of secret keys (strings) (got ${typeName(prefetch)})`)
  }
  if (url !== undefined && typeof url !== 'string') {
    throw new TypeError(`${what}: option \`url\` must be a string, the base Retail Server url (got ${typeName(url)})`)
  }
  // Only prefetch / url: the default instance. Anything else (even `{}`): a manager of its own.
  const own = Object.keys(rest).length > 0 || (prefetch === undefined && url === undefined)
  return { options: own ? rest : undefined, prefetch, url }
}

// COMMERCE_SECRETS_PREFETCH: comma-separated keys, blanks ignored.
function prefetchFromEnvironment(v) {
  if (typeof v !== 'string') return undefined
  return v
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k !== '')
}

module.exports.installOptions = installOptions
module.exports.prefetchFromEnvironment = prefetchFromEnvironment
