import cjs from './testing.js'

export const { createTestSecretManager, installTestSecretManager, TestSecretManager, SecretError } = cjs
export default cjs
