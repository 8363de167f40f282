'use strict'
// The browser entry (package.json `browser` field and `browser` export condition).
// Secrets live on the server only: this file loads no native code and reads no file or
// environment, so a client bundle carries none of it, and apps that guard with
// `if (msdyn365Commerce.secretManager)` take their browser branch.

class SecretError extends Error {
  constructor(code, message, secretKey, status) {
    super(message)
    this.code = code
    if (secretKey !== undefined) this.secretKey = secretKey
    if (status !== undefined) this.status = status
  }
}
SecretError.prototype.name = 'SecretError'

class SecretManager {
  constructor() {
    throw new Error('commerce-secret-manager runs on the server only; in a browser bundle secretManager is undefined')
  }
}

function createSecretManager() {
  return undefined
}

function install(target) {
  if (target !== null && typeof target === 'object') target.secretManager = undefined
  return undefined
}

module.exports = { SecretManager, SecretError, createSecretManager, secretManager: undefined, install }
