import cjs from './browser.js'

export const { SecretManager, SecretError, createSecretManager, secretManager, install, createEventGridHandler } = cjs
export default cjs
