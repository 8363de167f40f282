'use strict'
// Fakes of the managed identity endpoint and Retail Server, answering in the shapes of the
// recorded exchanges (see protocol.md §3): an App Service token reply has `expires_on` as a
// string of epoch seconds; Retail Server answers OData.
const { startServer } = require('./server')

const RESOURCE = 'https://commerce.dynamics.com'

// App Service identity endpoint: each request gets a new token `token-N`.
async function startIdentity({ lifetimeSeconds = 3600 } = {}) {
  let issued = 0
  const fake = await startServer()
  const tokenReply = () => {
    issued++
    return {
      status: 200,
      body: {
        access_token: `SENTINEL-TOKEN-${issued}`,
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
  fake.setDefault((req, res) => {
    const m = /secretName='(.*)'\)$/.exec(decodeURIComponent(req.url.split('?')[0]))
    const name = m ? m[1].replace(/''/g, "'") : undefined
    const r =
      name !== undefined && name in fake.values
        ? odata(fake.values[name])
        : retailError(404, 'Microsoft_Dynamics_Commerce_Runtime_SecretNotFound', `No secret named ${name}.`)
    res.writeHead(r.status, { 'content-type': 'application/json' })
    res.end(JSON.stringify(r.body))
  })
  return fake
}

module.exports = { startIdentity, startRetailServer, odata, retailError, RESOURCE }

// AAD v2 token endpoint (client credentials): POST /{tenant}/oauth2/v2.0/token.
async function startAad() {
  let issued = 0
  const fake = await startServer()
  fake.setDefault((req, res) => {
    issued++
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: `SENTINEL-AAD-TOKEN-${issued}` }))
  })
  return fake
}

// A Key Vault in the recorded shapes: a request without a token gets the 401 challenge;
// with one, /secrets/{name}[/{version}] answers the secret, 404 SecretNotFound, or 403
// SecretDisabled. `secrets`: name -> { value, enabled?, exp?, nbf?, versions?: { id: value } }.
async function startVault(secrets = {}, { tenant = 'tenant-from-challenge', resource = 'https://vault.azure.net' } = {}) {
  const fake = await startServer()
  fake.secrets = secrets
  fake.tenant = tenant
  fake.resource = resource
  const json = (res, status, body, headers = {}) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers })
    res.end(JSON.stringify(body))
  }
  // fake.delayMs: every answer comes that much later (a slow vault).
  fake.delayMs = 0
  fake.setDefault((req, res) => (fake.delayMs > 0 ? setTimeout(() => answerVault(req, res), fake.delayMs) : answerVault(req, res)))
  const answerVault = (req, res) => {
    if (!req.headers.authorization) {
      return json(res, 401, { error: { code: 'Unauthorized', message: 'AKV10000: Request is missing a Bearer or PoP token.' } }, {
        'www-authenticate': `Bearer authorization="https://login.microsoftonline.com/${fake.tenant}", resource="${fake.resource}"`,
      })
    }
    const m = /^\/secrets\/([^/]+)(?:\/([^/]+))?\/?$/.exec(req.url.split('?')[0])
    const s = m && fake.secrets[m[1]]
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
module.exports.startVault = startVault
