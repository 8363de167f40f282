import cjs from './browser.js'

export const { SecretManager, SecretError, createSecretManager, secretManager, install, createEventGridHandler, createReadinessHandler } = cjs
export default cjs
