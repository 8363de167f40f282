import cjs from './testing.js'

export const { createTestSecretManager, installTestSecretManager, createReadinessHandler, TestSecretManager, SecretError } = cjs
export default cjs
