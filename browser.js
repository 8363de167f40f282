'use strict'
// The browser entry (package.json `browser` field and `browser` export condition).
// Secrets live on the server only: this file loads no native code and reads no file or
// environment, so a client bundle carries none of it, and apps that guard with
// `if (msdyn365Commerce.secretManager)` take their browser branch.

const shared = require('./shared.js')

class SecretManager {
  constructor() {
    throw new Error('commerce-secret-manager runs on the server only; in a browser bundle secretManager is undefined')
  }
}

function createSecretManager() {
  return undefined
}

// Changes nothing and throws nothing: the platform's msdyn365Commerce has a getter-only
// `secretManager`, which is already undefined in the browser.
function install() {
  return undefined
}

function createEventGridHandler() {
  throw new Error('createEventGridHandler runs on the server only')
}

// No secrets to wait for in a browser: the handler answers 200 `{ ready: true, pending: 0 }`,
// whatever it is given, and creating it never throws, so module-level wiring of a health route
// keeps working where the browser condition is picked (Jest's jsdom).
function createReadinessHandler() {
  return function readinessHandler(req, res) {
    const body = '{"ready":true,"pending":0}'
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': body.length })
    res.end(req && req.method === 'HEAD' ? undefined : body)
  }
}

module.exports = {
  SecretManager,
  SecretError: shared.SecretError,
  createSecretManager,
  secretManager: undefined,
  install,
  createEventGridHandler,
  createReadinessHandler,
}
