'use strict'
// OpenTelemetry (README "Telemetry"): spans for upstream reads and metrics, through
// `@opentelemetry/api` 1.x only (an optional peer dependency), so whatever SDK the app
// registers sees them. Never an SDK here.
//
// Cost: the API is looked for once per manager, at construction (a guarded require). Absent,
// or `telemetry: false`: index.js holds no telemetry object and pays nothing more. Present:
// each upstream read (a miss, a refresh, a background refresh; never a hit: the hit path in
// index.js/mirror.js does not come here) checks whether a tracer or meter provider is
// registered, and does nothing else when none is. Counters the cache already keeps (hits,
// misses, stale answers, entries, in flight) are read from `stats()` by observable instruments
// at collection time: nothing is counted per hit.
//
// What goes out: the closed set of attributes below, hosts (never a path or query), statuses,
// our error codes, fixed sentences (`REASONS`), the store's request id and our client request
// id. Never a value, a token, a header, a body or upstream text. The key's name only on spans,
// and only with `telemetry: { secretNames: true }`.
//
// Parses at ES2018 (webpack 4): no `?.`, `??`, `#private`; built-ins without `node:`.

const NAME = 'commerce-secret-manager'
const VERSION = require('./package.json').version

// The attribute keys (a closed set).
const A = {
  source: 'commerce_secret_manager.source',
  operation: 'commerce_secret_manager.operation',
  outcome: 'commerce_secret_manager.outcome',
  result: 'commerce_secret_manager.result',
  vaultIndex: 'commerce_secret_manager.vault_index',
  secretName: 'commerce_secret_manager.secret_name',
  event: 'commerce_secret_manager.event',
  requestId: 'commerce_secret_manager.request_id',
  clientRequestId: 'commerce_secret_manager.client_request_id',
  shared: 'commerce_secret_manager.shared_flight',
  stale: 'commerce_secret_manager.stale',
  background: 'commerce_secret_manager.background',
  attempt: 'commerce_secret_manager.attempt',
  waitSeconds: 'commerce_secret_manager.retry_wait',
  errorType: 'error.type',
  serverAddress: 'server.address',
  status: 'http.response.status_code',
}

// The failure in words, per code (like Business Central's RT0017 reasons): fixed text, so it is
// safe on a span, a metric or an event.
const REASONS = {
  INVALID_ARGUMENT: 'the secret key or the Retail Server url is not valid',
  NOT_FOUND: 'the secret does not exist in the store',
  LOCAL_FILE_MISSING: 'the local secrets file was not found',
  LOCAL_FILE_INVALID: 'the local secrets file is not valid',
  HOST_NOT_ALLOWED: 'the host may not receive a token; nothing was sent',
  UNAUTHORIZED: 'the store refused the token (401), a fresh one too',
  FORBIDDEN: 'the identity may not read the secret, or the secret is disabled or outside its validity (403)',
  THROTTLED: 'the store throttled the requests (429), after honouring Retry-After',
  TIMEOUT: 'the store did not answer before the deadline',
  UNAVAILABLE: 'the store could not be reached or failed (connection error or 5xx), after retries',
  BAD_RESPONSE: 'the reply was malformed, unexpected or too large',
  IDENTITY_UNAVAILABLE: 'no token could be had from the identity',
  NOT_CONFIGURED: 'no secrets source is configured',
  CLOSED: 'the secret manager was closed',
}

function reasonOf(code) {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(REASONS, code) ? REASONS[code] : undefined
}

// The API: looked for once (undefined: not yet; null: absent). `module.require` is Node's
// own require (and Jest's, so tests see the instance they register providers on); bundlers do
// not follow it. In a bundle (webpack's or esbuild's `module` has no `require`), the API is
// looked for beside the bundle and from its main module.
let api
// Held in a variable so that no bundler resolves it at build time (webpack 4 and 5 and esbuild
// would otherwise fail or warn on an app that has not installed it).
const API_MODULE = ['@opentelemetry', 'api'].join('/')
// The module's own `require` method (Node's, or Jest's), reached through a parameter so that
// no bundler takes it for a dependency (webpack parses `module.require(…)`).
function ownRequire(mod) {
  return mod && typeof mod.require === 'function' ? (name) => mod.require(name) : undefined
}

function loadApi() {
  if (api !== undefined) return api
  api = null
  const tries = []
  const own = ownRequire(typeof module !== 'undefined' ? module : undefined)
  if (own !== undefined) tries.push(() => own(API_MODULE))
  tries.push(() => {
    const Module = require('module')
    const path = require('path')
    const from = require.main && require.main.filename ? require.main.filename : path.join(__dirname, 'telemetry.js')
    return Module.createRequire(from)(API_MODULE)
  })
  for (const t of tries) {
    try {
      const a = t()
      if (a && a.trace && a.context && a.metrics && typeof a.metrics.getMeterProvider === 'function') {
        api = a
        break
      }
    } catch (e) {
      // absent: no telemetry
    }
  }
  return api
}

// What the registered providers give, re-checked at each use (an app may register its SDK
// after making a manager; tests replace providers).
const state = {
  traceDelegate: undefined,
  tracer: undefined,
  noopTracerProvider: undefined,
  meterProvider: undefined,
  instruments: undefined,
  noopMeter: undefined,
}

function tracerOf(a) {
  const proxy = a.trace.getTracerProvider()
  const delegate = proxy && typeof proxy.getDelegate === 'function' ? proxy.getDelegate() : proxy
  if (delegate !== state.traceDelegate) {
    if (state.noopTracerProvider === undefined) state.noopTracerProvider = new a.ProxyTracerProvider().getDelegate()
    state.traceDelegate = delegate
    state.tracer = !delegate || delegate === state.noopTracerProvider ? undefined : delegate.getTracer(NAME, VERSION)
  }
  return state.tracer
}

function instrumentsOf(a) {
  const provider = a.metrics.getMeterProvider()
  if (provider !== state.meterProvider) {
    if (state.noopMeter === undefined) state.noopMeter = typeof a.createNoopMeter === 'function' ? a.createNoopMeter() : null
    state.meterProvider = provider
    state.instruments = undefined
    const meter = provider ? provider.getMeter(NAME, VERSION) : undefined
    if (meter && !(state.noopMeter && meter instanceof state.noopMeter.constructor)) {
      state.instruments = makeInstruments(meter)
    }
  }
  return state.instruments
}

// Managers whose cache counters the observable instruments read (weakly held: a manager
// dropped without close is not kept alive by its telemetry), and the counts of closed ones,
// so monotonic counters stay monotonic.
const managers = new Set()
const retired = {}

function each(fn) {
  for (const ref of managers) {
    const m = typeof ref.deref === 'function' ? ref.deref() : ref
    if (m === undefined) managers.delete(ref)
    else fn(m)
  }
}

function makeInstruments(meter) {
  const i = {
    upstreamRequests: meter.createCounter('commerce_secret_manager.upstream.requests', {
      description: 'HTTP requests to the store and the identity (retries are one request), by outcome',
      unit: '{request}',
    }),
    upstreamDuration: meter.createHistogram('commerce_secret_manager.upstream.duration', {
      description: 'Duration of HTTP requests to the store and the identity, retries included',
      unit: 's',
      advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10] },
    }),
    refreshes: meter.createCounter('commerce_secret_manager.refreshes', {
      description: 'Refreshes (explicit, pushed and background) by result: changed, unchanged, failed',
      unit: '{refresh}',
    }),
    staleAge: meter.createHistogram('commerce_secret_manager.stale.age', {
      description: 'How long past its expiry a stale value was when served (the store was failing)',
      unit: 's',
    }),
  }
  const hits = meter.createObservableCounter('commerce_secret_manager.cache.hits', {
    description: 'Answers from the cache',
    unit: '{hit}',
  })
  const misses = meter.createObservableCounter('commerce_secret_manager.cache.misses', {
    description: 'Reads the cache could not answer',
    unit: '{miss}',
  })
  const stale = meter.createObservableCounter('commerce_secret_manager.cache.stale_answers', {
    description: 'Last good values served while the store was failing',
    unit: '{answer}',
  })
  const entries = meter.createObservableGauge('commerce_secret_manager.cache.entries', {
    description: 'Entries in the cache',
    unit: '{entry}',
  })
  const inFlight = meter.createObservableUpDownCounter('commerce_secret_manager.reads.in_flight', {
    description: 'Upstream reads under way',
    unit: '{read}',
  })
  meter.addBatchObservableCallback(
    (result) => {
      const by = {}
      const add = (source, s) => {
        const t = by[source] || (by[source] = { hits: 0, misses: 0, staleServed: 0, entries: 0, inFlight: 0 })
        t.hits += s.hits
        t.misses += s.misses
        t.staleServed += s.staleServed
        t.entries += s.entries || 0
        t.inFlight += s.inFlight || 0
      }
      Object.keys(retired).forEach((source) => add(source, retired[source]))
      each((m) => {
        let s
        try {
          s = m.stats()
        } catch (e) {
          return
        }
        add(m._source, s)
      })
      Object.keys(by).forEach((source) => {
        const attrs = { [A.source]: source }
        const t = by[source]
        result.observe(hits, t.hits, attrs)
        result.observe(misses, t.misses, attrs)
        result.observe(stale, t.staleServed, attrs)
        result.observe(entries, t.entries, attrs)
        result.observe(inFlight, t.inFlight, attrs)
      })
    },
    [hits, misses, stale, entries, inFlight],
  )
  return i
}

function traceparentOf(a, span) {
  const sc = span.spanContext()
  if (!sc || (typeof a.isSpanContextValid === 'function' && !a.isSpanContextValid(sc))) return undefined
  const flags = `0${((sc.traceFlags || 0) & 0xff).toString(16)}`.slice(-2)
  return `00-${sc.traceId}-${sc.spanId}-${flags}`
}

function requestAttributes(source, r) {
  const attrs = { [A.source]: source, [A.operation]: r.operation, [A.outcome]: r.outcome }
  if (typeof r.host === 'string' && r.host !== '') attrs[A.serverAddress] = r.host
  if (typeof r.vaultIndex === 'number') attrs[A.vaultIndex] = r.vaultIndex
  if (typeof r.errorType === 'string') attrs[A.errorType] = r.errorType
  return attrs
}

// The last secret request of a read: whose facts go on the read's own span.
function mainRecord(records) {
  for (let i = records.length - 1; i >= 0; i--) if (records[i].operation === 'secret') return records[i]
  return undefined
}

function addRetries(a, span, r) {
  const retries = r.retries || []
  for (let n = 0; n < retries.length; n++) {
    const x = retries[n]
    const attrs = { [A.attempt]: n + 1, [A.errorType]: x.errorType, [A.waitSeconds]: x.waitMs / 1000 }
    if (typeof x.status === 'number') attrs[A.status] = x.status
    span.addEvent('retry', attrs, x.atMs)
  }
}

// One manager's telemetry: made when the API is present and telemetry not turned off.
class ManagerTelemetry {
  constructor(a, manager, secretNames) {
    this.api = a
    this.manager = manager
    this.secretNames = secretNames
    this.ref = typeof WeakRef === 'function' ? new WeakRef(manager) : manager
    managers.add(this.ref)
    // Instruments exist from the start when a meter provider is already registered.
    instrumentsOf(a)
  }

  get source() {
    return this.manager._source
  }

  // Around native.fetch: the read's CLIENT span (child of the caller's active context), and
  // the traceparent that goes upstream. Undefined when no provider is registered.
  start(secretKey, why) {
    const a = this.api
    const tracer = tracerOf(a)
    const instruments = instrumentsOf(a)
    if (tracer === undefined && instruments === undefined) return undefined
    const read = new Read(this, instruments, why)
    if (tracer !== undefined) {
      const attributes = { [A.source]: this.source, [A.operation]: 'secret' }
      if (this.secretNames) attributes[A.secretName] = secretKey
      read.tracer = tracer
      read.span = tracer.startSpan(
        why === 'refresh' ? `${NAME} refresh` : `${NAME} get`,
        { kind: a.SpanKind.CLIENT, attributes },
        a.context.active(),
      )
      read.traceparent = traceparentOf(a, read.span)
    }
    return read
  }

  // A stale answer: how old the value was.
  stale(reply) {
    const instruments = instrumentsOf(this.api)
    if (instruments === undefined || typeof reply.staleAgeSeconds !== 'number') return
    const attrs = { [A.source]: this.source }
    if (typeof reply.staleCode === 'string') attrs[A.errorType] = reply.staleCode
    instruments.staleAge.record(reply.staleAgeSeconds, attrs)
  }

  // What a background refresh did (reported after the fact, by the cache's sync): a root span
  // named `commerce-secret-manager background refresh`, its requests, the refresh counter.
  background(e) {
    const a = this.api
    const tracer = tracerOf(a)
    const instruments = instrumentsOf(a)
    if (tracer === undefined && instruments === undefined) return
    const ended = typeof e.endedMs === 'number' && e.endedMs > 0 ? e.endedMs : Date.now()
    const read = new Read(this, instruments, 'background')
    if (tracer !== undefined) {
      const attributes = { [A.source]: this.source, [A.operation]: 'secret', [A.background]: true }
      if (this.secretNames) attributes[A.secretName] = e.key
      read.tracer = tracer
      read.span = tracer.startSpan(`${NAME} background refresh`, {
        kind: a.SpanKind.CLIENT,
        root: true,
        startTime: ended - (e.durationMs || 0),
        attributes,
      })
    }
    read.end(e, ended)
  }

  close() {
    managers.delete(this.ref)
    let s
    try {
      s = this.manager.stats()
    } catch (e) {
      return
    }
    const r = retired[this.source] || (retired[this.source] = { hits: 0, misses: 0, staleServed: 0 })
    r.hits += s.hits
    r.misses += s.misses
    r.staleServed += s.staleServed
  }
}

// One upstream read under way.
class Read {
  constructor(owner, instruments, why) {
    this.owner = owner
    this.instruments = instruments
    this.why = why
    this.span = undefined
    this.tracer = undefined
    this.traceparent = undefined
  }

  // `reply`: the addon's reply (or a background event); `endTime`: when it ended (ms), else now.
  end(reply, endTime) {
    const a = this.owner.api
    const source = this.owner.source
    const records = Array.isArray(reply.upstream) ? reply.upstream : []
    const code = typeof reply.code === 'string' ? reply.code : undefined
    const instruments = this.instruments
    if (instruments !== undefined) {
      for (const r of records) {
        const attrs = requestAttributes(source, r)
        instruments.upstreamRequests.add(1, attrs)
        instruments.upstreamDuration.record(r.durationMs / 1000, attrs)
      }
      if (this.why !== 'get') {
        const result = code !== undefined ? 'failed' : reply.changed === false ? 'unchanged' : 'changed'
        const attrs = { [A.source]: source, [A.result]: result }
        if (code !== undefined) attrs[A.errorType] = code
        instruments.refreshes.add(1, attrs)
      }
    }
    const span = this.span
    if (span === undefined) return
    const parent = a.trace.setSpan(a.context.active(), span)
    const main = mainRecord(records)
    for (const r of records) {
      if (r === main) continue
      if (r.operation === 'secret') {
        // An earlier vault of the fallback: an event on the read's span.
        const attrs = requestAttributes(source, r)
        if (typeof r.status === 'number') attrs[A.status] = r.status
        if (typeof r.requestId === 'string') attrs[A.requestId] = r.requestId
        span.addEvent('upstream request', attrs, r.startedMs + r.durationMs)
        continue
      }
      // The token request and the challenge: child spans.
      const attributes = requestAttributes(source, r)
      if (typeof r.status === 'number') attributes[A.status] = r.status
      if (typeof r.requestId === 'string') attributes[A.requestId] = r.requestId
      if (typeof r.clientRequestId === 'string') attributes[A.clientRequestId] = r.clientRequestId
      const child = this.tracer.startSpan(
        `${NAME} ${r.operation}`,
        { kind: a.SpanKind.CLIENT, startTime: r.startedMs, attributes },
        parent,
      )
      addRetries(a, child, r)
      if (r.outcome !== 'success') child.setStatus({ code: a.SpanStatusCode.ERROR, message: reasonOf(r.errorType) || r.outcome })
      child.end(r.startedMs + r.durationMs)
    }
    const attrs = {}
    if (reply.event !== undefined) attrs[A.event] = code !== undefined ? 'error' : reply.event
    if (main !== undefined) {
      if (typeof main.host === 'string' && main.host !== '') attrs[A.serverAddress] = main.host
      if (typeof main.status === 'number') attrs[A.status] = main.status
      if (typeof main.clientRequestId === 'string') attrs[A.clientRequestId] = main.clientRequestId
      if (typeof main.requestId === 'string') attrs[A.requestId] = main.requestId
      addRetries(a, span, main)
    } else if (records.length === 0) {
      attrs[A.shared] = true
    }
    if (typeof reply.vault === 'string') attrs[A.serverAddress] = reply.vault
    if (typeof reply.vaultIndex === 'number') attrs[A.vaultIndex] = reply.vaultIndex
    if (typeof reply.requestId === 'string') attrs[A.requestId] = reply.requestId
    const failed = code !== undefined ? code : typeof reply.staleCode === 'string' ? reply.staleCode : undefined
    if (reply.event === 'stale') attrs[A.stale] = true
    if (failed !== undefined) attrs[A.errorType] = failed
    span.setAttributes(attrs)
    if (failed !== undefined) span.setStatus({ code: a.SpanStatusCode.ERROR, message: reasonOf(failed) || failed })
    span.end(endTime)
  }

  // The addon's promise rejected (an internal error).
  fail() {
    if (this.span === undefined) return
    const a = this.owner.api
    this.span.setAttribute(A.errorType, 'UNAVAILABLE')
    this.span.setStatus({ code: a.SpanStatusCode.ERROR, message: 'internal error' })
    this.span.end()
  }
}

// The manager's telemetry, or undefined: turned off, or the API absent.
function attach(manager, option) {
  if (option === false) return undefined
  const a = loadApi()
  if (a === null) return undefined
  const secretNames = option !== null && typeof option === 'object' && option.secretNames === true
  return new ManagerTelemetry(a, manager, secretNames)
}

// For `doctor`: whether telemetry can be on, and where it goes. Names only.
function describe() {
  const a = loadApi()
  if (a === null) return { api: false, tracerProvider: undefined, meterProvider: undefined }
  const provider = (x) => (x && x.constructor && typeof x.constructor.name === 'string' ? x.constructor.name : 'unknown')
  const tracer = tracerOf(a)
  const instruments = instrumentsOf(a)
  return {
    api: true,
    tracerProvider: tracer === undefined ? undefined : provider(state.traceDelegate),
    meterProvider: instruments === undefined ? undefined : provider(state.meterProvider),
  }
}

module.exports = { attach, describe, reasonOf, REASONS, ATTRIBUTES: A, NAME }
