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
