'use strict'
// Fakes of the managed identity endpoint and Retail Server, answering in the shapes of the
// recorded exchanges (see protocol.md §3): an App Service token reply has `expires_on` as a
// string of epoch seconds; Retail Server answers OData.
const { startServer } = require('./server')
const { randomUUID } = require('node:crypto')

// Request ids, as the real services send them: Key Vault `x-ms-request-id` on every reply,
// Retail Server `request-id`. Each fake lists the ids it sent (`fake.requestIds`), in order.
function requestIdHeader(fake, name) {
  const id = randomUUID()
  fake.requestIds.push(id)
  return { [name]: id }
}

const RESOURCE = 'https://commerce.dynamics.com'

// App Service identity endpoint: each request gets a new token `token-N`.
// Every token a fake identity endpoint or AAD issued in this test process: the fake vault
// accepts these and nothing else (a test serving tokens of its own registers them with
// acceptToken), so a request with a wrong or missing token cannot pass for an authenticated one.
// AAD's tokens are for a tenant: a vault of another tenant refuses them with its challenge.
const ISSUED = new Set()
const TENANT_OF = new Map()
function issue(token, tenant) {
  ISSUED.add(token)
  if (tenant !== undefined) TENANT_OF.set(token, tenant.toLowerCase())
  return token
}

async function startIdentity({ lifetimeSeconds = 3600 } = {}) {
  let issued = 0
  const fake = await startServer()
  const tokenReply = () => {
    issued++
    return {
      status: 200,
      body: {
        access_token: issue(`SENTINEL-TOKEN-${issued}`),
        expires_on: String(Math.floor(Date.now() / 1000) + fake.lifetimeSeconds),
        resource: RESOURCE,
        token_type: 'Bearer',
        client_id: 'client-id',
      },
    }
  }
  fake.lifetimeSeconds = lifetimeSeconds
  fake.setDefault((req, res) => {
    const r = tokenReply()
    res.writeHead(r.status, { 'content-type': 'application/json' })
    res.end(JSON.stringify(r.body))
  })
  fake.endpoint = `${fake.url}msi/token/`
  return fake
}

function odata(value) {
  return {
    status: 200,
    body: { '@odata.context': 'https://scu1234ret.commerce.dynamics.com/Commerce/$metadata#Edm.String', value },
  }
}

function retailError(status, id, message) {
  return { status, body: { ErrorResourceId: id, LocalizedMessage: message } }
}

// Retail Server: values by secret name; anything else answers 404 with an ErrorResourceId.
async function startRetailServer(values = {}) {
  const fake = await startServer()
  fake.values = values
  fake.requestIds = []
  fake.setDefault((req, res) => {
    const m = /secretName='(.*)'\)$/.exec(decodeURIComponent(req.url.split('?')[0]))
    const name = m ? m[1].replace(/''/g, "'") : undefined
    const r =
      name !== undefined && name in fake.values
        ? odata(fake.values[name])
        : retailError(404, 'Microsoft_Dynamics_Commerce_Runtime_SecretNotFound', `No secret named ${name}.`)
    res.writeHead(r.status, { 'content-type': 'application/json', ...requestIdHeader(fake, 'request-id') })
    res.end(JSON.stringify(r.body))
  })
  return fake
}

module.exports = { startIdentity, startRetailServer, odata, retailError, RESOURCE }

// AAD v2 token endpoint (client credentials): POST /{tenant}/oauth2/v2.0/token. It checks
// what it is sent, as AAD does, and answers AAD's 400 otherwise: grant_type client_credentials,
// a scope, the tenant in the path, client_id, and exactly one of client_secret or
// client_assertion (with its jwt-bearer type). `expect` ({ tenant, clientId, clientSecret,
// assertion }; `tenant` a string or an array): each field given is checked exactly; one not
// given must still be there and well-formed. `fake.expect` may be changed by a test;
// `fake.refusals` lists what was refused (AAD's error codes).
const TENANT_SHAPE = /^[0-9a-zA-Z.-]+$/
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'

function aadRefusal(method, rawPath, form, expect) {
  const m = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(rawPath)
  const tenants = expect.tenant === undefined ? undefined : [].concat(expect.tenant)
  if (method !== 'POST' || !m) return ['invalid_request', 'AADSTS900561: The endpoint only accepts POST requests to /{tenant}/oauth2/v2.0/token.']
  const tenant = decodeURIComponent(m[1])
  if (!TENANT_SHAPE.test(tenant) || tenant.startsWith('-') || (tenants && !tenants.includes(tenant))) {
    return ['invalid_request', `AADSTS90002: Tenant '${tenant}' not found.`]
  }
  if (form.grant_type !== 'client_credentials') return ['unsupported_grant_type', 'AADSTS70003: The app requested an unsupported grant type.']
  if (!form.scope) return ['invalid_request', "AADSTS900144: The request body must contain the following parameter: 'scope'."]
  if (!form.client_id || (expect.clientId !== undefined && form.client_id !== expect.clientId)) {
    return ['unauthorized_client', `AADSTS700016: Application with identifier '${form.client_id}' was not found in the directory '${tenant}'.`]
  }
  const secret = form.client_secret
  const assertion = form.client_assertion
  if ((secret === undefined) === (assertion === undefined) || (assertion !== undefined && form.client_assertion_type !== JWT_BEARER)) {
    return ['invalid_client', "AADSTS7000216: 'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type."]
  }
  if (secret !== undefined && (secret === '' || (expect.clientSecret !== undefined && secret !== expect.clientSecret))) {
    return ['invalid_client', 'AADSTS7000215: Invalid client secret provided.']
  }
  if (assertion !== undefined && (assertion === '' || (expect.assertion !== undefined && assertion !== expect.assertion))) {
    return ['invalid_client', 'AADSTS700027: Client assertion failed signature validation.']
  }
  return undefined
}

async function startAad(expect = {}) {
  let issued = 0
  const fake = await startServer()
  fake.expect = expect
  fake.refusals = []
  fake.setDefault((req, res) => {
    const q = fake.requests[fake.requests.length - 1]
    const form = Object.fromEntries(new URLSearchParams(q.body))
    const refused = aadRefusal(q.method, q.rawPath, form, fake.expect)
    res.writeHead(refused ? 400 : 200, { 'content-type': 'application/json' })
    if (refused) {
      fake.refusals.push(refused[0])
      return res.end(JSON.stringify({ error: refused[0], error_description: refused[1], error_codes: [Number(refused[1].slice(6, refused[1].indexOf(':')))] }))
    }
    issued++
    res.end(JSON.stringify({ token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: issue(`SENTINEL-AAD-TOKEN-${issued}`, q.rawPath.split('/')[1]) }))
  })
  return fake
}

// A Key Vault in the recorded shapes: a request without a token gets the 401 challenge;
// with one, /secrets/{name}[/{version}] answers the secret, 404 SecretNotFound, or 403
// SecretDisabled. `secrets`: name -> { value, enabled?, exp?, nbf?, versions?: { id: value } }.
async function startVault(secrets = {}, { tenant = 'tenant-from-challenge', resource = 'https://vault.azure.net' } = {}) {
  const fake = await startServer()
  fake.secrets = secrets
  fake.requestIds = []
  fake.tenant = tenant
  fake.resource = resource
  const json = (res, status, body, headers = {}) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...requestIdHeader(fake, 'x-ms-request-id'), ...headers })
    res.end(JSON.stringify(body))
  }
  // fake.delayMs: every answer comes that much later (a slow vault).
  fake.delayMs = 0
  fake.setDefault((req, res) => (fake.delayMs > 0 ? setTimeout(() => answerVault(req, res), fake.delayMs) : answerVault(req, res)))
  const answerVault = (req, res) => {
    const challenge = { 'www-authenticate': `Bearer authorization="https://login.microsoftonline.com/${fake.tenant}", resource="${fake.resource}"` }
    if (!req.headers.authorization) {
      return json(res, 401, { error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } }, challenge)
    }
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization)
    const tenant = bearer && TENANT_OF.get(bearer[1])
    if (!bearer || !ISSUED.has(bearer[1]) || (tenant !== undefined && tenant !== fake.tenant.toLowerCase())) {
      fake.refused = (fake.refused || 0) + 1
      return json(res, 401, { error: { code: 'Unauthorized', message: 'AKV10032: Invalid issuer.' } }, challenge)
    }
    const m = /^\/secrets\/([^/]+)(?:\/([^/]+))?\/?$/.exec(req.url.split('?')[0])
    // Key Vault compares names ignoring case.
    const stored = m && Object.keys(fake.secrets).find((k) => k.toLowerCase() === m[1].toLowerCase())
    const s = stored !== undefined && stored !== null ? fake.secrets[stored] : undefined
    const version = m && m[2]
    if (!s || (version && !(s.versions && version in s.versions))) {
      return json(res, 404, {
        error: { code: 'SecretNotFound', message: `A secret with (name/id) ${m ? m[1] : '?'} was not found in this key vault.` },
      })
    }
    if (s.enabled === false) {
      return json(res, 403, {
        error: { code: 'Forbidden', message: 'Operation get is not allowed on a disabled secret.', innererror: { code: 'SecretDisabled' } },
      })
    }
    const id = version ?? s.currentVersion ?? 'c8057e1c0e694d29a73c363af8b51e92'
    const attributes = { enabled: true, created: 1739463503, updated: 1739463503, recoveryLevel: 'Recoverable+Purgeable' }
    if (s.exp !== undefined) attributes.exp = s.exp
    if (s.nbf !== undefined) attributes.nbf = s.nbf
    json(res, 200, { value: version ? s.versions[version] : s.value, id: `${fake.url}secrets/${m[1]}/${id}`, attributes })
  }
  return fake
}

module.exports.startAad = startAad
module.exports.acceptToken = issue
module.exports.startVault = startVault
