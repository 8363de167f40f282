import cjs from './index.js'

export const { SecretManager, SecretError, createSecretManager, secretManager, install } = cjs
export default cjs
