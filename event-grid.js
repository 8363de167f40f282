'use strict'
// Azure Event Grid push invalidation: a Node http / Express handler that answers the
// subscription handshake and refreshes the secret a Key Vault event names, on this instance.
// Event Grid schema and CloudEvents 1.0 are both accepted. Every request must carry the shared
// secret (query `code`, or header `x-commerce-secrets-code`); anything else gets 401 and
// changes nothing. Bodies are capped. Nothing here throws into the server.

const crypto = require('crypto')

const INTERNALS = Symbol.for('commerce-secret-manager.internals')
const MAX_BODY_BYTES = 1024 * 1024 // Event Grid's own limit for a batch
const VALIDATION = 'Microsoft.EventGrid.SubscriptionValidationEvent'
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
  if (req.body !== undefined && req.body !== null && typeof req.body === 'object' && !Buffer.isBuffer(req.body)) {
    return Promise.resolve({ json: req.body })
  }
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

// Event Grid schema ({ eventType, data }) or CloudEvents 1.0 ({ type, data }), one or a batch.
function normalize(json) {
  const list = Array.isArray(json) ? json : [json]
  return list.map((e) => {
    if (e === null || typeof e !== 'object') return { type: undefined, data: undefined }
    return { type: typeof e.eventType === 'string' ? e.eventType : e.type, data: e.data }
  })
}

// The vault name of an event: data.VaultName, else the first label of data.Id's host.
function vaultOf(data) {
  if (typeof data.VaultName === 'string' && data.VaultName !== '') return data.VaultName.toLowerCase()
  try {
    return new URL(data.Id).hostname.split('.')[0].toLowerCase()
  } catch (e) {
    return undefined
  }
}

function createEventGridHandler(manager, options) {
  if (manager === null || typeof manager !== 'object' || typeof manager.refresh !== 'function') {
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
  return function eventGridHandler(req, res) {
    Promise.resolve()
      .then(() => handle(manager, sharedSecret, spreadMs, req, res))
      .catch(() => send(res, 500, { error: 'the event could not be handled' }))
  }
}

async function handle(manager, sharedSecret, spreadMs, req, res) {
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
  if (!events.every((e) => SECRET_EVENTS.includes(e.type) && e.data && typeof e.data === 'object' && typeof e.data.ObjectName === 'string')) {
    return send(res, 400, { error: `only ${SECRET_EVENTS.join(', ')} with data.ObjectName are handled` })
  }
  // The vaults this manager reads: an event for another vault changes nothing.
  let vaults = []
  try {
    vaults = manager[INTERNALS]().describe().vaultUrls.map((u) => new URL(u).hostname.split('.')[0].toLowerCase())
  } catch (e) {
    vaults = []
  }
  if (vaults.length > 0 && !events.every((e) => vaults.includes(vaultOf(e.data)))) {
    return send(res, 403, { error: 'an event is for a vault this instance does not read' })
  }
  const names = Array.from(new Set(events.map((e) => e.data.ObjectName)))
  if (spreadMs > 0) {
    // A fleet that fans the event out to every instance: each refreshes at a random moment in
    // the window, so the vault is not asked by all at once. Accepted now; unref'd timers.
    for (const name of names) {
      const t = setTimeout(() => {
        if (manager.source === 'key-vault') manager.refresh(name, '')
        else manager.invalidate(name)
      }, Math.random() * spreadMs)
      if (t && typeof t.unref === 'function') t.unref()
    }
    return send(res, 202, { scheduled: names, withinMs: spreadMs })
  }
  const refreshed = []
  for (const name of names) {
    if (manager.source === 'key-vault') {
      const r = await manager.refresh(name, '')
      refreshed.push({ name, ok: r.error === undefined, code: r.error && r.error.code })
    } else {
      // Other sources are read through another name or url: forget it, the next call reads it.
      manager.invalidate(name)
      refreshed.push({ name, ok: true, invalidated: true })
    }
  }
  return send(res, 200, { refreshed })
}

module.exports = { createEventGridHandler, MAX_BODY_BYTES }
