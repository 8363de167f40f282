'use strict'
// Azure Event Grid push invalidation: a Node http / Express handler that answers the
// subscription handshake and hands each Key Vault event to manager.secretChanged (a thin
// adapter: which entries to refresh, and whether the vault and name are acceptable, is the
// manager's to say, through its public method).
// Event Grid schema and CloudEvents 1.0 are both accepted. Every request must carry the shared
// secret (query `code`, or header `x-commerce-secrets-code`); anything else gets 401 and
// changes nothing. Bodies are capped. Nothing here throws into the server.

const crypto = require('crypto')

const MAX_BODY_BYTES = 1024 * 1024 // Event Grid's own limit for a batch
const VALIDATION = 'Microsoft.EventGrid.SubscriptionValidationEvent'
const KEY_VAULT_EVENTS = 'Microsoft.KeyVault.'
// At most this many spreadMs refreshes waiting at once, per handler.
const MAX_SCHEDULED = 10000
const SECRET_EVENTS = [
  'Microsoft.KeyVault.SecretNewVersionCreated',
  'Microsoft.KeyVault.SecretNearExpiry',
  'Microsoft.KeyVault.SecretExpired',
]

function send(res, status, body, headers) {
  if (res.headersSent) return
  const text = body === undefined ? '' : JSON.stringify(body)
  res.writeHead(status, Object.assign({ 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) }, headers || {}))
  res.end(text)
}

function sameSecret(given, expected) {
  if (typeof given !== 'string') return false
  const a = crypto.createHash('sha256').update(given).digest()
  const b = crypto.createHash('sha256').update(expected).digest()
  return crypto.timingSafeEqual(a, b)
}

function presentedCode(req) {
  const header = req.headers['x-commerce-secrets-code']
  if (typeof header === 'string') return header
  try {
    return new URL(req.url || '/', 'http://localhost').searchParams.get('code')
  } catch (e) {
    return null
  }
}

// The body as parsed JSON: Express's already-parsed body, or read from the stream (capped).
function readBody(req) {
  // Express's body-parser sets req.body = {} for content types it does not parse (CloudEvents'
  // application/cloudevents+json among them): an object counts as parsed only when the parser
  // says so (req._body) or it has content; else the stream is read, if it still can be.
  const parsed =
    req.body !== undefined && req.body !== null && typeof req.body === 'object' && !Buffer.isBuffer(req.body) &&
    (req._body === true || Array.isArray(req.body) || Object.keys(req.body).length > 0 || req.readable === false)
  if (parsed) return Promise.resolve({ json: req.body })
  if (typeof req.body === 'string' || Buffer.isBuffer(req.body)) {
    const text = String(req.body)
    if (Buffer.byteLength(text) > MAX_BODY_BYTES) return Promise.resolve({ status: 413 })
    return Promise.resolve(parse(text))
  }
  return new Promise((resolve) => {
    const chunks = []
    let size = 0
    let done = false
    const finish = (r) => {
      if (!done) {
        done = true
        resolve(r)
      }
    }
    req.on('data', (c) => {
      size += c.length
      if (size > MAX_BODY_BYTES) {
        finish({ status: 413 })
        req.pause()
        return
      }
      chunks.push(c)
    })
    req.on('end', () => finish(parse(Buffer.concat(chunks).toString('utf8'))))
    req.on('error', () => finish({ status: 400 }))
  })
}

function parse(text) {
  try {
    return { json: JSON.parse(text) }
  } catch (e) {
    return { status: 400 }
  }
}

// Event Grid schema ({ id, eventType, data }) or CloudEvents 1.0 ({ id, type, data }), one or
// a batch.
function normalize(json) {
  const list = Array.isArray(json) ? json : [json]
  return list.map((e) => {
    if (e === null || typeof e !== 'object') return { id: undefined, type: undefined, data: undefined }
    return { id: typeof e.id === 'string' ? e.id : undefined, type: typeof e.eventType === 'string' ? e.eventType : e.type, data: e.data }
  })
}

// The vault of an event, as secretChanged takes it: the origin of data.Id (the secret's id,
// https://<vault>/secrets/<name>/<version>), else data.VaultName (a short name, which the
// manager completes with its cloud's vault domain). Never a guess from part of a host.
function vaultOf(data) {
  if (typeof data.Id === 'string' && data.Id !== '') {
    try {
      const u = new URL(data.Id)
      if (u.protocol === 'https:' || u.protocol === 'http:') return `${u.protocol}//${u.host}`
    } catch (e) {
      // fall through to VaultName
    }
  }
  return typeof data.VaultName === 'string' ? data.VaultName : ''
}

// Event ids recently handled, oldest first: a redelivery (Event Grid delivers at least once,
// and a fan-out repeats) costs nothing. Bounded.
const SEEN_IDS = 10000
function makeSeen() {
  const ids = new Set()
  return {
    has: (id) => ids.has(id),
    add(id) {
      ids.add(id)
      if (ids.size > SEEN_IDS) ids.delete(ids.values().next().value)
    },
    // A delivery whose refresh failed: its redelivery must count.
    delete: (id) => ids.delete(id),
  }
}

// At most this many secretChanged calls at once for one delivery: a batch of 500 names
// against a 100 ms vault is answered in a few seconds, well inside Event Grid's 30 s.
const CONCURRENCY = 32

function eachBounded(items, limit, fn) {
  const results = new Array(items.length)
  let next = 0
  const worker = () => {
    if (next >= items.length) return Promise.resolve()
    const i = next++
    return Promise.resolve()
      .then(() => fn(items[i]))
      .then((r) => {
        results[i] = r
        return worker()
      })
  }
  const workers = []
  for (let k = 0; k < Math.min(limit, items.length); k++) workers.push(worker())
  return Promise.all(workers).then(() => results)
}

function createEventGridHandler(manager, options) {
  if (manager === null || typeof manager !== 'object' || typeof manager.secretChanged !== 'function') {
    throw new TypeError('createEventGridHandler takes a SecretManager')
  }
  const sharedSecret = options && options.sharedSecret
  if (typeof sharedSecret !== 'string' || sharedSecret.length < 16) {
    throw new TypeError('createEventGridHandler: options.sharedSecret must be a string of at least 16 characters')
  }
  const spreadMs = options.spreadMs === undefined ? 0 : options.spreadMs
  if (typeof spreadMs !== 'number' || !Number.isFinite(spreadMs) || spreadMs < 0 || spreadMs > 600000) {
    throw new TypeError('createEventGridHandler: options.spreadMs must be a number from 0 to 600000')
  }
  const seen = makeSeen()
  const scheduled = { count: 0 }
  return function eventGridHandler(req, res) {
    Promise.resolve()
      .then(() => handle(manager, sharedSecret, spreadMs, seen, scheduled, req, res))
      .catch(() => send(res, 500, { error: 'the event could not be handled' }))
  }
}

// One event: its secret's refresh through manager.secretChanged, or why it was refused.
function changed(manager, change) {
  // The manager's own variant also says how many refreshes failed (a test double has only
  // the public one).
  const call = typeof manager._secretChanged === 'function' ? manager._secretChanged(change.vault, change.name) : manager.secretChanged(change.vault, change.name)
  return call.then(
    (r) => ({ name: change.name, ok: !(r.failed > 0), refreshed: r.refreshed, failed: r.failed || 0 }),
    (e) => ({ name: change.name, ok: false, refused: true, code: e && e.code, message: e && e.message }),
  )
}

async function handle(manager, sharedSecret, spreadMs, seen, scheduled, req, res) {
  if (!sameSecret(presentedCode(req), sharedSecret)) return send(res, 401, { error: 'the shared secret is missing or wrong' })
  // CloudEvents 1.0 abuse-protection handshake.
  if (req.method === 'OPTIONS') {
    const origin = req.headers['webhook-request-origin']
    if (typeof origin !== 'string' || origin === '') return send(res, 400, { error: 'no WebHook-Request-Origin' })
    return send(res, 200, undefined, { 'webhook-allowed-origin': origin, 'webhook-allowed-rate': '*' })
  }
  if (req.method !== 'POST') return send(res, 405, { error: 'POST or OPTIONS' }, { allow: 'POST, OPTIONS' })
  const body = await readBody(req)
  if (body.status !== undefined) return send(res, body.status, { error: body.status === 413 ? 'the body is too large' : 'the body is not JSON' })
  const events = normalize(body.json)
  if (events.length === 0) return send(res, 400, { error: 'no event' })
  // Event Grid schema handshake.
  const validation = events.find((e) => e.type === VALIDATION)
  if (validation !== undefined) {
    const code = validation.data && validation.data.validationCode
    if (typeof code !== 'string' || code === '') return send(res, 400, { error: 'no validationCode' })
    return send(res, 200, { validationResponse: code })
  }
  // A vault's subscription may carry key and certificate events too: those are acknowledged
  // and skipped, so a mixed batch still gets its secret events handled. A batch with nothing
  // of Key Vault's, or a secret event without data.ObjectName, is refused (400, final).
  const isSecretEvent = (e) => SECRET_EVENTS.includes(e.type)
  if (!events.some((e) => typeof e.type === 'string' && e.type.indexOf(KEY_VAULT_EVENTS) === 0)) {
    return send(res, 400, { error: `only Key Vault events (${SECRET_EVENTS.join(', ')}) are handled` })
  }
  if (!events.filter(isSecretEvent).every((e) => e.data && typeof e.data === 'object' && typeof e.data.ObjectName === 'string')) {
    return send(res, 400, { error: `${SECRET_EVENTS.join(', ')} need data.ObjectName` })
  }
  const skipped = events.filter((e) => !isSecretEvent(e)).length
  // Redeliveries (an id handled before, or twice in this batch) cost nothing; the same secret
  // named twice is one change.
  const changes = []
  const keyed = new Map()
  let repeated = 0
  for (const e of events) {
    if (!isSecretEvent(e)) continue
    if (e.id !== undefined) {
      if (seen.has(e.id)) {
        repeated++
        continue
      }
      seen.add(e.id)
    }
    const change = { vault: vaultOf(e.data), name: e.data.ObjectName, ids: [] }
    const k = `${change.vault}\n${change.name}`
    const same = keyed.get(k)
    if (same !== undefined) {
      if (e.id !== undefined) same.ids.push(e.id)
      continue
    }
    if (e.id !== undefined) change.ids.push(e.id)
    keyed.set(k, change)
    changes.push(change)
  }
  if (spreadMs > 0) {
    // A fleet that fans the event out to every instance: each refreshes at a random moment in
    // the window, so the vault is not asked by all at once. Accepted now; unref'd timers, at
    // most MAX_SCHEDULED waiting at once (past that: 503, Event Grid delivers again later).
    if (scheduled.count + changes.length > MAX_SCHEDULED) {
      for (const c of changes) for (const id of c.ids) seen.delete(id)
      return send(res, 503, { error: 'too many refreshes are waiting; deliver again later' })
    }
    for (const change of changes) {
      scheduled.count++
      const t = setTimeout(() => {
        scheduled.count--
        manager.secretChanged(change.vault, change.name).catch(() => {})
      }, Math.random() * spreadMs)
      if (t && typeof t.unref === 'function') t.unref()
    }
    return send(res, 202, { scheduled: changes.map((c) => c.name), withinMs: spreadMs, repeated, skipped })
  }
  const results = await eachBounded(changes, CONCURRENCY, (c) => changed(manager, c))
  const refused = results.filter((r) => r.refused)
  // A refresh that failed (the vault down, a timeout): its events are forgotten and the answer
  // is 503, which Event Grid retries, so the push is not lost.
  const failed = results.filter((r) => r.failed > 0)
  for (let i = 0; i < results.length; i++) if (results[i].failed > 0) for (const id of changes[i].ids) seen.delete(id)
  // A refusal is final (4xx: Event Grid does not retry it): an event for a vault this instance
  // does not read (403), or a name that is not a secret name (400).
  if (refused.length > 0) {
    const status = refused.some((r) => r.code === 'HOST_NOT_ALLOWED') ? 403 : 400
    const error = status === 403 ? 'an event is for a vault this instance does not read' : 'an event names no Key Vault secret'
    return send(res, status, { error, refreshed: results.map(shown) })
  }
  if (failed.length > 0) {
    return send(res, 503, { error: 'a refresh failed; deliver again later', refreshed: results.map(shown) })
  }
  return send(res, 200, { refreshed: results.map(shown), repeated, skipped })
}

function shown(r) {
  return r.refused ? { name: r.name, ok: false, code: r.code } : { name: r.name, ok: r.ok, refreshed: r.refreshed }
}

module.exports = { createEventGridHandler, MAX_BODY_BYTES }
