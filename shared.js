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
const BOUND_METHODS = ['getSecretValue', 'getSecretValues', 'prefetch', 'refresh', 'invalidate', 'secretChanged', 'stats', 'close']

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
