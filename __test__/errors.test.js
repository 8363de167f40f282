'use strict'
// Errors are real Errors made in the caller's realm, with a code, and never carry a value.
const util = require('node:util')
const { SecretManager, SecretError } = require('..')
const { URL, control } = require('./helpers')

test('errors are instances of Error and SecretError in this realm, with code, secretKey and status', async () => {
  const m = new SecretManager({ source: 'memory', secrets: {} })
  const r = await m.getSecretValue('absent', URL)
  expect(r.error).toBeInstanceOf(Error)
  expect(r.error).toBeInstanceOf(SecretError)
  expect(r.error.name).toBe('SecretError')
  expect(r.error.code).toBe('NOT_FOUND')
  expect(r.error.secretKey).toBe('absent')
  expect(r.error.status).toBe(404)
  expect(r.error.message).toContain("'absent'")
  expect(typeof r.error.stack).toBe('string')
  expect(r.expiresOn).toBe(0)
})

test('a value appears in no error, inspect or JSON of an error; inspecting a result redacts the value', async () => {
  const m = new SecretManager({ source: 'memory', secrets: { k: 'SENTINEL-VALUE' } })
  const ok = await m.getSecretValue('k', URL)
  expect(ok.value).toBe('SENTINEL-VALUE')
  expect(util.inspect(ok)).not.toContain('SENTINEL')
  expect(util.inspect(ok)).toContain('[redacted]')
  expect(JSON.parse(JSON.stringify(ok))).toEqual({ value: 'SENTINEL-VALUE', expiresOn: ok.expiresOn })
  expect(util.inspect(m)).not.toContain('SENTINEL')
  control(m, { key: 'k', fault: 'BAD_RESPONSE' })
  m.invalidate('k')
  const bad = await m.getSecretValue('k', URL)
  expect(bad.error.code).toBe('BAD_RESPONSE')
  for (const shown of [util.inspect(bad, { depth: 5 }), JSON.stringify(bad), bad.error.stack, String(bad.error)]) {
    expect(shown).not.toContain('SENTINEL')
  }
})
