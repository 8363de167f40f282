import cjs from './browser.js'

export const { SecretManager, SecretError, createSecretManager, secretManager, install } = cjs
export default cjs
