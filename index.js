'use strict'
// The public entry on the server: a thin layer over the native addon (native.js, generated).
//
// Why there is JS here at all:
// - Errors are made here, in the caller's realm, so `instanceof Error` holds (in Jest too).
// - The hit path. Any call into the addon costs more than a JS Map lookup plus a promise, so
//   this layer keeps a mirror of the cache's answers, each valid until the `freshUntilMs` the
//   cache gave with it (before refresh-ahead is due and before expiry). The Rust cache stays
//   the only owner of entries and policy: every removal it makes either starts here
//   (invalidate, close) or comes back in a reply (evictions, 401/403/404 drops), and hits
//   answered here are reported back (`touched`) before anything can be evicted.
// - Events: onEvent and diagnostics_channel are JS.

const diagnostics = require('node:diagnostics_channel')
const util = require('node:util')
const { NativeManager } = require('./native.js')

const channel = diagnostics.channel('commerce-secret-manager')
const TEST_CONTROL = Symbol.for('commerce-secret-manager.testControl')
const INTERNALS = Symbol.for('commerce-secret-manager.internals')
const SEP = '\0'

class SecretError extends Error {
  constructor(code, message, secretKey, status) {
    super(message)
    this.code = code
    if (secretKey !== undefined) this.secretKey = secretKey
    if (status !== undefined && status !== null) this.status = status
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

  [util.inspect.custom](depth, options, inspect) {
    const shown = { ...this, value: this.value === '' ? '' : '[redacted]' }
    return `SecretValue ${inspect(shown, options)}`
  }
}

function typeName(v) {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  return typeof v === 'object' ? 'an object' : typeof v
}

function failure(code, message, secretKey, status, expiresOn = 0) {
  return new SecretValue('', undefined, new SecretError(code, message, secretKey, status), expiresOn)
}

function argumentFailure(secretKey, url) {
  const message =
    typeof secretKey !== 'string'
      ? `secret key must be a string (got ${typeName(secretKey)})`
      : `baseRetailServerUrl for secret '${secretKey}' must be a string (got ${typeName(url)})`
  return failure('INVALID_ARGUMENT', message, typeof secretKey === 'string' ? secretKey : undefined)
}

function secretKeyOf(cacheKey) {
  const i = cacheKey.lastIndexOf(SEP)
  return i < 0 ? cacheKey : cacheKey.slice(i + 1)
}

function environment() {
  const env = {}
  for (const [k, v] of Object.entries(process.env)) if (typeof v === 'string') env[k] = v
  return env
}

// One mirrored answer. A class, so every slot has one small fixed shape (there may be many).
class Slot {
  constructor(reply) {
    // The value, or for a remembered failure (a cached NOT_FOUND) an object describing it.
    this.value =
      reply.code === undefined ? reply.value : { code: reply.code, message: reply.message, status: reply.status }
    this.id = reply.id
    this.expiresOn = reply.expiresOn
    this.until = reply.freshUntilMs
    this.epoch = -1 // not yet reported as touched
  }
}

class SecretManager {
  #native
  #source
  #keyedByUrl
  #onEvent
  #hot = new Map() // cache key -> Slot
  #touched = [] // cache keys answered from #hot since the last fetch
  #epoch = 0
  #hits = 0
  // Bumped by invalidate and close: a reply to a request made before then fills no slot.
  #generation = 0

  constructor(options) {
    if (options !== undefined && options !== null && (typeof options !== 'object' || Array.isArray(options))) {
      throw new TypeError(`options must be an object (got ${typeName(options)})`)
    }
    const { onEvent, ...rest } = options ?? {}
    if (onEvent !== undefined && typeof onEvent !== 'function') {
      throw new TypeError(`option \`onEvent\` must be a function (got ${typeName(onEvent)})`)
    }
    // Values the addon's JSON conversion cannot carry get a message naming the option here.
    const screen = (name, v) => {
      if (typeof v === 'function' || typeof v === 'symbol' || typeof v === 'bigint') {
        throw new TypeError(`option \`${name}\` cannot be ${typeof v}`)
      }
      if (typeof v === 'number' && !Number.isFinite(v)) {
        throw new TypeError(`option \`${name}\` must be a finite number (got ${v})`)
      }
    }
    for (const [k, v] of Object.entries(rest)) {
      screen(k, v)
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) for (const [k2, v2] of Object.entries(v)) screen(`${k}.${k2}`, v2)
      if (Array.isArray(v)) v.forEach((x, i) => screen(`${k}[${i}]`, x))
    }
    try {
      this.#native = new NativeManager(rest, environment(), process.cwd())
    } catch (e) {
      throw new TypeError(String(e && e.message))
    }
    this.#source = this.#native.source
    this.#keyedByUrl = this.#native.keyedByUrl
    this.#onEvent = onEvent
  }

  get source() {
    return this.#source
  }

  getSecretValue(secretKey, baseRetailServerUrl) {
    if (typeof secretKey !== 'string' || typeof baseRetailServerUrl !== 'string') {
      return Promise.resolve(argumentFailure(secretKey, baseRetailServerUrl))
    }
    const cacheKey = this.#keyedByUrl ? baseRetailServerUrl + SEP + secretKey : secretKey
    const slot = this.#hot.get(cacheKey)
    if (slot !== undefined && Date.now() < slot.until) {
      this.#hits++
      if (slot.epoch !== this.#epoch) {
        slot.epoch = this.#epoch
        this.#touched.push(cacheKey)
      }
      if (this.#onEvent !== undefined || channel.hasSubscribers) this.#emit('hit', secretKey)
      return Promise.resolve(
        typeof slot.value === 'string'
          ? new SecretValue(slot.value, slot.id, undefined, slot.expiresOn)
          : failure(slot.value.code, slot.value.message, secretKey, slot.value.status, slot.expiresOn),
      )
    }
    return this.#ask(secretKey, baseRetailServerUrl, cacheKey, false)
  }

  getSecretValues(secretKeys, baseRetailServerUrl) {
    if (!Array.isArray(secretKeys)) {
      return Promise.reject(new TypeError(`secretKeys must be an array of strings (got ${typeName(secretKeys)})`))
    }
    return Promise.all(secretKeys.map((k) => this.getSecretValue(k, baseRetailServerUrl)))
  }

  prefetch(secretKeys, baseRetailServerUrl) {
    return this.getSecretValues(secretKeys, baseRetailServerUrl)
  }

  refresh(secretKey, baseRetailServerUrl) {
    if (typeof secretKey !== 'string' || typeof baseRetailServerUrl !== 'string') {
      return Promise.resolve(argumentFailure(secretKey, baseRetailServerUrl))
    }
    const cacheKey = this.#keyedByUrl ? baseRetailServerUrl + SEP + secretKey : secretKey
    return this.#ask(secretKey, baseRetailServerUrl, cacheKey, true)
  }

  invalidate(secretKey) {
    this.#generation++
    if (secretKey === undefined || secretKey === null) {
      this.#native.invalidate(null)
      this.#hot.clear()
      return
    }
    if (typeof secretKey !== 'string') {
      throw new TypeError(`invalidate takes a secret key string or nothing (got ${typeName(secretKey)})`)
    }
    this.#native.invalidate(secretKey)
    if (!this.#keyedByUrl) this.#hot.delete(secretKey)
    else for (const k of this.#hot.keys()) if (secretKeyOf(k) === secretKey) this.#hot.delete(k)
  }

  stats() {
    const s = this.#native.stats()
    return {
      entries: s.entries,
      hits: s.hits + this.#hits,
      misses: s.misses,
      staleServed: s.staleServed,
      upstreamRequests: s.upstreamRequests,
      upstreamErrors: s.upstreamErrors,
      inFlight: s.inFlight,
    }
  }

  close() {
    this.#generation++
    this.#native.close()
    this.#hot.clear()
    this.#touched = []
    return Promise.resolve()
  }

  // The slow path: the addon answers now (a hit needing a look, a bad key, an in-process
  // source) or goes upstream through the cache's single flight.
  #ask(secretKey, url, cacheKey, refresh) {
    if (!refresh) {
      let now
      try {
        now = this.#native.lookup(secretKey, url)
      } catch (e) {
        return Promise.resolve(this.#internal(e, secretKey))
      }
      if (now !== null) return Promise.resolve(this.#settle(now, secretKey, url, cacheKey, 'get', this.#generation))
    }
    return this.#fetch(secretKey, url, cacheKey, refresh, refresh ? 'refresh' : 'get')
  }

  #fetch(secretKey, url, cacheKey, refresh, why) {
    const touched = this.#touched
    if (touched.length > 0) {
      this.#touched = []
      this.#epoch++
    }
    const generation = this.#generation
    let pending
    try {
      pending = this.#native.fetch(secretKey, url, refresh, touched)
    } catch (e) {
      return Promise.resolve(this.#internal(e, secretKey))
    }
    return pending.then(
      (reply) => this.#settle(reply, secretKey, url, cacheKey, why, generation),
      (e) => this.#internal(e, secretKey),
    )
  }

  // Apply a reply to the mirror, emit its events, start a refresh it asks for, and make
  // the caller's ISecretValue.
  #settle(reply, secretKey, url, cacheKey, why, generation) {
    if (reply.evicted !== undefined) {
      for (const k of reply.evicted) {
        this.#hot.delete(k)
        this.#emit('evict', secretKeyOf(k))
      }
    }
    if (reply.freshUntilMs > Date.now() && generation === this.#generation) {
      this.#hot.set(cacheKey, new Slot(reply))
    } else {
      this.#hot.delete(cacheKey)
    }
    if (this.#onEvent !== undefined || channel.hasSubscribers) {
      const type = reply.code !== undefined ? 'error' : why === 'get' ? reply.event : 'refresh'
      this.#emit(type, secretKey, reply.durationMs, reply.code ?? reply.staleCode)
    }
    if (reply.refresh) {
      this.#fetch(secretKey, url, cacheKey, true, 'background')
    }
    return reply.code !== undefined
      ? failure(reply.code, reply.message, secretKey, reply.status, reply.expiresOn)
      : new SecretValue(reply.value, reply.id, undefined, reply.expiresOn)
  }

  #internal(e, secretKey) {
    const message = `secret '${secretKey}': internal error: ${String(e && e.message)}`
    this.#emit('error', secretKey, undefined, 'UNAVAILABLE')
    return failure('UNAVAILABLE', message, secretKey)
  }

  #emit(type, secretKey, durationMs, code) {
    if (this.#onEvent === undefined && !channel.hasSubscribers) return
    const event = { type, secretKey, source: this.#source }
    if (durationMs !== undefined && durationMs !== null) event.durationMs = durationMs
    if (code !== undefined && code !== null) event.code = code
    if (this.#onEvent !== undefined) {
      try {
        this.#onEvent(event)
      } catch {
        // A listener's fault must not become the caller's.
      }
    }
    if (channel.hasSubscribers) channel.publish(event)
  }

  [util.inspect.custom]() {
    return `SecretManager { source: '${this.#source}' }`
  }

  // For the CLI (doctor, validate): the resolved configuration and the local file's keys.
  [INTERNALS]() {
    return {
      describe: () => this.#native.describe(),
      localKeys: () => this.#native.localKeys(),
      checkToken: () => this.#native.checkToken(),
      tokenRequests: () => this.#native.tokenRequests(),
    }
  }

  // Test hooks of the memory source; not part of the public API.
  [TEST_CONTROL](control) {
    return this.#native.testControl(control)
  }
}

function createSecretManager(options) {
  return new SecretManager(options)
}

// The default instance: built from the environment on first use, so that importing the
// package costs nothing and a bad environment surfaces as an error value, not a throw.
let defaultInstance
const secretManager = {
  getSecretValue(secretKey, baseRetailServerUrl) {
    if (defaultInstance === undefined) {
      try {
        defaultInstance = new SecretManager()
      } catch (e) {
        return Promise.resolve(
          failure('NOT_CONFIGURED', `secret manager could not be built from the environment: ${e.message}`, secretKey),
        )
      }
    }
    return defaultInstance.getSecretValue(secretKey, baseRetailServerUrl)
  },
}

function install(target, options) {
  if (target === null || typeof target !== 'object') {
    throw new TypeError(`install takes the object to install on, e.g. msdyn365Commerce (got ${typeName(target)})`)
  }
  if (target.isBrowser === true) {
    target.secretManager = undefined
    return undefined
  }
  const manager = options === undefined ? secretManager : createSecretManager(options)
  target.secretManager = manager
  return manager
}

module.exports = { SecretManager, SecretError, createSecretManager, secretManager, install }
